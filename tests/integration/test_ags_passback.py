"""Grade passback over real HTTP against gunicorn (2 workers) and the development platform: a learner
launches from the platform (with an AGS claim), works through a course, and the platform's gradebook
receives the scores with activityProgress/gradingProgress in order, from the in-process outbox
workers; a module link reports the module's result; a link without a ``lineitem`` gets one line item
the tool creates (matched by resourceLinkId + resourceId, updated when the link is re-bound); the AGS
client pages line items and results through ``Link`` headers; tokens are cached and shared.

Helpers here are reused by ``test_ags_faults.py``."""
from __future__ import annotations

import time

import pytest
import requests

from tests.integration.test_player_common import (
    MOOC,
    Browser,
    in_app,
    import_course,
    launch_learner,
    place_link,
    player_token,
    quiz_answers,
)
from tests.integration.test_devplatform import platform_url

QUIZ = "q1-final-quiz"
RANK = {"Initialized": 0, "Started": 1, "InProgress": 2, "Submitted": 3, "Completed": 4}
SUBS = {"learner": "4", "learner2": "5", "anonymous": "6"}


# -- helpers (shared with test_ags_faults.py) -----------------------------------------------------


def gradebook(server) -> dict:
    resp = requests.get(platform_url(server, "/gradebook.json"), timeout=10)
    assert resp.status_code == 200, resp.text[:500]
    return resp.json()


def link_line_item(server, link: str) -> int | None:
    return next(l["line_item_id"] for l in gradebook(server)["links"] if l["resource_link_id"] == link)


def history(server, item_id: int, sub: str) -> list[dict]:
    """Every score the platform received for one column and learner, in order of arrival."""
    return [s for s in gradebook(server)["scores"] if s["line_item_id"] == item_id and s["user_id"] == sub]


def grade(server, item_id: int, sub: str) -> float | None:
    found = [g for g in gradebook(server)["grades"] if g["line_item_id"] == item_id and g["user_id"] == sub]
    return found[0]["grade"] if found else None


def wait_for(predicate, timeout: float = 30.0, what: str = "condition", poll: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def wait_for_score(server, item_id: int, sub: str, *, given, activity: str, grading: str, timeout: float = 30.0):
    """Wait until the newest score received for (column, learner) is this one."""
    def arrived():
        scores = history(server, item_id, sub)
        if scores and (scores[-1]["score_given"], scores[-1]["activity_progress"],
                       scores[-1]["grading_progress"]) == (given, activity, grading):
            return scores
        return None
    return wait_for(arrived, timeout, f"{given}/{activity}/{grading} for user {sub} in column {item_id}")


def assert_newest_exactly_once(scores: list[dict], *, given, activity: str = "Completed", grading: str = "FullyGraded"):
    """The platform got the scores of one column and learner in order (strictly increasing
    timestamps, none ignored as older), the last one is the final one, and it arrived once."""
    assert scores, "no score arrived"
    stamps = [s["timestamp"] for s in scores]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), stamps
    assert not any(s["ignored"] for s in scores), scores
    final = scores[-1]
    assert (final["score_given"], final["activity_progress"], final["grading_progress"]) == (given, activity, grading)
    assert sum(1 for s in scores if (s["score_given"], s["timestamp"]) == (final["score_given"], final["timestamp"])) == 1
    ranks = [RANK[s["activity_progress"]] for s in scores]
    assert ranks == sorted(ranks), [s["activity_progress"] for s in scores]


def quiz_form(server, version_id: int, correct: int | None = None) -> dict:
    """Answers to the native course's final quiz: the first ``correct`` questions right (all when None)."""
    return quiz_answers(server, version_id, QUIZ, correct)


class Learner:
    """A learner in the native course, through the development platform and the player, over HTTP."""

    def __init__(self, server, course: dict, link: str, user: str = "learner"):
        self.server, self.course, self.link, self.user = server, course, link, user
        self.sub = SUBS[user]
        self.browser, page = launch_learner(server, link, user=user, browser=Browser())
        self.token = player_token(page)

    def key(self, identifier: str) -> str:
        return next(a["key"] for a in self.course["activities"] if a["identifier"] == identifier)

    def open(self, identifier: str):
        resp = self.browser.get(f"{self.server.url}/player/{self.token}/activity/{self.key(identifier)}")
        assert resp.status_code == 200, resp.text[:1000]
        return resp

    def lessons(self, *identifiers: str) -> None:
        for identifier in identifiers or [a["identifier"] for a in self.course["activities"] if a["kind"] == "lesson"]:
            self.open(identifier)

    def answer_quiz(self, correct: int | None = None):
        url = f"{self.server.url}/player/{self.token}/activity/{self.key(QUIZ)}/quiz"
        resp = self.browser.post(url, data=quiz_form(self.server, self.course["version_id"], correct))
        assert resp.status_code == 200, resp.text[:1000]
        return resp


