"""Durable delivery: enqueue in the business transaction, claim, deliver, retry, park.

The transactional outbox pattern: a message (a score for the LMS gradebook, a completion for a
credential issuer) is a row written in the same transaction as the change it reports, so nothing
is sent that was not committed and nothing committed is lost, whatever crashes afterwards. Workers
(:mod:`.worker`: a thread in each gunicorn worker on the embedded default, RQ workers on Redis in
production) run the same :func:`drain`.

Ordering and newest-wins, per ``(kind, dedupe_key)`` (for scores: line item + learner):

* :func:`enqueue` replaces the payload of a row of the same key that is still ``pending`` (not
  claimed), so a burst of score changes becomes one delivery of the newest score;
* a worker claims a row only when no other row of its key is in flight, and marks a row
  ``superseded`` instead of sending it when a newer row of its key exists: an older message is
  never sent after a newer one;
* a claim is a lease (``claimed_until``): a worker that dies mid-delivery leaves a row that another
  worker reclaims when the lease runs out (the receiver gets the idempotency key again).

Claims use ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers on several hosts take
different rows; every state change is a guarded ``UPDATE ... WHERE state = ...`` so two claimers
can never both win a row (SQLite serialises writers anyway).

Failures: a handler raises :class:`RetryLater` (or any exception) for a transient failure: the row
goes back to ``pending`` with exponential backoff (``OUTBOX_BACKOFF_BASE`` x 2^(attempt-1), capped
at ``OUTBOX_BACKOFF_MAX``, +-20 % jitter, or the receiver's ``Retry-After``); after
``OUTBOX_MAX_ATTEMPTS`` attempts, or at once on :class:`Permanent`, it is ``parked`` with its error
for an operator (admin page, ``flask outbox``) to read and retry.
"""
from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ..extensions import db
from .models import OutboxMessage, utcnow

log = logging.getLogger("lms_bridge.outbox")
T = OutboxMessage.__table__

# --------------------------------------------------------------------------- the handler interface


class RetryLater(Exception):
    """A transient failure (receiver down, 5xx, 429, timeout): try again later."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: str | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class Permanent(Exception):
    """A failure no retry can fix (the receiver refused the message): park it for an operator.
    The message says what happened and what to do."""

    def __init__(self, message: str, *, status: str | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Delivery:
    """One attempt at delivering one message, as a handler sees it."""

    id: int
    kind: str
    dedupe_key: str
    idempotency_key: str
    target: str
    payload: dict
    attempt: int  # 1 for the first attempt


Handler = Callable[[Delivery], "str | None"]
_handlers: dict[str, Handler] = {}
_pumps: list[tuple[Callable[[], int], Callable[[], bool] | None]] = []


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that delivers messages of ``kind`` (one per kind)."""
    def register(fn: Handler) -> Handler:
        existing = _handlers.get(kind)
        if existing is not None and existing is not fn and existing.__qualname__ != fn.__qualname__:
            raise RuntimeError(f"outbox kind {kind!r} already has a handler: {existing.__qualname__}")
        _handlers[kind] = fn
        return fn
    return register


def register_pump(fn: Callable[[], int], pending: Callable[[], bool] | None = None) -> None:
    """Something a worker runs before each drain that may enqueue messages (e.g. the progress
    event relay; returns how much it did), and a cheap check whether it has work (for sweepers)."""
    if all(existing is not fn for existing, _ in _pumps):
        _pumps.append((fn, pending))


