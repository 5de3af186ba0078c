"""Operator pages (login, CSRF, scoping) and the operator commands."""
from __future__ import annotations

import json
import re
import secrets
import time

import requests

from tests.integration.test_keys_and_state import flask_cmd
from tests.support.platform import LEARNER, SimPlatform


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def operator_session(live_server) -> requests.Session:
    name = "op-" + secrets.token_hex(3)
    res = flask_cmd(live_server, "create-operator", name, "--password", "correct horse battery")
    assert res.returncode == 0, res.stderr
    http = requests.Session()
    page = http.get(live_server.url + "/admin/login").text
    resp = http.post(live_server.url + "/admin/login", data={"csrf_token": csrf(page), "username": name,
                                                             "password": "correct horse battery"}, allow_redirects=False)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/admin/")
    return http


def test_admin_needs_a_login(live_server):
    resp = requests.get(live_server.url + "/admin/", allow_redirects=False)
    assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"]


def test_wrong_password_and_missing_csrf_are_refused(live_server):
    http = requests.Session()
    page = http.get(live_server.url + "/admin/login").text
    bad = http.post(live_server.url + "/admin/login", data={"csrf_token": csrf(page), "username": "nobody", "password": "x" * 12})
    assert bad.status_code == 401 and "Wrong user name or password" in bad.text
    no_csrf = http.post(live_server.url + "/admin/login", data={"username": "nobody", "password": "x" * 12})
    assert no_csrf.status_code == 400 and "CSRF" in no_csrf.text


def test_short_passwords_are_refused(live_server):
    res = flask_cmd(live_server, "create-operator", "shorty", "--password", "short")
    assert res.returncode != 0 and "10 characters" in res.stderr


def test_operator_sees_registrations_and_activates_deployments(live_server):
    platform = SimPlatform(live_server)
    assert platform.launch(lti_deployment_id="later").status_code == 403
    http = operator_session(live_server)
    page = http.get(live_server.url + "/admin/").text
    assert platform.client_id in page and f"/lti/login/{platform.registration_id}" in page
    assert "Values to paste into an LMS" in page and "/.well-known/jwks.json" in page
    from lms_bridge.extensions import db
    from lms_bridge.lti.models import Deployment

    with live_server.app.app_context():
        dep = db.session.execute(db.select(Deployment).filter_by(registration_id=platform.registration_id,
                                                                 deployment_id="later")).scalar_one()
    # Without the CSRF token nothing changes.
    assert http.post(live_server.url + f"/admin/deployments/{dep.id}/activate").status_code == 400
    resp = http.post(live_server.url + f"/admin/deployments/{dep.id}/activate", data={"csrf_token": csrf(page)})
    assert resp.status_code == 200
    assert platform.launch(lti_deployment_id="later").status_code == 303


def test_operator_registers_a_platform_by_form(live_server):
    http = operator_session(live_server)
    page = http.get(live_server.url + "/admin/").text
    resp = http.post(live_server.url + "/admin/registrations", data={
        "csrf_token": csrf(page), "issuer": "https://moodle.form.example.org", "client_id": "formclient",
        "auth_login_url": "https://moodle.form.example.org/mod/lti/auth.php",
        "auth_token_url": "https://moodle.form.example.org/mod/lti/token.php",
        "key_set_url": "https://moodle.form.example.org/mod/lti/certs.php", "deployment_ids": "3, 4"})
    assert "Registered https://moodle.form.example.org" in resp.text
    bad = http.post(live_server.url + "/admin/registrations", data={
        "csrf_token": csrf(page), "issuer": "https://x.example.org", "client_id": "c", "auth_login_url": "ftp://x"})
    assert "Not registered" in bad.text


def test_learner_launch_cannot_open_admin(live_server):
    platform = SimPlatform(live_server)
    resp = platform.launch(lti_roles=[LEARNER])
    token = resp.headers["Location"].rsplit("/", 1)[1]
    page = requests.get(live_server.url + "/admin/", params={"lt": token}, allow_redirects=False)
    assert page.status_code == 302  # treated as anonymous: off to the operator login
    forbidden = requests.post(live_server.url + "/admin/keys/rotate", data={"lt": token})
    assert forbidden.status_code == 403