def quiz_size(server, course) -> int:
    return len(quiz_form(server, course["version_id"]))


def expected_given(server, link: str, sub: str) -> float:
    """The learner's course score on this link as the tool recorded it, as scoreGiven (x 100)."""
    def run():
        from lms_bridge.extensions import db
        from lms_bridge.lti.models import ResourceLink, User
        from lms_bridge.player.models import Attempt

        scaled = db.session.execute(
            db.select(Attempt.score_scaled).join(ResourceLink, ResourceLink.id == Attempt.resource_link_pk)
            .join(User, User.id == Attempt.user_pk).where(ResourceLink.resource_link_id == link, User.sub == sub)
        ).scalar_one()
        db.session.remove()
        return round(scaled * 100, 4)

    return in_app(server, run)


def outbox_rows(server, kind: str = "ags.score") -> list[dict]:
    def run():
        from lms_bridge.extensions import db
        from lms_bridge.outbox import OutboxMessage

        rows = [{"id": m.id, "state": m.state, "dedupe_key": m.dedupe_key, "payload": m.payload,
                 "attempts": m.attempts, "last_status": m.last_status, "last_error": m.last_error}
                for m in db.session.execute(db.select(OutboxMessage).filter_by(kind=kind)
                                            .order_by(OutboxMessage.id)).scalars()]
        db.session.remove()
        return rows

    return in_app(server, run)


@pytest.fixture(scope="module")
def native(live_server):
    return import_course(live_server, MOOC / "hydrogen-fcev-basics-native")


# -- the course's score reaches the gradebook, states in order -------------------------------------


