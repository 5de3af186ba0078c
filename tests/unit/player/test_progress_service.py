"""The progress service on a real database (SQLite or PostgreSQL, per LMS_BRIDGE_TEST_BACKEND):
ordering and idempotency of writes, completion rules over a real course, events written in the
same transaction as the change, and progress carried to a new course version."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.db_app import database_app

ROOT = Path(__file__).resolve().parents[3]
NATIVE = ROOT / "mooc_packages" / "hydrogen-fcev-basics-native"


@pytest.fixture(scope="module")
def app():
    with database_app() as app:
        yield app


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app
        from lms_bridge.extensions import db

        db.session.rollback()


_users = iter(range(1, 10_000))


def new_attempt(course):
    from lms_bridge.extensions import db
    from lms_bridge.lti.models import Registration, User
    from lms_bridge.player import progress

    reg = db.session.execute(db.select(Registration)).scalars().first()
    if reg is None:
        reg = Registration(issuer="https://lms.example.org", client_id="c", auth_login_url="https://lms.example.org/a")
        db.session.add(reg)
        db.session.flush()
    user = User(registration_id=reg.id, sub=f"u{next(_users)}")
    db.session.add(user)
    db.session.commit()
    return progress.start_attempt(user_pk=user.id, course=course, registration_id=reg.id, context_pk=None,
                                  resource_link_pk=None)


@pytest.fixture(scope="module")
def course(app):
    with app.app_context():
        from lms_bridge.extensions import db
        from lms_bridge.packages.service import import_package

        version = import_package(NATIVE)
        course_id = version.course_id
        db.session.remove()
    return course_id


def load(course_id):
    from lms_bridge.extensions import db
    from lms_bridge.packages.models import Course

    return db.session.get(Course, course_id)


def activities(course):
    from lms_bridge.player.progress import course_rules

    return course_rules(course.current_version_id).activities


def events_of(attempt_id):
    from lms_bridge.player import progress

    return [(e.kind, e.activity_key) for e in progress.events(attempt_id)]


def test_stale_and_duplicate_writes_are_ignored(ctx, course):
    from lms_bridge.extensions import db
    from lms_bridge.player import progress
    from lms_bridge.player.models import ActivityProgress
    from lms_bridge.player.progress import ProgressError, ProgressUpdate

    c = load(course)
    attempt = new_attempt(c)
    key = activities(c)[-1].key  # the quiz
    s1 = progress.launch_activity(attempt, key).session
    s2 = progress.launch_activity(attempt, key).session
    assert (s1, s2) == (1, 2)
    assert progress.record(attempt.id, key, ProgressUpdate(location="s2-1"), session=2, seq=1).applied
    # A late commit of the first session, and an older one of the second, change nothing.
    late = progress.record(attempt.id, key, ProgressUpdate(location="s1-9", completion_status="completed"), session=1, seq=9)
    assert (late.applied, late.reason) == (False, "stale")
    assert progress.record(attempt.id, key, ProgressUpdate(location="s2-1"), session=2, seq=1).reason == "duplicate"
    assert progress.record(attempt.id, key, ProgressUpdate(location="s2-3"), session=2, seq=3).applied
    assert progress.record(attempt.id, key, ProgressUpdate(location="s2-2"), session=2, seq=2).reason == "stale"
    with pytest.raises(ProgressError) as err:  # a session the server never opened
        progress.record(attempt.id, key, ProgressUpdate(location="x"), session=3, seq=1)
    assert err.value.code == "unknown_session"
    row = db.session.execute(db.select(ActivityProgress).filter_by(attempt_id=attempt.id, activity_key=key)).scalar_one()
    assert (row.location, row.completion_status, row.client_session, row.client_seq) == ("s2-3", "incomplete", 2, 3)
    assert events_of(attempt.id) == [("progress_changed", key)]  # first opened (grade passback: Started)


def test_course_completion_and_events(ctx, course):
    from lms_bridge.extensions import db
    from lms_bridge.player import progress
    from lms_bridge.player.models import Attempt
    from lms_bridge.player.progress import ProgressUpdate

    c = load(course)
    attempt = new_attempt(c)
    infos = activities(c)
    lessons = [a for a in infos if a.kind == "lesson"]
    quiz = next(a for a in infos if a.kind == "quiz")
    for lesson in lessons:  # a lesson completes when opened
        progress.launch_activity(attempt, lesson.key)
    assert [k for k, _ in events_of(attempt.id)] == ["activity_completed"] * len(lessons)
    # A failing quiz: score event and activity completion, but no course completion.
    res = progress.record(attempt.id, quiz.key, ProgressUpdate(completion_status="completed", success_status="failed",
                                                               score_scaled=0.5, score_raw=5.0, score_max=10.0))
    assert res.events == ["score_changed", "activity_completed"] and not res.course_completed
    # The same values again: nothing new.
    again = progress.record(attempt.id, quiz.key, ProgressUpdate(completion_status="completed", success_status="failed",
                                                                 score_scaled=0.5, score_raw=5.0, score_max=10.0))
    assert again.events == []
    passed = progress.record(attempt.id, quiz.key, ProgressUpdate(success_status="passed", score_scaled=0.9, score_raw=9.0))
    assert passed.events == ["score_changed", "course_completed"] and passed.course_completed
    # Completion is recorded once, even if the score changes afterwards.
    later = progress.record(attempt.id, quiz.key, ProgressUpdate(score_scaled=1.0, score_raw=10.0))
    assert later.events == ["score_changed"]
    kinds = [k for k, _ in events_of(attempt.id)]
    assert kinds.count("course_completed") == 1 and kinds.count("score_changed") == 3
    row = db.session.get(Attempt, attempt.id)
    assert row.status == "completed" and row.completed_at is not None and row.score_scaled == 1.0
    event = progress.events(attempt.id, kind="course_completed")[0]
    assert event.payload["course_id"] == c.id and event.user_pk == row.user_pk and event.consumed is False
    summary = progress.summary(row)
    assert summary.completed and summary.percent == 100


def test_events_are_written_in_the_same_transaction(ctx, course, monkeypatch):
    """If anything fails after the events were added, neither the change nor its events remain."""
    from lms_bridge.extensions import db
    from lms_bridge.player import progress
    from lms_bridge.player.models import ActivityProgress, ProgressEvent
    from lms_bridge.player.progress import ProgressUpdate

    c = load(course)
    attempt = new_attempt(c)
    quiz = next(a for a in activities(c) if a.kind == "quiz")
    progress.launch_activity(attempt, quiz.key)
    aid = attempt.id

    def boom(*args, **kwargs):
        raise RuntimeError("crash after the events were written")

    monkeypatch.setattr(progress, "course_complete", boom)
    with pytest.raises(RuntimeError):
        progress.record(aid, quiz.key, ProgressUpdate(completion_status="completed", success_status="passed",
                                                             score_scaled=1.0))
    monkeypatch.undo()
    db.session.remove()
    row = db.session.execute(db.select(ActivityProgress).filter_by(attempt_id=aid, activity_key=quiz.key)).scalar_one()
    assert (row.completion_status, row.score_scaled) == ("incomplete", None)
    assert db.session.execute(db.select(ProgressEvent).filter_by(attempt_id=aid).where(
        ProgressEvent.kind != "progress_changed")).first() is None  # only the launch's event
    # And a successful write commits both together.
    res = progress.record(aid, quiz.key, ProgressUpdate(completion_status="completed", score_scaled=1.0))
    assert res.events == ["score_changed", "activity_completed"]
    db.session.remove()
    assert [e.kind for e in progress.events(aid)] == ["progress_changed", "score_changed", "activity_completed"]


def test_progress_carries_over_to_a_new_version(ctx, course, tmp_path):
    """Re-importing a changed course keeps progress on activities whose key is unchanged."""
    from lms_bridge.extensions import db
    from lms_bridge.packages.service import import_package
    from lms_bridge.player import progress
    from lms_bridge.player.progress import ProgressUpdate

    c = load(course)
    attempt = new_attempt(c)
    infos = activities(c)
    first = next(a for a in infos if a.kind == "lesson")
    quiz = next(a for a in infos if a.kind == "quiz")
    progress.launch_activity(attempt, first.key)
    progress.record(attempt.id, quiz.key, ProgressUpdate(completion_status="completed", score_scaled=0.4))
    copy = tmp_path / "course"
    shutil.copytree(NATIVE, copy)
    manifest = copy / "course.yaml"
    manifest.write_text(manifest.read_text().replace('version: "1.0.0"', 'version: "1.1.0"'))
    quiz_file = copy / "quizzes" / "final-quiz.yaml"
    quiz_file.write_text(quiz_file.read_text().replace("pass_mark: 0.8", "pass_mark: 0.7"))
    new_version = import_package(copy)
    assert new_version.id != attempt.version_id
    c = load(course)
    moved = progress.start_attempt(user_pk=attempt.user_pk, course=c, registration_id=attempt.registration_id,
                                   context_pk=None, resource_link_pk=None)
    assert moved.id == attempt.id and moved.version_id == new_version.id
    summary = progress.summary(moved)
    new_infos = {a.identifier: a for a in activities(c)}
    assert new_infos[first.identifier].key == first.key and summary.satisfied[first.key]  # unchanged lesson kept
    assert new_infos[quiz.identifier].key != quiz.key  # the changed quiz starts afresh
    assert not summary.satisfied[new_infos[quiz.identifier].key]
    db.session.remove()


# -- the fast path (one guarded UPDATE) and the full path agree -----------------------------------


def test_bookmark_commits_take_the_fast_path(ctx, course, monkeypatch):
    """A commit that changes no status or score is one statement; one that does takes the full path."""
    from lms_bridge.extensions import db
    from lms_bridge.player import progress
    from lms_bridge.player.models import ActivityProgress, Attempt
    from lms_bridge.player.progress import ProgressUpdate

    c = load(course)
    attempt = new_attempt(c)
    attempt_id = attempt.id
    quiz = next(a for a in activities(c) if a.kind == "quiz")
    session = progress.launch_activity(attempt, quiz.key).session
    full = []
    real_transaction = progress._transaction

    def counting_transaction(*args, **kwargs):
        full.append(1)
        return real_transaction(*args, **kwargs)

    monkeypatch.setattr(progress, "_transaction", counting_transaction)
    res = progress.record(attempt_id, quiz.key, ProgressUpdate(
        completion_status="incomplete", location="p2", suspend_data='{"a":1}', exit="suspend", total_time_seconds=12.5,
        progress_measure=0.25, cmi={"location": "p2", "interactions": [{"id": "q1"}]}), session=session, seq=1)
    assert (res.applied, res.events, res.completion_status, res.success_status) == (True, [], "incomplete", "unknown")
    assert full == []  # the fast path alone
    # The same score as stored changes nothing either: still the fast path.
    res = progress.record(attempt_id, quiz.key, ProgressUpdate(completion_status="incomplete", score_scaled=None,
                                                               location="p3"), session=session, seq=2)
    assert res.applied and full == []
    # A score: the full path, with its event.
    res = progress.record(attempt_id, quiz.key, ProgressUpdate(completion_status="incomplete", score_scaled=0.5,
                                                               score_raw=5.0, location="p4"), session=session, seq=3)
    assert res.applied and res.events == ["score_changed"] and full == [1]
    # The same score again: the fast path (the guard sees the stored score).
    res = progress.record(attempt_id, quiz.key, ProgressUpdate(completion_status="incomplete", score_scaled=0.5,
                                                               score_raw=5.0, location="p5"), session=session, seq=4)
    assert res.applied and res.events == [] and res.score_scaled == 0.5 and full == [1]
    # Stale and duplicate commits fall through to the full path, which says so and writes nothing.
    assert progress.record(attempt_id, quiz.key, ProgressUpdate(location="old"), session=session, seq=3).reason == "stale"
    assert progress.record(attempt_id, quiz.key, ProgressUpdate(location="p5"), session=session, seq=4).reason == "duplicate"
    db.session.remove()
    row = db.session.execute(db.select(ActivityProgress).filter_by(attempt_id=attempt_id, activity_key=quiz.key)).scalar_one()
    assert (row.location, row.suspend_data, row.exit, row.total_time_seconds, row.progress_measure) == \
        ("p5", '{"a":1}', "suspend", 12.5, 0.25)
    assert row.cmi == {"location": "p2", "interactions": [{"id": "q1"}]}
    assert (row.score_scaled, row.score_raw, row.client_session, row.client_seq) == (0.5, 5.0, session, 4)
    assert row.server_updated_at is not None
    assert db.session.get(Attempt, attempt_id).updated_at >= row.first_launched_at


def test_fast_path_refuses_what_the_full_path_refuses(ctx, course, tmp_path):
    """Unknown sessions, unknown attempts, and activities no longer in the attempt's course version
    (their progress row is still there) are refused, not written by the fast path."""
    from lms_bridge.extensions import db
    from lms_bridge.packages.service import import_package
    from lms_bridge.player import progress
    from lms_bridge.player.models import ActivityProgress
    from lms_bridge.player.progress import ProgressError, ProgressUpdate

    c = load(course)
    attempt = new_attempt(c)
    attempt_id, user_pk, registration_id = attempt.id, attempt.user_pk, attempt.registration_id
    quiz = next(a for a in activities(c) if a.kind == "quiz")
    session = progress.launch_activity(attempt, quiz.key).session
    with pytest.raises(ProgressError) as err:
        progress.record(attempt_id, quiz.key, ProgressUpdate(location="x"), session=session + 1, seq=1)
    assert err.value.code == "unknown_session"
    with pytest.raises(ProgressError) as err:
        progress.record(attempt_id, quiz.key, ProgressUpdate(location="x"), session=0, seq=1)
    assert err.value.code == "unknown_session"
    with pytest.raises(ProgressError) as err:
        progress.record(10**9, quiz.key, ProgressUpdate(location="x"), session=1, seq=1)
    assert err.value.code == "unknown_attempt"
    # A new version changes the quiz (a new activity key); the attempt moves to it.
    copy = tmp_path / "course"
    shutil.copytree(NATIVE, copy)
    manifest = copy / "course.yaml"
    manifest.write_text(manifest.read_text().replace('version: "1.0.0"', 'version: "1.2.0"'))
    quiz_file = copy / "quizzes" / "final-quiz.yaml"
    quiz_file.write_text(quiz_file.read_text().replace("pass_mark: 0.8", "pass_mark: 0.75"))
    import_package(copy)
    c = load(course)
    progress.start_attempt(user_pk=user_pk, course=c, registration_id=registration_id,
                           context_pk=None, resource_link_pk=None)
    with pytest.raises(ProgressError) as err:  # a commit from a page opened before the new version
        progress.record(attempt_id, quiz.key, ProgressUpdate(location="late"), session=session, seq=1)
    assert err.value.code == "unknown_activity"
    db.session.remove()
    row = db.session.execute(db.select(ActivityProgress).filter_by(attempt_id=attempt_id, activity_key=quiz.key)).scalar_one()
    assert row.location is None and row.client_seq == 0


def test_concurrent_commits_keep_the_newest(app, course):
    """Threads committing to one attempt at once, bookmarks and score changes mixed (fast and full
    paths, as the SCORM autocommit and two activities would): no error, no deadlock, the newest
    commit of each activity wins, and course completion is written once."""
    import threading

    from lms_bridge.extensions import db
    from lms_bridge.player import progress
    from lms_bridge.player.models import ActivityProgress, Attempt
    from lms_bridge.player.progress import ProgressUpdate

    with app.app_context():
        c = load(course)
        attempt = new_attempt(c)
        infos = activities(c)
        quiz = next(a for a in infos if a.kind == "quiz")
        lessons = [a for a in infos if a.kind == "lesson"]
        for lesson in lessons:
            progress.launch_activity(attempt, lesson.key)
        session = progress.launch_activity(attempt, quiz.key).session
        attempt_id = attempt.id
        db.session.remove()

    errors: list[BaseException] = []
    threads_n, per_thread = 6, 25

    def commit(index: int) -> None:
        try:
            with app.app_context():
                for i in range(per_thread):
                    seq = i * threads_n + index + 1
                    update = ProgressUpdate(completion_status="incomplete", location=f"at-{seq}", suspend_data=str(seq))
                    if seq % 7 == 0:
                        update.score_scaled = round(seq / 1000, 3)
                    if seq == threads_n * per_thread - 3:
                        update.completion_status, update.success_status, update.score_scaled = "completed", "passed", 0.95
                    progress.record(attempt_id, quiz.key, update, session=session, seq=seq)
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=commit, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with app.app_context():
        row = db.session.execute(db.select(ActivityProgress).filter_by(attempt_id=attempt_id, activity_key=quiz.key)
                                 ).scalar_one()
        last = threads_n * per_thread
        assert (row.client_session, row.client_seq, row.location, row.suspend_data) == (session, last, f"at-{last}", str(last))
        kinds = [k for k, _ in events_of(attempt_id)]
        completed = db.session.get(Attempt, attempt_id).completed_at is not None
        # Whether the "completed" commit won its race decides completion; it is recorded at most once.
        assert kinds.count("course_completed") == (1 if completed else 0)
        assert kinds.count("activity_completed") == len(lessons) + (1 if row.completed_at else 0)
        db.session.remove()
