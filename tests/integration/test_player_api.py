"""The player over real HTTP against gunicorn (2 workers) and the development platform: course
binding from custom parameters, the SCORM commit API (ordering, idempotency, tokens,
authorisation), quiz submission graded on the server, and cmi5 launch, fetch, state and statements."""
from __future__ import annotations

import html
import json
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.integration.test_player_common import (
    FIXTURES,
    MOOC,
    Browser,
    attempt_rows,
    commit_config,
    import_course,
    launch_learner,
    place_link,
    player_token,
)


@pytest.fixture(scope="module")
def scorm(live_server):
    info = import_course(live_server, MOOC / "battery-safety-ev-scorm2004")
    return {**info, "link": place_link(live_server, "SCORM 2004 course", course=info["course_id"])}


@pytest.fixture(scope="module")
def native(live_server):
    info = import_course(live_server, MOOC / "hydrogen-fcev-basics-native")
    return {**info, "link": place_link(live_server, "Native course", course=info["course_id"])}


@pytest.fixture(scope="module")
def cmi5(live_server):
    info = import_course(live_server, MOOC / "digital-skills-workshop-cmi5")
    return {**info, "link": place_link(live_server, "cmi5 course", course=info["course_id"])}


def frame_src(page) -> str:
    m = re.search(r'<iframe id="content-frame"[^>]*?\s(?:src|data-src)="([^"]+)"', page.text, re.DOTALL)
    assert m, page.text[:3000]
    return html.unescape(m.group(1))


def open_activity(server, browser: Browser, page, key: str):
    token = player_token(page)
    resp = browser.get(f"{server.url}/player/{token}/activity/{key}")
    assert resp.status_code == 200, resp.text[:2000]
    return resp


def commit(cfg, seq, cmi, session=None, token=None, url=None, **kw):
    body = {"token": cfg["token"] if token is None else token, "session": session or cfg["session"], "seq": seq,
            "cmi": cmi}
    return requests.post(url or cfg["commitUrl"], data=json.dumps(body), **kw)


# -- binding ------------------------------------------------------------------------------------


def test_link_without_course_says_not_set_up(live_server):
    link = place_link(live_server, "Unbound activity")
    _, page = launch_learner(live_server, link)
    assert 'data-state="not-set-up"' in page.text and 'data-view="learner"' in page.text
    assert "is not set up yet" in page.text and 'id="not-set-up"' in page.text


def test_link_to_a_missing_course_explains(live_server):
    link = place_link(live_server, "Broken activity", course="urn:no-such-course")
    browser = Browser()
    from tests.integration.test_devplatform import start_launch

    fields, _ = start_launch(live_server, browser, user="learner", link=link, target="window")
    resp = browser.post(live_server.url + "/lti/launch", data=fields)
    page = browser.get(live_server.url + resp.headers["Location"])
    assert page.status_code == 200 and "urn:no-such-course" in page.text and 'id="binding-error"' in page.text


def test_instructor_keeps_the_landing(live_server, scorm):
    _, page = launch_learner(live_server, scorm["link"], user="teacher")
    assert 'data-view="instructor"' in page.text and "content-frame" not in page.text


def test_player_page_shape(live_server, scorm):
    _, page = launch_learner(live_server, scorm["link"])
    text = page.text
    assert 'data-state="playing"' in text and 'role="progressbar"' in text and 'aria-valuenow="0"' in text
    assert 'sandbox="allow-scripts allow-same-origin allow-forms allow-popups' in text
    assert "allow-top-navigation" not in text
    cfg = commit_config(page)
    # The runtime never gets the launch token; the commit token names one attempt only.
    launch_token = player_token(page)
    assert launch_token not in json.dumps(cfg) and launch_token not in frame_src(page)
    # The SCORM runtime page frames the SCO, both on the content origin.
    assert frame_src(page).startswith(live_server.content_url + "/content-runtime/")
    assert cfg["scoUrl"].startswith(live_server.content_url + f"/content/{scorm['version_id']}/")
    assert cfg["version"] == "scorm2004" and cfg["cmi"]["cmi.entry"] == "ab-initio"
    assert page.headers["Cache-Control"] == "no-store"


# -- SCORM commits ------------------------------------------------------------------------------


