"""Durable delivery of messages to other systems (scores to LMSs, completions to credential issuers).

Usage, from a service that changes something another system must hear about::

    from lms_bridge.outbox import enqueue, handler, RetryLater, Permanent, Delivery

    @handler("ags.score")
    def deliver(delivery: Delivery) -> str | None: ...     # raise RetryLater / Permanent

    enqueue("ags.score", dedupe_key, payload)               # inside the business transaction

See :mod:`.service` for the guarantees and :mod:`.worker` for who delivers.
"""
from .models import OutboxMessage
from .service import (
    Delivery,
    DrainResult,
    Permanent,
    RetryLater,
    counts,
    drain,
    enqueue,
    handler,
    messages,
    register_pump,
    retry,
    retry_parked,
    wait_idle,
    work_once,
)

__all__ = ["Delivery", "DrainResult", "OutboxMessage", "Permanent", "RetryLater", "counts", "drain", "enqueue",
           "handler", "messages", "register_pump", "retry", "retry_parked", "wait_idle", "work_once"]
