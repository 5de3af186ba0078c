"""The progress service: attempts, per-activity status, score and time, course completion rules,
and the domain events they raise.

Everything that changes learner progress goes through this module (SCORM commits from
:mod:`.scorm_api`, cmi5 statements from :mod:`.xapi`, quiz submissions from :mod:`.quiz`, lesson
views from the player), one transaction per call:

1. **Lock** the attempt first (``UPDATE pl_attempt SET updated_at = ...`` as the transaction's first
   statement): a row lock on PostgreSQL, the database write lock on SQLite. Writes to one attempt
   are serialised, so concurrent commits of two activities cannot both miss the course's
   completion, and ``course_completed`` is written exactly once.
2. **Order**: a runtime write carries ``(session, seq)``: the session number the server handed out
   when the activity was launched (:func:`launch_activity`) and the commit sequence within that
   session. A write that is not newer than the stored ``(client_session, client_seq)`` is ignored
   (``stale``, or ``duplicate`` when it is the same): a late, older SCORM commit never overwrites
   newer data, and a retried commit is harmless (idempotent). Server-side writes (quiz grading,
   lesson views) carry no sequence and always apply.
3. **Apply** the changes, then **raise events** in the same transaction (:class:`ProgressEvent`):
   ``score_changed`` when the score changes, ``activity_completed`` the first time an activity is
   completed, ``course_completed`` the first time the package's completion rule holds.

Completion rules (:func:`activity_satisfied`, :func:`course_complete`), from the package's
:class:`~lms_bridge.packages.course.CompletionRule`:

* ``all_required``: every required activity is completed and, for scored ones, has a score of at
  least its threshold: the activity's own ``mastery_score`` wins, else the course ``pass_mark``.
  An activity is scored when it is a quiz, has its own mastery score, or has reported a score.
  When a scored activity reported a success status but no score, ``passed`` counts.
* ``cmi5_moveon``: every AU satisfies its ``moveOn`` (cmi5 §13.1.4): ``Completed``, ``Passed``,
  ``CompletedAndPassed``, ``CompletedOrPassed``, or ``NotApplicable`` (always satisfied).

What the rules need of a course version (activity keys, kinds, thresholds) is read once per
version and cached in the process: a version's activities never change after import.
"""
from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..packages.models import Activity, Course, CourseVersion
from .models import ActivityProgress, Attempt, ProgressEvent, utcnow

SCORED_KINDS = ("quiz",)
VIEW_COMPLETES = ("lesson", "webcontent", "weblink", "asset")
"""Activities without a runtime: opening them completes them."""

_UNSET: Any = object()


