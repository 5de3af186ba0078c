"""Lesson HTML inside the player page: one h1 (the activity title), lesson headings one level down."""
from lms_bridge.player.views import _outline_headings


def test_a_leading_h1_repeating_the_title_is_dropped_and_headings_move_down():
    html = "<h1>Hydrogen  as an <em>energy</em> carrier</h1>\n<p>x</p><h2 id='a'>Part</h2><h3>Sub</h3>"
    assert _outline_headings(html, "Hydrogen as an energy carrier") == "<p>x</p><h3 id='a'>Part</h3><h4>Sub</h4>"


def test_a_different_h1_is_kept_one_level_down():
    assert _outline_headings("<h1>Overview</h1><p>x</p>", "Lesson 1") == "<h2>Overview</h2><p>x</p>"


def test_h6_stays_and_closing_tags_follow():
    assert _outline_headings("<H5>a</H5><h6>b</h6>", None) == "<h6>a</h6><h6>b</h6>"
