"""The development platform over real HTTP against gunicorn: self-registration, OIDC launches
through its auth endpoint into the tool, keys, the OAuth2 token endpoint, AGS, NRPS, deep
linking and Dynamic Registration (platform side)."""
from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

C = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
SCOPE_LINEITEM, SCOPE_LINEITEM_RO, SCOPE_RESULT, SCOPE_SCORE = (AGS + "lineitem", AGS + "lineitem.readonly",
                                                                AGS + "result.readonly", AGS + "score")
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
ALL_SCOPES = [SCOPE_LINEITEM, SCOPE_LINEITEM_RO, SCOPE_RESULT, SCOPE_SCORE, SCOPE_NRPS]
LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
CLIENT_ID = "lms-bridge-dev"
COURSE = "2"


# -- helpers ------------------------------------------------------------------------------------


class _Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self.iframes: list[dict] = []
        self._current = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._current = {**attrs, "fields": {}}
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and attrs.get("name"):
            self._current["fields"][attrs["name"]] = attrs.get("value") or ""
        elif tag == "iframe":
            self.iframes.append(attrs)

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def parse(html: str) -> _Forms:
    parser = _Forms()
    parser.feed(html)
    return parser


def error_code(resp) -> str | None:
    m = re.search(r'id="error-code">([^<]+)<', resp.text)
    return m.group(1) if m else None


class Browser:
    """A requests session that sends Secure cookies to http://127.0.0.1 like a browser does."""

    def __init__(self):
        self.http = requests.Session()

    def _cookies(self, url: str) -> dict:
        host = urlsplit(url).hostname
        jar = {c.name: c.value for c in self.http.cookies if c.domain.lstrip(".") in (host, host + ".local")}
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}

    def get(self, url, **kw):
        return self.http.get(url, headers=self._cookies(url), allow_redirects=False, **kw)

    def post(self, url, **kw):
        return self.http.post(url, headers=self._cookies(url), allow_redirects=False, **kw)


def platform_url(live_server, path: str = "") -> str:
    return live_server.platform_url + "/devplatform" + path


def issuer(live_server) -> str:
    return platform_url(live_server)


def platform_jwks(live_server) -> dict:
    return requests.get(platform_url(live_server, "/jwks.json")).json()


def decode_id_token(live_server, token: str) -> dict:
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in platform_jwks(live_server)["keys"] if k["kid"] == kid)
    return jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=jwt.decode(
        token, options={"verify_signature": False})["aud"], issuer=issuer(live_server))


def launch_page(live_server, browser: Browser, **params):
    resp = browser.get(platform_url(live_server, "/launch"), params=params)
    assert resp.status_code == 200, resp.text[:1000]
    return resp


def start_launch(live_server, browser: Browser, **params) -> tuple[dict, dict]:
    """Platform launch page -> tool login -> platform auth; returns (auth form fields, id_token claims)."""
    page = launch_page(live_server, browser, **{"storage": "0", **params})
    login = next(f for f in parse(page.text).forms if f.get("id") == "dp-login")
    resp = browser.post(login["action"], data=login["fields"])
    assert resp.status_code == 302, resp.text[:1000]
    auth_url = resp.headers["Location"]
    assert auth_url.startswith(platform_url(live_server, "/auth?"))
    resp = browser.get(auth_url)
    assert resp.status_code == 200, resp.text[:1000]
    form = parse(resp.text).forms[0]
    assert form["action"] == live_server.url + "/lti/launch" and form["method"] == "post"
    assert "target" not in form  # same browsing context
    assert set(form["fields"]) == {"id_token", "state"}, form["fields"]
    return form["fields"], decode_id_token(live_server, form["fields"]["id_token"])


def finish_launch(live_server, browser: Browser, fields: dict):
    resp = browser.post(live_server.url + "/lti/launch", data=fields)
    assert resp.status_code == 303, (error_code(resp), resp.text[:1000])
    page = browser.get(live_server.url + resp.headers["Location"] if resp.headers["Location"].startswith("/")
                       else resp.headers["Location"])
    assert page.status_code == 200
    return page


def in_app(live_server, fn):
    with live_server.app.app_context():
        return fn()


def sign_as_tool(live_server, claims: dict) -> str:
    from lms_bridge.lti.keys import sign_jwt

    return in_app(live_server, lambda: sign_jwt(claims))


def client_assertion(live_server, client_id: str = CLIENT_ID, **overrides) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": platform_url(live_server, "/token"), "iat": now,
              "exp": now + 60, "jti": uuid.uuid4().hex}
    claims.update(overrides)
    return sign_as_tool(live_server, {k: v for k, v in claims.items() if v is not None})


