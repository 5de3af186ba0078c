"""Learner progress in the database (written only by :mod:`lms_bridge.player.progress`).

* :class:`Attempt`: one learner taking one course from one placement (resource link) of it:
  the user, the course and the version being played, the launch it came from (registration
  for cmi5 (cmi5 §8.1 ``registration``), context, resource link), when it started and was last
  updated, and its status (``in_progress`` or ``completed``, with ``completed_at`` set exactly
  once, when the package's completion rule first holds).
* :class:`ActivityProgress`: the learner's state in one activity, keyed by the activity's stable
  ``activity_key`` (so progress on activities unchanged by a re-import carries over to the new
  course version): completion and success status (SCORM 2004 RTE 4.2.4 / 4.2.22 vocabularies;
  SCORM 1.2 ``lesson_status`` is mapped onto them), the score (``scaled`` in -1..1, ``raw``,
  ``min``, ``max``), total time, ``location`` and ``suspend_data`` for resume, the last committed
  cmi data model as JSON (``cmi``), quiz and cmi5 state (``state``), and the ordering key of the last accepted write: the runtime session
  (``client_session``, handed out by the server at each launch of the activity) and the commit
  sequence within it (``client_seq``). A write whose ``(session, seq)`` is not newer than the stored
  one is ignored, so a late, older commit never overwrites newer data, and a retried commit does
  nothing twice. Opening a new session moves the stored key to ``(new session, 0)``: commits still
  in flight from an older page are stale from then on (the newest session wins).
* :class:`ProgressEvent`: a domain event written in the same transaction as the change it
  reports (``score_changed``, ``activity_completed``, ``course_completed``), for grade passback
  and credentials to consume (``consumed``).
"""
from __future__ import annotations

from datetime import UTC, datetime

from ..extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


COMPLETION_STATUSES = ("unknown", "not_attempted", "incomplete", "completed")
SUCCESS_STATUSES = ("unknown", "passed", "failed")
# progress_changed: an activity with a runtime opened for the first time (grade passback: activityProgress Started).
EVENT_KINDS = ("score_changed", "activity_completed", "course_completed", "progress_changed")


class Attempt(db.Model):
    __tablename__ = "pl_attempt"
    __table_args__ = (
        db.UniqueConstraint("user_pk", "course_id", "resource_link_pk"),
        {"sqlite_autoincrement": True},
    )

    id = db.Column(db.Integer, primary_key=True)
    user_pk = db.Column(db.Integer, db.ForeignKey("lti_user.id", ondelete="CASCADE"), nullable=False, index=True)
    course_id = db.Column(db.Integer, db.ForeignKey("pkg_course.id", ondelete="CASCADE"), nullable=False, index=True)
    # The version being played; moves to the course's current version at the next launch.
    version_id = db.Column(db.Integer, db.ForeignKey("pkg_course_version.id", ondelete="CASCADE"), nullable=False,
                           index=True)
    registration_id = db.Column(db.Integer, db.ForeignKey("lti_registration.id", ondelete="CASCADE"), nullable=False)
    context_pk = db.Column(db.Integer, db.ForeignKey("lti_context.id", ondelete="SET NULL"), nullable=True)
    resource_link_pk = db.Column(db.Integer, db.ForeignKey("lti_resource_link.id", ondelete="CASCADE"), nullable=True)
    # cmi5 registration (a UUID, cmi5 §8.1.4), stable for the attempt.
    registration = db.Column(db.String(36), nullable=False, unique=True)
    status = db.Column(db.String(20), nullable=False, default="in_progress")
    # The course score (mean of the scored required activities, 0..1) when there is one.
    score_scaled = db.Column(db.Float, nullable=True)
    last_activity_key = db.Column(db.String(32), nullable=True)
    started_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    completed_at = db.Column(db.DateTime, nullable=True)

    activities = db.relationship("ActivityProgress", back_populates="attempt", cascade="all, delete-orphan",
                                 passive_deletes=True)

    def __repr__(self) -> str:
        return f"<Attempt {self.id} user={self.user_pk} course={self.course_id} {self.status}>"


class ActivityProgress(db.Model):
    __tablename__ = "pl_activity_progress"
    __table_args__ = (db.UniqueConstraint("attempt_id", "activity_key"),)

    id = db.Column(db.Integer, primary_key=True)
    attempt_id = db.Column(db.Integer, db.ForeignKey("pl_attempt.id", ondelete="CASCADE"), nullable=False)
    activity_key = db.Column(db.String(32), nullable=False)
    completion_status = db.Column(db.String(20), nullable=False, default="not_attempted")
    success_status = db.Column(db.String(20), nullable=False, default="unknown")
    score_scaled = db.Column(db.Float, nullable=True)
    score_raw = db.Column(db.Float, nullable=True)
    score_min = db.Column(db.Float, nullable=True)
    score_max = db.Column(db.Float, nullable=True)
    progress_measure = db.Column(db.Float, nullable=True)
    total_time_seconds = db.Column(db.Float, nullable=False, default=0.0)
    location = db.Column(db.Text, nullable=True)
    suspend_data = db.Column(db.Text, nullable=True)
    # cmi.exit of the last session ("suspend" makes the next cmi.entry "resume").
    exit = db.Column(db.String(20), nullable=True)
    # The last committed SCORM cmi data model, replaced by each commit.
    cmi = db.Column(db.JSON, nullable=False, default=dict)
    # Other runtime state, merged by key: "quiz" (responses, results), "xapi_state" (cmi5 state documents).
    state = db.Column(db.JSON, nullable=False, default=dict)
    # Ordering of writes: runtime sessions handed out by the server, commit sequence within a session.
    session_count = db.Column(db.Integer, nullable=False, default=0)
    client_session = db.Column(db.Integer, nullable=False, default=0)
    client_seq = db.Column(db.BigInteger, nullable=False, default=0)
    first_launched_at = db.Column(db.DateTime, nullable=True)
    completed_at = db.Column(db.DateTime, nullable=True)
    server_updated_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    attempt = db.relationship("Attempt", back_populates="activities")

    @property
    def completed(self) -> bool:
        return self.completion_status == "completed"

    def __repr__(self) -> str:
        return (f"<ActivityProgress {self.attempt_id}/{self.activity_key} {self.completion_status}/"
                f"{self.success_status} {self.score_scaled}>")


class ProgressEvent(db.Model):
    __tablename__ = "pl_progress_event"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id = db.Column(db.Integer, primary_key=True)
    kind = db.Column(db.String(30), nullable=False)
    attempt_id = db.Column(db.Integer, db.ForeignKey("pl_attempt.id", ondelete="CASCADE"), nullable=False, index=True)
    user_pk = db.Column(db.Integer, nullable=False)
    course_id = db.Column(db.Integer, nullable=False)
    version_id = db.Column(db.Integer, nullable=False)
    activity_key = db.Column(db.String(32), nullable=True)
    payload = db.Column(db.JSON, nullable=False, default=dict)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    consumed = db.Column(db.Boolean, nullable=False, default=False, index=True)
    # Relay failures (a subscriber raised): retried, then left aside with the error (player/events.py).
    relay_attempts = db.Column(db.Integer, nullable=False, default=0, server_default="0")
    relay_error = db.Column(db.Text, nullable=True)

    def __repr__(self) -> str:
        return f"<ProgressEvent {self.id} {self.kind} attempt={self.attempt_id}>"
