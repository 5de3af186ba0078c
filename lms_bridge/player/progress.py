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

The runtime commit that only moves the bookmark (location, suspend data, time, the cmi data
model), by far the most frequent write, does all three in **one guarded statement** (see
``_fast_commit``): the UPDATE applies only when the ordering holds and the commit changes no
status and no score, so it can raise no event. Anything else takes the full path above. Writes go
through a pooled DB-API connection in plain SQL rather than the ORM (a handful of statements per
call; the ORM's unit of work cost more than all of them): what lets the commit API take several
hundred commits a second on two workers (``benchmarks/progress_bench.py``).

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
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from ..extensions import db
from . import events as events_module
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


# --------------------------------------------------------------------------- reading rows


def _progress_row(attempt_id: int, activity_key: str) -> ActivityProgress | None:
    return db.session.execute(
        db.select(ActivityProgress).filter_by(attempt_id=attempt_id, activity_key=activity_key)
    ).scalar_one_or_none()


def progress_map(attempt_id: int) -> dict[str, ActivityProgress]:
    rows = db.session.execute(db.select(ActivityProgress).filter_by(attempt_id=attempt_id)).scalars()
    return {r.activity_key: r for r in rows}


_STATES = db.select(ActivityProgress.__table__.c.activity_key, ActivityProgress.__table__.c.completion_status,
                    ActivityProgress.__table__.c.success_status, ActivityProgress.__table__.c.score_scaled
                    ).where(ActivityProgress.__table__.c.attempt_id == db.bindparam("attempt_id"))


def progress_states(attempt_id: int) -> dict[str, ProgressState]:
    """What the completion rules look at, for every activity of an attempt (four columns, no ORM rows)."""
    return {key: ProgressState(completion, success, scaled)
            for key, completion, success, scaled in db.session.execute(_STATES, {"attempt_id": attempt_id})}


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


@dataclass
class Launched:
    """What a runtime needs when an activity opens: its session number and the stored state."""

    session: int
    progress: ActivityProgress
    info: ActivityInfo


# Writes run on a pooled DB-API connection, not through the ORM: a commit is a handful of
# statements, and the ORM's unit of work cost more than all of them together (profiled: 3 ms of
# the 5 ms an event-raising commit took). The statements are plain SQL with ``:name`` parameters
# (rewritten to ``%(name)s`` for psycopg); datetimes and JSON are passed the way SQLAlchemy stores
# them (SQLite: ``YYYY-MM-DD HH:MM:SS.ffffff`` text; JSON as text on both).

_PARAM = re.compile(r"(?<!:):([a-z_]+)")
_pg_statements: dict[str, str] = {}
_JSON_COLUMNS = frozenset(("cmi", "state", "payload"))


def _release_session() -> None:
    """End the ORM session's transaction, if any, before a write (what this module always did): objects
    read through it are expired (read again, fresh, after the write) and it holds no lock the write
    would wait for."""
    if db.session.registry.has():
        db.session.rollback()


class _Tx:
    """One transaction on a pooled DB-API connection (see :func:`_transaction`)."""

    def __init__(self, engine, conn):
        self.pg = engine.dialect.name == "postgresql"
        self.conn = conn
        self.cursor = conn.cursor()
        self.rollback_only = False
        self.wrote_events = False

    def sql(self, statement: str) -> str:
        if not self.pg:
            return statement
        converted = _pg_statements.get(statement)
        if converted is None:
            converted = _pg_statements[statement] = _PARAM.sub(r"%(\1)s", statement)
        return converted

    def value(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        if name in _JSON_COLUMNS:
            return json.dumps(value)
        if isinstance(value, datetime) and not self.pg:
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy stores it in SQLite
        return value

    def run(self, statement: str, params: dict) -> list:
        self.cursor.execute(self.sql(statement), params)
        return self.cursor.fetchall() if self.cursor.description else []


@contextmanager
def _transaction() -> Iterator[_Tx]:
    """A transaction on a connection of the pool: committed at the end of the block (rolled back
    when the block raises or sets ``rollback_only``)."""
    _release_session()
    engine = db.engine
    conn = engine.raw_connection()
    try:
        tx = _Tx(engine, conn)
        try:
            yield tx
        finally:
            tx.cursor.close()
        if tx.rollback_only:
            conn.rollback()
        else:
            conn.commit()
            if tx.wrote_events:
                events_module.notify_committed()  # wake the relay (player/events.py)
    except BaseException as exc:
        _abandon(engine, conn, exc)
        raise
    finally:
        conn.close()


def _abandon(engine, conn, exc: BaseException) -> None:
    """Roll back after an error; a connection the database dropped is invalidated, not pooled."""
    dbapi_error = engine.dialect.loaded_dbapi.Error
    try:
        conn.rollback()
    except dbapi_error:
        pass
    if isinstance(exc, dbapi_error) and engine.dialect.is_disconnect(exc, conn.dbapi_connection, None):
        conn.invalidate(exc)


@dataclass(frozen=True)
class _Locked:
    """What the lock statement read of the attempt (what events and completion need of it)."""

    attempt_id: int
    version_id: int
    user_pk: int
    score_scaled: float | None
    completed: bool


_LOCK = ("UPDATE pl_attempt SET updated_at = :now{extra} WHERE id = :a "
         "RETURNING version_id, user_pk, score_scaled, completed_at")


def _lock_attempt(tx: _Tx, attempt_id: int, last_activity_key: str | None = None) -> _Locked:
    """Take the attempt's write lock as the transaction's first statement (see the module docstring)."""
    params = {"now": tx.value("now", utcnow()), "a": attempt_id}
    if last_activity_key is not None:
        params["k"] = last_activity_key
    rows = tx.run(_LOCK.format(extra=", last_activity_key = :k" if last_activity_key is not None else ""), params)
    if not rows:
        raise ProgressError("unknown_attempt", f"attempt {attempt_id} does not exist", 404)
    version_id, user_pk, score_scaled, completed_at = rows[0]
    return _Locked(attempt_id, version_id, user_pk, score_scaled, completed_at is not None)


_ROW_COLUMNS = ("id", "activity_key", "completion_status", "success_status", "score_scaled", "score_raw", "score_min",
                "score_max", "progress_measure", "total_time_seconds", "session_count", "client_session",
                "client_seq", "first_launched_at", "completed_at")
_READ_ROWS = f"SELECT {', '.join(_ROW_COLUMNS)} FROM pl_activity_progress WHERE attempt_id = :a"


@dataclass
class _Row:
    """An activity's progress as the rules and the ordering see it, with the columns a write changes."""

    id: int | None
    activity_key: str
    completion_status: str = "not_attempted"
    success_status: str = "unknown"
    score_scaled: float | None = None
    score_raw: float | None = None
    score_min: float | None = None
    score_max: float | None = None
    progress_measure: float | None = None
    total_time_seconds: float = 0.0
    session_count: int = 0
    client_session: int = 0
    client_seq: int = 0
    first_launched_at: Any = None
    completed_at: Any = None
    changes: dict[str, Any] = field(default_factory=dict)

    def set(self, name: str, value: Any) -> None:
        if hasattr(self, name):
            setattr(self, name, value)
        self.changes[name] = value

    def state_of(self) -> ProgressState:
        return ProgressState(self.completion_status, self.success_status, self.score_scaled)


def _read_rows(tx: _Tx, attempt_id: int) -> dict[str, _Row]:
    """Every activity's progress row of the attempt (the rules need them all; there are a few dozen)."""
    return {row[1]: _Row(*row) for row in tx.run(_READ_ROWS, {"a": attempt_id})}


def _write_row(tx: _Tx, attempt_id: int, row: _Row) -> None:
    row.set("server_updated_at", utcnow())
    if row.id is None:
        values = {"attempt_id": attempt_id, "activity_key": row.activity_key, "completion_status": row.completion_status,
                  "success_status": row.success_status, "total_time_seconds": row.total_time_seconds,
                  "session_count": row.session_count, "client_session": row.client_session,
                  "client_seq": row.client_seq, "cmi": {}, "state": {}, **row.changes}
        names = list(values)
        statement = (f"INSERT INTO pl_activity_progress ({', '.join(names)}) "
                     f"VALUES ({', '.join(':' + n for n in names)})")
    else:
        values = {**row.changes, "id": row.id}
        names = list(row.changes)
        statement = f"UPDATE pl_activity_progress SET {', '.join(f'{n} = :{n}' for n in names)} WHERE id = :id"
    tx.run(statement, {name: tx.value(name, value) for name, value in values.items()})


def launch_activity(attempt: Attempt, activity_key: str) -> Launched:
    """Open an activity: a new runtime session number, the resume point, and for activities without
    a runtime (lessons, web content, links, assets) completion on view."""
    rules = course_rules(attempt.version_id)
    info = rules.info(activity_key)
    if info is None:
        raise ProgressError("unknown_activity", "this activity is not part of the course", 404)
    attempt_id = attempt.id
    with _transaction() as tx:
        locked = _lock_attempt(tx, attempt_id, last_activity_key=activity_key)
        rows = _read_rows(tx, attempt_id)
        row = rows.setdefault(activity_key, _Row(None, activity_key))
        row.set("session_count", row.session_count + 1)
        # The newest session wins: commits still in flight from an older one are stale from now on.
        row.set("client_session", row.session_count)
        row.set("client_seq", 0)
        if row.first_launched_at is None:
            row.set("first_launched_at", utcnow())
        if info.kind in VIEW_COMPLETES:
            _apply(tx, locked, rules, rows, row, ProgressUpdate(completion_status="completed"))
        else:
            if row.completion_status == "not_attempted":
                row.set("completion_status", "incomplete")
                # First opened (the attempt's start, for its first activity): grade passback reports
                # activityProgress Started (grading/passback.py).
                _event(tx, "progress_changed", locked, rules, activity_key,
                       {"activity_key": activity_key, "completion_status": "incomplete"})
            _write_row(tx, attempt_id, row)
        session = row.session_count
    return Launched(session=session, progress=_progress_row(attempt_id, activity_key), info=info)


# The fast path: a runtime commit that changes no status and no score (the common autocommit that
# moves the bookmark) is ONE guarded UPDATE ... RETURNING, in autocommit mode (no BEGIN/COMMIT):
#
# * its WHERE clause is the whole decision of the full path: the progress row exists, the session
#   was handed out (``session_count >= :session``), ``(session, seq)`` is newer than the stored one,
#   the activity is part of the attempt's course version, and the completion, success and score
#   the commit carries equal the stored ones (so no event and no completion rule is concerned);
# * PostgreSQL: the attempt is touched (``updated_at``: the row lock the full path takes first) by a
#   data-modifying CTE that the WHERE clause reads (an InitPlan, run before the progress row is
#   scanned), so locks are taken in the full path's order, attempt then progress row, and the
#   statement is its own transaction: one round trip. (The touch also happens when the UPDATE then
#   applies nothing; the full path that follows decides, and only ``updated_at`` moved.)
# * SQLite (one writer at a time, and no CTE may write): the attempt is touched by a second
#   statement once the first applied. Each statement is its own transaction, so the database's
#   write lock is only ever held inside SQLite, never across Python code that the GIL may pause
#   while the other workers' writers sleep in SQLite's busy handler.
#
# When the UPDATE changes no row (a stale or duplicate commit, an unknown session or activity, or
# a commit that changes status or score), nothing was written and :func:`record` takes the full
# path, which says why or applies the change with its events.

_FAST_SET = ("location", "suspend_data", "exit", "total_time_seconds", "progress_measure", "cmi")
_FAST_GUARDS = ("completion_status", "success_status", "score_scaled", "score_raw", "score_min", "score_max")
_FAST_RETURNING = "RETURNING completion_status, success_status, score_scaled"
_IN_VERSION = ("EXISTS (SELECT 1 FROM {attempt} JOIN pkg_activity v ON v.version_id = {alias}.version_id "
               "WHERE {cond}v.activity_key = :k)")
_TOUCH = "UPDATE pl_attempt SET updated_at = :now WHERE id = :a"
_fast_statements: dict[tuple, str] = {}


def _fast_statement(pg: bool, sets: tuple[str, ...], guards: tuple[tuple[str, bool], ...]) -> str:
    key = (pg, sets, guards)
    cached = _fast_statements.get(key)
    if cached is not None:
        return cached
    assignments = ["client_session = :session", "client_seq = :seq", "server_updated_at = :now",
                   *(f"{name} = :set_{name}" for name in sets)]
    where = ["attempt_id = :a", "activity_key = :k", "session_count >= :session",
             "(client_session < :session OR (client_session = :session AND client_seq < :seq))"]
    where += [f"{name} IS NULL" if is_null else f"{name} = :g_{name}" for name, is_null in guards]
    update = f"UPDATE pl_activity_progress SET {', '.join(assignments)} WHERE {{where}} {_FAST_RETURNING}"
    if pg:
        where.append(_IN_VERSION.format(attempt="touched", alias="touched", cond=""))
        statement = ("WITH touched AS (UPDATE pl_attempt SET updated_at = :now WHERE id = :a RETURNING version_id) "
                     + update.format(where=" AND ".join(where)))
    else:
        where.append(_IN_VERSION.format(attempt="pl_attempt t", alias="t", cond="t.id = :a AND "))
        statement = update.format(where=" AND ".join(where))
    _fast_statements[key] = statement
    return statement


def _fast_commit(attempt_id: int, activity_key: str, update: ProgressUpdate, session: int,
                 seq: int) -> RecordResult | None:
    """Apply a commit that changes no status or score in one statement; None when it did not apply."""
    if session < 1 or update.state or update.add_time_seconds:
        return None
    params: dict[str, Any] = {"a": attempt_id, "k": activity_key, "session": session, "seq": seq}
    sets = []
    for name in _FAST_SET:
        value = getattr(update, name)
        if value is _UNSET or (value is None and name != "progress_measure"):  # left as stored
            continue
        if name == "total_time_seconds":
            value = max(0.0, float(value))
        sets.append(name)
        params["set_" + name] = value
    guards = []
    for name in _FAST_GUARDS:
        value = getattr(update, name)
        if value is _UNSET or (name in ("completion_status", "success_status") and not value):
            continue
        guards.append((name, value is None))
        if value is not None:
            params["g_" + name] = value
    _release_session()
    engine = db.engine
    conn = engine.raw_connection()
    try:
        tx = _Tx(engine, conn)
        statement = tx.sql(_fast_statement(tx.pg, tuple(sets), tuple(guards)))
        params = {name: tx.value(name[4:], value) if name.startswith("set_") else value for name, value in params.items()}
        params["now"] = tx.value("now", utcnow())
        raw = conn.dbapi_connection
        if tx.pg:
            raw.autocommit = True
        else:
            level, raw.isolation_level = raw.isolation_level, None
        try:
            tx.cursor.execute(statement, params)
            rows = tx.cursor.fetchall()
            if rows and not tx.pg:
                tx.cursor.execute(_TOUCH, {"now": params["now"], "a": attempt_id})
        finally:
            tx.cursor.close()
            if tx.pg:
                raw.autocommit = False
            else:
                raw.isolation_level = level
    except BaseException as exc:
        _abandon(engine, conn, exc)
        raise
    finally:
        conn.close()
    if not rows:
        return None
    completion_status, success_status, score_scaled = rows[0]
    return RecordResult(applied=True, completion_status=completion_status, success_status=success_status,
                        score_scaled=score_scaled)


def record(attempt_id: int, activity_key: str, update: ProgressUpdate, *, session: int | None = None,
           seq: int | None = None) -> RecordResult:
    """Apply ``update`` to one activity of an attempt, in one transaction (see the module docstring).

    The common runtime commit, which moves the bookmark but changes no status or score, is one
    guarded UPDATE (:func:`_fast_commit`); everything else, and every commit the fast path does
    not apply, takes the full path: lock the attempt, read its rows, order, apply, raise events.
    """
    if session is not None:
        seq = int(seq or 0)
        fast = _fast_commit(attempt_id, activity_key, update, session, seq)
        if fast is not None:
            return fast
    with _transaction() as tx:
        locked = _lock_attempt(tx, attempt_id)
        rules = course_rules(locked.version_id)
        if rules.info(activity_key) is None:
            raise ProgressError("unknown_activity", "this activity is not part of the attempt's course", 404)
        rows = _read_rows(tx, attempt_id)
        row = rows.get(activity_key)
        if session is not None:
            if row is None or session < 1 or session > (row.session_count or 0):
                raise ProgressError("unknown_session", "this runtime session was never opened; reload the activity", 409)
            stored = (row.client_session or 0, row.client_seq or 0)
            if (session, seq) <= stored:
                tx.rollback_only = True
                return RecordResult(applied=False, reason="duplicate" if (session, seq) == stored else "stale")
            row.set("client_session", session)
            row.set("client_seq", seq)
        elif row is None:
            row = rows[activity_key] = _Row(None, activity_key)
        return _apply(tx, locked, rules, rows, row, update)


_INSERT_EVENT = ("INSERT INTO pl_progress_event (kind, attempt_id, user_pk, course_id, version_id, activity_key, "
                 "payload, created_at, consumed) VALUES (:kind, :attempt_id, :user_pk, :course_id, :version_id, "
                 ":activity_key, :payload, :created_at, :consumed)")
_READ_STATE = "SELECT state FROM pl_activity_progress WHERE id = :id"


def _event(tx: _Tx, kind: str, locked: _Locked, rules: CourseRules, activity_key: str | None, payload: dict) -> None:
    tx.wrote_events = True
    tx.run(_INSERT_EVENT, {"kind": kind, "attempt_id": locked.attempt_id, "user_pk": locked.user_pk,
                           "course_id": rules.course_id, "version_id": rules.version_id,
                           "activity_key": activity_key, "payload": tx.value("payload", payload),
                           "created_at": tx.value("created_at", utcnow()), "consumed": False})


def _apply(tx: _Tx, locked: _Locked, rules: CourseRules, rows: dict[str, _Row], row: _Row,
           update: ProgressUpdate) -> RecordResult:
    """Apply ``update`` to ``row`` and write it, with the events it raises and the attempt's score
    and completion (``rows``: every progress row of the attempt, ``row`` among them)."""
    before = (row.completion_status, row.success_status, row.score_scaled, row.score_raw, row.score_min, row.score_max)
    if update.completion_status:
        row.set("completion_status", update.completion_status)
    if update.success_status:
        row.set("success_status", update.success_status)
    for name in ("score_scaled", "score_raw", "score_min", "score_max", "progress_measure"):
        value = getattr(update, name)
        if value is not _UNSET:
            row.set(name, value)
    if update.total_time_seconds is not None:
        row.set("total_time_seconds", max(0.0, float(update.total_time_seconds)))
    if update.add_time_seconds:
        row.set("total_time_seconds", (row.total_time_seconds or 0.0) + max(0.0, float(update.add_time_seconds)))
    for name in ("location", "suspend_data", "exit", "cmi"):
        value = getattr(update, name)
        if value is not None:
            row.set(name, value)
    if update.state:
        stored = tx.run(_READ_STATE, {"id": row.id})[0][0] if row.id is not None else None
        stored = json.loads(stored) if isinstance(stored, (str, bytes)) else stored
        row.set("state", {**(stored or {}), **update.state})
    after = (row.completion_status, row.success_status, row.score_scaled, row.score_raw, row.score_min, row.score_max)
    result = RecordResult(applied=True, completion_status=row.completion_status, success_status=row.success_status,
                          score_scaled=row.score_scaled)
    if after == before:
        _write_row(tx, locked.attempt_id, row)
        return result
    key = row.activity_key
    info = rules.info(key)
    events: list[tuple[str, str | None, dict]] = []
    if after[2:] != before[2:] and any(v is not None for v in after[2:]):
        events.append(("score_changed", key, {
            "activity_key": key, "activity": info.identifier, "title": info.title,
            "score_scaled": row.score_scaled, "score_raw": row.score_raw, "score_min": row.score_min,
            "score_max": row.score_max, "success_status": row.success_status,
            "completion_status": row.completion_status, "previous_score_scaled": before[2],
        }))
    if row.completion_status == "completed" and row.completed_at is None:
        row.set("completed_at", utcnow())
        events.append(("activity_completed", key, {
            "activity_key": key, "activity": info.identifier, "title": info.title,
            "success_status": row.success_status, "score_scaled": row.score_scaled,
        }))
    _write_row(tx, locked.attempt_id, row)
    states = {k: r.state_of() for k, r in rows.items()}
    score = course_score(rules, states)
    changes: dict[str, Any] = {}
    if score != locked.score_scaled:
        changes["score_scaled"] = score
    if not locked.completed and course_complete(rules, states):
        changes.update(completed_at=tx.value("completed_at", utcnow()), status="completed")
        events.append(("course_completed", None, {
            "course_id": rules.course_id, "version_id": rules.version_id, "score_scaled": score,
            "rule": rules.rule, "activities": list(rules.required_keys),
        }))
        result.course_completed = True
    if changes:
        tx.run(f"UPDATE pl_attempt SET {', '.join(f'{n} = :{n}' for n in changes)} WHERE id = :a",
               {**changes, "a": locked.attempt_id})
    for kind, activity_key, payload in events:
        _event(tx, kind, locked, rules, activity_key, payload)
        result.events.append(kind)
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
    states = progress_states(attempt.id)
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
