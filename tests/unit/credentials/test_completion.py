"""The completion record on a real database (SQLite or PostgreSQL, per LMS_BRIDGE_TEST_BACKEND): the
``course_completed`` subscriber writes one record per (learner, course version) with one outbox
message per configured connector, atomically with consuming the event; repeated, replayed and
concurrent events never make a second record or a second message; issuer profiles are chosen by
course override, source project, or the default profile."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from tests.support.db_app import database_app

ROOT = Path(__file__).resolve().parents[3]
NATIVE = ROOT / "mooc_packages" / "hydrogen-fcev-basics-native"
_subs = iter(range(1, 100_000))


@pytest.fixture(scope="module")
def app():
    # Nothing delivers by itself: the tests relay events and look at the outbox rows.
    with database_app(OUTBOX_WORKER="off", PUBLIC_BASE_URL="https://tool.example.org") as app:
        yield app


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app
        from lms_bridge.extensions import db

        db.session.rollback()


@pytest.fixture(scope="module")
def course(app):
    with app.app_context():
        from lms_bridge.credentials.issuer import new_profile
        from lms_bridge.extensions import db
        from lms_bridge.packages.service import import_package

        version = import_package(NATIVE)
        new_profile(slug="trireme", name="TRIREME", source_project="TRIREME", connectors=["builtin", "webhook"],
                    settings={"webhook": {"url": "https://hub.example.org/hook", "secret": "s" * 20}})
        db.session.commit()
        course_id = version.course_id
        db.session.remove()
    return course_id


def learner(email: str | None = "Lena.Learner@Example.org", **names):
    from lms_bridge.extensions import db
    from lms_bridge.lti.models import Registration, User

    reg = db.session.execute(db.select(Registration)).scalars().first()
    if reg is None:
        reg = Registration(issuer="https://moodle.example.org", client_id="c", auth_login_url="https://moodle.example.org/a")
        db.session.add(reg)
        db.session.flush()
    user = User(registration_id=reg.id, sub=f"moodle-{next(_subs)}", email=email, **names)
    db.session.add(user)
    db.session.commit()
    return user.id, reg.id


def attempt_for(course_id: int, user_pk: int, registration_id: int, link: str | None = None):
    """An attempt of the learner, from a resource link of its own (two links: two attempts)."""
    from lms_bridge.extensions import db
    from lms_bridge.lti.models import Deployment, ResourceLink
    from lms_bridge.packages.models import Course
    from lms_bridge.player import progress

    link_pk = None
    if link is not None:
        dep = db.session.execute(db.select(Deployment).filter_by(registration_id=registration_id)).scalar_one_or_none()
        if dep is None:
            dep = Deployment(registration_id=registration_id, deployment_id="1", active=True)
            db.session.add(dep)
            db.session.flush()
        rl = ResourceLink(deployment_id=dep.id, resource_link_id=link)
        db.session.add(rl)
        db.session.commit()
        link_pk = rl.id
    return progress.start_attempt(user_pk=user_pk, course=db.session.get(Course, course_id),
                                  registration_id=registration_id, context_pk=None, resource_link_pk=link_pk).id


def complete(attempt_id: int, score: float = 0.9) -> None:
    """Every lesson opened, the quiz passed: the progress service raises course_completed."""
    from lms_bridge.extensions import db
    from lms_bridge.player import progress
    from lms_bridge.player.models import Attempt

    attempt = db.session.get(Attempt, attempt_id)
    rules = progress.course_rules(attempt.version_id)
    for info in rules.activities:
        if info.kind == "lesson":
            progress.launch_activity(attempt, info.key)
        elif info.kind == "quiz":
            result = progress.record(attempt_id, info.key, progress.ProgressUpdate(
                completion_status="completed", success_status="passed", score_scaled=score))
            assert result.course_completed


def relay() -> int:
    from lms_bridge.player import events

    return events.relay()


def completions(user_pk: int):
    from lms_bridge.credentials.models import Completion
    from lms_bridge.extensions import db

    return db.session.execute(db.select(Completion).filter_by(user_pk=user_pk)).scalars().all()


def messages(completion_id: int):
    from lms_bridge.extensions import db
    from lms_bridge.outbox import OutboxMessage

    return db.session.execute(db.select(OutboxMessage).where(
        OutboxMessage.kind.startswith("credential."), OutboxMessage.dedupe_key.startswith(f"{completion_id}:"))
        .order_by(OutboxMessage.id)).scalars().all()


def test_one_record_with_one_message_per_connector(ctx, course):
    from lms_bridge.credentials import connectors
    from lms_bridge.credentials.keys import identity_hash
    from lms_bridge.extensions import db
    from lms_bridge.player.models import ProgressEvent

    user_pk, reg = learner(given_name="Lena", family_name="Learner")
    attempt = attempt_for(course, user_pk, reg)
    complete(attempt, 0.9)
    assert relay() >= 1
    (c,) = completions(user_pk)
    # The snapshot the micro-credential needs.
    assert c.course_title == "Hydrogen fuel-cell vehicle basics" and c.source_project == "TRIREME"
    assert c.issuer_profile.slug == "trireme" and c.learner_name == "Lena Learner"
    assert c.learner_sub.startswith("moodle-") and c.platform_issuer == "https://moodle.example.org"
    assert c.email_hash == identity_hash("lena.learner@example.org", c.identity_salt)
    assert (c.eqf_level, c.ects, c.workload_hours, c.score_scaled, c.pass_mark) == (4, 0.2, 6, 0.9, 0.8)
    assert len(c.learning_outcomes) == 5 and len(c.esco_skills) == 8
    assert all(s["uri"].startswith("http://data.europa.eu/esco/skill/") for s in c.esco_skills)
    assert "quiz" in c.assessment_type and c.supervision and c.identity_verification
    assert "at least 80 %" in c.achievement["criteria"] and c.attempt_id == attempt
    # One outbox message per connector, with a key stable for (completion, connector).
    rows = messages(c.id)
    assert [(m.kind, m.dedupe_key) for m in rows] == [("credential.builtin", f"{c.id}:builtin"),
                                                       ("credential.webhook", f"{c.id}:webhook")]
    assert [m.idempotency_key for m in rows] == [connectors.idempotency_key(c.uuid, "builtin"),
                                                 connectors.idempotency_key(c.uuid, "webhook")]
    assert rows[1].target == "https://hub.example.org/hook" and rows[0].payload == {"completion_id": c.id,
                                                                                    "connector": "builtin"}
    # The event was consumed in the same transaction.
    consumed = db.session.execute(db.select(ProgressEvent.consumed).filter_by(
        attempt_id=attempt, kind="course_completed")).scalars().all()
    assert consumed == [True]


def test_completing_again_from_another_link_or_a_replayed_event_changes_nothing(ctx, course):
    from lms_bridge.extensions import db
    from lms_bridge.player.models import ProgressEvent

    user_pk, reg = learner()
    first = attempt_for(course, user_pk, reg, link=f"link-a-{user_pk}")
    complete(first)
    relay()
    (record,) = completions(user_pk)
    before = [(m.id, m.idempotency_key) for m in messages(record.id)]
    # The same course placed twice in the LMS: a second attempt, a second course_completed event.
    second = attempt_for(course, user_pk, reg, link=f"link-b-{user_pk}")
    assert second != first
    complete(second, 1.0)
    # The same event delivered again (a replay by a relay that crashed before it noted it).
    original = db.session.execute(db.select(ProgressEvent).filter_by(attempt_id=first, kind="course_completed")).scalar_one()
    db.session.add(ProgressEvent(kind="course_completed", attempt_id=first, user_pk=user_pk, course_id=original.course_id,
                                 version_id=original.version_id, payload=dict(original.payload)))
    db.session.commit()
    assert relay() >= 2
    (after,) = completions(user_pk)
    assert after.id == record.id and after.score_scaled == record.score_scaled == 0.9
    assert [(m.id, m.idempotency_key) for m in messages(record.id)] == before
    left = db.session.execute(db.select(db.func.count()).select_from(ProgressEvent).where(
        ProgressEvent.kind == "course_completed", ProgressEvent.consumed.is_(False))).scalar()
    assert left == 0


def test_concurrent_completions_make_one_record(app, course, caplog):
    """Two transactions record the same learner and version at the same moment: the second waits on
    the unique constraint (PostgreSQL: the index entry; SQLite: the write lock), then finds the first."""
    from lms_bridge.credentials.completion import record_completion
    from lms_bridge.extensions import db
    from lms_bridge.player.models import Attempt

    caplog.set_level(logging.INFO, logger="lms_bridge.credentials")
    with app.app_context():
        user_pk, reg = learner()
        a1 = attempt_for(course, user_pk, reg, link=f"c1-{user_pk}")
        a2 = attempt_for(course, user_pk, reg, link=f"c2-{user_pk}")
        complete(a1)
        complete(a2)
        version = db.session.get(Attempt, a1).version_id
        db.session.remove()
    inserted = threading.Event()
    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def first():
        with app.app_context():
            try:
                results["first"] = record_completion(a1, version).id
                inserted.set()
                time.sleep(0.8)  # the second one runs into the unique constraint meanwhile
                db.session.commit()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                inserted.set()
            finally:
                db.session.remove()

    def second():
        with app.app_context():
            try:
                inserted.wait(10)
                found = record_completion(a2, version)
                results["second"] = found.id if found is not None else None
                db.session.commit()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert results["first"] == results["second"]
    # The second insert really met the first one's row (not a row committed before it looked).
    assert any("already recorded" in r.getMessage() for r in caplog.records)
    with app.app_context():
        (record,) = completions(user_pk)
        assert record.id == results["first"] and record.attempt_id == a1
        assert [m.kind for m in messages(record.id)] == ["credential.builtin", "credential.webhook"]
        # The events are still there to relay: relaying them adds nothing.
        relay()
        assert len(completions(user_pk)) == 1 and len(messages(record.id)) == 2
        db.session.remove()


def test_profile_by_override_then_source_project_then_default(ctx, course):
    from lms_bridge.credentials.completion import issuer_profile_for
    from lms_bridge.credentials.issuer import new_profile
    from lms_bridge.credentials.models import CourseIssuing, IssuerProfile
    from lms_bridge.extensions import db

    assert issuer_profile_for("trireme").slug == "trireme"  # matched without regard to case
    default = issuer_profile_for("NO-SUCH-PROJECT")
    assert default.is_default and default.slug == "default"
    assert issuer_profile_for("") .id == default.id
    assert db.session.execute(db.select(db.func.count()).select_from(IssuerProfile).filter_by(is_default=True)).scalar() == 1
    hub = new_profile(slug="skills-hub", name="Skills hub", connectors=["webhook"],
                      settings={"webhook": {"url": "https://hub.example.org/all", "jws": True}})
    db.session.flush()
    override = CourseIssuing(course_id=course, issuer_profile_id=hub.id, connectors=["builtin"],
                             settings={"record": {"supervision": "Supervised online with identity verification"}})
    db.session.add(override)
    db.session.commit()
    try:
        user_pk, reg = learner(email=None)
        complete(attempt_for(course, user_pk, reg))
        relay()
        (c,) = completions(user_pk)
        assert c.issuer_profile.slug == "skills-hub" and c.connectors == ["builtin"]
        assert c.supervision == "Supervised online with identity verification"
        assert c.email_hash is None and c.identity_salt  # no e-mail from the LMS: no e-mail hash
        assert [m.kind for m in messages(c.id)] == ["credential.builtin"]
    finally:
        db.session.delete(db.session.get(CourseIssuing, course))
        db.session.commit()


def test_unknown_connector_names_never_cost_the_record(ctx, course):
    from lms_bridge.credentials.models import IssuerProfile
    from lms_bridge.extensions import db

    profile = db.session.execute(db.select(IssuerProfile).filter_by(slug="trireme")).scalar_one()
    saved = list(profile.connectors)
    profile.connectors = ["builtin", "no-such-connector"]
    db.session.commit()
    try:
        user_pk, reg = learner()
        complete(attempt_for(course, user_pk, reg))
        relay()
        (c,) = completions(user_pk)
        assert c.connectors == ["builtin"] and [m.kind for m in messages(c.id)] == ["credential.builtin"]
    finally:
        profile = db.session.execute(db.select(IssuerProfile).filter_by(slug="trireme")).scalar_one()
        profile.connectors = saved
        db.session.commit()


def test_completion_record_document(ctx, course):
    from lms_bridge.credentials.completion import completion_record

    user_pk, reg = learner(given_name="Ada", family_name="Lovelace")
    complete(attempt_for(course, user_pk, reg), 0.85)
    relay()
    (c,) = completions(user_pk)
    record = completion_record(c)
    assert record["type"] == "CompletionRecord" and record["id"] == f"urn:uuid:{c.uuid}"
    assert record["learner"]["emailHash"] == c.email_hash and "email" not in record["learner"]
    assert record["result"] == {"scoreScaled": 0.85, "passMark": 0.8, "passed": True}
    assert record["achievement"]["eqfLevel"] == 4 and record["achievement"]["achievementType"] == "MicroCredential"
    assert record["issuer"]["id"] == "did:web:tool.example.org:issuers:trireme"
    # The credential the built-in issuer makes has an id known in advance (no credential row yet).
    assert record["credential"]["id"].startswith("urn:uuid:")
    assert record["credential"]["verifyUrl"].startswith("https://tool.example.org/credentials/")
    assert completion_record(c) == record  # stable: every retry sends the same document
    assert completion_record(c, include_email="ada@example.org")["learner"]["email"] == "ada@example.org"
