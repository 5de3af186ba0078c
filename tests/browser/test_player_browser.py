"""The acceptance test of the player in a real browser: a learner launched from the development
platform (another site, the tool in its iframe) plays the SCORM 2004 course of mooc_packages/ with
the vendored scorm-again runtime (in the SCORM runtime page on the content origin, which frames the
SCO) and a native quiz course to completion; progress is in the database and on the progress bar;
after a reload the SCO resumes where the learner left off."""
from __future__ import annotations

import re

import pytest

from tests.browser import frames

from tests.integration.test_player_common import (
    MOOC,
    attempt_rows,
    import_course,
    in_app,
    place_link,
)

SCORM_COURSE = MOOC / "battery-safety-ev-scorm2004"
NATIVE_COURSE = MOOC / "hydrogen-fcev-basics-native"


def tool_frame(page):
    return frames.tool_frame(page, "#launch-view[data-state=playing]")


def _child_frame(parent, selector: str, marker: str, timeout: int):
    handle = parent.wait_for_selector(selector, timeout=timeout)
    frame = None
    for _ in range(int(timeout / 100)):
        frame = handle.content_frame()
        if frame is not None and marker in (frame.url or ""):
            break
        parent.wait_for_timeout(100)
    assert frame is not None and marker in frame.url, frame.url if frame else None
    frame.wait_for_load_state("load")
    return frame


def content_frame(tool, timeout=15000):
    """The SCO/AU document inside the player, once it has loaded: SCOs are framed by the SCORM
    runtime page (on the content origin), other content is the player's content frame itself."""
    outer = _child_frame(tool, "iframe#content-frame", "/content", timeout)
    if "/content-runtime/" in outer.url:
        return _child_frame(outer, "iframe#sco-frame", "/content/", timeout)
    return outer


def percent(tool) -> int:
    return int(tool.get_attribute("#progress-bar", "aria-valuenow"))


def go(tool, selector: str):
    with tool.expect_navigation():
        tool.click(selector)
    tool.wait_for_selector("#launch-view[data-state=playing]")


def launch(page, server, link):
    page.goto(f"{server.platform_url}/devplatform/launch?user=learner&target=iframe&link={link}")
    return tool_frame(page)


@pytest.fixture(scope="module")
def courses(live_server):
    scorm = import_course(live_server, SCORM_COURSE)
    native = import_course(live_server, NATIVE_COURSE)
    return {
        "scorm": {**scorm, "link": place_link(live_server, "EV battery safety (SCORM 2004)", course=scorm["course_id"])},
        "native": {**native, "link": place_link(live_server, "Hydrogen basics (native)", course=native["course_id"])},
    }


