"""Grade passback: learner progress becomes AGS scores in the LMS gradebook, never lost, newest wins.

**Enqueue** (:func:`on_progress`, a subscriber of the progress events, :mod:`lms_bridge.player.events`):
when an activity is opened for the first time (``progress_changed``: an attempt starts with its first
activity), a score changes, an activity or the course is completed, the attempt's current result for its resource link is computed and ONE outbox
message ``ags.score`` is written, in the transaction that consumes the event, with

* ``dedupe_key`` = the line item URL (or, for a line item the tool creates, the ``lineitems``
  container and the resource link) + the learner's LTI ``sub``: the outbox delivers the messages of
  one key in order and replaces a pending one by a newer one, so the newest score wins;
* a Score (AGS §3.4.5): ``scoreGiven``/``scoreMaximum`` (the scaled score x 100: Moodle and Canvas
  scale it to the column's maximum), ``activityProgress`` and ``gradingProgress`` (below),
  ``timestamp`` (ISO 8601 with milliseconds, strictly increasing per line item and learner, so the
  platform never takes an older score for a newer one, §3.4.6), ``userId`` (the ``sub``); and the
  registration id, resource link and line item to post to.

A message equal to the last one for its key (apart from the timestamp) is not written again.

The result is the resource link's: the whole course, or the one module a deep link placed
(:mod:`lms_bridge.player.binding`):

* ``activityProgress``: ``Completed`` when the course's completion rule holds (for a module: every
  required activity of the module satisfies it); ``Submitted`` when every required activity is
  completed but the rule does not hold (a quiz below the pass mark, which the learner may retake);
  ``InProgress`` once an activity is completed or scored; ``Started`` once one is opened;
  ``Initialized`` before.
* ``gradingProgress``: ``FullyGraded`` once ``Submitted`` or ``Completed`` (the score is final for
  what was submitted), ``Pending`` before (platforms such as Moodle ignore ``scoreGiven`` then).
* ``scoreGiven``: the mean scaled score of the required scored activities (the progress service's
  course score) x ``scoreMaximum``; a completed course without scored activities earns the maximum.

**Deliver** (:func:`deliver_score`, the outbox handler): post the score to the ``lineitem`` of the
link's launch claim (AGS §3.1: the activity's own column), or to the line item the tool created for
the link (found by ``resourceLinkId`` + ``resourceId``, the same ``resourceId`` deep linking gives
its line items (:func:`lms_bridge.player.binding.resource_id`), created once, updated when the link
is bound to another course or module: :mod:`.models`). Timeouts, connection errors, 429 and 5xx are retried
later (honouring ``Retry-After``); 401 (Moodle: the tool may not send grades) and other refusals
are parked with a diagnostic that says what to change.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..extensions import db
from ..lti import directory
from ..lti.launch import C
from ..lti.models import ResourceLink, User
from ..outbox import Delivery, OutboxMessage, Permanent, RetryLater, enqueue, handler
from ..packages.models import Module
from ..player import progress
from ..player.binding import BindingError, resolve, resource_id
from ..player.events import subscribe
from ..player.models import ActivityProgress, Attempt
from ..shared_store import store
from . import ags
from .models import LineItem

log = logging.getLogger("lms_bridge.grading")

KIND = "ags.score"
SCORE_MAXIMUM = 100.0
# Progress events that may change what the gradebook should show.
EVENTS = ("progress_changed", "score_changed", "activity_completed", "course_completed")
SCORE_FIELDS = ("scoreGiven", "scoreMaximum", "activityProgress", "gradingProgress", "timestamp", "userId", "comment")
LINE_ITEM_LOCK_TTL = 30
REGISTRATION_TTL = 10.0
MAX_KEY = 500  # outbox_message.dedupe_key


# --------------------------------------------------------------------------- the result of a resource


@dataclass(frozen=True)
class ActivityState:
    """What passback reads of one activity's progress."""

    completion_status: str = "not_attempted"
    success_status: str = "unknown"
    score_scaled: float | None = None
    opened: bool = False


@dataclass(frozen=True)
class ResourceResult:
    activity_progress: str
    grading_progress: str
    score_scaled: float | None


