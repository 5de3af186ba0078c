"""The teacher's class dashboard over real HTTP against gunicorn and the development platform: the
roster pulled with Names and Role Provisioning (paged by the platform, ``Link: rel="next"``
followed), members who never launched, each member's progress, score and completion per module,
the CSV export with the same data, the per-module progress distribution (SVG + table); roster
failures shown without losing the last roster; a platform that offers no roster; and the NRPS
client against a real HTTP server that pages, loops, points elsewhere or fails."""
from __future__ import annotations

import csv
import html
import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.integration.test_devplatform import error_code, in_app, platform_url
from tests.integration.test_player_common import (
    MOOC,
    import_course,
    launch_learner,
    place_link,
    player_token,
    quiz_answers,
)
from tests.support.platform import INSTRUCTOR, SimPlatform

ROW = re.compile(r'<tr data-user-id="([^"]+)" data-status="(\w+)" data-progress="(\d+)"\s+data-score="([^"]*)"')


@pytest.fixture(scope="module")
def native(live_server):
    return import_course(live_server, MOOC / "hydrogen-fcev-basics-native")


@pytest.fixture
def small_pages(live_server):
    """The development platform pages rosters at 2 members, as Canvas pages at its own size."""
    def set_size(size):
        from lms_bridge.devplatform.nrps import set_page_size

        set_page_size(size)

    in_app(live_server, lambda: set_size(2))
    yield
    in_app(live_server, lambda: set_size(None))


def rows(page) -> dict[str, dict]:
    found = {uid: {"status": status, "progress": int(progress), "score": score}
             for uid, status, progress, score in ROW.findall(page.text)}
    assert found, page.text[:3000]
    return found


def module_cells(page, user_id: str) -> dict[str, str]:
    row = re.search(rf'<tr data-user-id="{user_id}".*?</tr>', page.text, re.DOTALL).group(0)
    return dict(re.findall(r'<td class="num" data-module="([^"]+)">([^<]+)</td>', row))


def distribution(page) -> dict[str, dict[str, int]]:
    table = re.search(r'<table id="distribution">.*?</table>', page.text, re.DOTALL).group(0)
    out = {}
    for module, body in re.findall(r'<tr data-module="([^"]+)">(.*?)</tr>', table, re.DOTALL):
        out[module] = {b: int(n) for b, n in re.findall(r'data-bin="(\w+)">(\d+)<', body)}
    return out


def chart(page) -> dict[str, list[tuple[str, int]]]:
    svg = re.search(r'<svg id="progress-chart".*?</svg>', page.text, re.DOTALL).group(0)
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg
    return re.findall(r'data-bin="(\w+)" data-count="(\d+)"', svg)


def roster_row(server):
    def run():
        from lms_bridge.extensions import db
        from lms_bridge.grading.nrps import Roster, RosterMember

        row = db.session.execute(db.select(Roster).order_by(Roster.id.desc())).scalars().first()
        out = {"members": row.member_count, "pages": row.page_count, "synced_at": row.synced_at,
               "error": row.last_error,
               "stored": db.session.query(RosterMember).filter_by(context_pk=row.context_pk).count()}
        db.session.remove()
        return out

    return in_app(server, run)


def open_activity(server, browser, page, key):
    resp = browser.get(f"{server.url}/player/{player_token(page)}/activity/{key}")
    assert resp.status_code == 200, resp.text[:1000]
    return resp


def teach_token(page) -> str:
    return re.search(r'/teach/([A-Za-z0-9_-]+)/', page.text).group(1)


# -- the dashboard ------------------------------------------------------------------------------


