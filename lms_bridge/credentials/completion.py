"""The completion record: written once per (learner, course version) when a course is completed.

The progress service raises ``course_completed`` (:mod:`lms_bridge.player.progress`) in the
transaction that completes an attempt; the event relay (:mod:`lms_bridge.player.events`) hands it
to :func:`on_course_completed` inside one transaction that also marks the event consumed. There
the :class:`~.models.Completion` row is written together with one outbox message per configured
issuer connector (:mod:`.connectors`): all of it commits, or nothing does and the event is relayed
again. Nothing is delivered from here; the outbox workers do that.

Exactly once, whatever fires how often: the table is ``UNIQUE (user_pk, version_id)`` and the row
is written with ``INSERT ... ON CONFLICT DO NOTHING``: when another transaction already holds (or
commits) the same pair, nothing is inserted (PostgreSQL makes the second inserter wait for the
first to commit; SQLite has one writer at a time) and nothing else is written: a learner completing the same course version
from two placements (two attempts, two events), a concurrent relay of the same event, or a replayed
event never yields a second record, a second outbox message or a second credential.

The record is a snapshot of what the Council Recommendation on micro-credentials (2022/C 243/02,
Annex I) asks a micro-credential to state: learner, title, issuer, date, learning outcomes,
workload (ECTS), EQF level, type of assessment, form of participation, supervision and identity
verification, plus ESCO skills and the score against the pass mark.
"""
from __future__ import annotations

import logging
import secrets
import uuid
from datetime import datetime

from ..extensions import db
from ..lti.models import Registration, User
from ..outbox import enqueue
from ..packages.models import CourseVersion
from ..player.events import subscribe
from ..player.models import Attempt, ProgressEvent
from . import connectors
from .keys import identity_hash, normalize_email
from .models import Completion, CourseIssuing, IssuerProfile, insert_unless_exists, utcnow

log = logging.getLogger("lms_bridge.credentials")

DEFAULT_SUPERVISION = "Unsupervised (online, self-paced)"
DEFAULT_IDENTITY_VERIFICATION = ("Learner identified by their LMS account through an LTI 1.3 launch; "
                                 "no further identity verification")


@subscribe("course_completed")
def on_course_completed(event: ProgressEvent) -> None:
    """Subscriber of ``course_completed``: record the completion (runs in the relay's transaction)."""
    record_completion(event.attempt_id, event.version_id, score_scaled=(event.payload or {}).get("score_scaled"),
                      completed_at=event.created_at)


def find(user_pk: int, version_id: int) -> Completion | None:
    return db.session.execute(db.select(Completion).filter_by(user_pk=user_pk, version_id=version_id)
                              ).scalar_one_or_none()


def record_completion(attempt_id: int, version_id: int, *, score_scaled: float | None = None,
                      completed_at: datetime | None = None) -> Completion | None:
    """Write the completion of ``attempt_id`` for ``version_id`` and its outbox messages, once.

    Runs in the caller's transaction (the caller commits). Returns the record, the existing one when
    the learner had already completed this version (then nothing is written), or None when the
    attempt is gone.
    """
    attempt = db.session.get(Attempt, attempt_id)
    version = db.session.get(CourseVersion, version_id)
    if attempt is None or version is None:
        log.warning("course_completed for attempt %s / version %s: attempt or version gone, no record",
                    attempt_id, version_id)
        return None
    existing = find(attempt.user_pk, version.id)
    if existing is not None:
        return existing
    user = db.session.get(User, attempt.user_pk)
    registration = db.session.get(Registration, attempt.registration_id)
    override = db.session.get(CourseIssuing, version.course_id)
    profile = issuer_profile_for(version.course.source_project if version.course else "", override)
    configured = list(override.connectors) if override is not None and override.connectors is not None \
        else list(profile.connectors or [])
    # An unknown connector name (a typo in settings edited by hand) must not cost the record itself.
    names = [n for n in configured if n in connectors.names()]
    if names != configured:
        log.error("issuer profile %s names unknown connectors %s: skipped", profile.slug,
                  sorted(set(configured) - set(names)))
    record = _settings_record(profile, override)
    salt = secrets.token_hex(16)
    email = normalize_email(user.email) if user is not None and user.email else None
    pass_mark = (version.completion or {}).get("pass_mark")
    values = dict(
        uuid=str(uuid.uuid4()), user_pk=attempt.user_pk, version_id=version.id, course_id=version.course_id,
        attempt_id=attempt.id, registration_id=attempt.registration_id, issuer_profile_id=profile.id,
        learner_sub=user.sub if user is not None else str(attempt.user_pk),
        platform_issuer=registration.issuer if registration is not None else "",
        email_hash=identity_hash(email, salt) if email else None, identity_salt=salt,
        learner_name=_learner_name(user),
        course_identifier=version.course.package_identifier if version.course else "",
        source_project=version.course.source_project if version.course else "",
        course_title=version.title, course_version=version.version, language=version.language,
        achievement=_achievement(version, pass_mark), learning_outcomes=[o.text for o in version.learning_outcomes],
        esco_skills=[{"uri": s.uri, "label": s.label} for s in version.esco_skills],
        esco_occupations=[{"uri": s.uri, "label": s.label} for s in version.esco_occupations],
        eqf_level=version.eqf_level, ects=version.ects, workload_hours=version.workload_hours,
        completed_at=attempt.completed_at or completed_at or utcnow(),
        score_scaled=score_scaled if score_scaled is not None else attempt.score_scaled,
        pass_mark=pass_mark,
        assessment_type=record.get("assessment_type") or assessment_type(version),
        supervision=record.get("supervision") or DEFAULT_SUPERVISION,
        identity_verification=record.get("identity_verification") or DEFAULT_IDENTITY_VERIFICATION,
        evidence_url=record.get("evidence_url"), connectors=names, created_at=utcnow(),
    )
    new_id = insert_unless_exists(Completion, values, conflict=("user_pk", "version_id"))
    if new_id is None:
        # Another event for the same learner and version got there first (or was committing now).
        log.info("completion of user %s for version %s already recorded", attempt.user_pk, version.id)
        return find(attempt.user_pk, version.id)
    completion = db.session.get(Completion, new_id)
    for name in names:
        connector = connectors.get(name)
        enqueue(connectors.kind(name), connectors.dedupe_key(completion.id, name),
                {"completion_id": completion.id, "connector": name},
                target=connector.target(connectors.settings_for(profile, override, name), profile),
                idempotency_key=connectors.idempotency_key(completion.uuid, name))
    log.info("completion %s recorded (user %s, version %s), queued for %s", completion.uuid, attempt.user_pk,
             version.id, ", ".join(names) or "no connector")
    return completion


