"""The Deep Linking picker in a real browser that blocks third-party cookies: the teacher opens
"Deep link (add content)" on the development platform (http://localhost:PORT), the picker runs in
its iframe (the tool, http://127.0.0.1:PORT, another site), searches the catalogue, previews a
course, picks it with a title and maximum score, submits; the signed response goes back to the
platform, which verifies it and shows the placed link; a learner launch of it opens the course."""
from __future__ import annotations

import requests

from tests.browser import frames

from tests.integration.test_player_common import MOOC, import_course

NATIVE_COURSE = MOOC / "hydrogen-fcev-basics-native"
SCORM_COURSE = MOOC / "battery-safety-ev-scorm2004"


def tool_frame(page, state: str):
    return frames.tool_frame(page, f"#launch-view[data-state={state}]")


def test_teacher_picks_a_course_inside_the_platform_iframe(live_server, blocked_cookies_page):
    course = import_course(live_server, NATIVE_COURSE)
    other = import_course(live_server, SCORM_COURSE)
    page = blocked_cookies_page
    page.goto(f"{live_server.platform_url}/devplatform/launch?user=teacher&message=deeplink&target=iframe")
    frame = tool_frame(page, "picker")
    assert frame.url.startswith(live_server.url + "/launch/")
    assert frame.get_attribute("#launch-view", "data-view") == "deep_linking"
    # Nothing of the launch lives in a cookie: the picker works with third-party cookies blocked.
    assert [c for c in page.context.cookies(live_server.url)] == []

    # Search by words and EQF level, keyboard-labelled fields.
    assert frame.is_visible(f'.result[data-course-id="{other["course_id"]}"]')  # before searching: every course
    frame.get_by_label("Search the catalogue").fill("fuel cell")
    frame.get_by_label("EQF level").select_option("4")
    with frame.expect_navigation():
        frame.click("#search-button")
    assert "/teach/" in frame.url and "q=fuel+cell" in frame.url
    frame.wait_for_selector(f'.result[data-course-id="{course["course_id"]}"]')
    assert frame.inner_text("#results-title").startswith("1 course")
    assert not frame.is_visible(f'.result[data-course-id="{other["course_id"]}"]')

    # Preview, then choose the whole course with a title and a maximum score.
    frame.click(f'.result[data-course-id="{course["course_id"]}"] h3 a')
    frame.wait_for_selector("#launch-view[data-state=preview]")
    assert "Module 2: The vehicle and the workshop" in frame.inner_text(".tree")
    assert frame.is_checked("#item-course")
    # Only the chosen items' fields are shown and sent (picker.js): a module's appear when it is ticked.
    module = frame.get_attribute('input[name=item][value^="m"]', "value")
    assert frame.is_hidden(f"#title-{module}")
    frame.check(f"#item-{module}")
    assert frame.is_visible(f"#title-{module}") and frame.is_enabled(f"#score-{module}")
    frame.uncheck(f"#item-{module}")
    assert frame.is_hidden(f"#title-{module}")
    frame.get_by_label("Title in the LMS for Hydrogen fuel-cell vehicle basics").fill("Hydrogen basics (browser)")
    frame.get_by_label("Maximum score for Hydrogen fuel-cell vehicle basics").fill("30")
    frame.click("#select-submit")

    # The response is posted back to the platform in the same frame; the platform shows the placed link.
    frame.wait_for_selector("#dl-links", timeout=20000)
    assert frame.url.startswith(live_server.platform_url + "/devplatform/deep-link-return")
    assert "Hydrogen basics (browser)" in frame.inner_text("#dl-links")
    link_id = frame.get_attribute("#dl-links li", "data-resource-link-id")
    book = requests.get(f"{live_server.platform_url}/devplatform/gradebook.json").json()
    link = next(l for l in book["links"] if l["resource_link_id"] == link_id)
    assert link["custom"] == {"course": "TRIREME|urn:lms-bridge:mooc:hydrogen-fcev-basics"}
    assert next(i for i in book["line_items"] if i["id"] == link["line_item_id"])["score_maximum"] == 30

    # The learner's launch of the placed link opens the course in the iframe.
    page.goto(f"{live_server.platform_url}/devplatform/launch?user=learner&target=iframe&link={link_id}")
    learner = tool_frame(page, "playing")
    assert "Hydrogen as an energy carrier" in learner.inner_text("#main")