def test_scorm_2004_course_to_completion_with_resume(live_server, page, courses):
    course = courses["scorm"]
    tool = launch(page, live_server, course["link"])
    assert tool.inner_text("#role") == "Learner"
    assert tool.get_attribute("#launch-view", "data-kind") == "sco"
    lessons = [a for a in course["activities"] if a["identifier"].startswith("L")]
    assert len(lessons) == 5 and percent(tool) == 0

    # Lesson 1: read on to a later section, then leave (reload): the SCO suspends with a bookmark.
    sco = content_frame(tool)
    # The SCO plays inside the SCORM runtime page, both on the content origin (not the tool's).
    assert tool.get_attribute("iframe#content-frame", "src").startswith(live_server.content_url + "/content-runtime/")
    assert sco.url.startswith(live_server.content_url + "/content/") and live_server.content_url != live_server.url
    sco.wait_for_function("() => document.getElementById('lms-status') !== null")
    assert "Not connected" not in sco.inner_text("#lms-status")
    sco.evaluate("() => document.getElementById('summary').scrollIntoView()")
    sco.wait_for_timeout(300)
    sco.evaluate("() => window.SCORM.set('cmi.location', 'summary') && window.SCORM.commit()")
    rows = attempt_rows(live_server, link=course["link"])
    first = next(p for p in rows["progress"] if p["key"] == lessons[0]["key"])
    assert first["location"] == "summary" and first["completion"] == "incomplete"

    tool.goto(tool.url)  # reload: the learner comes back later
    tool.wait_for_selector("#launch-view[data-state=playing]")
    assert tool.get_attribute("#launch-view", "data-activity") == lessons[0]["key"]  # resumes the same activity
    sco = content_frame(tool)
    sco.wait_for_function("() => /Welcome back/.test(document.getElementById('lms-status').textContent)")
    assert sco.evaluate("() => window.SCORM.get('cmi.entry')") == "resume"
    assert sco.evaluate("() => window.SCORM.get('cmi.location')") == "summary"

    # Every lesson: "Mark this lesson as complete", then Next.
    for n, lesson in enumerate(lessons):
        assert tool.get_attribute("#launch-view", "data-activity") == lesson["key"]
        sco = content_frame(tool)
        sco.click("#mark-complete")
        sco.wait_for_function("() => /completed and saved/.test(document.getElementById('lms-status').textContent)")
        tool.wait_for_function(f"() => Number(document.getElementById('progress-bar').getAttribute('aria-valuenow')) >= {int(100 * (n + 1) / 6) - 1}")
        go(tool, "#next-link")
        # Focus moves to the new activity's title (keyboard and screen-reader users land on it).
        assert tool.evaluate("() => document.activeElement && document.activeElement.id") == "activity-title"

    # The final quiz SCO: answer from the package's key and submit.
    quiz = next(a for a in course["activities"] if a["identifier"] == "Q1-final-quiz")
    assert tool.get_attribute("#launch-view", "data-activity") == quiz["key"]
    sco = content_frame(tool)
    sco.wait_for_function("() => window.QUIZ_KEY && document.getElementById('quiz')")
    assert sco.evaluate("() => window.SCORM.get('cmi.scaled_passing_score')") == "0.8"
    sco.evaluate("""() => {
        Object.keys(window.QUIZ_KEY).forEach(q => window.QUIZ_KEY[q].correct.forEach(v => {
            const input = document.querySelector(`input[name="${q}"][value="${v}"]`); input.checked = true; }));
    }""")
    sco.click("#quiz button[type=submit]")
    sco.wait_for_function("() => /you passed/.test(document.getElementById('result').textContent)")
    tool.wait_for_function("() => document.getElementById('progress-bar').getAttribute('aria-valuenow') === '100'")
    assert tool.is_visible("#course-complete")

    rows = attempt_rows(live_server, link=course["link"])
    assert rows["attempts"][0]["status"] == "completed"
    by_key = {p["key"]: p for p in rows["progress"]}
    assert all(by_key[lesson["key"]]["completion"] == "completed" for lesson in lessons)
    assert by_key[quiz["key"]]["success"] == "passed" and by_key[quiz["key"]]["scaled"] == 1.0
    kinds = [e["kind"] for e in rows["events"]]
    assert kinds.count("course_completed") == 1 and kinds.count("activity_completed") == 6
    assert "score_changed" in kinds

    # Reload: the player resumes on the quiz, which knows it was passed.
    tool = launch(page, live_server, course["link"])
    assert tool.get_attribute("#launch-view", "data-activity") == quiz["key"]
    assert percent(tool) == 100
    sco = content_frame(tool)
    sco.wait_for_function("() => /already passed/.test(document.getElementById('lms-status').textContent)")


def _answers(server, version_id: int, identifier: str) -> dict:
    def run():
        from lms_bridge.extensions import db
        from lms_bridge.packages.models import Activity

        a = db.session.execute(db.select(Activity).filter_by(version_id=version_id, identifier=identifier)).scalar_one()
        return a.quiz

    return in_app(server, run)


