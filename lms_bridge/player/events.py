"""Progress events, relayed to the services that act on them (grade passback, credentials).

:mod:`.progress` writes a :class:`~.models.ProgressEvent` row in the same transaction as the
change it reports (``score_changed``, ``activity_completed``, ``course_completed``). This module
hands each event, in order, to the subscribers of its kind **inside one transaction that also
marks the event consumed**: what a subscriber writes (an outbox message, a completion record)
commits together with the consumption, or not at all and the event is relayed again. So an event
is acted on exactly once even when workers crash, and the player knows nothing of who listens
(grading and credentials import this module, never the other way round).

The relay runs as an outbox pump (:func:`lms_bridge.outbox.register_pump`): every worker pass
relays committed events before delivering messages. Events are claimed with ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so workers on several hosts relay different events.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa

from ..extensions import db
from .models import ProgressEvent

log = logging.getLogger("lms_bridge.events")

Subscriber = Callable[[ProgressEvent], None]
_subscribers: dict[str, list[Subscriber]] = {}
_committed_listeners: list[Callable[[], None]] = []
BATCH = 50
MAX_RELAY_ATTEMPTS = 5


def subscribe(*kinds: str) -> Callable[[Subscriber], Subscriber]:
    """Register a function called once per committed event of these kinds (in its own transaction)."""
    def register(fn: Subscriber) -> Subscriber:
        for kind in kinds:
            listeners = _subscribers.setdefault(kind, [])
            if all(existing.__qualname__ != fn.__qualname__ or existing.__module__ != fn.__module__
                   for existing in listeners):
                listeners.append(fn)
        return fn
    return register


def on_committed(fn: Callable[[], None]) -> None:
    """Call ``fn`` after a progress transaction that wrote events commits (wakes the workers)."""
    if fn not in _committed_listeners:
        _committed_listeners.append(fn)


def notify_committed() -> None:
    for fn in _committed_listeners:
        try:
            fn()
        except Exception:  # only a delay: workers poll as well
            log.exception("events: committed listener failed")


def pending() -> bool:
    found = db.session.execute(sa.select(ProgressEvent.id).where(
        ProgressEvent.consumed.is_(False), ProgressEvent.relay_attempts < MAX_RELAY_ATTEMPTS).limit(1)).first()
    db.session.rollback()
    return found is not None


def relay(limit: int = BATCH) -> int:
    """Hand up to ``limit`` unconsumed events to their subscribers; returns how many were relayed."""
    done = 0
    while done < limit:
        session = db.session
        query = (sa.select(ProgressEvent).where(ProgressEvent.consumed.is_(False),
                                                ProgressEvent.relay_attempts < MAX_RELAY_ATTEMPTS)
                 .order_by(ProgressEvent.id).limit(1))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        event = session.execute(query).scalar_one_or_none()
        if event is None:
            session.rollback()
            break
        try:
            for fn in _subscribers.get(event.kind, ()):
                fn(event)
            # Guarded, so that on SQLite two relays of the same event cannot both commit it.
            claimed = session.execute(sa.update(ProgressEvent).where(
                ProgressEvent.id == event.id, ProgressEvent.consumed.is_(False)).values(consumed=True)).rowcount
            if claimed != 1:
                session.rollback()
                continue
            session.commit()
            done += 1
        except Exception as exc:
            # A subscriber bug must not stop every later event: count the failure, keep the error
            # for operators (``flask outbox``), and after MAX_RELAY_ATTEMPTS leave the event aside.
            event_id, kind = event.id, event.kind
            session.rollback()
            log.exception("events: relaying %s %s failed", kind, event_id)
            session.execute(sa.update(ProgressEvent).where(ProgressEvent.id == event_id).values(
                relay_attempts=ProgressEvent.relay_attempts + 1, relay_error=f"{type(exc).__name__}: {exc}"[:2000]))
            session.commit()
    return done
