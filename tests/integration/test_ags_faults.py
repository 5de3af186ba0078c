"""Never a lost score: the development platform's AGS endpoint fails in the ways real LMSs do (down
with 503, connections dropped, slow, 500 and 429 for a while, 401 when the tool may not send grades,
Moodle's "Incorrect score received"), the tool is restarted mid-delivery, gracefully and with SIGKILL;
afterwards every learner's final score is in the gradebook exactly once as the newest value, and the
refusals an operator must fix are parked with a diagnostic that says what to do.

Real HTTP against gunicorn with 2 workers (their in-process outbox threads deliver), on SQLite or
PostgreSQL + Redis per LMS_BRIDGE_TEST_BACKEND; faults are switched over HTTP
(``PUT /devplatform/faults``) and live in the shared store, so every worker and a restarted server
see them. Retries are made quick (backoff 0.3 s .. 1.5 s) and HTTP_TIMEOUT short (1.5 s)."""
from __future__ import annotations

import os
import signal
import time

import pytest
import requests

from tests.integration.test_ags_passback import (
    Learner,
    assert_newest_exactly_once,
    expected_given,
    history,
    link_line_item,
    outbox_rows,
    quiz_size,
    wait_for,
    wait_for_score,
)
from tests.integration.test_devplatform import platform_url
from tests.integration.test_player_common import MOOC, import_course, in_app, place_link
from tests.support.servers import launch_server

USERS = ("learner", "learner2", "anonymous")


@pytest.fixture(scope="module")
def server():
    live = launch_server(workers=2, OUTBOX_BACKOFF_BASE="0.3", OUTBOX_BACKOFF_MAX="1.5", OUTBOX_POLL_SECONDS="0.3",
                         OUTBOX_MAX_ATTEMPTS="200", OUTBOX_LEASE_SECONDS="4", HTTP_TIMEOUT="1.5")
    yield live
    live.stop()
    live.db.drop()


@pytest.fixture(scope="module")
def native(server):
    return import_course(server, MOOC / "hydrogen-fcev-basics-native")


@pytest.fixture(autouse=True)
def no_fault(server):
    yield
    if server.proc and server.proc.poll() is None:
        requests.delete(platform_url(server, "/faults"), timeout=10)