class ProgressError(Exception):
    """A write that cannot be applied (unknown attempt or activity, a session never issued)."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


# --------------------------------------------------------------------------- course rules


@dataclass(frozen=True)
class ActivityInfo:
    key: str
    identifier: str
    title: str
    kind: str
    required: bool
    mastery_score: float | None
    move_on: str | None
    visible: bool = True


@dataclass(frozen=True)
class CourseRules:
    version_id: int
    course_id: int
    rule: str
    pass_mark: float | None
    activities: tuple[ActivityInfo, ...]
    required_keys: tuple[str, ...]

    def info(self, key: str) -> ActivityInfo | None:
        return next((a for a in self.activities if a.key == key), None)


_rules_cache: dict[tuple[object, int], CourseRules] = {}
_rules_lock = threading.Lock()


def course_rules(version_id: int) -> CourseRules:
    """The completion rule of a version with what it needs of each activity (cached per process)."""
    cache_key = (db.engine, version_id)  # the engine object (not its id, which could be reused)
    cached = _rules_cache.get(cache_key)
    if cached is not None:
        return cached
    version = db.session.get(CourseVersion, version_id)
    if version is None:
        raise ProgressError("unknown_version", f"course version {version_id} does not exist", 404)
    rows = db.session.execute(
        db.select(Activity.activity_key, Activity.identifier, Activity.title, Activity.kind, Activity.required,
                  Activity.mastery_score, Activity.move_on, Activity.visible)
        .filter_by(version_id=version_id).order_by(Activity.id)
    ).all()
    infos = tuple(ActivityInfo(*row) for row in rows)
    completion = version.completion or {}
    by_identifier = {a.identifier: a for a in infos}
    required_ids = completion.get("required_activities") or [a.identifier for a in infos if a.required]
    # Activities a learner cannot open (unsupported kinds, hidden items) never block completion.
    required = tuple(by_identifier[i].key for i in required_ids
                     if i in by_identifier and by_identifier[i].kind != "unsupported" and by_identifier[i].visible)
    rules = CourseRules(version_id=version.id, course_id=version.course_id, rule=completion.get("rule") or "all_required",
                        pass_mark=completion.get("pass_mark"), activities=infos, required_keys=required)
    with _rules_lock:
        _rules_cache[cache_key] = rules
    return rules


@dataclass
class ProgressState:
    """What the rules look at (an :class:`ActivityProgress` or a plain value in tests)."""

    completion_status: str = "not_attempted"
    success_status: str = "unknown"
    score_scaled: float | None = None

    @classmethod
    def of(cls, row) -> ProgressState:
        return cls(row.completion_status, row.success_status, row.score_scaled)


def threshold(info: ActivityInfo, state: ProgressState | None, pass_mark: float | None) -> float | None:
    """The score an activity must reach under ``all_required`` (None: completing it is enough)."""
    if info.mastery_score is not None:
        return info.mastery_score
    scored = info.kind in SCORED_KINDS or (state is not None and state.score_scaled is not None)
    return pass_mark if scored else None


def activity_satisfied(info: ActivityInfo, state: ProgressState | None, rule: str = "all_required",
                       pass_mark: float | None = None) -> bool:
    """Does this activity meet the course's completion rule?"""
    state = state or ProgressState()
    completed = state.completion_status == "completed"
    passed = state.success_status == "passed"
    if rule == "cmi5_moveon":
        move_on = info.move_on or "NotApplicable"
        if move_on == "NotApplicable":
            return True
        if move_on == "Completed":
            return completed
        if move_on == "Passed":
            return passed
        if move_on == "CompletedAndPassed":
            return completed and passed
        if move_on == "CompletedOrPassed":
            return completed or passed
        return False
    if not completed:
        return False
    needed = threshold(info, state, pass_mark)
    if needed is None:
        return True
    if state.score_scaled is not None:
        return state.score_scaled >= needed - 1e-9
    return passed


def course_complete(rules: CourseRules, states: dict[str, ProgressState]) -> bool:
    """True when every required activity is satisfied (a course with none is never complete)."""
    if not rules.required_keys:
        return False
    for key in rules.required_keys:
        info = rules.info(key)
        if info is None or not activity_satisfied(info, states.get(key), rules.rule, rules.pass_mark):
            return False
    return True


def course_score(rules: CourseRules, states: dict[str, ProgressState]) -> float | None:
    """Mean scaled score (0..1) of the required activities that have a score, or None."""
    scores = [states[k].score_scaled for k in rules.required_keys if k in states and states[k].score_scaled is not None]
    if not scores:
        return None
    return round(max(0.0, sum(scores) / len(scores)), 6)


# --------------------------------------------------------------------------- attempts


def find_attempt(user_pk: int, course_id: int, resource_link_pk: int | None) -> Attempt | None:
    q = db.select(Attempt).filter_by(user_pk=user_pk, course_id=course_id, resource_link_pk=resource_link_pk)
    return db.session.execute(q).scalar_one_or_none()


def start_attempt(*, user_pk: int, course: Course, registration_id: int, context_pk: int | None,
                  resource_link_pk: int | None) -> Attempt:
    """The learner's attempt at ``course`` from this resource link, created on first launch.

    When the course has a newer current version, the attempt moves to it: progress on activities
    whose ``activity_key`` is unchanged carries over.
    """
    version_id = course.current_version_id
    if version_id is None:
        raise ProgressError("no_version", f"course {course.id} has no current version", 404)
    attempt = find_attempt(user_pk, course.id, resource_link_pk)
    if attempt is None:
        attempt = Attempt(user_pk=user_pk, course_id=course.id, version_id=version_id, registration_id=registration_id,
                          context_pk=context_pk, resource_link_pk=resource_link_pk, registration=str(uuid.uuid4()))
        try:
            with db.session.begin_nested():
                db.session.add(attempt)
        except IntegrityError:  # another worker created it at the same moment
            attempt = find_attempt(user_pk, course.id, resource_link_pk)
        db.session.commit()
        return attempt
    if attempt.version_id != version_id or (context_pk and attempt.context_pk != context_pk):
        attempt.version_id = version_id
        attempt.context_pk = context_pk or attempt.context_pk
        db.session.commit()
    return attempt