def test_scorm_commits_are_ordered_and_idempotent(live_server, scorm):
    browser, page = launch_learner(live_server, scorm["link"], user="learner2")
    quiz = next(a for a in scorm["activities"] if a["identifier"] == "Q1-final-quiz")
    page = open_activity(live_server, browser, page, quiz["key"])
    cfg = commit_config(page)
    assert cfg["cmi"]["cmi.scaled_passing_score"] == "0.8"

    r1 = commit(cfg, 1, {"completion_status": "incomplete", "location": "q3", "suspend_data": "{\"a\":1}",
                         "total_time": "PT30S"})
    assert r1.status_code == 200 and r1.json()["applied"] and r1.json()["result"] is True
    r3 = commit(cfg, 3, {"completion_status": "completed", "success_status": "passed", "location": "q10",
                         "score": {"scaled": "0.9", "raw": "9", "min": "0", "max": "10"}, "total_time": "PT2M"})
    assert r3.json()["events"] == ["score_changed", "activity_completed"] and r3.json()["progress"]["done"] == 1
    # A late commit (seq 2) arrives after seq 3: ignored, but the runtime is told all is well.
    r2 = commit(cfg, 2, {"completion_status": "incomplete", "location": "q5", "score": {"scaled": "0.1"}})
    assert r2.status_code == 200 and r2.json() == {"result": True, "errorCode": 0, "applied": False, "reason": "stale",
                                                    "events": []}
    again = commit(cfg, 3, {"completion_status": "completed", "success_status": "passed"})
    assert again.json()["reason"] == "duplicate"
    # Terminate's commit is a sendBeacon: text/plain, token in the body only.
    beacon = commit(cfg, 4, {"completion_status": "completed", "success_status": "passed", "location": "q10",
                             "exit": "normal", "score": {"scaled": "0.9", "raw": "9", "min": "0", "max": "10"},
                             "total_time": "PT2M10S"}, headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert beacon.status_code == 200 and beacon.json()["applied"]
    rows = attempt_rows(live_server, link=scorm["link"])
    row = next(p for p in rows["progress"] if p["key"] == quiz["key"])
    assert (row["completion"], row["success"], row["scaled"], row["location"], row["time"], row["seq"]) == \
        ("completed", "passed", 0.9, "q10", 130.0, (cfg["session"], 4))

    # The next launch of the SCO resumes from what was stored and starts a new session.
    page = open_activity(live_server, browser, page, quiz["key"])
    cfg2 = commit_config(page)
    assert cfg2["session"] == cfg["session"] + 1
    assert cfg2["cmi"]["cmi.location"] == "q10" and cfg2["cmi"]["cmi.success_status"] == "passed"
    assert cfg2["cmi"]["cmi.score.scaled"] == "0.9" and cfg2["cmi"]["cmi.total_time"] == "PT2M10S"
    # A commit still in flight from the previous session is now stale.
    assert commit(cfg, 99, {"location": "old"}).json()["reason"] == "stale"
    assert commit(cfg2, 1, {"location": "new"}).json()["applied"]


def test_commit_tokens_are_narrow(live_server, scorm):
    _browser1, page1 = launch_learner(live_server, scorm["link"])
    _browser2, page2 = launch_learner(live_server, scorm["link"], user="learner2")
    cfg1, cfg2 = commit_config(page1), commit_config(page2)
    assert cfg1["commitUrl"] != cfg2["commitUrl"]
    # Learner 2's token cannot write learner 1's attempt.
    forbidden = commit(cfg1, 50, {"location": "hijack"}, token=cfg2["token"])
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"
    assert commit(cfg1, 50, {"location": "x"}, token="").status_code == 401
    assert commit(cfg1, 50, {"location": "x"}, token=cfg1["token"][:-2] + "xx").status_code == 401
    # The launch token is no commit token.
    assert commit(cfg1, 50, {"location": "x"}, token=player_token(page1)).status_code == 401
    # A commit token opens no page.
    assert requests.get(f"{live_server.url}/player/{cfg1['token']}/progress.json").status_code == 404
    assert requests.get(f"{live_server.url}/launch/{cfg1['token']}").status_code == 404
    bad = requests.post(cfg1["commitUrl"], data="not json")
    assert bad.status_code == 400 and bad.json()["result"] is False
    rows = attempt_rows(live_server, course_id=scorm["course_id"])
    assert all(p["location"] != "hijack" for p in rows["progress"])


def test_scorm_12_commit(live_server):
    info = import_course(live_server, FIXTURES / "scorm12" / "golf_runtime_basic_calls")

    assert info["format"] == "scorm12"
    link = place_link(live_server, "SCORM 1.2 golf", course=info["course_id"])
    browser, page = launch_learner(live_server, link)
    sco = next(a for a in info["activities"] if a["kind"] == "sco")
    page = open_activity(live_server, browser, page, sco["key"])
    cfg = commit_config(page)
    assert cfg["version"] == "scorm12" and cfg["cmi"]["cmi.core.entry"] == "ab-initio"
    assert cfg["cmi"]["cmi.core.student_name"] == "Learner, Lena"
    resp = commit(cfg, 1, {"core": {"lesson_status": "passed", "score": {"raw": "85", "min": "0", "max": "100"},
                                    "lesson_location": "page3", "exit": "suspend", "total_time": "0000:01:30.00"},
                           "suspend_data": "abc"})
    assert resp.json()["applied"] and "activity_completed" in resp.json()["events"]
    rows = attempt_rows(live_server, course_id=info["course_id"])
    row = next(p for p in rows["progress"] if p["key"] == sco["key"])
    assert (row["completion"], row["success"], row["scaled"], row["location"], row["suspend"], row["time"]) == ("completed", "passed", 0.85, "page3", "abc", 90.0)


# -- quizzes ------------------------------------------------------------------------------------


def quiz_key(server, version_id, identifier):
    from tests.integration.test_player_common import in_app

    def run():
        from lms_bridge.extensions import db
        from lms_bridge.packages.models import Activity

        return db.session.execute(db.select(Activity).filter_by(version_id=version_id, identifier=identifier)).scalar_one().quiz

    return in_app(server, run)


def test_quiz_is_graded_on_the_server(live_server, native):
    browser, page = launch_learner(live_server, native["link"])
    quiz = next(a for a in native["activities"] if a["kind"] == "quiz")
    page = open_activity(live_server, browser, page, quiz["key"])
    key = quiz_key(live_server, native["version_id"], quiz["identifier"])
    # The page holds the questions, never the answer key or the feedback.
    assert 'id="quiz-form"' in page.text and "<fieldset" in page.text and "<legend>" in page.text
    for q in key["questions"]:
        for text in [*(q.get("answers") or []), q.get("correct_feedback"), q.get("general_feedback")]:
            if text and len(text) > 12:
                assert text not in page.text, text
    form = {}
    for q in key["questions"]:
        name = "q-" + q["identifier"]
        if q["kind"] in ("single", "true_false"):
            form[name] = next(c["identifier"] for c in q["choices"] if c["correct"])
        elif q["kind"] == "multiple":
            form[name] = [c["identifier"] for c in q["choices"] if c["correct"]]
        elif q["kind"] == "fill_in":
            form[name] = q["answers"][0].upper()  # case-insensitive
    token = player_token(page)
    url = f"{live_server.url}/player/{token}/activity/{quiz['key']}/quiz"
    wrong = browser.post(url, data={})
    assert wrong.status_code == 200 and "not passed yet" in wrong.text and 'id="quiz-result"' in wrong.text
    right = browser.post(url, data=form)
    assert right.status_code == 200 and "you passed" in right.text and "100 %" in right.text
    assert 'class="feedback"' in right.text
    rows = attempt_rows(live_server, link=native["link"])
    row = next(p for p in rows["progress"] if p["key"] == quiz["key"])
    assert (row["completion"], row["success"], row["scaled"]) == ("completed", "passed", 1.0)
    scores = [e["payload"]["score_scaled"] for e in rows["events"] if e["kind"] == "score_changed"]
    assert scores == [0.0, 1.0]
    # A worse retake does not lower the recorded score.
    worse = browser.post(url, data={})
    assert "earlier, higher score stays recorded" in worse.text
    row = next(p for p in attempt_rows(live_server, link=native["link"])["progress"] if p["key"] == quiz["key"])
    assert row["scaled"] == 1.0 and row["success"] == "passed"
    # Another learner's launch token cannot submit into this attempt: it has its own.
    _other, other_page = launch_learner(live_server, native["link"], user="learner2")
    assert player_token(other_page) != token


# -- cmi5 ---------------------------------------------------------------------------------------

XAPI = {"X-Experience-API-Version": "1.0.3", "Content-Type": "application/json"}
CMI5 = "https://w3id.org/xapi/cmi5/context/categories/cmi5"
MOVEON = "https://w3id.org/xapi/cmi5/context/categories/moveon"
VERB = "http://adlnet.gov/expapi/verbs/"


class Au:
    def __init__(self, launch_url: str):
        q = {k: v[0] for k, v in parse_qs(urlsplit(launch_url).query).items()}
        self.endpoint, self.fetch, self.registration = q["endpoint"], q["fetch"], q["registration"]
        self.activity_id, self.actor = q["activityId"], json.loads(q["actor"])
        self.token = None
        self.launch_data = None

    def headers(self, **extra):
        return {**XAPI, "Authorization": "Basic " + self.token, **extra}

    def state_url(self, state_id):
        return self.endpoint + "activities/state"

    def state_params(self, state_id):
        return {"stateId": state_id, "activityId": self.activity_id, "agent": json.dumps(self.actor),
                "registration": self.registration}

    def statement(self, verb, result=None, moveon=False, **overrides):
        context = json.loads(json.dumps(self.launch_data["contextTemplate"]))
        context["registration"] = self.registration
        cats = [{"id": CMI5}] + ([{"id": MOVEON}] if moveon else [])
        context.setdefault("contextActivities", {})["category"] = cats
        st = {"id": str(uuid.uuid4()), "actor": self.actor, "verb": {"id": VERB + verb},
              "object": {"objectType": "Activity", "id": self.activity_id}, "context": context}
        if result is not None:
            st["result"] = result
        st.update(overrides)
        return st

    def send(self, st, **headers):
        return requests.post(self.endpoint + "statements", data=json.dumps(st), headers=self.headers(**headers))


def launch_au(live_server, cmi5, identifier_suffix, user="learner"):
    browser, page = launch_learner(live_server, cmi5["link"], user=user)
    au = next(a for a in cmi5["activities"] if a["identifier"].endswith(identifier_suffix))
    page = open_activity(live_server, browser, page, au["key"])
    return au, Au(frame_src(page))


def test_cmi5_launch_fetch_and_launch_data(live_server, cmi5):
    au, client = launch_au(live_server, cmi5, ":final-quiz")
    assert client.activity_id == au["identifier"] and client.endpoint == live_server.url + "/player/xapi/"
    assert client.actor["account"]["name"] == "4" and "mbox" not in client.actor  # no personal data
    uuid.UUID(client.registration)
    first = requests.post(client.fetch)
    assert first.status_code == 200 and first.headers["X-Experience-API-Version"] == "1.0.3"
    client.token = first.json()["auth-token"]
    again = requests.post(client.fetch)
    assert again.json()["error-code"] == "1"
    # LMS.LaunchData (cmi5 §10).
    resp = requests.get(client.state_url("LMS.LaunchData"), params=client.state_params("LMS.LaunchData"),
                        headers=client.headers())
    data = resp.json()
    assert resp.status_code == 200 and data["launchMode"] == "Normal" and data["moveOn"] == "Passed"
    assert data["masteryScore"] == 0.8 and data["returnURL"].endswith("/player/cmi5/returned")
    session_id = data["contextTemplate"]["extensions"]["https://w3id.org/xapi/cmi5/context/extensions/sessionid"]
    uuid.UUID(session_id)
    assert requests.put(client.state_url("x"), params=client.state_params("LMS.LaunchData"), data="{}",
                        headers=client.headers()).status_code == 403
    # Without the version header, or the token, nothing is answered.
    assert requests.get(client.endpoint + "about").json()["version"] == ["1.0.3"]
    assert requests.post(client.endpoint + "statements", data="{}", headers={"Authorization": "Basic " + client.token,
                                                                             "Content-Type": "application/json"}).status_code == 400
    assert requests.post(client.endpoint + "statements", data="{}", headers=XAPI).status_code == 401
    # CORS preflight for AUs on another origin.
    pre = requests.options(client.endpoint + "statements", headers={"Origin": live_server.content_url,
                                                                   "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == live_server.content_url


def test_cmi5_statements_become_progress(live_server, cmi5):
    au, client = launch_au(live_server, cmi5, ":final-quiz", user="learner2")
    client.token = requests.post(client.fetch).json()["auth-token"]
    client.launch_data = requests.get(client.state_url("LMS.LaunchData"), params=client.state_params("LMS.LaunchData"),
                                      headers=client.headers()).json()
    # Nothing before initialized.
    early = client.send(client.statement("passed", {"success": True, "score": {"scaled": 0.9}}, moveon=True))
    assert early.status_code == 403 and "initialized" in early.json()["error"]
    init = client.statement("initialized")
    resp = client.send(init)
    assert resp.status_code == 200 and resp.json() == [init["id"]]
    # Statements about someone or something else are refused.
    assert client.send(client.statement("completed", {"completion": True}, moveon=True,
                                        actor={"account": {"homePage": "x", "name": "5"}})).status_code == 403
    wrong_reg = client.statement("completed", {"completion": True}, moveon=True)
    wrong_reg["context"]["registration"] = str(uuid.uuid4())
    assert client.send(wrong_reg).status_code == 403
    no_session = client.statement("completed", {"completion": True}, moveon=True)
    no_session["context"]["extensions"] = {}
    assert client.send(no_session).status_code == 403
    # Below the mastery score, "passed" is refused (cmi5 §9.3.4).
    low = client.send(client.statement("passed", {"success": True, "score": {"scaled": 0.5}}, moveon=True))
    assert low.status_code == 400
    failed = client.send(client.statement("failed", {"success": False, "score": {"scaled": 0.5}}, moveon=True))
    assert failed.status_code == 200
    passed = client.statement("passed", {"success": True, "score": {"scaled": 0.9, "raw": 9, "min": 0, "max": 10}},
                              moveon=True)
    # PUT with a statement id, twice: applied once.
    for _ in range(2):
        put = requests.put(client.endpoint + "statements", params={"statementId": passed["id"]},
                           data=json.dumps(passed), headers=client.headers())
        assert put.status_code == 204
    # A bookmark state document is kept with the progress.
    put = requests.put(client.state_url("bookmark"), params=client.state_params("lms_bridge.au.progress"),
                       data=json.dumps({"location": "q4", "passed": True}), headers=client.headers())
    assert put.status_code == 204
    got = requests.get(client.state_url("bookmark"), params=client.state_params("lms_bridge.au.progress"),
                       headers=client.headers())
    assert got.json() == {"location": "q4", "passed": True}
    term = client.send(client.statement("terminated", {"duration": "PT1M30S"}))
    assert term.status_code == 200
    after = client.send(client.statement("completed", {"completion": True}, moveon=True))
    assert after.status_code == 403
    rows = attempt_rows(live_server, registration=client.registration)
    row = next(p for p in rows["progress"] if p["key"] == au["key"])
    assert (row["success"], row["scaled"], row["location"], row["time"]) == ("passed", 0.9, "q4", 90.0)
    kinds = [e["kind"] for e in rows["events"] if e["key"] == au["key"]]
    assert kinds == ["progress_changed", "score_changed", "score_changed"]  # opened, failed 0.5, then passed 0.9


def test_cmi5_course_completes_by_move_on(live_server, cmi5):
    browser, page = launch_learner(live_server, cmi5["link"], user="anonymous")
    for au in cmi5["activities"]:
        page = open_activity(live_server, browser, page, au["key"])
        client = Au(frame_src(page))
        client.token = requests.post(client.fetch).json()["auth-token"]
        client.launch_data = requests.get(client.state_url("LMS.LaunchData"),
                                          params=client.state_params("LMS.LaunchData"), headers=client.headers()).json()
        assert client.send(client.statement("initialized")).status_code == 200
        if au["move_on"] == "Passed":
            st = client.statement("passed", {"success": True, "score": {"scaled": 1.0}}, moveon=True)
        else:
            st = client.statement("completed", {"completion": True}, moveon=True)
        assert client.send(st).status_code == 200
        assert client.send(client.statement("terminated", {"duration": "PT5S"})).status_code == 200
    rows = attempt_rows(live_server, link=cmi5["link"])
    mine = [a for a in rows["attempts"] if a["status"] == "completed"]
    assert len(mine) == 1
    assert [e["kind"] for e in rows["events"] if e["attempt"] == mine[0]["id"]].count("course_completed") == 1
    progress = requests.get(f"{live_server.url}/player/{player_token(page)}/progress.json").json()
    assert progress["percent"] == 100 and progress["completed"] is True


def test_native_lesson_page_has_one_h1_and_its_headings_below_it(live_server, native):
    browser, page = launch_learner(live_server, native["link"])
    lesson = next(a for a in native["activities"] if a["kind"] == "lesson")
    page = open_activity(live_server, browser, page, lesson["key"])
    assert len(re.findall(r"<h1\b", page.text)) == 1, re.findall(r"<h1\b[^>]*>[^<]*", page.text)
    assert re.search(r'<h1 id="activity-title"[^>]*>\s*' + re.escape(html.escape(lesson["title"], quote=False)), page.text)
    assert "<h2>An energy carrier, not an energy source</h2>" in page.text or "<h3>" in page.text
