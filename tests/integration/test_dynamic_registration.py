"""LTI Dynamic Registration, tool side, against a platform served over real HTTP."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.support.platform import error_code

TOOL_CONFIG = "https://purl.imsglobal.org/spec/lti-tool-configuration"


class FakePlatform:
    """An OpenID configuration and a registration endpoint that records what the tool sent."""

    def __init__(self, issuer_host: str | None = None, refuse: bool = False, scopes=None):
        self.requests: list[dict] = []
        self.refuse = refuse
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status, body):
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                self._send(200, outer.configuration)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"auth": self.headers.get("Authorization"), "body": body})
                if outer.refuse:
                    return self._send(400, {"error": "invalid_redirect_uri", "error_description": "nope"})
                answer = dict(body, client_id="dyn-" + str(len(outer.requests)))
                answer[TOOL_CONFIG] = dict(body[TOOL_CONFIG], deployment_id="77")
                self._send(200, answer)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        issuer = f"http://{issuer_host}:{self.httpd.server_address[1]}" if issuer_host else base
        self.configuration = {
            "issuer": issuer, "authorization_endpoint": base + "/auth", "token_endpoint": base + "/token",
            "jwks_uri": base + "/jwks", "registration_endpoint": base + "/register",
            "scopes_supported": scopes or ["openid", "https://purl.imsglobal.org/spec/lti-ags/scope/score",
                                           "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"],
            "claims_supported": ["iss", "sub", "name", "email"],
            "https://purl.imsglobal.org/spec/lti-platform-configuration": {
                "product_family_code": "moodle", "version": "4.5",
                "messages_supported": [{"type": "LtiResourceLinkRequest"}, {"type": "LtiDeepLinkingRequest"}]},
        }
        self.config_url = base + "/mod/lti/openid-configuration.php"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def fake_platform():
    p = FakePlatform()
    yield p
    p.close()


def test_dynamic_registration_registers_and_closes(live_server, fake_platform):
    resp = requests.get(live_server.url + "/lti/register", params={
        "openid_configuration": fake_platform.config_url, "registration_token": "tok-123"})
    assert resp.status_code == 200, resp.text[:400]
    assert "lms_bridge is registered" in resp.text and "registered.js" in resp.text
    sent = fake_platform.requests[0]
    assert sent["auth"] == "Bearer tok-123"
    body = sent["body"]
    assert body["initiate_login_uri"] == live_server.url + "/lti/login"
    assert body["redirect_uris"] == [live_server.url + "/lti/launch"]
    assert body["jwks_uri"] == live_server.url + "/.well-known/jwks.json"
    assert body["token_endpoint_auth_method"] == "private_key_jwt"
    assert set(body["scope"].split()) == {"https://purl.imsglobal.org/spec/lti-ags/scope/score",
                                          "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"}, \
        "only scopes the platform offers are requested"
    assert body[TOOL_CONFIG]["messages"][0]["type"] == "LtiDeepLinkingRequest"
    assert body[TOOL_CONFIG]["claims"] == ["iss", "sub", "name", "email"]
    from lms_bridge.extensions import db
    from lms_bridge.lti.models import Registration

    with live_server.app.app_context():
        reg = db.session.execute(db.select(Registration).filter_by(issuer=fake_platform.configuration["issuer"])).scalar_one()
        assert reg.client_id == "dyn-1" and reg.source == "dynamic" and reg.active
        assert reg.auth_login_url.endswith("/auth") and reg.key_set_url.endswith("/jwks")
        assert [(d.deployment_id, d.active) for d in reg.deployments] == [("77", True)]
    # Registering again gives a second client on the same issuer (Canvas-like), not a clash.
    requests.get(live_server.url + "/lti/register", params={"openid_configuration": fake_platform.config_url})
    with live_server.app.app_context():
        assert db.session.execute(db.select(db.func.count()).select_from(Registration)
                                  .filter_by(issuer=fake_platform.configuration["issuer"])).scalar() == 2


def test_issuer_on_another_host_is_refused(live_server):
    p = FakePlatform(issuer_host="evil.example.org")
    try:
        resp = requests.get(live_server.url + "/lti/register", params={"openid_configuration": p.config_url})
        assert resp.status_code == 400 and error_code(resp) == "registration_failed"
        assert "not on the host that served it" in resp.text and not p.requests
    finally:
        p.close()


def test_platform_refusal_and_unreachable_platform_are_clear(live_server):
    p = FakePlatform(refuse=True)
    try:
        resp = requests.get(live_server.url + "/lti/register", params={"openid_configuration": p.config_url})
        assert resp.status_code == 400 and "refused the registration (HTTP 400) nope" in resp.text
    finally:
        p.close()
    resp = requests.get(live_server.url + "/lti/register", params={"openid_configuration": "http://127.0.0.1:9/none"})
    assert resp.status_code == 400 and "could not be read" in resp.text
    resp = requests.get(live_server.url + "/lti/register")
    assert resp.status_code == 400 and error_code(resp) == "missing_openid_configuration"


@pytest.mark.parametrize("mode", ["approval", "off"])
def test_registration_modes(live_server, fake_platform, mode):
    from tests.support.servers import make_app

    app = make_app(dict(live_server.env, DYNAMIC_REGISTRATION=mode))
    resp = app.test_client().get("/lti/register", query_string={"openid_configuration": fake_platform.config_url})
    if mode == "off":
        assert resp.status_code == 403 and not fake_platform.requests
        return
    assert resp.status_code == 200 and "operator must still approve" in resp.get_data(as_text=True)
    from lms_bridge.extensions import db
    from lms_bridge.lti.models import Registration

    with app.app_context():
        reg = db.session.execute(db.select(Registration).filter_by(issuer=fake_platform.configuration["issuer"])).scalar_one()
        assert reg.active is False
    # A login from a registration waiting for approval is refused with a clear reason.
    login = requests.get(live_server.url + "/lti/login", params={
        "iss": reg.issuer, "client_id": reg.client_id, "login_hint": "u", "target_link_uri": live_server.url + "/lti/launch"})
    assert login.status_code == 403 and error_code(login) == "registration_inactive"