_LOCK = text("UPDATE pl_attempt SET updated_at = :now WHERE id = :id RETURNING version_id")


def _lock_attempt(attempt_id: int) -> int:
    """Take the attempt's write lock as the transaction's first statement (see the module
    docstring); returns the attempt's course version."""
    db.session.rollback()  # start a fresh transaction: nothing read before may be stale
    version_id = db.session.execute(_LOCK, {"now": utcnow(), "id": attempt_id}).scalar()
    if version_id is None:
        db.session.rollback()
        raise ProgressError("unknown_attempt", f"attempt {attempt_id} does not exist", 404)
    return version_id


def _progress_row(attempt_id: int, activity_key: str, create: bool = True) -> ActivityProgress | None:
    row = db.session.execute(
        db.select(ActivityProgress).filter_by(attempt_id=attempt_id, activity_key=activity_key)
    ).scalar_one_or_none()
    if row is None and create:
        row = ActivityProgress(attempt_id=attempt_id, activity_key=activity_key, completion_status="not_attempted",
                               success_status="unknown", total_time_seconds=0.0, cmi={}, state={}, session_count=0,
                               client_session=0, client_seq=0, server_updated_at=utcnow())
        db.session.add(row)
    return row


def progress_map(attempt_id: int) -> dict[str, ActivityProgress]:
    rows = db.session.execute(db.select(ActivityProgress).filter_by(attempt_id=attempt_id)).scalars()
    return {r.activity_key: r for r in rows}


@dataclass
class Launched:
    """What a runtime needs when an activity opens: its session number and the stored state."""

    session: int
    progress: ActivityProgress
    info: ActivityInfo


def launch_activity(attempt: Attempt, activity_key: str) -> Launched:
    """Open an activity: a new runtime session number, the resume point, and for activities without
    a runtime (lessons, web content, links, assets) completion on view."""
    rules = course_rules(attempt.version_id)
    info = rules.info(activity_key)
    if info is None:
        raise ProgressError("unknown_activity", "this activity is not part of the course", 404)
    attempt_id = attempt.id
    _lock_attempt(attempt_id)
    row = _progress_row(attempt_id, activity_key)
    row.session_count = (row.session_count or 0) + 1
    # The newest session wins: commits still in flight from an older one are stale from now on.
    row.client_session, row.client_seq = row.session_count, 0
    row.first_launched_at = row.first_launched_at or utcnow()
    row.server_updated_at = utcnow()
    db.session.execute(db.update(Attempt).where(Attempt.id == attempt_id).values(last_activity_key=activity_key))
    if info.kind in VIEW_COMPLETES:
        _apply(attempt_id, rules, row, ProgressUpdate(completion_status="completed"))
    elif row.completion_status == "not_attempted":
        row.completion_status = "incomplete"
    session = row.session_count
    db.session.commit()
    return Launched(session=session, progress=row, info=info)


# --------------------------------------------------------------------------- writes


@dataclass
class ProgressUpdate:
    """A change to one activity's progress; fields left unset are not touched."""

    completion_status: str | None = None
    success_status: str | None = None
    score_scaled: Any = _UNSET
    score_raw: Any = _UNSET
    score_min: Any = _UNSET
    score_max: Any = _UNSET
    progress_measure: Any = _UNSET
    total_time_seconds: float | None = None
    add_time_seconds: float | None = None
    location: str | None = None
    suspend_data: str | None = None
    exit: str | None = None
    cmi: dict | None = None
    """Replaces the stored SCORM cmi data model."""
    state: dict | None = None
    """Merged into the stored state JSON at the top level (quiz, cmi5 state documents)."""


@dataclass
class RecordResult:
    applied: bool
    reason: str = "applied"  # applied | stale | duplicate
    events: list[str] = field(default_factory=list)
    completion_status: str | None = None
    success_status: str | None = None
    score_scaled: float | None = None
    course_completed: bool = False


