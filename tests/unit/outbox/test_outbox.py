"""The outbox on a real database (SQLite, or PostgreSQL + Redis with LMS_BRIDGE_TEST_BACKEND=postgres):
newest wins, per-key ordering, retries with backoff, parking, leases, concurrent workers, the
progress-event relay, and the RQ path on real Redis."""
from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest

from tests.support.db_app import database_app
from tests.support.servers import ROOT, backend

NATIVE = ROOT / "mooc_packages" / "hydrogen-fcev-basics-native"

received: list[tuple[str, str, dict]] = []  # (kind, idempotency key, payload) per accepted delivery
behaviour: dict[str, list] = {}  # dedupe key -> exceptions to raise on the next attempts


@pytest.fixture(scope="module")
def app():
    overrides = {"OUTBOX_BACKOFF_BASE": "0.01", "OUTBOX_BACKOFF_MAX": "0.05", "OUTBOX_MAX_ATTEMPTS": "4",
                 "OUTBOX_WORKER": "off"}
    with database_app(**overrides) as app:
        from lms_bridge.outbox import Delivery, handler

        @handler("test.echo")
        def echo(delivery: Delivery):
            plan = behaviour.get(delivery.dedupe_key)
            if plan:
                raise plan.pop(0)
            received.append((delivery.kind, delivery.idempotency_key, delivery.payload))
            return "HTTP 200"

        yield app


@pytest.fixture
def ctx(app):
    with app.app_context():
        from lms_bridge.extensions import db

        received.clear()
        behaviour.clear()
        yield app
        db.session.rollback()


def key() -> str:
    return "k-" + uuid.uuid4().hex[:10]


def row(message_id):
    from lms_bridge.extensions import db
    from lms_bridge.outbox import OutboxMessage

    db.session.expire_all()
    return db.session.get(OutboxMessage, message_id)


def enqueue(k, payload, **kw):
    from lms_bridge.extensions import db
    from lms_bridge.outbox import enqueue

    message_id = enqueue("test.echo", k, payload, **kw)
    db.session.commit()
    return message_id


def drain_all(rounds=50):
    from lms_bridge.outbox import work_once

    for _ in range(rounds):
        work_once()
        if not pending_left():
            return
        time.sleep(0.02)


def pending_left() -> int:
    from lms_bridge.extensions import db
    from lms_bridge.outbox import OutboxMessage

    n = db.session.execute(db.select(db.func.count()).where(OutboxMessage.state.in_(("pending", "delivering")))).scalar()
    db.session.rollback()
    return n


def payloads(k):
    return [p for kind, _, p in received if p.get("key") == k]


def test_pending_message_is_replaced_by_the_newest(ctx):
    k = key()
    first = enqueue(k, {"key": k, "score": 1})
    again = enqueue(k, {"key": k, "score": 2})
    last = enqueue(k, {"key": k, "score": 3})
    assert first == again == last
    drain_all()
    assert payloads(k) == [{"key": k, "score": 3}]
    assert row(first).state == "delivered" and row(first).last_status == "HTTP 200"


def test_unknown_kind_is_refused_at_enqueue(ctx):
    from lms_bridge.outbox import enqueue as raw_enqueue

    with pytest.raises(RuntimeError, match="no outbox handler"):
        raw_enqueue("test.nobody", "k", {})


def test_a_message_is_not_claimed_while_an_older_one_of_its_key_is_in_flight(ctx):
    from lms_bridge.outbox.service import Settings, claim, deliver

    k = key()
    older = enqueue(k, {"key": k, "score": 1})
    settings = Settings.current()
    claimed = [d for d in claim(50, settings, "w1") if d.dedupe_key == k]
    assert [d.id for d in claimed] == [older]
    newer = enqueue(k, {"key": k, "score": 2})
    assert newer != older  # the older one is claimed: a new row follows it
    assert [d for d in claim(50, settings, "w2") if d.dedupe_key == k] == []  # in flight: wait
    deliver(claimed[0], settings, "w1")
    drain_all()
    assert payloads(k) == [{"key": k, "score": 1}, {"key": k, "score": 2}]


def test_an_older_message_that_failed_is_superseded_by_a_newer_one(ctx):
    from lms_bridge.outbox import RetryLater

    k = key()
    behaviour[k] = [RetryLater("LMS answered 503", status="HTTP 503")]
    older = enqueue(k, {"key": k, "score": 1})
    from lms_bridge.outbox import work_once

    work_once()  # first attempt fails: back to pending with a retry time
    assert row(older).state == "pending" and row(older).last_status == "HTTP 503"
    newer = enqueue(k, {"key": k, "score": 2})
    assert newer == older  # still pending: replaced in place, never sent with the old value
    drain_all()
    assert payloads(k) == [{"key": k, "score": 2}]