def token_request(live_server, scopes, assertion: str | None = None, **form):
    data = {"grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion or client_assertion(live_server), "scope": " ".join(scopes)}
    data.update(form)
    return requests.post(platform_url(live_server, "/token"), data=data)


def access_token(live_server, scopes=ALL_SCOPES) -> dict:
    resp = token_request(live_server, scopes)
    assert resp.status_code == 200, resp.text
    return {"Authorization": "Bearer " + resp.json()["access_token"]}


def gradebook(live_server) -> dict:
    return requests.get(platform_url(live_server, "/gradebook.json")).json()


def with_path(url: str, suffix: str) -> str:
    """Insert a path suffix before the query string, as Moodle-shaped service URLs need."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}{suffix}" + (f"?{parts.query}" if parts.query else "")


@pytest.fixture(scope="module")
def registered(live_server):
    """The platform registers itself on its first home page visit."""
    resp = requests.get(platform_url(live_server, "/"))
    assert resp.status_code == 200, resp.text[:1000]
    return resp


# -- self-registration, home page, keys ---------------------------------------------------------


def test_home_runs_on_the_platform_origin_and_registers_both_sides(live_server, registered):
    resp = requests.get(live_server.url + "/devplatform/", allow_redirects=False)
    assert resp.status_code == 302 and resp.headers["Location"] == platform_url(live_server, "/")
    assert urlsplit(live_server.platform_url).netloc != urlsplit(live_server.url).netloc
    page = registered.text
    for text in ("Battery safety for EV technicians (dev course)", "Launch as teacher", "Launch as learner",
                 "Launch as admin", "Deep link (add content)", "Embedded (iframe)", "New window",
                 "Launch without Platform Storage", "Register a tool with Dynamic Registration", "Gradebook"):
        assert text in page, text
    assert '<label for="target-iframe">' in page and "<h1" in page

    def check():
        from lms_bridge.extensions import db
        from lms_bridge.lti.models import Registration
        from lms_bridge.devplatform.models import DevClient

        reg = db.session.execute(db.select(Registration).filter_by(issuer=issuer(live_server), client_id=CLIENT_ID)).scalar_one()
        assert reg.source == "devplatform" and reg.name == "Development platform"
        assert reg.auth_login_url == platform_url(live_server, "/auth")
        assert reg.auth_token_url == platform_url(live_server, "/token")
        assert reg.key_set_url == platform_url(live_server, "/jwks.json")
        assert [(d.deployment_id, d.active) for d in reg.deployments] == [("1", True)]
        client = db.session.execute(db.select(DevClient).filter_by(client_id=CLIENT_ID)).scalar_one()
        assert client.deployment_id == "1"
        assert client.tool_configuration["initiate_login_uri"] == live_server.url + "/lti/login"
        assert client.tool_configuration["redirect_uris"] == [live_server.url + "/lti/launch"]
        assert client.tool_configuration["jwks_uri"] == live_server.url + "/.well-known/jwks.json"

    in_app(live_server, check)


def test_setup_command_is_idempotent(live_server, registered):
    from lms_bridge.devplatform.cli import register_cli

    register_cli(live_server.app)
    runner = live_server.app.test_cli_runner()
    first = runner.invoke(args=["devplatform-setup", "--base-url", live_server.url])
    second = runner.invoke(args=["devplatform-setup", "--base-url", live_server.url])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    out = json.loads(second.output)
    assert out["issuer"] == issuer(live_server) and out["client_id"] == CLIENT_ID and out["deployment_id"] == "1"

    def counts():
        from lms_bridge.extensions import db
        from lms_bridge.lti.models import Registration
        from lms_bridge.devplatform.models import DevClient, DevResourceLink

        return (db.session.query(Registration).filter_by(issuer=issuer(live_server), client_id=CLIENT_ID).count(),
                db.session.query(DevClient).filter_by(client_id=CLIENT_ID).count(),
                db.session.query(DevResourceLink).filter_by(client_id=CLIENT_ID).count() >= 1)

    assert in_app(live_server, counts) == (1, 1, True)


def test_jwks_and_openid_configuration(live_server, registered):
    keys = platform_jwks(live_server)
    assert list(keys) == ["keys"] and keys["keys"]
    assert all(k["kty"] == "RSA" and k["alg"] == "RS256" and k["kid"] and "d" not in k for k in keys["keys"])
    conf = requests.get(platform_url(live_server, "/.well-known/openid-configuration")).json()
    assert conf["issuer"] == issuer(live_server) and not conf["issuer"].endswith("/")
    assert conf["authorization_endpoint"] == platform_url(live_server, "/auth")
    assert conf["token_endpoint"] == platform_url(live_server, "/token")
    assert conf["jwks_uri"] == platform_url(live_server, "/jwks.json")
    assert conf["registration_endpoint"] == platform_url(live_server, "/register")
    assert set(ALL_SCOPES) <= set(conf["scopes_supported"]) and "openid" in conf["scopes_supported"]
    assert conf["response_types_supported"] == ["id_token"]
    assert conf["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "email" in conf["claims_supported"]
    platform_conf = conf["https://purl.imsglobal.org/spec/lti-platform-configuration"]
    assert platform_conf["product_family_code"] == "lms_bridge-devplatform" and platform_conf["version"]
    assert {"LtiResourceLinkRequest", "LtiDeepLinkingRequest"} <= {m["type"] for m in platform_conf["messages_supported"]}


# -- launches ------------------------------------------------------------------------------------


def test_full_launch_as_learner_is_moodle_shaped(live_server, registered):
    browser = Browser()
    fields, claims = start_launch(live_server, browser, user="learner")
    assert claims["iss"] == issuer(live_server) and claims["aud"] == CLIENT_ID and claims["azp"] == CLIENT_ID
    assert claims["sub"] == "4" and claims["exp"] - claims["iat"] == 60
    assert claims[C + "version"] == "1.3.0" and claims[C + "message_type"] == "LtiResourceLinkRequest"
    assert claims[C + "deployment_id"] == "1" and claims[C + "target_link_uri"] == live_server.url + "/lti/launch"
    assert claims[C + "roles"] == ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"]
    assert claims[C + "context"]["id"] == COURSE and claims[C + "context"]["type"][0].endswith("CourseSection")
    assert claims[C + "resource_link"]["id"] and claims[C + "resource_link"]["title"]
    assert claims[C + "launch_presentation"]["document_target"] == "iframe"
    assert claims[C + "launch_presentation"]["locale"] and claims[C + "launch_presentation"]["return_url"]
    assert claims[C + "tool_platform"]["product_family_code"] == "lms_bridge-devplatform"
    assert claims["name"] == "Lena Learner" and claims["email"] == "lena.learner@example.org"
    ags = claims[AGS_CLAIM]
    assert set(ags["scope"]) == {SCOPE_LINEITEM, SCOPE_LINEITEM_RO, SCOPE_RESULT, SCOPE_SCORE}
    assert re.search(r"/contexts/2/lineitems/\d+/lineitem\?type_id=\d+$", ags["lineitem"])
    assert "?type_id=" in ags["lineitems"]
    nrps = claims[NRPS_CLAIM]
    assert nrps["service_versions"] == ["1.0", "2.0"] and "/contexts/2/memberships" in nrps["context_memberships_url"]
    assert claims[C + "custom"]["context_memberships_url"] == nrps["context_memberships_url"]
    page = finish_launch(live_server, browser, fields)
    assert claims[C + "resource_link"]["title"] in page.text and "Lena" in page.text


@pytest.mark.parametrize("user,role", [
    ("teacher", "membership#Instructor"),
    ("admin", "institution/person#Administrator"),
    ("learner2", "membership#Learner"),
])
def test_launch_as_other_users(live_server, registered, user, role):
    browser = Browser()
    fields, claims = start_launch(live_server, browser, user=user)
    assert claims[C + "roles"] == ["http://purl.imsglobal.org/vocab/lis/v2/" + role]
    finish_launch(live_server, browser, fields)


def test_anonymous_learner_gets_no_personal_data(live_server, registered):
    browser = Browser()
    fields, claims = start_launch(live_server, browser, user="anonymous")
    assert not {"name", "given_name", "family_name", "email"} & set(claims)
    assert claims["sub"] == "6"
    finish_launch(live_server, browser, fields)


def test_new_window_launch(live_server, registered):
    browser = Browser()
    page = launch_page(live_server, browser, user="learner", target="window")
    login = next(f for f in parse(page.text).forms if f.get("id") == "dp-login")
    assert login["target"] == "_blank" and "lti_storage_target" not in login["fields"]
    assert json.loads(login["fields"]["lti_message_hint"])["document_target"] == "window"
    fields, claims = start_launch(live_server, browser, user="learner", target="window")
    assert claims[C + "launch_presentation"]["document_target"] == "window"
    finish_launch(live_server, browser, fields)


def test_launch_page_offers_platform_storage(live_server, registered):
    browser = Browser()
    page = launch_page(live_server, browser, user="learner")
    parsed = parse(page.text)
    login = next(f for f in parsed.forms if f.get("id") == "dp-login")
    assert login["action"] == live_server.url + "/lti/login" and login["target"] == "tool"
    fields = login["fields"]
    assert fields["lti_storage_target"] == "post_message_forwarding"
    assert fields["iss"] == issuer(live_server) and fields["login_hint"] == "4"
    assert fields["client_id"] == CLIENT_ID and fields["lti_deployment_id"] == "1"
    assert fields["target_link_uri"] == live_server.url + "/lti/launch"
    hint = json.loads(fields["lti_message_hint"])
    assert hint["message_type"] == "LtiResourceLinkRequest" and hint["resource_link_id"]
    frames = {f.get("name"): f for f in parsed.iframes}
    assert frames["post_message_forwarding"]["src"].startswith("/devplatform/storage-frame")
    assert frames["tool"].get("title")
    assert "<script>" not in page.text  # configuration travels as JSON, code as static files
    storage = requests.get(live_server.platform_url + frames["post_message_forwarding"]["src"])
    config = json.loads(re.search(r'id="dp-storage-config">(.*?)</script>', storage.text).group(1))
    assert config["toolOrigins"] == [live_server.url]
    without = parse(launch_page(live_server, browser, user="learner", storage="0").text)
    assert "lti_storage_target" not in next(f for f in without.forms if f.get("id") == "dp-login")["fields"]


def test_platform_storage_launch_without_cookies(live_server, registered):
    """The tool's Platform Storage path, with this test doing what the storage frame's script does."""
    browser = Browser()
    login = next(f for f in parse(launch_page(live_server, browser, user="learner").text).forms if f.get("id") == "dp-login")
    resp = requests.post(login["action"], data=login["fields"], allow_redirects=False)
    assert resp.status_code == 200 and "set-cookie" not in {k.lower() for k in resp.headers}
    put = json.loads(re.search(r'id="lti-storage-config">(.*?)</script>', resp.text).group(1))
    assert put["mode"] == "put" and put["target"] == "post_message_forwarding"
    assert put["platformOrigin"] == live_server.platform_url
    stored = {put["key"]: put["value"]}  # lti.put_data answered by the platform frame
    auth = requests.get(put["next"], allow_redirects=False)
    form = parse(auth.text).forms[0]
    resp = requests.post(form["action"], data=form["fields"], allow_redirects=False)
    assert resp.status_code == 200
    get = json.loads(re.search(r'id="lti-storage-config">(.*?)</script>', resp.text).group(1))
    handle = parse(resp.text).forms[0]["fields"]["handle"]
    resp = requests.post(live_server.url + "/lti/launch/storage", data={"handle": handle, "binding": stored[get["key"]]},
                         allow_redirects=False)
    assert resp.status_code == 303, (error_code(resp), resp.text[:500])


def test_auth_endpoint_refuses_bad_requests(live_server, registered):
    browser = Browser()
    page = launch_page(live_server, browser, user="learner", storage="0")
    login = next(f for f in parse(page.text).forms if f.get("id") == "dp-login")
    resp = browser.post(login["action"], data=login["fields"])
    good = {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}

    def auth(method="GET", **changes):
        params = {**good, **changes}
        params = {k: v for k, v in params.items() if v is not None}
        if method == "POST":
            return requests.post(platform_url(live_server, "/auth"), data=params)
        return requests.get(platform_url(live_server, "/auth"), params=params)

    # Errors about the client or redirect URI are shown, never posted to an unverified URI.
    for changes, code in [({"client_id": "nobody"}, "unauthorized_client"),
                          ({"redirect_uri": live_server.url + "/lti/launch/"}, "invalid_request"),
                          ({"redirect_uri": None}, "invalid_request")]:
        resp = auth(**changes)
        assert resp.status_code == 400 and error_code(resp) == code, (changes, resp.text[:300])
        assert not parse(resp.text).forms
    # The others go back to the tool as OIDC error responses with the state.
    for changes, code in [({"scope": "openid profile"}, "invalid_scope"),
                          ({"response_type": "code"}, "unsupported_response_type"),
                          ({"response_mode": "query"}, "invalid_request"),
                          ({"prompt": "login"}, "invalid_request"),
                          ({"nonce": None}, "invalid_request"),
                          ({"login_hint": "999"}, "login_required"),
                          ({"lti_message_hint": "not json"}, "invalid_request"),
                          ({"lti_message_hint": json.dumps({"message_type": "LtiResourceLinkRequest",
                                                            "resource_link_id": "999999"})}, "invalid_request")]:
        resp = auth(**changes)
        assert resp.status_code == 200, changes
        form = parse(resp.text).forms[0]
        assert form["action"] == good["redirect_uri"]
        assert form["fields"]["error"] == code and form["fields"]["state"] == good["state"], changes
        assert "id_token" not in form["fields"]
    # POST works as well as GET.
    resp = auth("POST")
    assert resp.status_code == 200 and "id_token" in parse(resp.text).forms[0]["fields"]


def test_key_rotation_makes_the_tool_refetch(live_server, registered):
    browser = Browser()
    fields, _ = start_launch(live_server, browser, user="learner")
    finish_launch(live_server, browser, fields)  # the tool now has the current key set cached
    home = browser.get(platform_url(live_server, "/"))
    old_kid = re.search(r'id="current-kid">([^<]+)<', home.text).group(1)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', home.text).group(1)
    resp = browser.post(platform_url(live_server, "/keys/rotate"), data={"csrf_token": csrf})
    assert resp.status_code == 302
    assert browser.post(platform_url(live_server, "/keys/rotate"), data={}).status_code == 400  # CSRF
    kids = [k["kid"] for k in platform_jwks(live_server)["keys"]]
    assert kids[0] != old_kid and old_kid in kids
    fields, claims = start_launch(live_server, browser, user="learner")
    assert jwt.get_unverified_header(fields["id_token"])["kid"] == kids[0]
    finish_launch(live_server, browser, fields)


# -- token endpoint -------------------------------------------------------------------------------


def test_token_endpoint_issues_tokens_and_counts_requests(live_server, registered):
    before = gradebook(live_server)["token_requests"]
    resp = token_request(live_server, [SCOPE_SCORE, SCOPE_LINEITEM])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["access_token"]
    assert body["scope"].split() == [SCOPE_SCORE, SCOPE_LINEITEM]
    assert resp.headers["Cache-Control"] == "no-store"
    assert gradebook(live_server)["token_requests"] == before + 1


def test_token_endpoint_refusals(live_server, registered):
    now = int(time.time())
    assertion = client_assertion(live_server)
    assert token_request(live_server, [SCOPE_SCORE], assertion).status_code == 200
    cases = [
        (dict(assertion=assertion), 401, "invalid_client"),  # jti replay
        (dict(assertion=client_assertion(live_server, aud=live_server.url + "/elsewhere")), 401, "invalid_client"),
        (dict(assertion=client_assertion(live_server, aud=[platform_url(live_server, "/token"), "x"])), 200, None),
        (dict(assertion=client_assertion(live_server, exp=now - 120, iat=now - 180)), 401, "invalid_client"),
        (dict(assertion=client_assertion(live_server, sub="someone-else")), 401, "invalid_client"),
        (dict(assertion=client_assertion(live_server, jti=None)), 401, "invalid_client"),
        (dict(assertion=client_assertion(live_server, "unknown-client")), 401, "invalid_client"),
        (dict(assertion="not-a-jwt"), 401, "invalid_client"),
        (dict(scopes=[SCOPE_SCORE, "https://example.org/scope/admin"]), 400, "invalid_scope"),
        (dict(scopes=[]), 400, "invalid_scope"),
        (dict(grant_type="password"), 400, "unsupported_grant_type"),
        (dict(client_assertion_type="urn:other"), 400, "invalid_request"),
    ]
    for case, status, error in cases:
        scopes = case.pop("scopes", [SCOPE_SCORE])
        resp = token_request(live_server, scopes, case.pop("assertion", None), **case)
        assert resp.status_code == status, (case, resp.text)
        if error:
            assert resp.json()["error"] == error and resp.json()["error_description"], (case, resp.text)


def test_token_endpoint_refetches_the_tool_keys_on_unknown_kid(live_server, registered):
    assert token_request(live_server, [SCOPE_SCORE]).status_code == 200  # tool key set cached now
    from lms_bridge.lti import keys

    new = in_app(live_server, lambda: keys.rotate(grace_days=7).__getitem__(0).kid)
    assertion = client_assertion(live_server)
    assert jwt.get_unverified_header(assertion)["kid"] == new
    resp = token_request(live_server, [SCOPE_SCORE], assertion)
    assert resp.status_code == 200, resp.text


# -- AGS ----------------------------------------------------------------------------------------


def lineitems_url(live_server, claims_or_none=None) -> str:
    browser = Browser()
    _, claims = start_launch(live_server, browser, user="learner")
    return claims[AGS_CLAIM]["lineitems"], claims[AGS_CLAIM]["lineitem"], claims[C + "resource_link"]["id"]


def test_ags_line_items_scores_and_results(live_server, registered):
    lineitems, own, link_id = lineitems_url(live_server)
    auth = access_token(live_server)
    # The activity's own column.
    resp = requests.get(own, headers={**auth, "Accept": LINEITEM_TYPE})
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith(LINEITEM_TYPE)
    own_item = resp.json()
    assert own_item["id"] == own and own_item["resourceLinkId"] == link_id and own_item["scoreMaximum"] == 100
    # Create extra columns.
    tag = "quiz-" + secrets.token_hex(3)
    created = []
    for n in range(3):
        resp = requests.post(lineitems, headers={**auth, "Content-Type": LINEITEM_TYPE},
                             data=json.dumps({"label": f"Quiz {n}", "scoreMaximum": 10 * (n + 1), "tag": tag,
                                              "resourceId": f"quiz-{n}", "resourceLinkId": link_id}))
        assert resp.status_code == 201, resp.text
        assert resp.headers["Content-Type"].startswith(LINEITEM_TYPE)
        created.append(resp.json())
    assert all("?type_id=" in item["id"] for item in created)
    # Filters and paging.
    resp = requests.get(lineitems, headers=auth, params={"tag": tag})
    assert resp.headers["Content-Type"].startswith("application/vnd.ims.lis.v2.lineitemcontainer+json")
    assert [i["label"] for i in resp.json()] == ["Quiz 0", "Quiz 1", "Quiz 2"]
    assert [i["label"] for i in requests.get(lineitems, headers=auth, params={"resource_id": "quiz-1"}).json()] == ["Quiz 1"]
    by_link = requests.get(lineitems, headers=auth, params={"resource_link_id": link_id}).json()
    assert own in [i["id"] for i in by_link] and len(by_link) >= 4
    seen, url, params = [], lineitems, {"tag": tag, "limit": 2}
    while url:
        resp = requests.get(url, headers=auth, params=params)
        assert resp.status_code == 200
        seen += [i["label"] for i in resp.json()]
        match = re.search(r'<([^>]+)>;\s*rel="next"', resp.headers.get("Link", ""))
        url, params = (match.group(1), None) if match else (None, None)
    assert seen == ["Quiz 0", "Quiz 1", "Quiz 2"]
    # Update and delete.
    quiz = created[0]
    resp = requests.put(quiz["id"], headers={**auth, "Content-Type": LINEITEM_TYPE},
                        data=json.dumps({**quiz, "label": "Quiz zero", "scoreMaximum": 20}))
    assert resp.status_code == 200 and resp.json()["label"] == "Quiz zero" and resp.json()["scoreMaximum"] == 20
    assert requests.get(quiz["id"], headers=auth).json()["label"] == "Quiz zero"
    assert requests.delete(created[2]["id"], headers=auth).status_code == 204
    assert requests.get(created[2]["id"], headers=auth).status_code == 404
    assert requests.delete(own, headers=auth).status_code == 403  # an activity's own column stays
    # Scores.
    t0 = datetime.now(timezone.utc)

    def score(url, user, given, maximum, at, **extra):
        body = {"userId": user, "scoreGiven": given, "scoreMaximum": maximum, "activityProgress": "Completed",
                "gradingProgress": "FullyGraded", "timestamp": at.isoformat(timespec="milliseconds"), **extra}
        return requests.post(with_path(url, "/scores"), headers={**auth, "Content-Type": SCORE_TYPE},
                             data=json.dumps(body))

    resp = score(own, "4", 7, 10, t0, comment="Well done")
    assert resp.status_code == 200 and resp.text == "null", resp.text
    assert score(own, "4", 3, 10, t0 - timedelta(seconds=30)).status_code == 200  # older: stored, ignored
    assert score(own, "5", 12, 10, t0).status_code == 200  # extra credit is allowed
    assert score(quiz["id"], "4", 15, 20, t0).status_code == 200
    book = gradebook(live_server)
    mine = [s for s in book["scores"] if s["line_item_id"] == int(own.split("/lineitems/")[1].split("/")[0])]
    assert [(s["user_id"], s["score_given"], s["ignored"]) for s in mine[-3:]] == [("4", 7, False), ("4", 3, True), ("5", 12, False)]
    # Results: scaled to the column's maximum (Moodle), newest timestamp wins.
    resp = requests.get(with_path(own, "/results"), headers=auth)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/vnd.ims.lis.v2.resultcontainer+json")
    results = {r["userId"]: r for r in resp.json()}
    assert results["4"]["resultScore"] == 70 and results["4"]["resultMaximum"] == 100
    assert results["4"]["comment"] == "Well done" and results["4"]["scoreOf"] == own
    assert results["5"]["resultScore"] == 120
    one = requests.get(with_path(own, "/results"), headers=auth, params={"user_id": "5"}).json()
    assert [r["userId"] for r in one] == ["5"]
    paged = requests.get(with_path(own, "/results"), headers=auth, params={"limit": 1})
    assert len(paged.json()) == 1 and 'rel="next"' in paged.headers["Link"]
    # Invalid scores.
    for bad, why in [({"timestamp": None}, "timestamp"), ({"timestamp": "yesterday"}, "timestamp"),
                     ({"userId": "3"}, "teacher is not graded"), ({"userId": "999"}, "unknown user"),
                     ({"activityProgress": "Done"}, "activityProgress"), ({"gradingProgress": "Graded"}, "gradingProgress"),
                     ({"scoreMaximum": None}, "scoreMaximum needed with scoreGiven"), ({"scoreGiven": -1}, "negative"),
                     ({"scoreGiven": "7"}, "not a number")]:
        body = {"userId": "4", "scoreGiven": 5, "scoreMaximum": 10, "activityProgress": "Completed",
                "gradingProgress": "FullyGraded", "timestamp": datetime.now(timezone.utc).isoformat(), **bad}
        body = {k: v for k, v in body.items() if v is not None}
        resp = requests.post(with_path(own, "/scores"), headers={**auth, "Content-Type": SCORE_TYPE}, data=json.dumps(body))
        assert resp.status_code == 400, (why, resp.text)
    # Moodle's pitfall: /scores after the query string.
    assert requests.post(own + "/scores", headers={**auth, "Content-Type": SCORE_TYPE}, data="{}").status_code == 400
    # Wrong media type, bad line item.
    resp = requests.post(lineitems, headers={**auth, "Content-Type": "text/plain"}, data="{}")
    assert resp.status_code == 400
    resp = requests.post(lineitems, headers={**auth, "Content-Type": LINEITEM_TYPE}, data=json.dumps({"label": "x"}))
    assert resp.status_code == 400 and "scoreMaximum" in resp.text


def test_ags_needs_tokens_and_scopes(live_server, registered):
    lineitems, own, _ = lineitems_url(live_server)
    assert requests.get(lineitems).status_code == 401
    resp = requests.get(lineitems, headers={"Authorization": "Bearer forged"})
    assert resp.status_code == 401 and "invalid_token" in resp.headers["WWW-Authenticate"]
    score_only = access_token(live_server, [SCOPE_SCORE])
    resp = requests.get(lineitems, headers=score_only)
    assert resp.status_code == 403 and "insufficient_scope" in resp.headers["WWW-Authenticate"]
    readonly = access_token(live_server, [SCOPE_LINEITEM_RO])
    assert requests.get(lineitems, headers=readonly).status_code == 200
    resp = requests.post(lineitems, headers={**readonly, "Content-Type": LINEITEM_TYPE},
                         data=json.dumps({"label": "x", "scoreMaximum": 1}))
    assert resp.status_code == 403
    assert requests.get(with_path(own, "/results"), headers=readonly).status_code == 403
    body = {"userId": "4", "activityProgress": "Started", "gradingProgress": "NotReady",
            "timestamp": datetime.now(timezone.utc).isoformat()}
    assert requests.post(with_path(own, "/scores"), headers={**readonly, "Content-Type": SCORE_TYPE},
                         data=json.dumps(body)).status_code == 403
    assert requests.post(with_path(own, "/scores"), headers={**score_only, "Content-Type": SCORE_TYPE},
                         data=json.dumps(body)).status_code == 200
    other_course = lineitems.replace("/contexts/2/", "/contexts/99/")
    assert requests.get(other_course, headers=readonly).status_code == 404
    other_tool = re.sub(r"type_id=\d+", "type_id=99999", lineitems)
    assert requests.get(other_tool, headers=readonly).status_code == 403


# -- NRPS ---------------------------------------------------------------------------------------


def test_nrps_memberships_with_paging(live_server, registered):
    _, claims = start_launch(live_server, Browser(), user="teacher")
    url = claims[NRPS_CLAIM]["context_memberships_url"]
    assert requests.get(url).status_code == 401
    assert requests.get(url, headers=access_token(live_server, [SCOPE_SCORE])).status_code == 403
    auth = access_token(live_server, [SCOPE_NRPS])
    members, next_url, params, pages = [], url, {"limit": 2}, 0
    while next_url:
        resp = requests.get(next_url, headers={**auth, "Accept": "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"},
                            params=params)
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"].startswith("application/vnd.ims.lti-nrps.v2.membershipcontainer+json")
        body = resp.json()
        assert body["context"]["id"] == COURSE and body["id"]
        assert len(body["members"]) <= 2
        members += body["members"]
        pages += 1
        match = re.search(r'<([^>]+)>;\s*rel="next"', resp.headers.get("Link", ""))
        next_url, params = (match.group(1), None) if match else (None, None)
    assert pages == 3
    by_id = {m["user_id"]: m for m in members}
    assert set(by_id) == {"2", "3", "4", "5", "6"}
    assert all(m["status"] == "Active" and m["roles"] for m in members)
    assert by_id["3"]["name"] == "Tina Teacher" and by_id["3"]["email"] == "tina.teacher@example.org"
    assert "name" not in by_id["6"] and "email" not in by_id["6"]
    learners = requests.get(url, headers=auth, params={"role": "Learner"}).json()["members"]
    assert {m["user_id"] for m in learners} == {"4", "5", "6"}


# -- deep linking ---------------------------------------------------------------------------------


def deep_link_response(live_server, claims: dict, items: list, **overrides) -> str:
    now = int(time.time())
    body = {"iss": CLIENT_ID, "aud": issuer(live_server), "iat": now, "exp": now + 60, "nonce": uuid.uuid4().hex,
            C + "message_type": "LtiDeepLinkingResponse", C + "version": "1.3.0",
            C + "deployment_id": claims[C + "deployment_id"],
            DL + "data": claims[DL + "deep_linking_settings"]["data"], DL + "content_items": items,
            DL + "msg": "Added from lms_bridge"}
    body.update(overrides)
    return sign_as_tool(live_server, {k: v for k, v in body.items() if v is not None})


def test_deep_linking_request_and_response(live_server, registered):
    browser = Browser()
    fields, claims = start_launch(live_server, browser, message="deeplink")
    assert claims[C + "message_type"] == "LtiDeepLinkingRequest" and claims["sub"] == "3"
    settings = claims[DL + "deep_linking_settings"]
    assert settings["accept_types"] == ["ltiResourceLink"]
    assert settings["accept_presentation_document_targets"] == ["frame", "iframe", "window"]
    assert settings["accept_multiple"] is True and settings["auto_create"] is False and settings["data"]
    return_url = settings["deep_link_return_url"]
    assert return_url.startswith(platform_url(live_server, "/deep-link-return?")) and "sesskey=" in return_url
    assert "lineitems" in claims[AGS_CLAIM] and "lineitem" not in claims[AGS_CLAIM]
    assert C + "resource_link" not in claims
    finish_launch(live_server, browser, fields)  # the tool accepts the request

    title = "EV battery isolation test " + secrets.token_hex(3)
    items = [{"type": "ltiResourceLink", "title": title, "url": live_server.url + "/lti/launch",
              "custom": {"course": "ev-battery", "module": "3"},
              "lineItem": {"scoreMaximum": 40, "label": title + " (grade)", "resourceId": "ev-battery-3", "tag": "final"}},
             {"type": "html", "html": "<p>not accepted</p>"}]
    # Refusals first: they leave the sesskey usable.
    for overrides, status in [({"aud": "https://elsewhere.example.org"}, 401), ({DL + "data": "forged"}, 400),
                              ({C + "deployment_id": "77"}, 400), ({C + "message_type": "LtiResourceLinkRequest"}, 400),
                              ({"exp": int(time.time()) - 300, "iat": int(time.time()) - 360}, 401),
                              ({"iss": "someone-else"}, 401)]:
        resp = requests.post(return_url, data={"JWT": deep_link_response(live_server, claims, items, **overrides)})
        assert resp.status_code == status, (overrides, resp.text[:500])
    resp = requests.post(return_url, data={"JWT": deep_link_response(live_server, claims, items)})
    assert resp.status_code == 200, resp.text[:1000]
    assert title in resp.text and "Added from lms_bridge" in resp.text and "not accepted" in resp.text
    link_id = re.search(r'data-resource-link-id="(\d+)"', resp.text).group(1)
    again = requests.post(return_url, data={"JWT": deep_link_response(live_server, claims, items)})
    assert again.status_code == 400  # the sesskey is used up

    book = gradebook(live_server)
    link = next(l for l in book["links"] if l["resource_link_id"] == link_id)
    assert link["title"] == title and link["custom"] == {"course": "ev-battery", "module": "3"}
    item = next(i for i in book["line_items"] if i["id"] == link["line_item_id"])
    assert item["score_maximum"] == 40 and item["label"] == title + " (grade)" and item["tag"] == "final"
    assert item["resource_link_id"] == link_id and item["resource_id"] == "ev-battery-3"
    # The new activity launches with its own resource link, custom parameters and column.
    fields, claims = start_launch(live_server, browser, user="learner", link=link_id)
    assert claims[C + "resource_link"] == {"id": link_id, "title": title}
    assert claims[C + "custom"]["module"] == "3" and "context_memberships_url" in claims[C + "custom"]
    assert f"/lineitems/{item['id']}/lineitem?" in claims[AGS_CLAIM]["lineitem"]
    finish_launch(live_server, browser, fields)


def test_only_teachers_deep_link(live_server, registered):
    resp = Browser().get(platform_url(live_server, "/launch"), params={"message": "deeplink", "user": "learner"})
    assert resp.status_code == 403


# -- Dynamic Registration -----------------------------------------------------------------------


def registration_body(live_server, **changes) -> dict:
    tool = live_server.url
    body = {
        "application_type": "web", "response_types": ["id_token"], "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": tool + "/lti/login", "redirect_uris": [tool + "/lti/launch"], "client_name": "Other tool",
        "jwks_uri": tool + "/.well-known/jwks.json", "token_endpoint_auth_method": "private_key_jwt",
        "scope": f"{SCOPE_SCORE} {SCOPE_NRPS} https://example.org/not-offered",
        "https://purl.imsglobal.org/spec/lti-tool-configuration": {
            "domain": urlsplit(tool).netloc, "target_link_uri": tool + "/lti/launch", "claims": ["iss", "sub", "name"],
            "messages": [{"type": "LtiDeepLinkingRequest", "target_link_uri": tool + "/lti/launch"}]},
    }
    body.update(changes)
    return body


def registration_token(live_server, tool_url: str) -> tuple[str, str, str]:
    page = requests.get(platform_url(live_server, "/dynamic-registration"), params={"tool_url": tool_url})
    assert page.status_code == 200
    frame = next(f for f in parse(page.text).iframes if f.get("id") == "dr-frame")
    query = parse_qs(urlsplit(frame["src"]).query)
    config = json.loads(re.search(r'id="dp-dynreg-config">(.*?)</script>', page.text).group(1))
    return query["registration_token"][0], query["openid_configuration"][0], config["resultUrl"]


def test_registration_endpoint(live_server, registered):
    token, conf_url, result_url = registration_token(live_server, live_server.url + "/lti/register")
    assert conf_url == platform_url(live_server, "/.well-known/openid-configuration")
    register = platform_url(live_server, "/register")
    assert requests.post(register, json=registration_body(live_server)).status_code == 401
    assert requests.post(register, json=registration_body(live_server),
                         headers={"Authorization": "Bearer forged"}).status_code == 401
    auth = {"Authorization": "Bearer " + token}
    tool_conf = "https://purl.imsglobal.org/spec/lti-tool-configuration"
    for changes in [{"response_types": ["code"]}, {"redirect_uris": "http://x/lti/launch"},
                    {"token_endpoint_auth_method": "client_secret_basic"}, {"application_type": "native"},
                    {"jwks_uri": None}, {"initiate_login_uri": "ftp://x"}, {tool_conf: {"domain": "x"}},
                    {"redirect_uris": ["https://evil.example.org/launch"]}, {"grant_types": ["implicit"]}]:
        body = {k: v for k, v in registration_body(live_server, **changes).items() if v is not None}
        resp = requests.post(register, json=body, headers=auth)
        assert resp.status_code == 400 and resp.json()["error"], (changes, resp.text)
    resp = requests.post(register, json=registration_body(live_server), headers=auth)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["client_id"] and answer["client_id"] != CLIENT_ID
    deployment_id = answer[tool_conf]["deployment_id"]
    assert deployment_id and answer["scope"].split() == [SCOPE_SCORE, SCOPE_NRPS]
    assert answer["initiate_login_uri"] == live_server.url + "/lti/login" and answer["client_name"] == "Other tool"
    assert requests.post(register, json=registration_body(live_server), headers=auth).status_code == 401  # one-time
    result = requests.get(live_server.platform_url + result_url).json()
    assert result["finished"] and result["client_id"] == answer["client_id"] and result["deployment_id"] == deployment_id
    # The new client gets tokens only for what it registered.
    assertion = client_assertion(live_server, answer["client_id"])
    assert token_request(live_server, [SCOPE_SCORE], assertion).status_code == 200
    assertion = client_assertion(live_server, answer["client_id"])
    assert token_request(live_server, [SCOPE_LINEITEM], assertion).json()["error"] == "invalid_scope"


def test_dynamic_registration_with_the_tool_then_launch(live_server, registered):
    token, conf_url, result_url = registration_token(live_server, live_server.url + "/lti/register")
    assert requests.get(live_server.platform_url + result_url).json() == {"finished": False}
    resp = requests.get(live_server.url + "/lti/register", params={"openid_configuration": conf_url,
                                                                   "registration_token": token})
    assert resp.status_code == 200, resp.text[:1000]
    result = requests.get(live_server.platform_url + result_url).json()
    assert result["finished"], result
    client_id = result["client_id"]

    def tool_side():
        from lms_bridge.extensions import db
        from lms_bridge.lti.models import Registration

        reg = db.session.execute(db.select(Registration).filter_by(issuer=issuer(live_server), client_id=client_id)).scalar_one()
        return reg.source, [(d.deployment_id, d.active) for d in reg.deployments], reg.active

    source, deployments, active = in_app(live_server, tool_side)
    assert source == "dynamic" and deployments == [(result["deployment_id"], True)]
    if not active:
        pytest.skip("the tool keeps dynamic registrations pending (DYNAMIC_REGISTRATION=approval)")
    browser = Browser()
    fields, claims = start_launch(live_server, browser, client=client_id, user="learner")
    assert claims["aud"] == client_id and claims[C + "deployment_id"] == result["deployment_id"]
    finish_launch(live_server, browser, fields)


def test_gradebook_page(live_server, registered):
    resp = requests.get(platform_url(live_server, "/gradebook"))
    assert resp.status_code == 200
    assert "Every score received" in resp.text and 'id="token-requests"' in resp.text
    book = gradebook(live_server)
    assert {"line_items", "scores", "token_requests", "tokens_issued", "links"} <= set(book)