def set_fault(server, **spec) -> dict:
    resp = requests.put(platform_url(server, "/faults"), json=spec, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def fault(server) -> dict:
    return requests.get(platform_url(server, "/faults"), timeout=10).json()


def wait_served(server, calls: int = 1) -> dict:
    """Wait until the fault in force has answered ``calls`` calls (the tool met it)."""
    return wait_for(lambda: (lambda f: f if f.get("served", 0) >= calls else None)(fault(server)), 30,
                    f"the fault to answer {calls} call(s)")


def rows_for(server, item: int, sub: str | None = None) -> list[dict]:
    return [r for r in outbox_rows(server) if f"/lineitems/{item}/lineitem" in r["dedupe_key"]
            and (sub is None or r["dedupe_key"].endswith(f" {sub}"))]


def settled(server, item: int) -> bool:
    return all(r["state"] in ("delivered", "superseded") for r in rows_for(server, item))


# -- the platform fails for a while, then recovers ---------------------------------------------------


def test_down_reset_500_429_slow_then_healthy(server, native):
    link = place_link(server, "Faulty gradebook", course=native["course_id"])
    item = link_line_item(server, link)
    learners = [Learner(server, native, link, user) for user in USERS]
    n = quiz_size(server, native)

    set_fault(server, mode="down", seconds=4)  # 503 from a proxy in front of the LMS
    for learner in learners:
        learner.lessons()
        learner.answer_quiz(correct=0)
    wait_served(server)
    set_fault(server, mode="reset", calls=4)  # connections dropped without an answer
    for learner in learners:
        learner.answer_quiz(correct=n // 3)
    wait_served(server)
    set_fault(server, mode="error", calls=5)  # 500
    for learner in learners:
        learner.answer_quiz(correct=n // 2)
    wait_served(server)
    set_fault(server, mode="throttle", calls=4, retry_after=1)  # 429 with Retry-After
    for learner in learners[:2]:
        learner.answer_quiz()
    wait_served(server)
    set_fault(server, mode="slow", delay=0.8, seconds=3)  # slow, within the tool's timeout
    learners[2].answer_quiz(correct=n - 2)
    wait_served(server)

    wait_for(lambda: settled(server, item), 60, "every score to be delivered")
    finals = {}
    for learner in learners:
        given = expected_given(server, link, learner.sub)
        activity = "Completed" if given >= 80 else "Submitted"
        finals[learner.sub] = given
        scores = wait_for_score(server, item, learner.sub, given=given, activity=activity, grading="FullyGraded")
        assert_newest_exactly_once(scores, given=given, activity=activity)
    assert finals["4"] == finals["5"] == 100.0 and 0 < finals["6"] < 100
    rows = rows_for(server, item)
    assert max(r["attempts"] for r in rows) > 1, "the faults were met and retried"
    assert not [r for r in rows if r["state"] == "parked"]


def test_a_timed_out_score_is_stored_once(server, native):
    """The platform stores the score but answers after the tool's timeout: the retry carries the same
    Idempotency-Key and the platform does not store it twice."""
    link = place_link(server, "Slow gradebook", course=native["course_id"])
    item = link_line_item(server, link)
    set_fault(server, mode="down")  # until cleared: the scores wait in the outbox
    learner = Learner(server, native, link)
    learner.lessons()
    learner.answer_quiz()
    wait_for(lambda: any(r["attempts"] >= 1 and r["payload"]["activityProgress"] == "Completed"
                         for r in rows_for(server, item)), 30, "the final score to be tried")
    set_fault(server, mode="slow", delay=2.5, calls=1)
    scores = wait_for_score(server, item, "4", given=100.0, activity="Completed", grading="FullyGraded")
    wait_for(lambda: settled(server, item), 30, "the delivery to settle")
    time.sleep(2)  # the slow request finishes storing whatever it stores
    scores = history(server, item, "4")
    assert_newest_exactly_once(scores, given=100.0)
    final = [r for r in rows_for(server, item) if r["state"] == "delivered"][-1]
    assert final["payload"]["activityProgress"] == "Completed" and final["attempts"] >= 2
    assert fault(server)["served"] == 1


# -- refusals an operator must fix -------------------------------------------------------------------


def test_401_parks_with_the_moodle_diagnostic_until_an_operator_retries(server, native):
    link = place_link(server, "Grades not accepted", course=native["course_id"])
    item = link_line_item(server, link)
    set_fault(server, mode="refuse")  # Moodle: "Accept grades from the tool" is off
    learner = Learner(server, native, link, "learner2")
    learner.lessons()
    learner.answer_quiz()

    def parked_final():
        rows = rows_for(server, item)
        return rows if rows and rows[-1]["state"] == "parked" and rows[-1]["payload"]["activityProgress"] == "Completed" \
            else None

    rows = wait_for(parked_final, 30, "the final score to be parked")
    final = rows[-1]
    assert final["last_status"] == "HTTP 401" and "Accept grades from the tool" in final["last_error"]
    assert "Always" in final["last_error"] and "retry" in final["last_error"].lower()
    assert final["attempts"] == 1, "a refusal is parked at once, not retried"
    assert history(server, item, "5") == []

    # The administrator enables grades; an operator retries the parked scores: only the newest is sent.
    requests.delete(platform_url(server, "/faults"), timeout=10)

    def retry():
        from lms_bridge.extensions import db
        from lms_bridge.outbox import retry_parked

        count = retry_parked("ags.")
        db.session.remove()
        return count

    assert in_app(server, retry) >= 1
    scores = wait_for_score(server, item, "5", given=100.0, activity="Completed", grading="FullyGraded")
    assert_newest_exactly_once(scores, given=100.0)
    assert len(scores) == 1, "the older parked scores were superseded, not sent"
    wait_for(lambda: settled(server, item), 30, "the parked rows to settle")


def test_incorrect_score_is_parked_with_moodles_words(server, native):
    link = place_link(server, "Incorrect score", course=native["course_id"])
    item = link_line_item(server, link)
    set_fault(server, mode="incorrect_score")
    learner = Learner(server, native, link, "anonymous")
    learner.lessons("l1-hydrogen-energy-carrier")
    rows = wait_for(lambda: [r for r in rows_for(server, item) if r["state"] == "parked"], 30, "a parked score")
    assert rows[0]["last_status"] == "HTTP 400" and "Incorrect score received" in rows[0]["last_error"]
    assert '"userId": "6"' in rows[0]["last_error"] or "'userId': '6'" in rows[0]["last_error"]


# -- the tool restarts mid-delivery --------------------------------------------------------------------


def test_scores_survive_restarts(server, native):
    link = place_link(server, "Restarted tool", course=native["course_id"])
    item = link_line_item(server, link)
    learners = [Learner(server, native, link, user) for user in USERS]

    # 1. The platform is down while learners progress; the tool is stopped with scores failing.
    set_fault(server, mode="down")
    for learner in learners:
        learner.lessons()
        learner.answer_quiz(correct=1)
    wait_for(lambda: len(rows_for(server, item)) >= 3 and all(r["attempts"] >= 1 for r in rows_for(server, item)
                                                                if r["state"] == "pending"), 30, "failing deliveries")
    server.stop()

    def clear_fault():
        from lms_bridge.devplatform.ags import clear_fault as clear

        clear()

    in_app(server, clear_fault)  # the platform recovers while the tool is down
    waiting = {r["id"] for r in rows_for(server, item) if r["state"] in ("pending", "delivering")}
    assert len(waiting) >= 3
    server.start()
    for learner in learners:
        given = expected_given(server, link, learner.sub)
        wait_for_score(server, item, learner.sub, given=given, activity="Submitted", grading="FullyGraded", timeout=60)
    wait_for(lambda: settled(server, item), 30, "every row to settle")
    assert {r["id"] for r in rows_for(server, item) if r["state"] == "delivered"} >= waiting

    # 2. A delivery is in flight (the platform is slow) when the tool is killed outright.
    set_fault(server, mode="slow", delay=3, calls=2)
    for learner in learners:
        learner.answer_quiz()
    in_flight = wait_for(lambda: [r["id"] for r in rows_for(server, item) if r["state"] == "delivering"], 30,
                         "a delivery in flight")
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    in_app(server, clear_fault)
    server.start()  # the dead worker's lease runs out (OUTBOX_LEASE_SECONDS=4) and the row is delivered again

    for learner in learners:
        scores = wait_for_score(server, item, learner.sub, given=100.0, activity="Completed", grading="FullyGraded",
                                timeout=60)
        assert_newest_exactly_once(scores, given=100.0)
    wait_for(lambda: settled(server, item), 30, "every row to settle")
    after = {r["id"]: r for r in rows_for(server, item)}
    # What the killed worker was sending was taken up again once its lease ran out (or superseded by newer).
    assert all(after[i]["state"] in ("delivered", "superseded") for i in in_flight)
    assert any(after[i]["state"] == "delivered" and after[i]["attempts"] >= 2 for i in in_flight) or \
        all(after[i]["state"] == "superseded" for i in in_flight)


def test_fault_switch_validates_and_reports(server):
    bad = requests.put(platform_url(server, "/faults"), json={"mode": "explode", "endpoints": ["jwks"]}, timeout=10)
    assert bad.status_code == 400 and "mode" in bad.text and "endpoints" in bad.text
    form = requests.put(platform_url(server, "/faults"), data="mode=down", timeout=10)
    assert form.status_code == 415
    on = set_fault(server, mode="throttle", calls=1, retry_after=7, endpoints=["token"])
    assert on["active"] and on["calls_left"] == 1
    resp = requests.post(platform_url(server, "/token"), data={"grant_type": "client_credentials"}, timeout=10)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert not fault(server)["active"] and fault(server)["served"] == 1
    resp = requests.post(platform_url(server, "/token"), data={"grant_type": "client_credentials"}, timeout=10)
    assert resp.status_code == 400  # answered normally again
    assert requests.delete(platform_url(server, "/faults"), timeout=10).status_code == 204
    assert fault(server) == {"active": False}