def test_newer_row_makes_an_expired_older_claim_superseded(ctx):
    from lms_bridge.extensions import db
    from lms_bridge.outbox import OutboxMessage
    from lms_bridge.outbox.models import utcnow
    from lms_bridge.outbox.service import Settings, claim

    k = key()
    older = enqueue(k, {"key": k, "score": 1})
    settings = Settings.current()
    assert [d.id for d in claim(50, settings, "dead-worker") if d.dedupe_key == k] == [older]
    newer = enqueue(k, {"key": k, "score": 2})
    # The claimer died: its lease runs out.
    db.session.execute(db.update(OutboxMessage).where(OutboxMessage.id == older).values(
        claimed_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    drain_all()
    assert payloads(k) == [{"key": k, "score": 2}]
    assert row(older).state == "superseded" and row(newer).state == "delivered"


def test_expired_lease_is_reclaimed_and_the_late_outcome_ignored(ctx):
    from lms_bridge.extensions import db
    from lms_bridge.outbox import OutboxMessage
    from lms_bridge.outbox.models import utcnow
    from lms_bridge.outbox.service import Settings, claim, deliver

    k = key()
    message = enqueue(k, {"key": k})
    settings = Settings.current()
    stuck = [d for d in claim(50, settings, "slow-worker") if d.dedupe_key == k][0]
    db.session.execute(db.update(OutboxMessage).where(OutboxMessage.id == message).values(
        claimed_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    drain_all()
    assert row(message).state == "delivered" and row(message).attempts == 2
    behaviour[k] = [RuntimeError("late failure")]
    assert deliver(stuck, settings, "slow-worker") == "pending"  # its outcome is not recorded...
    assert row(message).state == "delivered"  # ...the row stays delivered
    assert len(payloads(k)) == 1
    # Same idempotency key on every attempt: a receiver can tell a retry from a new message.
    assert received[-1][1] == stuck.idempotency_key


def test_transient_failures_are_retried_then_parked_and_retried_by_an_operator(ctx):
    from lms_bridge.outbox import RetryLater, retry

    k = key()
    behaviour[k] = [RetryLater("timeout"), ConnectionError("refused"), RetryLater("429", retry_after=0.01),
                    RetryLater("still down", status="HTTP 503")]
    message = enqueue(k, {"key": k})
    drain_all()
    parked = row(message)
    assert parked.state == "parked" and parked.attempts == 4
    assert "still down" in parked.last_error and "gave up after 4 attempts" in parked.last_error
    assert payloads(k) == []
    assert retry(message)
    drain_all()
    assert row(message).state == "delivered" and payloads(k) == [{"key": k}]


def test_permanent_failure_parks_at_once(ctx):
    from lms_bridge.outbox import Permanent

    k = key()
    behaviour[k] = [Permanent("HTTP 401: the LMS does not accept grades from this tool", status="HTTP 401")]
    message = enqueue(k, {"key": k})
    drain_all()
    parked = row(message)
    assert (parked.state, parked.attempts, parked.last_status) == ("parked", 1, "HTTP 401")
    assert "does not accept grades" in parked.last_error


def test_backoff_grows_and_honours_retry_after():
    from lms_bridge.outbox.service import Settings

    s = Settings(backoff_base=5, backoff_max=3600)
    assert 4 <= s.backoff(1) <= 6 and 8 <= s.backoff(2) <= 12 and 32 <= s.backoff(4) <= 48
    assert s.backoff(30) <= 3600 * 1.2
    assert s.backoff(1, retry_after=120) == 120


def test_concurrent_workers_deliver_every_message_exactly_once(app, ctx):
    from lms_bridge.outbox import work_once

    keys = [key() for _ in range(40)]
    for k in keys:
        enqueue(k, {"key": k, "n": 1})
    errors = []

    def worker(name):
        with app.app_context():
            try:
                for _ in range(30):
                    work_once(worker_id=name)
                    if not pending_left():
                        break
                    time.sleep(0.01)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    delivered = [p["key"] for _, _, p in received if p.get("key") in keys]
    assert sorted(delivered) == sorted(keys)


def _attempt_id():
    from lms_bridge.extensions import db
    from lms_bridge.lti.models import Registration, User
    from lms_bridge.packages.models import Course
    from lms_bridge.packages.service import import_package
    from lms_bridge.player import progress

    course = db.session.execute(db.select(Course)).scalars().first()
    if course is None:
        course = db.session.get(Course, import_package(NATIVE).course_id)
    reg = Registration(issuer=f"https://lms-{key()}.example.org", client_id="c", auth_login_url="https://lms.example.org/a")
    db.session.add(reg)
    db.session.flush()
    user = User(registration_id=reg.id, sub=key())
    db.session.add(user)
    db.session.commit()
    return progress.start_attempt(user_pk=user.id, course=course, registration_id=reg.id, context_pk=None,
                                  resource_link_pk=None).id


def test_progress_events_are_relayed_once_in_one_transaction_with_their_effects(ctx):
    from lms_bridge.extensions import db
    from lms_bridge.outbox import enqueue as raw_enqueue, work_once
    from lms_bridge.player import events
    from lms_bridge.player.models import ProgressEvent

    seen = []
    flaky = {"left": 1}

    @events.subscribe("test_event")
    def on_event(event):
        raw_enqueue("test.echo", f"event-{event.id}", {"key": f"event-{event.id}"})
        if event.payload.get("poison"):
            raise ValueError("subscriber bug")
        if event.payload.get("flaky") and flaky["left"]:
            flaky["left"] -= 1
            raise RuntimeError("database hiccup")  # its enqueue must roll back with it
        seen.append(event.id)

    attempt = _attempt_id()

    def add(payload):
        e = ProgressEvent(kind="test_event", attempt_id=attempt, user_pk=0, course_id=0, version_id=0, payload=payload)
        db.session.add(e)
        db.session.commit()
        return e.id

    good, flaky_id, poison = add({}), add({"flaky": True}), add({"poison": True})
    for _ in range(10):
        work_once()
    assert seen == [good, flaky_id]  # in order, each once
    assert len(payloads(f"event-{good}")) == 1 and len(payloads(f"event-{flaky_id}")) == 1
    assert payloads(f"event-{poison}") == []  # the failed subscriber's enqueue never committed
    poisoned = db.session.get(ProgressEvent, poison)
    assert not poisoned.consumed and poisoned.relay_attempts == events.MAX_RELAY_ATTEMPTS
    assert "subscriber bug" in poisoned.relay_error
    assert db.session.get(ProgressEvent, flaky_id).relay_attempts == 1
    assert not events.pending()  # the poisoned event is left aside, not relayed forever


@pytest.mark.skipif(backend() != "postgres", reason="RQ needs Redis: run with LMS_BRIDGE_TEST_BACKEND=postgres")
def test_rq_workers_on_redis_deliver_what_was_kicked(app, ctx):
    from rq import SimpleWorker

    from lms_bridge.outbox import worker as outbox_worker

    app.config["OUTBOX_WORKER"] = "rq"
    try:
        keys = [key() for _ in range(30)]
        for k in keys:
            enqueue(k, {"key": k})  # each commit kicks: one drain job waits on the queue
        queue = outbox_worker.rq_queue(app)
        assert queue.count >= 1
        SimpleWorker([queue], connection=outbox_worker._redis(app)).work(burst=True)
        if pending_left():  # jobs fan out while batches are full; burst again for the tail
            outbox_worker.rq_kick(app)
            SimpleWorker([queue], connection=outbox_worker._redis(app)).work(burst=True)
        assert sorted(p["key"] for _, _, p in received if p.get("key") in keys) == sorted(keys)
    finally:
        app.config["OUTBOX_WORKER"] = "off"


@pytest.mark.skipif(backend() != "postgres", reason="RQ needs Redis: run with LMS_BRIDGE_TEST_BACKEND=postgres")
def test_sweeper_requeues_when_a_killed_worker_left_the_kick_flag_up(app, ctx):
    """A worker killed between raising the kick flag and queueing the job leaves the flag up and the
    queue empty: web kicks are then ignored, so the sweepers must queue a job anyway."""
    from rq import SimpleWorker

    from lms_bridge.outbox import worker as outbox_worker

    k = key()
    enqueue(k, {"key": k})  # OUTBOX_WORKER=off: nothing kicked
    app.config["OUTBOX_WORKER"] = "rq"
    try:
        redis = outbox_worker._redis(app)
        queue = outbox_worker.rq_queue(app)
        queue.empty()
        redis.set(app.config["REDIS_PREFIX"] + outbox_worker.KICK_FLAG, "1", ex=60)
        outbox_worker.rq_kick(app)
        assert queue.count == 0  # the stuck flag swallows an ordinary kick
        assert outbox_worker.sweep_once(app) and queue.count == 1
        SimpleWorker([queue], connection=redis).work(burst=True)
        assert payloads(k) == [{"key": k}]
        assert not outbox_worker.sweep_once(app)  # nothing due: no job
    finally:
        app.config["OUTBOX_WORKER"] = "off"