def issuer_profile_for(source_project: str, override: CourseIssuing | None = None) -> IssuerProfile:
    """Who issues for a course: the course's override, else its source project's profile, else the
    default profile (created on first use, so a completion is never lost for want of one)."""
    if override is not None and override.issuer_profile is not None:
        return override.issuer_profile
    if source_project:
        found = db.session.execute(db.select(IssuerProfile).where(
            db.func.lower(IssuerProfile.source_project) == source_project.lower())).scalars().first()
        if found is not None:
            return found
    from .issuer import ensure_default_profile

    return ensure_default_profile()


def _settings_record(profile: IssuerProfile, override: CourseIssuing | None) -> dict:
    """Record fields set by configuration (settings["record"]): assessment type, supervision..."""
    merged = dict((profile.settings or {}).get("record") or {})
    if override is not None:
        merged.update((override.settings or {}).get("record") or {})
    return merged


def _learner_name(user: User | None) -> str | None:
    if user is None:
        return None
    full = " ".join(p for p in (user.given_name, user.family_name) if p)
    return user.name or full or None


def _achievement(version: CourseVersion, pass_mark: float | None) -> dict:
    activities = [a for a in version.activities if a.required and a.visible and a.kind != "unsupported"]
    criteria = (f"Complete the {len(activities)} required activities of the course “{version.title}”"
                if activities else f"Complete the course “{version.title}”")
    if pass_mark is not None:
        criteria += f" with a final score of at least {round(pass_mark * 100)} %"
    return {
        "description": (version.description or version.title).strip(),
        "criteria": criteria + ".",
        "keywords": list(version.keywords or []),
        "licence": version.licence,
        "authors": [a.get("name") if isinstance(a, dict) else str(a) for a in (version.authors or [])],
        "format": version.format,
    }


def assessment_type(version: CourseVersion) -> str:
    """The type of assessment, said plainly, from what the course's activities are."""
    kinds = {a.kind for a in version.activities if a.required and a.kind != "unsupported"}
    if "quiz" in kinds:
        return "Online quiz, graded automatically by lms_bridge against the course's pass mark"
    if version.format == "cmi5" and any(a.move_on in ("Passed", "CompletedAndPassed") for a in version.activities):
        return "Online assessment inside the course content (cmi5, passed against its mastery score)"
    if any(a.mastery_score is not None for a in version.activities):
        return "Online assessment inside the course content, scored against its mastery score"
    return "Completion of every required activity (no graded assessment)"


def completion_record(completion: Completion, *, include_email: str | None = None) -> dict:
    """The completion as JSON, for issuers that receive it (webhook) and for operators.

    Stable for a given completion, so every retry of a delivery sends the same document.
    ``include_email`` adds the learner's e-mail address when the receiver is configured to get it.
    """
    from .issuer import credential_links, issuer_id

    profile = completion.issuer_profile
    score = completion.score_scaled
    record = {
        "type": "CompletionRecord",
        "id": f"urn:uuid:{completion.uuid}",
        "completedAt": _iso(completion.completed_at),
        "learner": {
            "ltiUserId": completion.learner_sub,
            "ltiPlatformId": completion.platform_issuer,
            "name": completion.learner_name,
            "emailHash": completion.email_hash,
            "salt": completion.identity_salt if completion.email_hash else None,
        },
        "course": {
            "identifier": completion.course_identifier,
            "sourceProject": completion.source_project or None,
            "title": completion.course_title,
            "version": completion.course_version,
            "language": completion.language,
        },
        "achievement": {
            "achievementType": "MicroCredential",
            "name": completion.course_title,
            "description": (completion.achievement or {}).get("description"),
            "criteria": (completion.achievement or {}).get("criteria"),
            "learningOutcomes": list(completion.learning_outcomes or []),
            "escoSkills": list(completion.esco_skills or []),
            "escoOccupations": list(completion.esco_occupations or []),
            "eqfLevel": completion.eqf_level,
            "ects": completion.ects,
            "workloadHours": completion.workload_hours,
        },
        "result": {
            "scoreScaled": score,
            "passMark": completion.pass_mark,
            "passed": None if score is None or completion.pass_mark is None else score >= completion.pass_mark - 1e-9,
        },
        "assessment": {
            "type": completion.assessment_type,
            "supervision": completion.supervision,
            "identityVerification": completion.identity_verification,
        },
        "evidenceUrl": completion.evidence_url,
        "issuer": {"id": issuer_id(profile), "name": profile.name, "url": profile.url},
        "credential": credential_links(completion) if "builtin" in (completion.connectors or []) else None,
    }
    if include_email:
        record["learner"]["email"] = include_email
    return record


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None