def resource_result(rules: progress.CourseRules, states: dict[str, ActivityState], keys: tuple[str, ...] | None,
                    course_completed: bool) -> ResourceResult:
    """The AGS progress and score of a course (``keys`` None) or of the activities ``keys`` of one module."""
    if keys is None:
        scoped = rules
        in_scope = [a.key for a in rules.activities if a.kind != "unsupported" and a.visible]
    else:
        in_scope = [a.key for a in rules.activities if a.key in keys and a.kind != "unsupported" and a.visible]
        # A module's required activities; a module with none counts all of its activities.
        required = tuple(k for k in rules.required_keys if k in keys) or tuple(in_scope)
        scoped = replace(rules, required_keys=required)
    rule_states = {k: progress.ProgressState(s.completion_status, s.success_status, s.score_scaled)
                   for k, s in states.items()}
    score = progress.course_score(scoped, rule_states)
    complete = course_completed if keys is None else progress.course_complete(scoped, rule_states)
    touched = [states[k] for k in in_scope if k in states]
    if complete:
        activity = "Completed"
    elif scoped.required_keys and all(states.get(k, ActivityState()).completion_status == "completed"
                                      for k in scoped.required_keys):
        activity = "Submitted"
    elif any(s.completion_status == "completed" or s.score_scaled is not None or s.success_status != "unknown"
             for s in touched):
        activity = "InProgress"
    elif any(s.opened or s.completion_status not in ("not_attempted", "unknown") for s in touched):
        activity = "Started"
    else:
        activity = "Initialized"
    if complete and score is None:
        score = 1.0  # completion is the grade of a course without scored activities
    grading = "FullyGraded" if activity in ("Completed", "Submitted") else "Pending"
    return ResourceResult(activity, grading, score)


def score_body(result: ResourceResult, *, user_id: str, timestamp: str, score_maximum: float = SCORE_MAXIMUM) -> dict:
    """The AGS Score (§3.4.5) for a result."""
    body = {"userId": user_id, "scoreMaximum": score_maximum, "activityProgress": result.activity_progress,
            "gradingProgress": result.grading_progress, "timestamp": timestamp}
    if result.score_scaled is not None:
        body["scoreGiven"] = round(max(0.0, result.score_scaled) * score_maximum, 4)
    return body


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds (``2026-11-21T09:00:00.123+00:00``)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+00:00"


