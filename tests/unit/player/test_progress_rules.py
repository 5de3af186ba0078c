"""Completion rules of the progress service (pure functions) and SCORM cmi mapping."""
from __future__ import annotations

import pytest

from lms_bridge.player.progress import (
    ActivityInfo,
    CourseRules,
    ProgressState,
    activity_satisfied,
    course_complete,
    course_score,
)
from lms_bridge.player.scorm_api import (
    commit_update,
    hms,
    hms_seconds,
    initial_cmi,
    iso_duration,
    iso_duration_seconds,
)


def info(key="a", kind="sco", mastery=None, move_on=None, required=True):
    return ActivityInfo(key=key, identifier=key.upper(), title=key, kind=kind, required=required, mastery_score=mastery,
                        move_on=move_on)


def state(completion="not_attempted", success="unknown", scaled=None):
    return ProgressState(completion, success, scaled)


@pytest.mark.parametrize("activity,st,pass_mark,expected", [
    (info(), state("completed"), None, True),
    (info(), state("incomplete"), None, False),
    (info(), state(), None, False),
    (info(), None, None, False),
    # An activity's own mastery score wins over the course pass mark.
    (info(mastery=0.8), state("completed", "passed", 0.79), 0.5, False),
    (info(mastery=0.8), state("completed", "failed", 0.8), None, True),
    (info(mastery=0.5), state("completed", scaled=0.6), 0.9, True),
    # Scored without a score: the success status decides.
    (info(mastery=0.8), state("completed", "passed"), None, True),
    (info(mastery=0.8), state("completed", "failed"), None, False),
    # The course pass mark applies to quizzes and to activities that reported a score...
    (info(kind="quiz"), state("completed", "passed", 0.7), 0.75, False),
    (info(kind="quiz"), state("completed", "passed", 0.75), 0.75, True),
    (info(), state("completed", scaled=0.5), 0.75, False),
    # ...not to lessons that have none.
    (info(kind="lesson"), state("completed"), 0.75, True),
    # Passed but not completed: not enough under all_required.
    (info(mastery=0.5), state("incomplete", "passed", 0.9), None, False),
])
def test_all_required(activity, st, pass_mark, expected):
    assert activity_satisfied(activity, st, "all_required", pass_mark) is expected


@pytest.mark.parametrize("move_on,st,expected", [
    ("NotApplicable", None, True),
    (None, None, True),
    ("Completed", state("completed"), True),
    ("Completed", state("incomplete", "passed"), False),
    ("Passed", state("incomplete", "passed"), True),
    ("Passed", state("completed", "failed"), False),
    ("CompletedAndPassed", state("completed", "passed"), True),
    ("CompletedAndPassed", state("completed", "failed"), False),
    ("CompletedAndPassed", state("incomplete", "passed"), False),
    ("CompletedOrPassed", state("completed", "failed"), True),
    ("CompletedOrPassed", state("incomplete", "passed"), True),
    ("CompletedOrPassed", state("incomplete", "failed"), False),
])
def test_cmi5_move_on(move_on, st, expected):
    assert activity_satisfied(info(kind="au", move_on=move_on), st, "cmi5_moveon") is expected


def rules(rule="all_required", pass_mark=None, *infos):
    return CourseRules(version_id=1, course_id=1, rule=rule, pass_mark=pass_mark, activities=tuple(infos),
                       required_keys=tuple(i.key for i in infos if i.required))


def test_course_complete_needs_every_required_activity():
    r = rules("all_required", 0.8, info("l1", "lesson"), info("l2", "lesson"), info("q", "quiz"),
              info("extra", "lesson", required=False))
    states = {"l1": state("completed"), "l2": state("completed"), "q": state("completed", "passed", 0.9)}
    assert course_complete(r, states)
    assert not course_complete(r, {**states, "q": state("completed", "failed", 0.7)})
    assert not course_complete(r, {k: v for k, v in states.items() if k != "l2"})
    assert course_score(r, states) == 0.9
    assert not course_complete(rules("all_required", None), {})  # nothing required: never "complete"