def test_dashboard_roster_progress_chart_and_csv(live_server, native, small_pages):
    link = place_link(live_server, "Hydrogen for the dashboard", course=native["course_id"])
    lessons = [a for a in native["activities"] if a["kind"] == "lesson"]
    quiz = next(a for a in native["activities"] if a["kind"] == "quiz")

    # Lena opens the two lessons of module 1; Leo, the anonymous learner and the admin never launch.
    lena, page = launch_learner(live_server, link)
    open_activity(live_server, lena, page, lessons[1]["key"])

    teacher, page = launch_learner(live_server, link, user="teacher")
    assert 'data-view="instructor"' in page.text and 'data-state="dashboard"' in page.text
    token = teach_token(page)
    # The course's roster may be fresh from another test's dashboard: fetch it again, in small pages.
    assert teacher.post(f"{live_server.url}/teach/{token}/dashboard/roster").status_code == 303
    page = teacher.get(f"{live_server.url}/teach/{token}/dashboard")
    text = html.unescape(page.text)
    assert "Hydrogen fuel-cell vehicle basics" in text and 'id="roster-error"' not in text
    members = rows(page)
    assert set(members) == {"2", "3", "4", "5", "6"}  # everyone on the roster, launched or not
    assert members["4"] == {"status": "in_progress", "progress": 33, "score": ""}
    assert members["5"]["status"] == members["6"]["status"] == "never_launched"
    assert "Leo Lindqvist" in text and "leo.lindqvist@example.org" in text  # from NRPS: Leo never launched
    assert "Anonymous user" in text and "Ada Admin" in text
    assert module_cells(page, "4") == {"m1-hydrogen-fuel-cells": "2/2", "m2-vehicle-workshop": "0/2",
                                       "m3-mobility-assessment": "0/2"}
    assert module_cells(page, "5") == {"m1-hydrogen-fuel-cells": "0/2", "m2-vehicle-workshop": "0/2",
                                       "m3-mobility-assessment": "0/2"}
    # The roster came in 3 pages of 2 members: every rel="next" link was followed.
    stored = roster_row(live_server)
    assert stored["pages"] == 3 and stored["members"] == 5 and stored["stored"] == 5 and stored["error"] is None
    assert 'id="stat-learners">3<' in page.text and 'id="stat-launched">1<' in page.text

    # Distribution per module over the 3 learners (teacher and admin are not learners).
    assert distribution(page) == {
        "m1-hydrogen-fuel-cells": {"none": 2, "low": 0, "some": 0, "half": 0, "most": 0, "done": 1},
        "m2-vehicle-workshop": {"none": 3, "low": 0, "some": 0, "half": 0, "most": 0, "done": 0},
        "m3-mobility-assessment": {"none": 3, "low": 0, "some": 0, "half": 0, "most": 0, "done": 0},
    }
    assert chart(page) == [("none", "2"), ("done", "1"), ("none", "3"), ("none", "3")]

    # Leo completes the course: every lesson, then the quiz, passed.
    leo, page = launch_learner(live_server, link, user="learner2")
    for lesson in lessons[1:]:
        open_activity(live_server, leo, page, lesson["key"])
    page = open_activity(live_server, leo, page, quiz["key"])
    answered = leo.post(f"{live_server.url}/player/{player_token(page)}/activity/{quiz['key']}/quiz",
                        data=quiz_answers(live_server, native["version_id"], quiz["identifier"]))
    assert answered.status_code == 200 and "you passed" in answered.text

    board = teacher.get(f"{live_server.url}/teach/{token}/dashboard")
    assert board.status_code == 200
    members = rows(board)
    assert members["5"] == {"status": "completed", "progress": 100, "score": "100"}
    assert members["4"]["status"] == "in_progress" and members["6"]["status"] == "never_launched"
    assert module_cells(board, "5")["m3-mobility-assessment"] == "2/2"
    assert distribution(board)["m3-mobility-assessment"]["done"] == 1
    assert 'id="stat-completed">1<' in board.text and 'id="stat-score">100 %<' in board.text

    # The CSV holds the same people and numbers.
    export = teacher.get(f"{live_server.url}/teach/{token}/dashboard.csv")
    assert export.status_code == 200 and export.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in export.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
    by_id = {r["user_id"]: r for r in table}
    assert set(by_id) == set(members)
    for uid, member in members.items():
        assert by_id[uid]["status"] == member["status"] and int(by_id[uid]["progress_percent"]) == member["progress"]
        assert by_id[uid]["score_percent"] == member["score"]
    assert by_id["5"]["name"] == "Leo Lindqvist" and by_id["5"]["completed_at"].endswith("Z")
    assert by_id["4"]["Module 1: Hydrogen and fuel cells (% done)"] == "100"
    assert by_id["3"]["role"] == "Instructor" and by_id["2"]["role"] == "Administrator"
    assert by_id["6"]["on_roster"] == "yes"

    # "Update the roster" fetches again at once.
    before = roster_row(live_server)["synced_at"]
    refreshed = teacher.post(f"{live_server.url}/teach/{token}/dashboard/roster")
    assert refreshed.status_code == 303 and refreshed.headers["Location"].endswith(f"/teach/{token}/dashboard")
    assert roster_row(live_server)["synced_at"] > before


def test_roster_failure_keeps_the_last_roster_and_says_why(live_server, native):
    link = place_link(live_server, "Hydrogen, roster trouble", course=native["course_id"])
    teacher, page = launch_learner(live_server, link, user="teacher")
    token = teach_token(page)
    assert len(rows(page)) == 5
    fault = requests.put(platform_url(live_server, "/faults"), json={"mode": "refuse", "endpoints": ["memberships"]})
    assert fault.status_code == 200, fault.text
    try:
        assert teacher.post(f"{live_server.url}/teach/{token}/dashboard/roster").status_code == 303
        page = teacher.get(f"{live_server.url}/teach/{token}/dashboard")
    finally:
        requests.delete(platform_url(live_server, "/faults"))
    assert page.status_code == 200 and 'id="roster-error"' in page.text
    assert "HTTP 401" in page.text and "Names and Role Provisioning" in html.unescape(page.text)
    assert len(rows(page)) == 5  # the last roster is still shown
    assert roster_row(live_server)["error"]
    # Once the platform answers again, the error goes away.
    assert teacher.post(f"{live_server.url}/teach/{token}/dashboard/roster").status_code == 303
    page = teacher.get(f"{live_server.url}/teach/{token}/dashboard")
    assert 'id="roster-error"' not in page.text and roster_row(live_server)["error"] is None