def pumps_pending() -> bool:
    return any(pending is None or pending() for _, pending in _pumps)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    backoff_base: float = 5.0
    backoff_max: float = 3600.0
    max_attempts: int = 20
    lease_seconds: float = 120.0
    batch: int = 20

    @classmethod
    def current(cls) -> Settings:
        c = current_app.config
        return cls(backoff_base=float(c.get("OUTBOX_BACKOFF_BASE", 5.0)),
                   backoff_max=float(c.get("OUTBOX_BACKOFF_MAX", 3600.0)),
                   max_attempts=int(c.get("OUTBOX_MAX_ATTEMPTS", 20)),
                   lease_seconds=float(c.get("OUTBOX_LEASE_SECONDS", 120.0)),
                   batch=int(c.get("OUTBOX_BATCH", 20)))

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(self.backoff_max, float(retry_after))
        delay = min(self.backoff_max, self.backoff_base * (2 ** max(0, attempt - 1)))
        return delay * random.uniform(0.8, 1.2)


WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"

# --------------------------------------------------------------------------- enqueue


def enqueue(kind: str, dedupe_key: str, payload: dict, *, target: str = "",
            idempotency_key: str | None = None) -> int:
    """Add a message in the caller's transaction (the caller commits); returns the row id.

    If a row of the same ``(kind, dedupe_key)`` is still ``pending`` (not claimed), its payload is
    replaced: the newest message wins, and it keeps its place in the retry schedule.
    """
    if kind not in _handlers:
        raise RuntimeError(f"no outbox handler for {kind!r}")
    now = utcnow()
    session = db.session
    session.info["outbox_kick"] = True
    pending = session.execute(
        sa.select(T.c.id).where(T.c.kind == kind, T.c.dedupe_key == dedupe_key, T.c.state == "pending")
        .order_by(T.c.id.desc()).limit(1)
    ).scalar()
    if pending is not None:
        values = {"payload": payload, "target": target, "updated_at": now}
        if idempotency_key:
            values["idempotency_key"] = idempotency_key
        # Guarded: a worker may have claimed it since; then a new row follows it.
        replaced = session.execute(
            sa.update(T).where(T.c.id == pending, T.c.state == "pending").values(**values)
        ).rowcount
        if replaced:
            return pending
    return session.execute(sa.insert(T).values(
        kind=kind, dedupe_key=dedupe_key, payload=payload, target=target,
        idempotency_key=idempotency_key or str(uuid.uuid4()), state="pending", attempts=0,
        next_attempt_at=now, created_at=now, updated_at=now,
    ).returning(T.c.id)).scalar_one()


# After a commit that enqueued something, tell the workers (see .worker.kick).
_after_commit: list[Callable[[], None]] = []


def on_enqueued_commit(fn: Callable[[], None]) -> None:
    if fn not in _after_commit:
        _after_commit.append(fn)


@event.listens_for(Session, "after_commit")
def _kick_after_commit(session) -> None:
    if session.info.pop("outbox_kick", False):
        for fn in _after_commit:
            try:
                fn()
            except Exception:  # a lost kick is only a delay: the workers also poll
                log.exception("outbox kick failed")


@event.listens_for(Session, "after_rollback")
def _forget_kick(session) -> None:
    session.info.pop("outbox_kick", None)


# --------------------------------------------------------------------------- claim


def _newer_exists(conn, row) -> bool:
    return conn.execute(sa.select(sa.literal(1)).where(
        T.c.kind == row.kind, T.c.dedupe_key == row.dedupe_key, T.c.id > row.id,
        T.c.state.in_(("pending", "delivering", "delivered"))).limit(1)).first() is not None


def _busy(conn, row, now: datetime) -> bool:
    return conn.execute(sa.select(sa.literal(1)).where(
        T.c.kind == row.kind, T.c.dedupe_key == row.dedupe_key, T.c.id != row.id,
        T.c.state == "delivering", T.c.claimed_until >= now).limit(1)).first() is not None


