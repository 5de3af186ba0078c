"""Helpers shared by the player tests (no tests here): import a course into the live server,
place a development-platform link bound to it, and launch it as a learner over real HTTP."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import requests

from tests.integration.test_devplatform import (
    Browser,
    finish_launch,
    in_app,
    platform_url,
    start_launch,
)

ROOT = Path(__file__).resolve().parents[2]
MOOC = ROOT / "mooc_packages"
FIXTURES = ROOT / "tests" / "fixtures" / "packages"

__all__ = [
    "FIXTURES",
    "MOOC",
    "ROOT",
    "Browser",
    "attempt_rows",
    "commit_config",
    "import_course",
    "in_app",
    "launch_learner",
    "place_link",
    "player_token",
]


def import_course(server, path: Path) -> dict:
    """Import a package into the server's database and storage; returns ids of the course."""
    def run():
        from lms_bridge.extensions import db
        from lms_bridge.packages.service import import_package_outcome

        outcome = import_package_outcome(path)
        v = outcome.version
        info = {"course_id": v.course_id, "version_id": v.id, "format": v.format, "title": v.title,
                "activities": [{"key": a.activity_key, "identifier": a.identifier, "kind": a.kind, "title": a.title,
                                "mastery_score": a.mastery_score, "move_on": a.move_on}
                               for a in sorted(v.activities, key=lambda a: (a.module.position, a.position, a.id))]}
        db.session.remove()
        return info

    return in_app(server, run)


def place_link(server, title: str, **custom) -> str:
    """A development-platform activity with custom parameters; returns its resource link id."""
    requests.get(platform_url(server, "/"))  # the platform registers itself on first visit

    def run():
        from lms_bridge.devplatform import platform
        from lms_bridge.extensions import db

        with server.app.test_request_context(base_url=server.url):
            client = platform.ensure_registered()
            link = platform.place_link(client, title=title, target_link_uri=client.tool_configuration["target_link_uri"],
                                       custom={k: str(v) for k, v in custom.items()})
            db.session.commit()
            rid = link.resource_link_id
        db.session.remove()
        return rid

    return in_app(server, run)


def launch_learner(server, link: str, user: str = "learner", browser: Browser | None = None):
    """Launch ``link`` from the development platform as ``user``; returns (browser, landing page response)."""
    browser = browser or Browser()
    fields, _claims = start_launch(server, browser, user=user, link=link, target="window")
    page = finish_launch(server, browser, fields)
    return browser, page


def player_token(page) -> str:
    m = re.search(r'href="/player/([A-Za-z0-9_-]+)/activity/', page.text)
    assert m, page.text[:3000]
    return m.group(1)


def commit_config(page) -> dict:
    import html
    import json

    m = re.search(r'<script type="application/json" id="scorm-config">(.*?)</script>', page.text, re.DOTALL)
    assert m, page.text[:3000]
    return json.loads(html.unescape(m.group(1)))


def attempt_rows(server, link: str | None = None, **filters):
    """Attempts (filtered by columns, or by the development platform's resource link id), their
    activity progress rows and their events."""
    def run():
        from lms_bridge.extensions import db
        from lms_bridge.lti.models import ResourceLink
        from lms_bridge.player.models import ActivityProgress, Attempt, ProgressEvent

        query = db.select(Attempt).filter_by(**filters)
        if link is not None:
            query = query.join(ResourceLink, ResourceLink.id == Attempt.resource_link_pk).where(
                ResourceLink.resource_link_id == str(link))
        attempts = [{"id": a.id, "user_pk": a.user_pk, "course_id": a.course_id, "status": a.status,
                     "completed": a.completed_at is not None, "score": a.score_scaled, "last": a.last_activity_key,
                     "registration": a.registration}
                    for a in db.session.execute(query).scalars()]
        ids = [a["id"] for a in attempts]
        progress = [{"attempt": p.attempt_id, "key": p.activity_key, "completion": p.completion_status,
                     "success": p.success_status, "scaled": p.score_scaled, "location": p.location,
                     "suspend": p.suspend_data, "seq": (p.client_session, p.client_seq), "time": p.total_time_seconds}
                    for p in db.session.execute(db.select(ActivityProgress).where(
                        ActivityProgress.attempt_id.in_(ids))).scalars()] if ids else []
        events = [{"kind": e.kind, "attempt": e.attempt_id, "key": e.activity_key, "payload": e.payload}
                  for e in db.session.execute(db.select(ProgressEvent).where(
                      ProgressEvent.attempt_id.in_(ids)).order_by(ProgressEvent.id)).scalars()] if ids else []
        db.session.remove()
        return {"attempts": attempts, "progress": progress, "events": events}

    return in_app(server, run)


def url_path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def quiz_answers(server, version_id: int, identifier: str, correct: int | None = None) -> dict:
    """A quiz form for a native or QTI quiz activity: the first ``correct`` questions answered right
    (all when None), the others left blank; the key is read from the database, never from the page."""
    def run():
        from lms_bridge.extensions import db
        from lms_bridge.packages.models import Activity

        quiz = db.session.execute(db.select(Activity).filter_by(version_id=version_id, identifier=identifier)
                                  ).scalar_one().quiz
        db.session.remove()
        return quiz

    form: dict = {}
    for i, q in enumerate(in_app(server, run)["questions"]):
        if correct is not None and i >= correct:
            continue
        name = "q-" + q["identifier"]
        if q["kind"] in ("single", "true_false"):
            form[name] = next(c["identifier"] for c in q["choices"] if c["correct"])
        elif q["kind"] == "multiple":
            form[name] = [c["identifier"] for c in q["choices"] if c["correct"]]
        elif q["kind"] == "fill_in":
            form[name] = q["answers"][0]
    return form