def test_without_nrps_the_dashboard_lists_who_launched(live_server, native):
    lms = SimPlatform(live_server, auto_activate=True)
    custom = {"course": str(native["course_id"])}
    link = {"id": "link-dash", "title": "Hydrogen in Sim LMS"}
    http = requests.Session()
    resp = lms.launch(http, lti_custom=custom, lti_resource_link=link)
    assert resp.status_code == 303, (error_code(resp), resp.text[:500])
    assert 'data-state="playing"' in http.get(live_server.url + resp.headers["Location"]).text
    teacher = requests.Session()
    resp = lms.launch(teacher, sub="teacher-9", name="Tom Teacher", lti_roles=[INSTRUCTOR], lti_custom=custom,
                      lti_resource_link=link)
    page = teacher.get(live_server.url + resp.headers["Location"])
    assert page.status_code == 200 and 'data-state="dashboard"' in page.text
    assert 'id="no-roster"' in page.text and 'id="refresh-roster"' not in page.text
    assert rows(page) == {"user-1": {"status": "in_progress", "progress": 17, "score": ""}}
    token = teach_token(page)
    refused = teacher.post(f"{live_server.url}/teach/{token}/dashboard/roster")
    assert refused.status_code == 400 and error_code(refused) == "no_roster_service"


# -- the NRPS client against a real HTTP server ------------------------------------------------------


class _Roster(BaseHTTPRequestHandler):
    """An NRPS endpoint whose pages (and their Link headers) the test sets in ``server.pages``."""

    def do_GET(self):
        self.server.seen.append((self.path, self.headers.get("Accept"), self.headers.get("Authorization")))
        status, body, link = self.server.pages.get(self.path.split("?")[0] + "?" + (self.path.split("?") + [""])[1],
                                                   (404, {"error": "no such page"}, None))
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.ims.lti-nrps.v2.membershipcontainer+json")
        if link:
            self.send_header("Link", link)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def nrps_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Roster)
    httpd.pages, httpd.seen = {}, []
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()


def fetch(server, url, **kw):
    def run():
        from lms_bridge.grading.nrps import RosterError, fetch_memberships

        try:
            return fetch_memberships(url, "tok-123", **kw)
        except RosterError as exc:
            return exc

    return in_app(server, run)


def member(uid, **extra):
    return {"user_id": uid, "roles": ["Learner"], **extra}


def test_nrps_client_follows_pages_and_refuses_what_it_must(live_server, nrps_server):
    base = nrps_server.base
    first = "/ctx/7/memberships?type_id=3&rlid=rl-1"
    nrps_server.pages = {
        first: (200, {"id": base + first, "context": {"id": "7"}, "members": [member("a", name="Ann"), {"roles": []}]},
                f'<{base}/ctx/7/memberships?type_id=3&rlid=rl-1&p=2>; rel="next", <{base}/x>; rel="differences"'),
        "/ctx/7/memberships?type_id=3&rlid=rl-1&p=2": (200, {"members": [member("b", status="Inactive"),
                                                                       member("c", status="Deleted")]},
                                                      '</ctx/7/memberships?type_id=3&rlid=rl-1&p=3>; rel="next"'),
        "/ctx/7/memberships?type_id=3&rlid=rl-1&p=3": (200, {"members": [member("d", email="d@example.org")]}, None),
    }
    result = fetch(live_server, base + "/ctx/7/memberships?type_id=3", rlid="rl-1")
    assert not isinstance(result, Exception), result
    assert [m.user_id for m in result.members] == ["a", "b", "c", "d"] and result.pages == 3 and result.skipped == 1
    assert [m.status for m in result.members] == ["Active", "Inactive", "Deleted", "Active"]
    assert result.members[0].roles == ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"]
    assert result.context == {"id": "7"}
    path, accept, auth = nrps_server.seen[0]
    assert accept == "application/vnd.ims.lti-nrps.v2.membershipcontainer+json" and auth == "Bearer tok-123"
    assert path == first  # the platform's own query kept, rlid added

    # A next page on another host never gets the token; a loop stops; failures say what to do.
    nrps_server.pages = {"/r?": (200, {"members": []}, '<http://elsewhere.example.org/r?p=2>; rel="next"')}
    assert "on another host" in str(fetch(live_server, base + "/r"))
    nrps_server.pages = {"/r?": (200, {"members": []}, f'<{base}/r>; rel="next"')}
    assert "loop back" in str(fetch(live_server, base + "/r"))
    for status, words in ((401, "IMS LTI Names and Role Provisioning"), (403, "refused the roster"),
                          (404, "no roster"), (503, "HTTP 503")):
        nrps_server.pages = {"/r?": (status, {"error": "x"}, None)}
        error = fetch(live_server, base + "/r")
        assert isinstance(error, Exception) and words in str(error) and error.status == status
    nrps_server.pages = {"/r?": (200, b"<html>not json</html>", None)}
    assert "not JSON" in str(fetch(live_server, base + "/r"))
    nrps_server.pages = {"/r?": (200, {"no": "members"}, None)}
    assert "no members list" in str(fetch(live_server, base + "/r"))
    assert "could not be reached" in str(fetch(live_server, "http://127.0.0.1:9/r"))
