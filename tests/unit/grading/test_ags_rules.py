"""Pure parts of grade passback: Moodle-shaped service URLs, Link and Retry-After headers, the AGS
progress of a course or module from its activities, the Score body, monotonic timestamps."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from lms_bridge.grading import ags
from lms_bridge.grading.passback import (
    ActivityState,
    ResourceResult,
    format_timestamp,
    next_timestamp,
    resource_result,
    score_body,
)
from lms_bridge.player.progress import ActivityInfo, CourseRules


# -- URLs and headers ---------------------------------------------------------------------------


@pytest.mark.parametrize("url, expected", [
    ("https://moodle.example.org/mod/lti/services.php/2/lineitems/17/lineitem?type_id=5",
     "https://moodle.example.org/mod/lti/services.php/2/lineitems/17/lineitem/scores?type_id=5"),
    ("https://canvas.example.org/api/lti/courses/1/line_items/3", "https://canvas.example.org/api/lti/courses/1/line_items/3/scores"),
    ("https://lms.example.org/li/3/", "https://lms.example.org/li/3/scores"),
    ("https://lms.example.org/li/3?a=1&b=2#frag", "https://lms.example.org/li/3/scores?a=1&b=2"),
])
def test_scores_go_in_the_path_before_the_query(url, expected):
    assert ags.service_url(url, "scores") == expected
    assert ags.service_url(url, "results") == expected.replace("/scores", "/results")


def test_query_parameters_are_added_to_the_existing_query():
    url = "https://moodle.example.org/mod/lti/services.php/2/lineitems?type_id=5"
    assert ags.with_query(url, {"resource_link_id": "7", "limit": None}) == url + "&resource_link_id=7"
    assert ags.with_query(url + "&limit=5", {"limit": 2}) == url + "&limit=2"
    assert ags.with_query(url, {}) == url


def test_link_header_parsing():
    value = ('<https://lms.example.org/li?page=3>; rel="next last", <https://lms.example.org/li?page=1>; '
             'rel="first"; title="a, b", </li?page=1>; rel=prev')
    links = ags.parse_link_header(value, "https://lms.example.org/li?page=2")
    assert links == {"next": "https://lms.example.org/li?page=3", "last": "https://lms.example.org/li?page=3",
                     "first": "https://lms.example.org/li?page=1", "prev": "https://lms.example.org/li?page=1"}
    assert ags.parse_link_header("", "x") == {} and ags.parse_link_header(None) == {}
    assert ags.parse_link_header("<https://a/b>; title=x") == {}


def test_retry_after():
    assert ags.parse_retry_after("120") == 120.0
    when = datetime.now(timezone.utc) + timedelta(seconds=90)
    assert ags.parse_retry_after(format_datetime(when, usegmt=True)) == pytest.approx(90, abs=2)
    assert ags.parse_retry_after(format_datetime(when - timedelta(hours=1), usegmt=True)) == 0.0
    assert ags.parse_retry_after("soon") is None and ags.parse_retry_after(None) is None


# -- the result of a resource -------------------------------------------------------------------


def _rules(*acts, pass_mark=0.8, required=None) -> CourseRules:
    infos = tuple(ActivityInfo(key=k, identifier=k, title=k, kind=kind, required=True, mastery_score=None, move_on=None)
                  for k, kind in acts)
    keys = tuple(required) if required is not None else tuple(k for k, _ in acts)
    return CourseRules(version_id=1, course_id=1, rule="all_required", pass_mark=pass_mark, activities=infos,
                       required_keys=keys)


COURSE = _rules(("l1", "lesson"), ("l2", "lesson"), ("q", "quiz"), ("m2q", "quiz"))
DONE = ActivityState("completed", "unknown", None, True)


def test_course_progress_from_start_to_completion():
    assert resource_result(COURSE, {}, None, False) == ResourceResult("Initialized", "Pending", None)
    opened = {"q": ActivityState("incomplete", "unknown", None, True)}
    assert resource_result(COURSE, opened, None, False) == ResourceResult("Started", "Pending", None)
    one = {"l1": DONE}
    assert resource_result(COURSE, one, None, False) == ResourceResult("InProgress", "Pending", None)
    scored = {"l1": DONE, "q": ActivityState("completed", "failed", 0.5, True)}
    assert resource_result(COURSE, scored, None, False) == ResourceResult("InProgress", "Pending", 0.5)
    submitted = {"l1": DONE, "l2": DONE, "q": ActivityState("completed", "failed", 0.5, True),
                 "m2q": ActivityState("completed", "passed", 0.9, True)}
    assert resource_result(COURSE, submitted, None, False) == ResourceResult("Submitted", "FullyGraded", 0.7)
    passed = {**submitted, "q": ActivityState("completed", "passed", 1.0, True)}
    assert resource_result(COURSE, passed, None, True) == ResourceResult("Completed", "FullyGraded", 0.95)


def test_module_progress_is_the_modules_own():
    module = ("l2", "m2q")
    states = {"l1": DONE, "q": ActivityState("completed", "passed", 1.0, True)}
    assert resource_result(COURSE, states, module, False).activity_progress == "Initialized"
    states["l2"] = DONE
    states["m2q"] = ActivityState("completed", "passed", 0.9, True)
    # The module is complete (its score 0.9 >= 0.8) while the course is not.
    assert resource_result(COURSE, states, module, False) == ResourceResult("Completed", "FullyGraded", 0.9)
    # A module without required activities counts all of its activities.
    optional = _rules(("a", "lesson"), ("b", "quiz"), required=["b"])
    assert resource_result(optional, {"a": DONE}, ("a",), False) == ResourceResult("Completed", "FullyGraded", 1.0)


def test_completion_without_scores_earns_the_maximum():
    lessons = _rules(("l1", "lesson"), ("l2", "lesson"))
    result = resource_result(lessons, {"l1": DONE, "l2": DONE}, None, True)
    assert result == ResourceResult("Completed", "FullyGraded", 1.0)
    body = score_body(result, user_id="4", timestamp="t")
    assert (body["scoreGiven"], body["scoreMaximum"]) == (100.0, 100.0)


def test_score_body():
    body = score_body(ResourceResult("InProgress", "Pending", None), user_id="7", timestamp="2026-11-21T09:00:00.000+00:00")
    assert body == {"userId": "7", "scoreMaximum": 100.0, "activityProgress": "InProgress", "gradingProgress": "Pending",
                    "timestamp": "2026-11-21T09:00:00.000+00:00"}
    assert score_body(ResourceResult("Submitted", "FullyGraded", 0.123456), user_id="7", timestamp="t")["scoreGiven"] == 12.3456
    assert score_body(ResourceResult("Submitted", "FullyGraded", -0.5), user_id="7", timestamp="t")["scoreGiven"] == 0.0


def test_timestamps_have_milliseconds_and_only_increase():
    moment = datetime(2026, 11, 21, 9, 0, 0, 123456)
    assert format_timestamp(moment) == "2026-11-21T09:00:00.123+00:00"
    assert next_timestamp(moment, None) == "2026-11-21T09:00:00.123+00:00"
    assert next_timestamp(moment, "2026-11-21T09:00:00.100+00:00") == "2026-11-21T09:00:00.123+00:00"
    # Not newer than the last one sent (same millisecond, or a clock step back): 1 ms after it.
    assert next_timestamp(moment, "2026-11-21T09:00:00.123+00:00") == "2026-11-21T09:00:00.124+00:00"
    assert next_timestamp(moment, "2026-11-21T09:00:05.999+00:00") == "2026-11-21T09:00:06.000+00:00"
    assert datetime.fromisoformat(next_timestamp(moment, None)).tzinfo is not None
