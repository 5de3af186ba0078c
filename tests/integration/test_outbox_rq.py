"""The production delivery path: gunicorn (2 workers) with ``OUTBOX_WORKER=rq`` only kicks RQ jobs on
Redis, and separate ``flask outbox-worker`` processes (RQ workers) deliver the scores to the
development platform's gradebook. While no worker runs, nothing is delivered (the web workers do
not deliver) and nothing is lost; a worker killed with SIGKILL mid-stream is replaced and every
learner's newest score still arrives exactly once. PostgreSQL + Redis only (RQ needs Redis)."""
from __future__ import annotations

import os
import signal
import subprocess
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
    wait_for,
)
from tests.integration.test_devplatform import platform_url
from tests.integration.test_player_common import MOOC, import_course, in_app, place_link
from tests.support.servers import BIN, ROOT, backend, launch_server

pytestmark = pytest.mark.skipif(backend() != "postgres", reason="RQ workers need Redis: LMS_BRIDGE_TEST_BACKEND=postgres")


@pytest.fixture(scope="module")
def server():
    live = launch_server(workers=2, OUTBOX_WORKER="rq", OUTBOX_BACKOFF_BASE="0.3", OUTBOX_BACKOFF_MAX="1.5",
                         OUTBOX_POLL_SECONDS="0.3", OUTBOX_MAX_ATTEMPTS="200", OUTBOX_LEASE_SECONDS="4",
                         HTTP_TIMEOUT="1.5", OUTBOX_QUEUE=f"test-outbox-{os.getpid()}-{time.time_ns()}")
    workers: list[subprocess.Popen] = []
    live.extra["workers"] = workers
    yield live
    for proc in workers:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    live.stop()
    live.db.drop()


def start_worker(server, name: str) -> subprocess.Popen:
    log = open(server.tmp / f"rq-{name}.log", "w")
    proc = subprocess.Popen([str(BIN / "flask"), "--app", "wsgi", "outbox-worker", "--name", f"{name}-{time.time_ns()}"],
                            cwd=ROOT, env=server.env, stdout=log, stderr=subprocess.STDOUT)
    server.extra["workers"].append(proc)
    return proc


def pending(server) -> list[dict]:
    return [r for r in outbox_rows(server) if r["state"] in ("pending", "delivering")]


def unrelayed_events(server) -> int:
    """Progress events not yet relayed to grading (the RQ workers relay them, then deliver)."""
    def run():
        from lms_bridge.extensions import db
        from lms_bridge.player.models import ProgressEvent

        n = db.session.execute(db.select(db.func.count()).where(ProgressEvent.consumed.is_(False))).scalar()
        db.session.remove()
        return n

    return in_app(server, run)


def test_rq_workers_deliver_and_survive_a_killed_worker(server):
    native = import_course(server, MOOC / "hydrogen-fcev-basics-native")
    link = place_link(server, "Gradebook fed by RQ workers", course=native["course_id"])
    item = link_line_item(server, link)
    learners = [Learner(server, native, link, user) for user in ("learner", "learner2")]

    # No worker yet: the web processes only queue jobs; the changes wait, durable, as progress
    # events not yet relayed (and so not yet outbox rows).
    for learner in learners:
        learner.lessons()
        learner.answer_quiz(correct=1)
    time.sleep(1.5)
    assert unrelayed_events(server) > 0 and pending(server) == []
    assert all(history(server, item, learner.sub) == [] for learner in learners)

    first = start_worker(server, "w1")
    start_worker(server, "w2")
    wait_for(lambda: all(history(server, item, l.sub) for l in learners), 30, "the RQ workers to deliver")

    # The platform goes down; a worker is killed while retries are in flight; a new one takes over.
    requests.put(platform_url(server, "/faults"), json={"mode": "down", "seconds": 3}, timeout=10).raise_for_status()
    for learner in learners:
        learner.answer_quiz()  # every answer right: the newest score is the full one
    time.sleep(1.0)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    start_worker(server, "w3")

    for learner in learners:
        given = expected_given(server, link, learner.sub)
        assert given == 100
        wait_for(lambda: (history(server, item, learner.sub) or [{}])[-1].get("score_given") == given, 60,
                 f"{learner.user}'s newest score")
        assert_newest_exactly_once(history(server, item, learner.sub), given=given)
    wait_for(lambda: not pending(server), 30, "the outbox to empty")
    requests.delete(platform_url(server, "/faults"), timeout=10)