def claim(limit: int, settings: Settings, worker_id: str = WORKER_ID) -> list[Delivery]:
    """Claim up to ``limit`` due messages for this worker (one committed transaction)."""
    now = utcnow()
    due = sa.or_(sa.and_(T.c.state == "pending", T.c.next_attempt_at <= now),
                 sa.and_(T.c.state == "delivering", T.c.claimed_until < now))
    claimable = T.c.state.in_(("pending", "delivering"))
    with db.engine.connect() as conn:
        with conn.begin():
            query = (sa.select(T.c.id, T.c.kind, T.c.dedupe_key).where(due)
                     .order_by(T.c.next_attempt_at, T.c.id).limit(limit * 2))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            claimed: list[Delivery] = []
            for row in conn.execute(query).all():
                if len(claimed) >= limit:
                    break
                if _newer_exists(conn, row):
                    conn.execute(sa.update(T).where(T.c.id == row.id, claimable).values(
                        state="superseded", claimed_by=None, claimed_until=None, updated_at=now))
                    continue
                if _busy(conn, row, now):
                    continue
                taken = conn.execute(
                    sa.update(T).where(T.c.id == row.id, due).values(
                        state="delivering", claimed_by=worker_id, updated_at=now,
                        claimed_until=now + timedelta(seconds=settings.lease_seconds),
                        attempts=T.c.attempts + 1)
                    .returning(T.c.idempotency_key, T.c.target, T.c.payload, T.c.attempts)
                ).first()
                if taken is not None:
                    claimed.append(Delivery(row.id, row.kind, row.dedupe_key, taken.idempotency_key, taken.target,
                                            taken.payload or {}, taken.attempts))
    return claimed


# --------------------------------------------------------------------------- deliver


def _finish(delivery: Delivery, worker_id: str, **values) -> bool:
    """Record an outcome, unless the lease was lost meanwhile (another worker owns the row now)."""
    values["updated_at"] = utcnow()
    with db.engine.begin() as conn:
        return conn.execute(sa.update(T).where(
            T.c.id == delivery.id, T.c.state == "delivering", T.c.claimed_by == worker_id
        ).values(claimed_by=None, claimed_until=None, **values)).rowcount == 1


@dataclass
class DrainResult:
    delivered: int = 0
    retried: int = 0
    parked: int = 0
    pumped: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.delivered + self.retried + self.parked + self.pumped


def deliver(delivery: Delivery, settings: Settings, worker_id: str = WORKER_ID, result: DrainResult | None = None) -> str:
    """Run the handler for one claimed message and record the outcome; returns the new state."""
    result = result or DrainResult()
    fn = _handlers.get(delivery.kind)
    status: str | None
    try:
        if fn is None:
            raise Permanent(f"no handler for messages of kind {delivery.kind!r} in this version of lms_bridge")
        note = fn(delivery)
    except Permanent as exc:
        status, error, parked, retry_after = exc.status, str(exc), True, None
    except RetryLater as exc:
        status, error, parked, retry_after = exc.status, str(exc), False, exc.retry_after
    except Exception as exc:  # a bug or an unexpected failure: retried, and visible to operators
        log.exception("outbox %s %s: handler failed", delivery.kind, delivery.id)
        status, error, parked, retry_after = "error", f"{type(exc).__name__}: {exc}", False, None
    else:
        _finish(delivery, worker_id, state="delivered", delivered_at=utcnow(),
                last_status=(str(note)[:100] if note else "delivered"), last_error=None)
        result.delivered += 1
        return "delivered"
    finally:
        db.session.remove()  # the handler's reads end here; nothing it loaded outlives the attempt
    if not parked and delivery.attempt >= settings.max_attempts:
        parked = True
        error = f"{error} (gave up after {delivery.attempt} attempts)"
    if parked:
        _finish(delivery, worker_id, state="parked", last_status=(status or "failed")[:100], last_error=error)
        result.parked += 1
        log.warning("outbox %s %s parked: %s", delivery.kind, delivery.id, error)
        return "parked"
    delay = settings.backoff(delivery.attempt, retry_after)
    _finish(delivery, worker_id, state="pending", next_attempt_at=utcnow() + timedelta(seconds=delay),
            last_status=(status or "retrying")[:100], last_error=error)
    result.retried += 1
    result.errors.append(error)
    log.info("outbox %s %s attempt %s failed, retry in %.1fs: %s", delivery.kind, delivery.id, delivery.attempt,
             delay, error)
    return "pending"


