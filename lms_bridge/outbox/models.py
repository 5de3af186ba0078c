"""The outbox table: messages to other systems, written in the business transaction.

One row per message to deliver (a score for a line item, a completion for a credential issuer).
``state`` moves ``pending`` -> ``delivering`` (claimed by one worker until ``claimed_until``) ->
``delivered``; a failure puts it back to ``pending`` with a later ``next_attempt_at``, or
``parked`` after too many attempts (or at once for a failure no retry can fix) for an operator to
retry. ``superseded`` rows were replaced by a newer row of the same ``(kind, dedupe_key)`` before
they were sent (for scores: the newest score wins and an older one is never sent after it).
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ..extensions import db

STATES = ("pending", "delivering", "delivered", "parked", "superseded")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class OutboxMessage(db.Model):
    __tablename__ = "outbox_message"
    __table_args__ = (
        db.Index("ix_outbox_message_due", "state", "next_attempt_at"),
        db.Index("ix_outbox_message_key", "kind", "dedupe_key"),
        {"sqlite_autoincrement": True},
    )

    id = db.Column(db.Integer, primary_key=True)
    kind = db.Column(db.String(60), nullable=False)
    # Messages of one (kind, dedupe_key) are delivered one at a time, newest wins.
    dedupe_key = db.Column(db.String(500), nullable=False)
    # Sent to the receiver with every attempt, so a retry after a lost answer does no harm.
    idempotency_key = db.Column(db.String(200), nullable=False, default=lambda: str(uuid.uuid4()))
    # What the message goes to (a line item URL, a connector name), for operators.
    target = db.Column(db.String(1000), nullable=False, default="")
    payload = db.Column(db.JSON, nullable=False, default=dict)
    state = db.Column(db.String(20), nullable=False, default="pending")
    attempts = db.Column(db.Integer, nullable=False, default=0)
    next_attempt_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    claimed_by = db.Column(db.String(100), nullable=True)
    claimed_until = db.Column(db.DateTime, nullable=True)
    # The outcome of the last attempt: a short status ("HTTP 401") and the error said plainly.
    last_status = db.Column(db.String(100), nullable=True)
    last_error = db.Column(db.Text, nullable=True)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    delivered_at = db.Column(db.DateTime, nullable=True)

    def __repr__(self) -> str:
        return f"<OutboxMessage {self.id} {self.kind} {self.state} {self.dedupe_key!r}>"