_READ = text("SELECT id, completion_status, success_status, score_scaled, score_raw, score_min, score_max, "
             "session_count, client_session, client_seq FROM pl_activity_progress "
             "WHERE attempt_id = :a AND activity_key = :k")
_FAST_WRITE = text("UPDATE pl_activity_progress SET client_session = :session, client_seq = :seq, "
                   "server_updated_at = :now, location = COALESCE(:location, location), "
                   "suspend_data = COALESCE(:suspend_data, suspend_data), exit = COALESCE(:exit, exit), "
                   "total_time_seconds = COALESCE(:total_time, total_time_seconds), "
                   "progress_measure = CASE WHEN :set_measure THEN :measure ELSE progress_measure END, "
                   "cmi = COALESCE(:cmi, cmi) WHERE id = :id")


def _changes_status(current, update: ProgressUpdate) -> bool:
    """Would ``update`` change completion, success or score (and so maybe raise events)?"""
    if update.completion_status and update.completion_status != current.completion_status:
        return True
    if update.success_status and update.success_status != current.success_status:
        return True
    for name in ("score_scaled", "score_raw", "score_min", "score_max"):
        value = getattr(update, name)
        if value is not _UNSET and value != getattr(current, name):
            return True
    return bool(update.state or update.add_time_seconds)


def record(attempt_id: int, activity_key: str, update: ProgressUpdate, *, session: int | None = None,
           seq: int | None = None) -> RecordResult:
    """Apply ``update`` to one activity of an attempt, in one transaction (see the module docstring).

    The common runtime commit, which moves the bookmark but changes no status or score, takes a
    fast path: one read and one update of the progress row in plain SQL, no events to consider.
    """
    version_id = _lock_attempt(attempt_id)
    try:
        rules = course_rules(version_id)
        if rules.info(activity_key) is None:
            raise ProgressError("unknown_activity", "this activity is not part of the attempt's course", 404)
        current = db.session.execute(_READ, {"a": attempt_id, "k": activity_key}).first()
        if session is not None:
            seq = int(seq or 0)
            if current is None or session < 1 or session > (current.session_count or 0):
                raise ProgressError("unknown_session", "this runtime session was never opened; reload the activity", 409)
            stored = (current.client_session or 0, current.client_seq or 0)
            if (session, seq) <= stored:
                db.session.rollback()
                return RecordResult(applied=False, reason="duplicate" if (session, seq) == stored else "stale")
            if not _changes_status(current, update):
                measure = update.progress_measure
                db.session.execute(_FAST_WRITE, {
                    "id": current.id, "session": session, "seq": seq, "now": utcnow(), "location": update.location,
                    "suspend_data": update.suspend_data, "exit": update.exit, "total_time": update.total_time_seconds,
                    "set_measure": measure is not _UNSET, "measure": None if measure is _UNSET else measure,
                    "cmi": json.dumps(update.cmi) if update.cmi is not None else None,
                })
                db.session.commit()
                return RecordResult(applied=True, completion_status=current.completion_status,
                                    success_status=current.success_status, score_scaled=current.score_scaled)
        row = _progress_row(attempt_id, activity_key)
        if session is not None:
            row.client_session, row.client_seq = session, seq
        result = _apply(attempt_id, rules, row, update)
        db.session.commit()
        return result
    except BaseException:
        db.session.rollback()
        raise


def _event(kind: str, attempt_id: int, rules: CourseRules, activity_key: str | None, payload: dict) -> None:
    attempt = db.session.get(Attempt, attempt_id)
    db.session.add(ProgressEvent(kind=kind, attempt_id=attempt_id, user_pk=attempt.user_pk, course_id=rules.course_id,
                                 version_id=rules.version_id, activity_key=activity_key, payload=payload,
                                 created_at=utcnow(), consumed=False))