def drain(*, max_batches: int | None = None, worker_id: str = WORKER_ID, result: DrainResult | None = None) -> DrainResult:
    """Deliver every due message (batch after batch) until none is due."""
    settings = Settings.current()
    result = result or DrainResult()
    batches = 0
    while max_batches is None or batches < max_batches:
        try:
            claimed = claim(settings.batch, settings, worker_id)
        except OperationalError as exc:  # SQLite: another writer won the race; the next pass retries
            log.info("outbox claim deferred: %s", exc.orig)
            break
        if not claimed:
            break
        batches += 1
        for delivery in claimed:
            deliver(delivery, settings, worker_id, result)
    return result


def pump() -> int:
    done = 0
    for fn, _ in list(_pumps):
        try:
            done += fn() or 0
        except Exception:
            log.exception("outbox pump %s failed", getattr(fn, "__qualname__", fn))
            db.session.rollback()
    return done


def work_once(*, max_batches: int | None = None, worker_id: str = WORKER_ID) -> DrainResult:
    """One pass of a worker: pumps (relay progress events into messages), then deliver what is due."""
    result = DrainResult()
    result.pumped = pump()
    return drain(max_batches=max_batches, worker_id=worker_id, result=result)


def next_due_in(default: float) -> float:
    """Seconds until the next pending message is due (``default`` when there is none)."""
    nxt = db.session.execute(sa.select(sa.func.min(T.c.next_attempt_at)).where(T.c.state == "pending")).scalar()
    db.session.rollback()
    if nxt is None:
        return default
    return max(0.0, min(default, (nxt - utcnow()).total_seconds()))


# --------------------------------------------------------------------------- operators


def counts(kind_prefix: str | None = None) -> dict[str, int]:
    query = sa.select(T.c.state, sa.func.count()).group_by(T.c.state)
    if kind_prefix:
        query = query.where(T.c.kind.startswith(kind_prefix))
    found = dict(db.session.execute(query).all())
    return {state: int(found.get(state, 0)) for state in ("pending", "delivering", "delivered", "parked", "superseded")}


def messages(*, states: tuple[str, ...] | None = None, kind_prefix: str | None = None, limit: int = 100,
             dedupe_prefix: str | None = None) -> list[OutboxMessage]:
    query = sa.select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if states:
        query = query.where(OutboxMessage.state.in_(states))
    if kind_prefix:
        query = query.where(OutboxMessage.kind.startswith(kind_prefix))
    if dedupe_prefix:
        query = query.where(OutboxMessage.dedupe_key.startswith(dedupe_prefix))
    return list(db.session.execute(query).scalars())


def retry(message_id: int) -> bool:
    """Put a parked message back in line for an immediate attempt (attempts start again)."""
    db.session.info["outbox_kick"] = True
    changed = db.session.execute(sa.update(T).where(T.c.id == message_id, T.c.state == "parked").values(
        state="pending", attempts=0, next_attempt_at=utcnow(), updated_at=utcnow())).rowcount
    db.session.commit()
    return changed == 1


def retry_parked(kind_prefix: str | None = None) -> int:
    db.session.info["outbox_kick"] = True
    query = sa.update(T).where(T.c.state == "parked")
    if kind_prefix:
        query = query.where(T.c.kind.startswith(kind_prefix))
    changed = db.session.execute(query.values(state="pending", attempts=0, next_attempt_at=utcnow(),
                                              updated_at=utcnow())).rowcount
    db.session.commit()
    return changed


def wait_idle(timeout: float = 30.0, poll: float = 0.1) -> bool:
    """Block until nothing is pending or in flight (for operators' scripts and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = db.session.execute(sa.select(sa.func.count()).where(T.c.state.in_(("pending", "delivering")))).scalar()
        db.session.rollback()
        if not busy:
            return True
        time.sleep(poll)
    return False