def next_timestamp(changed_at: datetime, previous: str | None) -> str:
    """``changed_at`` (naive UTC), or 1 ms after ``previous`` when that is not older: strictly increasing."""
    moment = changed_at.replace(microsecond=changed_at.microsecond // 1000 * 1000)
    if previous:
        try:
            before = datetime.fromisoformat(previous).replace(tzinfo=None)
        except ValueError:
            before = None
        if before is not None and moment <= before:
            moment = before + timedelta(milliseconds=1)
    return format_timestamp(moment)


# --------------------------------------------------------------------------- enqueue


@dataclass(frozen=True)
class _StoredLaunch:
    """What :func:`lms_bridge.player.binding.resolve` reads of a launch: its custom claim (here the
    one stored on the resource link by its last launch) and the resource link (an instructor's
    stored choice of course)."""

    claims: dict
    resource_link_pk: int


def _module_keys(rules: progress.CourseRules, module: Module) -> tuple[str, ...]:
    identifiers: set[str] = set()
    stack = [module]
    while stack:
        node = stack.pop()
        identifiers.update(a.identifier for a in node.activities)
        stack.extend(node.modules)
    return tuple(a.key for a in rules.activities if a.identifier in identifiers)


def _states(attempt_id: int) -> dict[str, ActivityState]:
    t = ActivityProgress.__table__.c
    rows = db.session.execute(sa.select(t.activity_key, t.completion_status, t.success_status, t.score_scaled,
                                        t.session_count).where(t.attempt_id == attempt_id))
    return {key: ActivityState(completion, success, scaled, bool(sessions))
            for key, completion, success, scaled, sessions in rows}


def _dedupe_key(line_item_key: str, sub: str) -> str:
    key = f"{line_item_key} {sub}"
    if len(key) <= MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(line_item_key.encode()).hexdigest() + f" {sub}"  # a very long URL


def enqueue_score(attempt_id: int) -> int | None:
    """Write the ``ags.score`` message for an attempt's current result, in the caller's transaction;
    returns the outbox row id, or None when there is nothing to send (no AGS, unchanged, unbound)."""
    # One relay at a time per attempt, so the last message read below is the last one written and
    # timestamps stay ordered: a row lock on PostgreSQL; on SQLite, a no-op write takes the database's
    # write lock before anything is read.
    query = sa.select(Attempt).where(Attempt.id == attempt_id)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    else:
        db.session.execute(sa.update(Attempt).where(Attempt.id == attempt_id).values(updated_at=Attempt.updated_at))
    attempt = db.session.execute(query).scalar_one_or_none()
    if attempt is None or attempt.resource_link_pk is None:
        return None
    link = db.session.get(ResourceLink, attempt.resource_link_pk)
    endpoint = link.ags_endpoint if link is not None and isinstance(link.ags_endpoint, dict) else {}
    scopes = endpoint.get("scope") if isinstance(endpoint.get("scope"), list) else []
    lineitem = endpoint.get("lineitem") if isinstance(endpoint.get("lineitem"), str) else None
    lineitems = endpoint.get("lineitems") if isinstance(endpoint.get("lineitems"), str) else None
    if ags.SCOPE_SCORE not in scopes or not (lineitem or (lineitems and ags.SCOPE_LINEITEM in scopes)):
        return None  # the platform takes no scores for this link
    try:
        binding = resolve(_StoredLaunch({C + "custom": link.custom or {}}, link.id))
    except BindingError:
        binding = None
    if binding is None or binding.course.id != attempt.course_id:
        return None  # the link is bound to another course now: this attempt is not its result
    rules = progress.course_rules(attempt.version_id)
    keys = _module_keys(rules, binding.module) if binding.module is not None else None
    result = resource_result(rules, _states(attempt.id), keys, attempt.completed_at is not None)
    user = db.session.get(User, attempt.user_pk)
    line_item_key = lineitem or f"{lineitems}#resourceLinkId={link.resource_link_id}"
    dedupe_key = _dedupe_key(line_item_key, user.sub)
    last = db.session.execute(sa.select(OutboxMessage.payload).where(
        OutboxMessage.kind == KIND, OutboxMessage.dedupe_key == dedupe_key
    ).order_by(OutboxMessage.id.desc()).limit(1)).scalar()
    payload = {
        "registration_id": attempt.registration_id, "resource_link_pk": link.id,
        "resource_link_id": link.resource_link_id, "lineitem": lineitem, "lineitems": None if lineitem else lineitems,
        "resource_id": resource_id(binding.course, binding.module),
        "label": (link.title or binding.course.title or "lms_bridge")[:500], "attempt_id": attempt.id,
        **score_body(result, user_id=user.sub, timestamp=""),
    }
    if isinstance(last, dict) and {**last, "timestamp": ""} == payload:
        return None  # the platform has (or will get) exactly this
    payload["timestamp"] = next_timestamp(attempt.updated_at, last.get("timestamp") if isinstance(last, dict) else None)
    return enqueue(KIND, dedupe_key, payload, target=lineitem or lineitems)


@subscribe(*EVENTS)
def on_progress(event) -> None:
    """Progress event subscriber: runs in the transaction that consumes the event."""
    enqueue_score(event.attempt_id)


# --------------------------------------------------------------------------- deliver


@handler(KIND)
def deliver_score(delivery: Delivery) -> str:
    """Post one score (outbox handler; runs outside any transaction)."""
    payload = delivery.payload
    registration = _registration(int(payload.get("registration_id") or 0))
    if registration is None:
        raise Permanent("The platform registration this score belongs to was deleted: the score cannot be sent.",
                        status="no registration")
    if not registration.active:
        raise Permanent(f"The registration of {registration.issuer} is deactivated on /admin/: activate it, then "
                        "retry this score.", status="registration inactive")
    score = {k: payload[k] for k in SCORE_FIELDS if payload.get(k) is not None}
    try:
        url = payload.get("lineitem") or tool_line_item(registration, payload)
        # The row keeps its idempotency key when a newer score replaces its payload: the key of
        # this score is the row's key and the score's timestamp.
        status = ags.post_score(registration, url, score,
                                idempotency_key=f"{delivery.idempotency_key}/{payload.get('timestamp', '')}")
    except ags.AgsError as exc:
        if exc.status == 409:
            # Moodle's answer to a score not newer than the grade it holds: nothing left to send.
            return "HTTP 409 (the platform holds a newer score)"
        if exc.transient:
            raise RetryLater(str(exc), retry_after=exc.retry_after, status=exc.short) from exc
        raise Permanent(f"{exc} Score: {score}", status=exc.short) from exc
    return f"HTTP {status}"


_registrations: dict[tuple[object, int], tuple[float, object]] = {}


def _registration(registration_id: int):
    """The registration's token URL and client id, read at most every REGISTRATION_TTL seconds per
    process (a score costs no query for it; a changed registration is seen that much later)."""
    from flask import current_app

    key = (current_app._get_current_object(), registration_id)
    cached = _registrations.get(key)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    info = directory.registration(registration_id)
    _registrations[key] = (now + REGISTRATION_TTL, info)
    return info


def tool_line_item(registration, payload: dict) -> str:
    """The URL of the line item the tool created for the payload's resource link: found by
    ``resourceLinkId`` + ``resourceId`` or created (once: a lock in the shared store keeps two
    workers from creating two columns), and updated when the link now shows another resource."""
    link_pk = int(payload["resource_link_pk"])
    lock = f"ags-lineitem:{registration.id}:{link_pk}"
    deadline = time.monotonic() + LINE_ITEM_LOCK_TTL
    while not store().add(lock, 1, LINE_ITEM_LOCK_TTL):
        row = db.session.execute(sa.select(LineItem).filter_by(resource_link_pk=link_pk)).scalar_one_or_none()
        db.session.rollback()
        if row is not None and row.resource_id == payload["resource_id"]:
            return row.url
        if time.monotonic() > deadline:
            raise RetryLater("another worker is setting up this activity's gradebook column", retry_after=5,
                             status="busy")
        time.sleep(0.1)
    try:
        return _ensure_line_item(registration, link_pk, payload)
    finally:
        store().delete(lock)


def _ensure_line_item(registration, link_pk: int, payload: dict) -> str:
    container, rlid, rid = payload["lineitems"], payload["resource_link_id"], payload["resource_id"]
    label, maximum = payload.get("label") or "lms_bridge", float(payload.get("scoreMaximum") or SCORE_MAXIMUM)
    row = db.session.execute(sa.select(LineItem).filter_by(resource_link_pk=link_pk)).scalar_one_or_none()
    if row is not None and row.resource_id == rid:
        return row.url
    if row is not None:
        # The link was bound to another course or module: its column follows (AGS §3.2.7, PUT).
        try:
            item = ags.update_line_item(registration, row.url, label=label, score_maximum=row.score_maximum,
                                        resource_link_id=rlid, resource_id=rid, tag=row.tag)
        except ags.AgsError as exc:
            if exc.status != 404:
                raise
            item = None  # deleted on the platform: find or create it again below
        if item is not None:
            row.resource_id, row.label, row.url = rid, label, item.id
            db.session.commit()
            return row.url
    # The link's claim granted "lineitem" (checked at enqueue): it reads and writes, one token.
    item = ags.find_line_item(registration, container, resource_link_id=rlid, resource_id=rid,
                              scope=ags.SCOPE_LINEITEM)
    if item is None:
        item = ags.create_line_item(registration, container, label=label, score_maximum=maximum,
                                    resource_link_id=rlid, resource_id=rid)
        log.info("ags: created line item %s for resource link %s", item.id, rlid)
    if row is None:
        row = LineItem(registration_id=registration.id, resource_link_pk=link_pk, container_url=container)
        db.session.add(row)
    row.url, row.resource_id, row.label, row.score_maximum = item.id, rid, label, item.score_maximum or maximum
    db.session.commit()
    return row.url