def test_cmi5_course():
    r = rules("cmi5_moveon", None, info("a", "au", move_on="Completed"), info("b", "au", move_on="Passed"),
              info("c", "au", move_on="NotApplicable", required=False))
    assert not course_complete(r, {"a": state("completed")})
    assert course_complete(r, {"a": state("completed"), "b": state("incomplete", "passed", 0.9)})


def test_scorm_2004_commit_mapping():
    u = commit_update("scorm2004", {"completion_status": "completed", "success_status": "passed",
                                    "score": {"scaled": "0.85", "raw": "17", "min": "0", "max": "20"},
                                    "location": "p4", "suspend_data": "{}", "exit": "suspend", "total_time": "PT1H2M3.5S",
                                    "progress_measure": "1"})
    assert (u.completion_status, u.success_status, u.score_scaled, u.score_raw, u.score_max) == ("completed", "passed", 0.85, 17.0, 20.0)
    assert (u.location, u.suspend_data, u.exit, u.total_time_seconds) == ("p4", "{}", "suspend", 3723.5)
    from lms_bridge.player.progress import _UNSET

    empty = commit_update("scorm2004", {"completion_status": "unknown", "score": {"scaled": "", "raw": ""}})
    assert empty.completion_status == "unknown" and empty.score_scaled is _UNSET  # empty scores change nothing
    # Raw and max without scaled: scaled is derived.
    assert commit_update("scorm2004", {"score": {"raw": "3", "min": "0", "max": "4"}}).score_scaled == 0.75


@pytest.mark.parametrize("status,completion,success", [
    ("passed", "completed", "passed"), ("failed", "completed", "failed"), ("completed", "completed", None),
    ("incomplete", "incomplete", None), ("browsed", "incomplete", None), ("not attempted", "not_attempted", None),
])
def test_scorm_12_lesson_status(status, completion, success):
    u = commit_update("scorm12", {"core": {"lesson_status": status, "score": {"raw": "80", "min": "", "max": ""},
                                           "lesson_location": "x", "total_time": "0001:02:03.50", "exit": "suspend"},
                                  "suspend_data": "s"})
    assert (u.completion_status, u.success_status) == (completion, success)
    assert u.score_scaled == 0.8 and u.score_raw == 80.0
    assert (u.location, u.suspend_data, u.total_time_seconds, u.exit) == ("x", "s", 3723.5, "suspend")


def test_time_formats_round_trip():
    assert iso_duration_seconds("P1DT1S") == 86401 and iso_duration_seconds("PT") is None
    assert iso_duration_seconds("nonsense") is None and hms_seconds("1:2") is None
    assert iso_duration_seconds(iso_duration(3723.5)) == 3723.5
    assert hms_seconds(hms(3723.5)) == 3723.5


def test_initial_cmi_resume_values():
    from types import SimpleNamespace

    a = SimpleNamespace(extra={}, launch_parameters="lp", mastery_score=0.8, completion_threshold=0.5)
    p = SimpleNamespace(completion_status="incomplete", success_status="unknown", exit="suspend", suspend_data="sd",
                        location="loc", total_time_seconds=61.0, progress_measure=None, cmi={"location": "loc"},
                        score_scaled=None, score_raw=None, score_min=None, score_max=None)
    cmi = initial_cmi("scorm2004", a, p, learner_id="u1", learner_name="Doe, Jo")
    assert cmi["cmi.entry"] == "resume" and cmi["cmi.location"] == "loc" and cmi["cmi.suspend_data"] == "sd"
    assert cmi["cmi.scaled_passing_score"] == "0.8" and cmi["cmi.completion_threshold"] == "0.5"
    assert cmi["cmi.total_time"] == "PT1M1S" and cmi["cmi.launch_data"] == "lp"
    cmi12 = initial_cmi("scorm12", a, p, learner_id="u1", learner_name="Doe, Jo")
    assert cmi12["cmi.core.entry"] == "resume" and cmi12["cmi.core.lesson_location"] == "loc"
    assert cmi12["cmi.student_data.mastery_score"] == "80" and cmi12["cmi.core.total_time"] == "0000:01:01.00"
    p.exit, p.suspend_data, p.location, p.cmi = None, None, None, {}
    assert initial_cmi("scorm2004", a, p, learner_id="u", learner_name="n")["cmi.entry"] == "ab-initio"