def _apply(attempt_id: int, rules: CourseRules, row: ActivityProgress, update: ProgressUpdate) -> RecordResult:
    before = (row.completion_status, row.success_status, row.score_scaled, row.score_raw, row.score_min, row.score_max)
    if update.completion_status:
        row.completion_status = update.completion_status
    if update.success_status:
        row.success_status = update.success_status
    for name in ("score_scaled", "score_raw", "score_min", "score_max", "progress_measure"):
        value = getattr(update, name)
        if value is not _UNSET:
            setattr(row, name, value)
    if update.total_time_seconds is not None:
        row.total_time_seconds = max(0.0, float(update.total_time_seconds))
    if update.add_time_seconds:
        row.total_time_seconds = (row.total_time_seconds or 0.0) + max(0.0, float(update.add_time_seconds))
    if update.location is not None:
        row.location = update.location
    if update.suspend_data is not None:
        row.suspend_data = update.suspend_data
    if update.exit is not None:
        row.exit = update.exit
    if update.cmi is not None:
        row.cmi = update.cmi
    if update.state:
        row.state = {**(row.state or {}), **update.state}
    row.server_updated_at = utcnow()
    after = (row.completion_status, row.success_status, row.score_scaled, row.score_raw, row.score_min, row.score_max)
    result = RecordResult(applied=True, completion_status=row.completion_status, success_status=row.success_status,
                          score_scaled=row.score_scaled)
    if after == before:
        return result
    key = row.activity_key
    info = rules.info(key)
    if after[2:] != before[2:] and any(v is not None for v in after[2:]):
        _event("score_changed", attempt_id, rules, key, {
            "activity_key": key, "activity": info.identifier, "title": info.title,
            "score_scaled": row.score_scaled, "score_raw": row.score_raw, "score_min": row.score_min,
            "score_max": row.score_max, "success_status": row.success_status,
            "completion_status": row.completion_status, "previous_score_scaled": before[2],
        })
        result.events.append("score_changed")
    if row.completion_status == "completed" and row.completed_at is None:
        row.completed_at = utcnow()
        _event("activity_completed", attempt_id, rules, key, {
            "activity_key": key, "activity": info.identifier, "title": info.title,
            "success_status": row.success_status, "score_scaled": row.score_scaled,
        })
        result.events.append("activity_completed")
    db.session.flush()
    states = {k: ProgressState.of(r) for k, r in progress_map(attempt_id).items()}
    states[key] = ProgressState.of(row)
    attempt = db.session.get(Attempt, attempt_id)
    attempt.score_scaled = course_score(rules, states)
    if attempt.completed_at is None and course_complete(rules, states):
        attempt.completed_at = utcnow()
        attempt.status = "completed"
        _event("course_completed", attempt_id, rules, None, {
            "course_id": rules.course_id, "version_id": rules.version_id, "score_scaled": attempt.score_scaled,
            "rule": rules.rule, "activities": list(rules.required_keys),
        })
        result.events.append("course_completed")
        result.course_completed = True
    return result


# --------------------------------------------------------------------------- reading


@dataclass
class Summary:
    """Progress of an attempt for pages: counts, percentage, completion."""

    total: int
    done: int
    percent: int
    completed: bool
    score_scaled: float | None
    satisfied: dict[str, bool]
    states: dict[str, ProgressState]


def summary(attempt: Attempt) -> Summary:
    rules = course_rules(attempt.version_id)
    rows = progress_map(attempt.id)
    states = {k: ProgressState.of(r) for k, r in rows.items()}
    countable = [a for a in rules.activities if a.kind != "unsupported"]
    def is_done(a: ActivityInfo) -> bool:
        state = states.get(a.key)
        if rules.rule == "cmi5_moveon" and (a.move_on or "NotApplicable") == "NotApplicable":
            return state is not None and (state.completion_status == "completed" or state.success_status == "passed")
        return activity_satisfied(a, state, rules.rule, rules.pass_mark)

    satisfied = {a.key: is_done(a) for a in countable}
    tracked = list(rules.required_keys) or [a.key for a in countable]
    done = sum(1 for k in tracked if satisfied.get(k))
    total = len(tracked)
    percent = round(100 * done / total) if total else 0
    return Summary(total=total, done=done, percent=percent, completed=attempt.completed_at is not None,
                   score_scaled=attempt.score_scaled, satisfied=satisfied, states=states)


def events(attempt_id: int | None = None, kind: str | None = None, consumed: bool | None = None) -> list[ProgressEvent]:
    q = db.select(ProgressEvent).order_by(ProgressEvent.id)
    if attempt_id is not None:
        q = q.filter_by(attempt_id=attempt_id)
    if kind is not None:
        q = q.filter_by(kind=kind)
    if consumed is not None:
        q = q.filter_by(consumed=consumed)
    return list(db.session.execute(q).scalars())