def test_native_quiz_course_to_completion(live_server, page, courses):
    course = courses["native"]
    tool = launch(page, live_server, course["link"])
    lessons = [a for a in course["activities"] if a["kind"] == "lesson"]
    quiz = next(a for a in course["activities"] if a["kind"] == "quiz")
    # Lessons count as done once opened.
    for _lesson in lessons:
        assert tool.is_visible("#lesson")
        go(tool, "#next-link")
    assert tool.get_attribute("#launch-view", "data-activity") == quiz["key"]
    assert tool.is_visible("#quiz-pass-mark")
    # Accessible form: every input has a label, every question is a fieldset with a legend.
    assert tool.evaluate("""() => [...document.querySelectorAll('#quiz-form input:not([type=hidden])')]
        .every(i => i.labels && i.labels.length > 0)""")
    assert tool.evaluate("() => [...document.querySelectorAll('#quiz-form fieldset')].every(f => f.querySelector('legend'))")

    key = _answers(live_server, course["version_id"], quiz["identifier"])
    # A first, wrong attempt with the keyboard: feedback and "not passed yet".
    tool.focus("#quiz-submit")
    with tool.expect_navigation():
        page.keyboard.press("Enter")
    assert "not passed yet" in tool.inner_text("#quiz-result")
    assert tool.evaluate("() => document.activeElement.id") == "quiz-result"
    # Then the right answers.
    for q in key["questions"]:
        name = "q-" + q["identifier"]
        if q["kind"] in ("single", "true_false"):
            choice = next(c for c in q["choices"] if c["correct"])
            tool.check(f'input[name="{name}"][value="{choice["identifier"]}"]')
        elif q["kind"] == "multiple":
            for c in q["choices"]:
                selector = f'input[name="{name}"][value="{c["identifier"]}"]'
                tool.check(selector) if c["correct"] else tool.uncheck(selector)
        elif q["kind"] == "fill_in":
            tool.fill(f'input[name="{name}"]', q["answers"][0])
    with tool.expect_navigation():
        tool.click("#quiz-submit")
    assert re.search(r"you passed", tool.inner_text("#quiz-result"))
    assert "100 %" in tool.inner_text("#quiz-result-title")
    assert percent(tool) == 100 and tool.is_visible("#course-complete")

    rows = attempt_rows(live_server, link=course["link"])
    assert rows["attempts"][0]["status"] == "completed" and rows["attempts"][0]["score"] == 1.0
    quiz_row = next(p for p in rows["progress"] if p["key"] == quiz["key"])
    assert quiz_row["success"] == "passed" and quiz_row["scaled"] == 1.0
    assert [e["kind"] for e in rows["events"]].count("course_completed") == 1


CMI5_COURSE = MOOC / "digital-skills-workshop-cmi5"


def test_cmi5_course_to_completion(live_server, page):
    """The cmi5 course of mooc_packages/ in a real browser: each AU is launched on the content
    origin per the cmi5 launch rules (fetch URL, endpoint, registration, activityId), fetches its
    auth token, sends its statements to the tool's xAPI endpoint across origins, and moveOn
    decides completion (lessons Completed, the quiz Passed at 0.8)."""
    info = import_course(live_server, CMI5_COURSE)
    link = place_link(live_server, "Digital workshop skills (cmi5)", course=info["course_id"])
    tool = launch(page, live_server, link)
    aus = info["activities"]
    assert len(aus) == 5 and percent(tool) == 0
    for n, au in enumerate(aus[:-1]):
        assert tool.get_attribute("#launch-view", "data-activity") == au["key"]
        frame = content_frame(tool)
        assert frame.url.startswith(live_server.content_url + "/content/")
        query = frame.url.split("?", 1)[1]
        assert all(f"{name}=" in query for name in ("endpoint", "fetch", "registration", "activityId", "actor"))
        frame.wait_for_function("() => /Connected|Welcome back/.test(document.getElementById('lms-status').textContent)")
        frame.click("#mark-complete")
        frame.wait_for_function("() => /Lesson completed and recorded/.test(document.getElementById('lms-status').textContent)")
        tool.wait_for_function(f"() => Number(document.getElementById('progress-bar').getAttribute('aria-valuenow')) >= {int(100 * (n + 1) / 5) - 1}")
        go(tool, "#next-link")

    quiz = aus[-1]
    assert tool.get_attribute("#launch-view", "data-activity") == quiz["key"]
    frame = content_frame(tool)
    frame.wait_for_function("() => window.QUIZ_KEY && /Connected/.test(document.getElementById('lms-status').textContent)")
    frame.evaluate("""() => {
        Object.keys(window.QUIZ_KEY).forEach(q => window.QUIZ_KEY[q].correct.forEach(v => {
            const input = document.querySelector(`input[name="${q}"][value="${v}"]`); if (input) input.checked = true; }));
        document.querySelectorAll('#quiz input[type=text]').forEach(i => {
            const k = window.QUIZ_KEY[i.name]; if (k && k.correct) i.value = k.correct[0]; });
    }""")
    frame.click("#quiz button[type=submit]")
    frame.wait_for_function("() => /recorded/.test(document.getElementById('lms-status').textContent)")
    tool.wait_for_function("() => document.getElementById('progress-bar').getAttribute('aria-valuenow') === '100'")
    assert tool.is_visible("#course-complete")

    rows = attempt_rows(live_server, link=link)
    assert rows["attempts"][0]["status"] == "completed"
    by_key = {p["key"]: p for p in rows["progress"]}
    assert all(by_key[au["key"]]["completion"] == "completed" for au in aus[:-1])
    assert by_key[quiz["key"]]["success"] == "passed" and by_key[quiz["key"]]["scaled"] >= 0.8
    assert [e["kind"] for e in rows["events"]].count("course_completed") == 1