def test_register_platform_command_is_idempotent(live_server):
    args = ["register-platform", "--issuer", "https://moodle.cli.example.org", "--client-id", "cli-1",
            "--deployment-id", "2", "--auth-login-url", "https://moodle.cli.example.org/mod/lti/auth.php",
            "--token-url", "https://moodle.cli.example.org/mod/lti/token.php",
            "--jwks-url", "https://moodle.cli.example.org/mod/lti/certs.php"]
    first = flask_cmd(live_server, *args)
    second = flask_cmd(live_server, *args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a == b and a["deployments"] == [{"deployment_id": "2", "active": True}]
    listed = json.loads(flask_cmd(live_server, "list-registrations").stdout)
    assert sum(1 for r in listed if r["client_id"] == "cli-1") == 1
    bad = flask_cmd(live_server, "register-platform", "--issuer", "https://x.example.org", "--client-id", "c",
                    "--auth-login-url", "https://x.example.org/auth")
    assert bad.returncode != 0 and "key set" in bad.stderr


def test_register_platform_with_a_pasted_public_key(live_server, tmp_path):
    from cryptography.hazmat.primitives import serialization

    platform = SimPlatform(live_server)
    pem = platform.key.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "key.pem").write_bytes(pem)
    res = flask_cmd(live_server, "register-platform", "--issuer", platform.issuer, "--client-id", platform.client_id,
                    "--auth-login-url", platform.issuer + "/mod/lti/auth.php", "--public-key-file", str(tmp_path / "key.pem"),
                    "--deployment-id", platform.deployment_id)
    assert res.returncode == 0, res.stderr
    assert platform.launch().status_code == 303


def test_tool_config_lists_every_value_an_admin_pastes(live_server):
    cfg = requests.get(live_server.url + "/lti/config").json()
    assert cfg["initiate_login_url"] == live_server.url + "/lti/login"
    assert cfg["redirect_uris"] == [live_server.url + "/lti/launch"]
    assert cfg["jwks_url"] == live_server.url + "/.well-known/jwks.json"
    assert cfg["dynamic_registration_url"] == live_server.url + "/lti/register"
    assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in cfg["scopes"]


def test_proxy_fix_makes_cookies_secure_behind_tls(live_server):
    """Behind a TLS proxy (TRUSTED_PROXIES=1) the tool sees https: Secure cookies, https URLs."""
    from tests.support.servers import make_app

    platform = SimPlatform(live_server)
    env = dict(live_server.env, TRUSTED_PROXIES="1")
    env.pop("PUBLIC_BASE_URL")
    client = make_app(env).test_client()
    resp = client.get("/lti/login", query_string={"iss": platform.issuer, "login_hint": "u", "client_id": platform.client_id,
                                                  "target_link_uri": "https://tool.example.org/lti/launch"},
                      headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "tool.example.org",
                               "X-Forwarded-For": "203.0.113.9"})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "SameSite=None" in cookie and "Partitioned" in cookie
    assert "redirect_uri=https%3A%2F%2Ftool.example.org%2Flti%2Flaunch" in resp.headers["Location"]
    # Without the proxy's word, a plain-HTTP request on a real host name gets no SameSite=None cookie.
    plain = client.get("/lti/login", query_string={"iss": platform.issuer, "login_hint": "u", "client_id": platform.client_id,
                                                   "target_link_uri": "http://tool.example.org/lti/launch"},
                       headers={"Host": "tool.example.org"})
    assert plain.status_code == 302 and "SameSite=Lax" in plain.headers["Set-Cookie"]


def test_operator_sees_parked_deliveries_and_retries_them(live_server):
    """A parked delivery shows its last answer on the admin page; Retry puts it back in line, the
    web workers' in-process delivery thread picks it up at once (here: parked again, with the reason)."""
    from lms_bridge.extensions import db
    from lms_bridge.outbox import OutboxMessage

    with live_server.app.app_context():
        m = OutboxMessage(kind="test.retired-kind", dedupe_key="k1", target="https://lms.example.org/lineitem/1",
                          payload={}, state="parked", attempts=20, last_status="HTTP 503",
                          last_error="The LMS answered 503 Service Unavailable (gave up after 20 attempts)")
        db.session.add(m)
        db.session.commit()
        message_id = m.id
    http = operator_session(live_server)
    page = http.get(live_server.url + "/admin/").text
    assert "Deliveries to LMSs and credential issuers" in page and re.search(r"parked: [1-9]", page)
    assert "The LMS answered 503 Service Unavailable" in page
    resp = http.post(live_server.url + f"/admin/outbox/{message_id}/retry", data={"csrf_token": csrf(page)},
                     allow_redirects=False)
    assert resp.status_code == 302
    deadline = time.time() + 20
    while time.time() < deadline:
        with live_server.app.app_context():
            row = db.session.get(OutboxMessage, message_id)
            state, attempts, error = row.state, row.attempts, row.last_error
            db.session.remove()
        if state == "parked" and attempts == 1:
            break
        time.sleep(0.2)
    assert (state, attempts) == ("parked", 1)
    assert "no handler for messages of kind 'test.retired-kind'" in error
    no_csrf = http.post(live_server.url + f"/admin/outbox/{message_id}/retry")
    assert no_csrf.status_code in (400, 403)
