"""Package content on its own origin, over real HTTP against gunicorn: by default the live server
(tool http://127.0.0.1:PORT) also listens on a second loopback address (http://[::1]:PORT, or
http://127.0.0.2:PORT without IPv6), which serves package files, the SCORM runtime page and its
scripts, and nothing else; the tool's origin serves no content. Headers: CSP, CORP and CORS
(content origin only, never with credentials). And same-origin mode (CONTENT_ISOLATION=off)."""
from __future__ import annotations

import http.client
import json
import re
from urllib.parse import urlsplit

import pytest
import requests

from tests.integration.test_player_common import (
    MOOC,
    attempt_rows,
    commit_config,
    import_course,
    in_app,
    launch_learner,
    place_link,
    player_token,
)
from tests.support.servers import launch_server


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def raw(base: str, method: str, path: str, headers: dict | None = None) -> http.client.HTTPResponse:
    """A request whose path is sent exactly as written (no client-side dot-segment removal)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    resp.body = resp.read()
    conn.close()
    return resp


def directives(csp: str) -> dict[str, list[str]]:
    out = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


@pytest.fixture(scope="module")
def courses(live_server):
    out = {}
    for name, folder in (("scorm", "battery-safety-ev-scorm2004"), ("cmi5", "digital-skills-workshop-cmi5"),
                         ("native", "hydrogen-fcev-basics-native")):
        info = import_course(live_server, MOOC / folder)
        out[name] = {**info, "link": place_link(live_server, f"{name} (content origin)", course=info["course_id"])}
    return out


@pytest.fixture(scope="module")
def scorm_launch(live_server, courses):
    _browser, page = launch_learner(live_server, courses["scorm"]["link"])
    return page


def runtime_src(page) -> str:
    import html

    m = re.search(r'<iframe id="content-frame"[^>]*?\ssrc="([^"]+)"', page.text, re.DOTALL)
    assert m, page.text[:3000]
    return html.unescape(m.group(1))


# -- where content lives -------------------------------------------------------------------------


def test_live_server_has_a_separate_loopback_content_origin(live_server):
    port = urlsplit(live_server.url).port
    assert live_server.content_isolated
    assert live_server.content_url in (f"http://[::1]:{port}", f"http://127.0.0.2:{port}")
    assert "package content is served from its own origin " + live_server.content_url in live_server.log()


CONTENT_HOST_REFUSES = [
    ("GET", "/"), ("GET", "/healthz"), ("GET", "/lti/login"), ("POST", "/lti/login"), ("POST", "/lti/launch"),
    ("GET", "/lti/config"), ("GET", "/lti/register"), ("GET", "/.well-known/jwks.json"), ("GET", "/admin/"),
    ("GET", "/admin/login"), ("GET", "/launch/anything"), ("GET", "/player/x/activity/y"),
    ("GET", "/player/x/progress.json"), ("GET", "/player/xapi/about"), ("POST", "/player/cmi5/fetch/x"),
    ("POST", "/player/api/attempts/1/activities/k/scorm/commit"), ("GET", "/player/cmi5/returned"),
    ("GET", "/devplatform/"), ("GET", "/api/v1/courses"), ("GET", "/api/v1/openapi.json"),
    ("GET", "/static/app.css"), ("GET", "/static/lti_storage.js"), ("GET", "/static/player/player.js"),
    ("GET", "/static/player/scorm-host.js"), ("GET", "/static/vendor/scorm-again/../../app.css"),
    ("GET", "/static/vendor/scorm-again/%2e%2e/%2e%2e/app.css"), ("GET", "/static/vendor/scorm-again/..%2f..%2fapp.css"),
    ("GET", "/no-such-page"),
]


@pytest.mark.parametrize("method, path", CONTENT_HOST_REFUSES)
def test_content_host_serves_nothing_of_the_tool(live_server, method, path):
    resp = raw(live_server.content_url, method, path)
    assert resp.status == 404, (method, path, resp.status)
    assert resp.getheader("Content-Type").startswith("text/plain")
    assert resp.getheader("Set-Cookie") is None
    assert b"lms_bridge" not in resp.body


@pytest.mark.parametrize("path", ["/static/vendor/scorm-again/scorm2004.min.js", "/static/vendor/scorm-again/scorm12.min.js",
                                  "/static/player/content-runtime.js", "/static/player/content-runtime.css"])
def test_content_host_serves_the_runtime_scripts(live_server, path):
    resp = requests.get(live_server.content_url + path)
    assert resp.status_code == 200 and "Set-Cookie" not in resp.headers
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_tool_host_serves_no_content(live_server, courses):
    v = courses["scorm"]["version_id"]
    key = courses["scorm"]["activities"][0]["key"]
    assert requests.get(f"{live_server.content_url}/content/{v}/shared/scorm2004.js").status_code == 200
    assert requests.get(f"{live_server.url}/content/{v}/shared/scorm2004.js").status_code == 404
    assert requests.get(f"{live_server.content_url}/content-runtime/1/{key}?v=scorm2004").status_code == 200
    assert requests.get(f"{live_server.url}/content-runtime/1/{key}?v=scorm2004").status_code == 404
    # The tool itself is unaffected.
    assert requests.get(live_server.url + "/healthz").status_code == 200
    assert requests.get(live_server.url + "/lti/config").status_code == 200


# -- headers of package files --------------------------------------------------------------------


def test_scorm_file_headers_on_the_content_origin(live_server, courses):
    v = courses["scorm"]["version_id"]
    resp = requests.get(f"{live_server.content_url}/content/{v}/sco01-cells/index.html")
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
    csp = directives(resp.headers["Content-Security-Policy"])
    assert csp["connect-src"] == ["'self'"], "SCOs talk to the tool only through the runtime page"
    assert csp["script-src"] == ["'self'", "'unsafe-inline'"] and csp["object-src"] == ["'none'"]
    # Framed by the runtime page (the content origin itself) inside the player (tool) inside the LMS.
    ancestors = csp["frame-ancestors"]
    assert ancestors[0] == live_server.url and "'self'" in ancestors and live_server.platform_url in ancestors
    assert resp.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert resp.headers["X-Content-Type-Options"] == "nosniff" and resp.headers["Referrer-Policy"] == "no-referrer"
    assert "Set-Cookie" not in resp.headers and "Access-Control-Allow-Origin" not in resp.headers


def test_cmi5_files_may_connect_to_the_tool(live_server, courses):
    v = courses["cmi5"]["version_id"]
    au = courses["cmi5"]["activities"][0]
    _browser, page = launch_learner(live_server, courses["cmi5"]["link"])
    src = runtime_src(page)
    assert src.startswith(f"{live_server.content_url}/content/{v}/"), "AUs are framed straight from the content origin"
    assert au["kind"] == "au"
    csp = directives(requests.get(src).headers["Content-Security-Policy"])
    assert csp["connect-src"] == ["'self'", live_server.url]


def test_native_lesson_media_are_embeddable_by_the_player(live_server, courses):
    browser, page = launch_learner(live_server, courses["native"]["link"])
    token = player_token(page)
    media = []
    for activity in courses["native"]["activities"]:  # the lesson with a figure
        if activity["kind"] == "lesson" and not media:
            page = browser.get(f"{live_server.url}/player/{token}/activity/{activity['key']}")
            lesson = re.search(r'<article class="lesson" id="lesson">(.*?)</article>', page.text, re.DOTALL)
            media = re.findall(r'src="([^"]+)"', lesson.group(1))
    assert media and all(u.startswith(live_server.content_url + "/content/") for u in media), media
    resp = requests.get(media[0], headers={"Origin": live_server.url})
    assert resp.status_code == 200 and resp.headers["Cross-Origin-Resource-Policy"] == "cross-origin"


def test_catalogue_urls_point_at_the_content_origin(live_server, courses):
    body = requests.get(f"{live_server.url}/api/v1/courses/{courses['scorm']['course_id']}").json()
    urls = [a["url"] for m in body["modules"] for a in m["activities"] if a["url"]]
    assert urls and all(u.startswith(live_server.content_url + "/content/") for u in urls)


# -- the SCORM runtime page ----------------------------------------------------------------------


def test_player_frames_the_runtime_page_on_the_content_origin(live_server, courses, scorm_launch):
    page = scorm_launch
    cfg = commit_config(page)
    token = player_token(page)
    src = runtime_src(page)
    key = cfg["activity"]
    assert src == f"{live_server.content_url}/content-runtime/{cfg['attempt']}/{key}?v=scorm2004"
    assert f'data-origin="{live_server.content_url}"' in page.text
    assert 'sandbox="allow-scripts allow-same-origin allow-forms allow-popups' in page.text
    assert cfg["scoUrl"].startswith(f"{live_server.content_url}/content/{courses['scorm']['version_id']}/")
    assert origin(cfg["commitUrl"]) == live_server.url
    # The launch token goes nowhere near the content origin; the player page loads no SCORM runtime.
    assert token not in src and token not in json.dumps(cfg)
    assert "scorm-again" not in page.text and "scorm-host.js" in page.text


def test_runtime_page(live_server, scorm_launch):
    cfg = commit_config(scorm_launch)
    resp = requests.get(runtime_src(scorm_launch))
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
    assert resp.headers["Cache-Control"] == "no-store" and "Set-Cookie" not in resp.headers
    csp = directives(resp.headers["Content-Security-Policy"])
    assert csp["default-src"] == ["'none'"] and csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'", live_server.url] and csp["frame-src"] == ["'self'"]
    assert csp["base-uri"] == ["'none'"] and csp["form-action"] == ["'none'"]
    assert csp["frame-ancestors"][0] == live_server.url and live_server.platform_url in csp["frame-ancestors"]
    assert "'self'" not in csp["frame-ancestors"]
    text = resp.text
    assert f'data-tool-origin="{live_server.url}"' in text and f'data-activity="{cfg["activity"]}"' in text
    # No secret and no inline code: every script is a file of this origin.
    assert cfg["token"] not in text and "cmi." not in text
    assert re.findall(r"<script(?![^>]*\ssrc=)[^>]*>", text) == []
    assert "/static/vendor/scorm-again/scorm2004.min.js" in text and "/static/player/content-runtime.js" in text
    twelve = requests.get(live_server.content_url + f"/content-runtime/1/{cfg['activity']}?v=scorm12")
    assert "/static/vendor/scorm-again/scorm12.min.js" in twelve.text


@pytest.mark.parametrize("path", ["/content-runtime/1/abc?v=scorm3000", "/content-runtime/1/a%22b?v=scorm2004",
                                  "/content-runtime/x/abc?v=scorm2004"])
def test_runtime_page_refuses_odd_requests(live_server, path):
    assert requests.get(live_server.content_url + path).status_code == 404


# -- CORS ----------------------------------------------------------------------------------------


def test_commit_endpoint_answers_cors_for_the_content_origin_only(live_server, courses):
    _browser, page = launch_learner(live_server, courses["scorm"]["link"], user="learner2")
    cfg = commit_config(page)
    content = live_server.content_url
    pre = requests.options(cfg["commitUrl"], headers={"Origin": content, "Access-Control-Request-Method": "POST",
                                                      "Access-Control-Request-Headers": "authorization,content-type"})
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == content
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert {"authorization", "content-type"} <= {h.strip().lower() for h in pre.headers["Access-Control-Allow-Headers"].split(",")}
    assert "Access-Control-Allow-Credentials" not in pre.headers and "Origin" in pre.headers["Vary"]
    for other in ("https://evil.example", live_server.platform_url, "null"):
        refused = requests.options(cfg["commitUrl"], headers={"Origin": other, "Access-Control-Request-Method": "POST"})
        assert "Access-Control-Allow-Origin" not in refused.headers, other
    body = {"token": cfg["token"], "session": cfg["session"], "seq": 1, "cmi": {"location": "p2"}}
    ok = requests.post(cfg["commitUrl"], data=json.dumps(body), headers={
        "Origin": content, "Content-Type": "application/json", "Authorization": "Bearer " + cfg["token"]})
    assert ok.status_code == 200 and ok.json()["applied"] and ok.headers["Access-Control-Allow-Origin"] == content
    assert "Access-Control-Allow-Credentials" not in ok.headers
    # The Terminate beacon (text/plain, no preflight) is answered too.
    body["seq"] = 2
    beacon = requests.post(cfg["commitUrl"], data=json.dumps(body), headers={
        "Origin": content, "Content-Type": "text/plain;charset=UTF-8"})
    assert beacon.status_code == 200 and beacon.json()["applied"]
    rows = attempt_rows(live_server, link=courses["scorm"]["link"])
    assert any(p["location"] == "p2" for p in rows["progress"])


def test_xapi_answers_cors_for_the_content_origin_and_launched_external_aus(live_server):
    about = live_server.url + "/player/xapi/about"
    content = live_server.content_url

    def preflight(o):
        return requests.options(about, headers={"Origin": o, "Access-Control-Request-Method": "GET",
                                                "Access-Control-Request-Headers": "x-experience-api-version"})

    ok = preflight(content)
    assert ok.status_code == 204 and ok.headers["Access-Control-Allow-Origin"] == content
    assert "Access-Control-Allow-Credentials" not in ok.headers
    assert "Access-Control-Allow-Origin" not in preflight("https://au.example.com").headers
    assert "Access-Control-Allow-Origin" not in preflight("https://evil.example").headers

    # An AU hosted elsewhere (cmi5 allows it) gets CORS answers once it has been launched.
    def remember():
        from lms_bridge.player import xapi

        with live_server.app.test_request_context(base_url=live_server.url):
            xapi._allow_au_origin("https://au.example.com/course/index.html", 60)

    in_app(live_server, remember)
    assert preflight("https://au.example.com").headers["Access-Control-Allow-Origin"] == "https://au.example.com"
    assert "Access-Control-Allow-Origin" not in preflight("https://evil.example").headers


# -- same-origin mode ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def same_origin():
    server = launch_server(workers=1, CONTENT_ISOLATION="off")
    info = import_course(server, MOOC / "battery-safety-ev-scorm2004")
    info["link"] = place_link(server, "SCORM 2004, same origin", course=info["course_id"])
    yield server, info
    server.stop()
    server.db.drop()


def test_same_origin_mode_serves_content_from_the_tool(same_origin):
    server, info = same_origin
    assert not server.content_isolated and server.content_url == server.url
    assert "CONTENT_ISOLATION=off" in server.log()
    v = info["version_id"]
    resp = requests.get(f"{server.url}/content/{v}/sco01-cells/index.html")
    assert resp.status_code == 200 and resp.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert "'self'" not in directives(resp.headers["Content-Security-Policy"])["frame-ancestors"]
    _browser, page = launch_learner(server, info["link"])
    cfg = commit_config(page)
    src = runtime_src(page)
    assert src.startswith(f"{server.url}/content-runtime/") and f'data-origin="{server.url}"' in page.text
    assert cfg["scoUrl"].startswith(f"{server.url}/content/{v}/")
    assert requests.get(src).status_code == 200
    # No cross-origin caller is granted anything.
    pre = requests.options(cfg["commitUrl"], headers={"Origin": "http://[::1]:1", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in pre.headers