def test_learner_course_scores_arrive_in_order(live_server, native):
    # The link opens the quiz first, so the first score says the learner Started.
    link = place_link(live_server, "Hydrogen course (graded)", course=native["course_id"], activity=QUIZ)
    item = link_line_item(live_server, link)
    learner = Learner(live_server, native, link)
    wait_for_score(live_server, item, learner.sub, given=None, activity="Started", grading="Pending")

    learner.lessons("l1-hydrogen-energy-carrier")
    wait_for_score(live_server, item, learner.sub, given=None, activity="InProgress", grading="Pending")

    learner.lessons()  # every lesson; the quiz is the last required activity
    learner.answer_quiz(correct=0)
    # Everything submitted, below the pass mark: the score is final for now (a retake may raise it).
    wait_for_score(live_server, item, learner.sub, given=0.0, activity="Submitted", grading="FullyGraded")
    assert grade(live_server, item, learner.sub) == 0.0

    n = quiz_size(live_server, native)
    learner.answer_quiz(correct=n // 2)
    half = expected_given(live_server, link, learner.sub)
    assert 0 < half < 80
    wait_for_score(live_server, item, learner.sub, given=half, activity="Submitted", grading="FullyGraded")

    learner.answer_quiz()
    scores = wait_for_score(live_server, item, learner.sub, given=100.0, activity="Completed", grading="FullyGraded")
    assert_newest_exactly_once(scores, given=100.0)
    assert [s["activity_progress"] for s in scores][:2] == ["Started", "InProgress"]
    assert all(s["score_maximum"] == 100.0 for s in scores)
    assert grade(live_server, item, learner.sub) == 100.0
    # The platform's gradebook page shows it, with the progress states.
    page = requests.get(platform_url(live_server, "/gradebook"), timeout=10)
    assert page.status_code == 200 and "Completed / FullyGraded" in page.text and "Started / Pending" in page.text

    # Opening the course again changes nothing: no new score.
    count = len(scores)
    Learner(live_server, native, link).open(QUIZ)
    time.sleep(1.5)
    assert len(history(live_server, item, learner.sub)) == count
    # One outbox row per delivered score, all for this column and learner, the last one delivered.
    rows = [r for r in outbox_rows(live_server) if r["dedupe_key"].endswith(" 4") and f"/{item}/" in r["dedupe_key"]]
    assert rows and rows[-1]["state"] == "delivered"
    assert {r["state"] for r in rows} <= {"delivered", "superseded"}
    assert all(r["payload"]["registration_id"] and r["payload"]["userId"] == "4" for r in rows)


def test_each_learner_has_their_own_score(live_server, native):
    link = place_link(live_server, "Hydrogen course (two learners)", course=native["course_id"])
    item = link_line_item(live_server, link)
    first, second = Learner(live_server, native, link), Learner(live_server, native, link, "learner2")
    first.lessons()
    second.lessons()
    first.answer_quiz()
    second.answer_quiz(correct=quiz_size(live_server, native) - 1)
    wait_for_score(live_server, item, "4", given=100.0, activity="Completed", grading="FullyGraded")
    low = expected_given(live_server, link, "5")
    assert 0 < low < 100
    expected = ("Completed", "FullyGraded") if low >= 80 else ("Submitted", "FullyGraded")
    scores = wait_for_score(live_server, item, "5", given=low, activity=expected[0], grading=expected[1])
    assert_newest_exactly_once(history(live_server, item, "4"), given=100.0)
    assert_newest_exactly_once(scores, given=low, activity=expected[0], grading=expected[1])


def test_a_module_link_reports_the_module(live_server, native):
    """A deep-linked module: its column shows the module's result, complete before the course is."""
    link = place_link(live_server, "Module 3 only", course=native["course_id"], module="m3-mobility-assessment")
    item = link_line_item(live_server, link)
    learner = Learner(live_server, native, link, "learner2")
    learner.lessons("l5-hydrogen-mobility")
    learner.answer_quiz()
    scores = wait_for_score(live_server, item, "5", given=100.0, activity="Completed", grading="FullyGraded")
    assert_newest_exactly_once(scores, given=100.0)

    def attempt_completed():
        from lms_bridge.extensions import db
        from lms_bridge.lti.models import ResourceLink
        from lms_bridge.player.models import Attempt

        row = db.session.execute(db.select(Attempt).join(ResourceLink, ResourceLink.id == Attempt.resource_link_pk)
                                 .where(ResourceLink.resource_link_id == link)).scalar_one()
        db.session.remove()
        return row.completed_at is not None

    assert not in_app(live_server, attempt_completed), "the course itself is not complete: modules 1 and 2 are open"


# -- a link without a lineitem: the tool's own line item -------------------------------------------


def _drop_line_item_claim(server, link: str) -> None:
    """Make the platform launch this link without a ``lineitem`` (an activity created without a grade
    column), as Moodle does for links that have none."""
    def run():
        from lms_bridge.devplatform.models import DevLineItem, DevResourceLink
        from lms_bridge.extensions import db

        row = db.session.get(DevResourceLink, int(link))
        item = db.session.get(DevLineItem, row.line_item_id)
        row.line_item_id = None
        db.session.delete(item)
        db.session.commit()
        db.session.remove()

    in_app(server, run)


def _set_custom(server, link: str, **custom) -> None:
    def run():
        from lms_bridge.devplatform.models import DevResourceLink
        from lms_bridge.extensions import db

        db.session.get(DevResourceLink, int(link)).custom = {k: str(v) for k, v in custom.items()}
        db.session.commit()
        db.session.remove()

    in_app(server, run)


def test_tool_creates_one_line_item_for_a_link_without_one(live_server, native):
    link = place_link(live_server, "Hydrogen course (no column)", course=native["course_id"])
    _drop_line_item_claim(live_server, link)
    before = {i["id"] for i in gradebook(live_server)["line_items"]}
    learners = [Learner(live_server, native, link, user) for user in ("learner", "learner2")]
    for learner in learners:
        learner.lessons()
        learner.answer_quiz()

    def created():
        items = [i for i in gradebook(live_server)["line_items"] if i["id"] not in before]
        return items if items and all(history(live_server, items[0]["id"], l.sub) for l in learners) else None

    items = wait_for(created, 30, "the tool's line item")
    assert len(items) == 1, items  # two learners delivered concurrently, one column
    item = items[0]
    assert item["resource_link_id"] == link and item["resource_id"] == "TRIREME|urn:lms-bridge:mooc:hydrogen-fcev-basics"
    assert item["label"] == "Hydrogen course (no column)" and item["score_maximum"] == 100.0 and item["tag"] is None
    for learner in learners:
        wait_for_score(live_server, item["id"], learner.sub, given=100.0, activity="Completed", grading="FullyGraded")

    # The link is bound to one module now: the same column follows (PUT), no second one.
    _set_custom(live_server, link, course=native["course_id"], module="m3-mobility-assessment")
    newcomer = Learner(live_server, native, link, "anonymous")
    newcomer.lessons("l5-hydrogen-mobility")
    newcomer.answer_quiz()

    def updated():
        now = [i for i in gradebook(live_server)["line_items"] if i["id"] not in before]
        return now if now and now[0]["resource_id"].endswith("#m3-mobility-assessment") else None

    now = wait_for(updated, 30, "the line item to follow the module")
    assert [i["id"] for i in now] == [item["id"]]
    wait_for_score(live_server, item["id"], "6", given=100.0, activity="Completed", grading="FullyGraded")

    def stored():
        from lms_bridge.extensions import db
        from lms_bridge.grading.models import LineItem

        rows = [(r.url, r.resource_id) for r in db.session.execute(db.select(LineItem)).scalars()]
        db.session.remove()
        return rows

    rows = in_app(live_server, stored)
    assert len([r for r in rows if f"/lineitems/{item['id']}/lineitem" in r[0]]) == 1


# -- the AGS client against the platform -----------------------------------------------------------


def _registration(server):
    def run():
        from lms_bridge.devplatform import platform
        from lms_bridge.lti import directory
        from lms_bridge.lti.models import Registration
        from lms_bridge.extensions import db

        reg = db.session.execute(db.select(Registration).filter_by(client_id=platform.DEV_CLIENT_ID)).scalar_one()
        info = directory.registration(reg.id)
        db.session.remove()
        return info

    requests.get(platform_url(server, "/"), timeout=10)  # the platform registers itself on first visit
    return in_app(server, run)


def test_ags_client_line_items_paging_scores_and_results(live_server):
    from lms_bridge.grading import ags

    reg = _registration(live_server)
    container = platform_url(live_server, "/contexts/2/lineitems") + "?type_id=1"
    links = [place_link(live_server, f"Paging {i}") for i in range(3)]

    def run():
        created = [ags.create_line_item(reg, container, label=f"Extra {i}", score_maximum=10, resource_link_id=links[i],
                                        resource_id="lms_bridge:test", tag="same-tag") for i in range(3)]
        # Paging: limit 1 makes the platform send a Link rel="next" on each page.
        everything = ags.list_line_items(reg, container, limit=1)
        tagged = ags.list_line_items(reg, container, tag="same-tag", limit=2)
        found = ags.find_line_item(reg, container, resource_link_id=links[1], resource_id="lms_bridge:test")
        missing = ags.find_line_item(reg, container, resource_link_id=links[1], resource_id="lms_bridge:other")
        updated = ags.update_line_item(reg, created[2].id, label="Renamed", score_maximum=20, resource_link_id=links[2],
                                       resource_id="lms_bridge:test", tag="same-tag")
        fetched = ags.get_line_item(reg, created[2].id)
        status = ags.post_score(reg, created[0].id, {"userId": "4", "scoreGiven": 7, "scoreMaximum": 10,
                                                     "activityProgress": "Completed", "gradingProgress": "FullyGraded",
                                                     "timestamp": "2026-11-21T09:00:00.000+00:00"})
        results = ags.get_results(reg, created[0].id, limit=1)
        ags.delete_line_item(reg, created[1].id)
        ags.delete_line_item(reg, created[1].id)  # already gone: fine
        after = ags.list_line_items(reg, container, tag="same-tag")
        return created, everything, tagged, found, missing, updated, fetched, status, results, after

    created, everything, tagged, found, missing, updated, fetched, status, results, after = in_app(live_server, run)
    ids = [c.id for c in created]
    assert all("?type_id=1" in i and "/lineitem?" in i for i in ids)
    assert set(ids) <= {i.id for i in everything} and len(everything) >= 3 + len(links)
    assert [i.id for i in tagged] == ids
    assert found is not None and found.id == ids[1] and missing is None
    assert (updated.label, updated.score_maximum, fetched.label, fetched.score_maximum) == ("Renamed", 20, "Renamed", 20)
    assert status == 200
    assert [(r["userId"], r["resultScore"], r["resultMaximum"]) for r in results] == [("4", 7.0, 10.0)]
    assert [i.id for i in after] == [ids[0], ids[2]]


def test_tokens_are_cached_and_shared(live_server):
    """Many calls, one token per scope set: the token is cached in the shared store and reused by
    every worker (and by this process)."""
    from lms_bridge.grading import ags, tokens

    reg = _registration(live_server)
    link = place_link(live_server, "Token cache")
    item = link_line_item(live_server, link)
    lineitem = platform_url(live_server, f"/contexts/2/lineitems/{item}/lineitem") + "?type_id=1"
    before = gradebook(live_server)["token_requests"]

    def run():
        key = tokens.cache_key(reg.issuer, reg.client_id, [ags.SCOPE_SCORE])
        from lms_bridge.shared_store import store

        shared = store().get(key)
        for i in range(40):
            ags.post_score(reg, lineitem, {"userId": "5", "scoreGiven": i, "scoreMaximum": 100,
                                           "activityProgress": "InProgress", "gradingProgress": "Pending",
                                           "timestamp": f"2026-11-21T09:00:{i:02d}.000+00:00"})
        return shared, store().get(key)

    shared_before, shared_after = in_app(live_server, run)
    # The earlier tests' workers already hold a score token: then this process fetched none.
    requested = gradebook(live_server)["token_requests"] - before
    assert requested <= 1 if shared_before is None else requested == 0
    assert shared_after is not None and shared_after["scopes"] == [ags.SCOPE_SCORE]
    assert shared_after["expires_at"] - shared_after["issued_at"] == pytest.approx(3600, abs=5)
    assert len(history(live_server, item, "5")) == 40
