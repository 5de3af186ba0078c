"""Every 1EdTech certification negative case is refused with the right status and reason,
and every valid variant launches (LTI Advantage certification, tool "Known Bad/Good Payloads")."""
from __future__ import annotations

import re
import time

import pytest
import requests

from tests.support.platform import ADMIN, DL, DROP, INSTRUCTOR, LEARNER, Key, SimPlatform, error_code


@pytest.fixture(scope="module")
def platform(live_server):
    return SimPlatform(live_server)


def refused(resp, status: int, code: str, live_server=None):
    assert resp.status_code == status, (resp.status_code, error_code(resp), resp.text[:500])
    assert error_code(resp) == code
    ref = re.search(r'id="support-reference">([0-9a-f]+)<', resp.text)
    assert ref, "the error page names a support reference"
    if live_server is not None:
        # A structured log line carries the same reference and reason.
        deadline = time.time() + 3
        while time.time() < deadline and ref.group(1) not in live_server.log():
            time.sleep(0.05)
        line = next(l for l in live_server.log().splitlines() if ref.group(1) in l)
        assert f'"code": "{code}"' in line and "lti.launch.refused" in line or "lti.login.refused" in line


def launched(resp, http=None):
    assert resp.status_code == 303, (resp.status_code, error_code(resp), resp.text[:500])
    page = (http or requests).get(resp.headers["Location"] if resp.headers["Location"].startswith("http")
                                  else resp.url.split("/lti/")[0] + resp.headers["Location"])
    assert page.status_code == 200
    return page


NOW = lambda: int(time.time())  # noqa: E731


@pytest.mark.parametrize("overrides,status,code", [
    ({"lti_version": "1.2.0"}, 400, "wrong_version"),
    ({"lti_version": DROP}, 400, "missing_version"),
    ({"lti_version": DROP, "lti_message_type": DROP, "lti_roles": DROP, "lti_resource_link": DROP,
      "lti_deployment_id": DROP, "lti_context": DROP}, 400, "not_lti"),
    ({"lti_message_type": DROP}, 400, "missing_message_type"),
    ({"lti_message_type": "LtiSomethingElse"}, 400, "unsupported_message_type"),
    ({"lti_roles": DROP}, 400, "missing_roles"),
    ({"lti_deployment_id": DROP}, 400, "missing_deployment_id"),
    ({"lti_resource_link": DROP}, 400, "missing_resource_link"),
    ({"lti_resource_link": {"title": "no id"}}, 400, "missing_resource_link"),
    ({"sub": DROP}, 400, "missing_sub"),
    ({"iss": DROP}, 400, "missing_iss"),
    ({"aud": DROP}, 400, "missing_aud"),
    ({"exp": DROP}, 400, "missing_exp"),
    ({"iat": DROP}, 400, "missing_iat"),
    ({"exp": NOW() - 3600, "iat": NOW() - 3660}, 401, "expired"),
    ({"iat": NOW() + 3600, "exp": NOW() + 3660}, 401, "bad_timestamps"),
    ({"iss": "https://other-platform.example.org"}, 403, "unregistered_issuer"),
    ({"aud": "someone-else"}, 403, "unregistered_client"),
    ({"nonce": "not-the-nonce"}, 401, "nonce_mismatch"),
    ({"nonce": DROP}, 400, "missing_nonce"),
    ({"lti_deployment_id": "never-seen"}, 403, "deployment_inactive"),
])
def test_bad_payloads_are_refused(live_server, platform, overrides, status, code):
    refused(platform.launch(**overrides), status, code, live_server)


def test_exp_before_iat(live_server, platform):
    now = int(time.time())
    refused(platform.launch(iat=now, exp=now - 5), 401, "bad_timestamps", live_server)


def test_no_kid(live_server, platform):
    refused(platform.launch(headers={"kid": DROP}), 401, "missing_kid", live_server)


def test_wrong_kid(live_server, platform):
    refused(platform.launch(headers={"kid": "no-such-kid"}), 401, "unknown_kid", live_server)


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_forbidden_algorithms(live_server, platform, alg):
    http = requests.Session()
    state, nonce = platform.login_state(http)
    token = platform.sign(platform.claims(nonce), alg=alg)
    refused(platform.post_launch(http, state, token), 401, "alg_not_allowed", live_server)


def test_signature_from_another_key_with_the_right_kid(live_server, platform):
    impostor = Key(kid=platform.key.kid)
    refused(platform.launch(key=impostor), 401, "bad_signature", live_server)


def test_not_a_jwt(live_server, platform):
    http = requests.Session()
    state, _ = platform.login_state(http)
    refused(platform.post_launch(http, state, "not-a-jwt"), 400, "malformed_jwt")
    state, _ = platform.login_state(http)
    refused(platform.post_launch(http, state, "a.b.c"), 400, "malformed_jwt")


def test_hostile_jwt_shapes(live_server, platform):
    import base64
    import json as _json

    def b64(obj):
        return base64.urlsafe_b64encode(_json.dumps(obj).encode()).rstrip(b"=").decode()

    cases = [
        (b64({"alg": ["RS256"], "kid": "x"}) + "." + b64({}) + ".sig", 401, "alg_not_allowed"),
        (b64({"alg": "RS256", "kid": 7}) + "." + b64({}) + ".sig", 401, "missing_kid"),
        (b64(["not", "an", "object"]) + "." + b64({}) + ".sig", 400, "malformed_jwt"),
        (b64({"alg": "RS256", "kid": "x"}) + ".%%%." + "sig", 400, "malformed_jwt"),
    ]
    for token, status, code in cases:
        http = requests.Session()
        state, _ = platform.login_state(http)
        refused(platform.post_launch(http, state, token), status, code)
    # Claims of the wrong type are refused, never a server error.
    refused(platform.launch(exp="tomorrow"), 401, "invalid_token")
    refused(platform.launch(lti_roles="Learner"), 400, "bad_roles")
    refused(platform.launch(lti_resource_link="link-1"), 400, "missing_resource_link")


def test_missing_state_and_unknown_state(live_server, platform):
    http = requests.Session()
    state, nonce = platform.login_state(http)
    token = platform.sign(platform.claims(nonce))
    refused(http.post(live_server.url + "/lti/launch", data={"id_token": token}, allow_redirects=False), 400, "missing_state")
    refused(platform.post_launch(http, "forged-state", token), 401, "unknown_state")


def test_state_must_come_back_to_the_same_browser(live_server, platform):
    http = requests.Session()
    state, nonce = platform.login_state(http)
    other_browser = requests.Session()  # has no state cookie
    refused(platform.post_launch(other_browser, state, platform.sign(platform.claims(nonce))), 401, "state_not_bound")


def test_replayed_id_token_is_refused_even_in_the_same_browser(live_server, platform):
    http = requests.Session()
    state, nonce = platform.login_state(http)
    token = platform.sign(platform.claims(nonce))
    launched(platform.post_launch(http, state, token), http)
    refused(platform.post_launch(http, state, token), 401, "unknown_state")
    # A fresh login does not make the old token acceptable.
    state2, _ = platform.login_state(http)
    refused(platform.post_launch(http, state2, token), 401, "nonce_mismatch")


def test_aud_array_needs_azp(live_server, platform):
    refused(platform.launch(aud=[platform.client_id, "other"]), 401, "bad_azp")
    refused(platform.launch(aud=[platform.client_id, "other"], azp="other"), 401, "bad_azp")
    refused(platform.launch(aud=[platform.client_id, "untrusted"], azp=platform.client_id), 401, "untrusted_audience")
    refused(platform.launch(aud=["someone-else"], azp="someone-else"), 403, "unregistered_client")
    launched(platform.launch(aud=[platform.client_id], azp=platform.client_id))
    launched(platform.launch(aud=[platform.client_id]))


def test_clock_skew_within_leeway_launches(live_server, platform):
    launched(platform.launch(iat=NOW() + 3, exp=NOW() + 63))
    launched(platform.launch(iat=NOW() - 70, exp=NOW() - 2))


def test_login_refusals(live_server, platform):
    http = requests.Session()
    refused(platform.login(http, iss="https://unknown.example.org", client_id="x"), 403, "unknown_platform", live_server)
    refused(platform.login(http, client_id="not-registered"), 403, "unknown_client", live_server)
    refused(platform.login(http, iss=DROP), 400, "missing_iss")
    refused(platform.login(http, login_hint=DROP), 400, "missing_login_hint")
    refused(platform.login(http, target_link_uri=DROP), 400, "missing_target_link_uri")
    refused(platform.login(http, target_link_uri="https://evil.example.org/x"), 400, "foreign_target_link_uri")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_login_builds_the_authentication_request(live_server, platform, method):
    http = requests.Session()
    resp = platform.login(http, method=method)
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.startswith(platform.issuer + "/mod/lti/auth.php?")
    for part in ("scope=openid", "response_type=id_token", "response_mode=form_post", "prompt=none",
                 f"client_id={platform.client_id}", "login_hint=user-1", "lti_message_hint=", "state=", "nonce="):
        assert part in location
    assert "redirect_uri=" + requests.utils.quote(live_server.url + "/lti/launch", safe="") in location
    cookie = resp.headers["Set-Cookie"]
    assert "SameSite=None" in cookie and "Secure" in cookie and "Partitioned" in cookie and "HttpOnly" in cookie


def test_login_without_client_id_uses_registration_id_or_the_only_registration(live_server):
    lone = SimPlatform(live_server)
    http = requests.Session()
    state, nonce = lone.login_state(http, client_id=DROP)
    launched(lone.post_launch(http, state, lone.sign(lone.claims(nonce))), http)
    # Two clients on one issuer (Canvas cloud): without client_id the login must name the registration.
    twin = SimPlatform(live_server, issuer=lone.issuer)
    refused(twin.login(http, client_id=DROP), 400, "ambiguous_registration")
    state, nonce = twin.login_state(http, client_id=DROP, _path=f"/lti/login/{twin.registration_id}")
    launched(twin.post_launch(http, state, twin.sign(twin.claims(nonce))), http)


def test_canvas_deployment_id_login_parameter(live_server, platform):
    http = requests.Session()
    state, nonce = platform.login_state(http, lti_deployment_id=DROP, deployment_id=platform.deployment_id)
    launched(platform.post_launch(http, state, platform.sign(platform.claims(nonce))), http)


def test_unknown_deployment_is_recorded_inactive_then_activated(live_server):
    p = SimPlatform(live_server)
    refused(p.launch(lti_deployment_id="new-dep"), 403, "deployment_inactive")
    from lms_bridge.extensions import db
    from lms_bridge.lti.models import Deployment

    with live_server.app.app_context():
        dep = db.session.execute(db.select(Deployment).filter_by(registration_id=p.registration_id, deployment_id="new-dep")).scalar_one()
        assert dep.active is False
        dep.active = True
        db.session.commit()
    launched(p.launch(lti_deployment_id="new-dep"))


def test_auto_activated_deployments(live_server):
    p = SimPlatform(live_server, auto_activate=True)
    launched(p.launch(lti_deployment_id="brand-new"))


@pytest.mark.parametrize("overrides,label", [
    ({"lti_roles": [""]}, "No role"),
    ({"lti_roles": []}, "No role"),
    ({"lti_roles": ["Learner"]}, "Learner"),
    ({"lti_roles": ["Instructor"]}, "Instructor"),
    ({"lti_roles": ["http://example.org/roles#Wizard"]}, "Participant"),
    ({"lti_roles": [INSTRUCTOR]}, "Instructor"),
    ({"lti_roles": [LEARNER, "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student"]}, "Learner"),
    ({"name": DROP, "given_name": DROP, "family_name": DROP, "email": DROP}, "Learner"),
    ({"lti_context": DROP}, "Learner"),
    ({"email": "only@example.org", "name": DROP, "given_name": DROP, "family_name": DROP}, "Learner"),
])
def test_valid_variants_launch(live_server, platform, overrides, label):
    page = launched(platform.launch(**overrides))
    assert f'<span id="role">{label}</span>' in page.text


def test_deep_linking_request(live_server, platform):
    settings = {"deep_link_return_url": platform.issuer + "/mod/lti/contentitem_return.php?sesskey=abc",
                "accept_types": ["ltiResourceLink"], "accept_presentation_document_targets": ["iframe", "window"],
                "accept_multiple": True, "auto_create": False, "data": "opaque"}
    page = launched(platform.launch(lti_message_type="LtiDeepLinkingRequest", lti_resource_link=DROP, lti_roles=[INSTRUCTOR],
                                    **{DL + "deep_linking_settings": settings}))
    assert 'data-view="deep_linking"' in page.text
    bad = dict(settings, deep_link_return_url="javascript:alert(1)")
    refused(platform.launch(lti_message_type="LtiDeepLinkingRequest", **{DL + "deep_linking_settings": bad}),
            400, "bad_deep_link_return_url")
    missing = {k: v for k, v in settings.items() if k != "deep_link_return_url"}
    refused(platform.launch(lti_message_type="LtiDeepLinkingRequest", **{DL + "deep_linking_settings": missing}),
            400, "missing_deep_link_return_url")
    refused(platform.launch(lti_message_type="LtiDeepLinkingRequest"), 400, "missing_deep_linking_settings")
    https_platform_http_return = dict(settings, deep_link_return_url="http://plain.example.org/return")
    refused(platform.launch(lti_message_type="LtiDeepLinkingRequest", **{DL + "deep_linking_settings": https_platform_http_return}),
            400, "bad_deep_link_return_url")


def test_launch_records_the_lti_domain(live_server, platform):
    launched(platform.launch(sub="rec-user", lti_roles=[INSTRUCTOR], lti_context={"id": "rec-ctx", "title": "Recorded"},
                             lti_resource_link={"id": "rec-link", "title": "Module 1"}))
    from lms_bridge.extensions import db
    from lms_bridge.lti.models import Context, Membership, ResourceLink, User

    with live_server.app.app_context():
        user = db.session.execute(db.select(User).filter_by(registration_id=platform.registration_id, sub="rec-user")).scalar_one()
        ctx = db.session.execute(db.select(Context).filter_by(context_id="rec-ctx")).scalar_one()
        link = db.session.execute(db.select(ResourceLink).filter_by(resource_link_id="rec-link")).scalar_one()
        membership = db.session.execute(db.select(Membership).filter_by(user_id=user.id, context_pk=ctx.id)).scalar_one()
        assert ctx.title == "Recorded" and link.context_pk == ctx.id and link.title == "Module 1"
        assert membership.roles == [INSTRUCTOR]
        assert user.email == "ada@example.org"


def test_launch_data_is_not_in_the_cookie_session(live_server, platform):
    http = requests.Session()
    state, nonce = platform.login_state(http)
    resp = platform.post_launch(http, state, platform.sign(platform.claims(nonce)))
    assert resp.status_code == 303
    assert "session" not in resp.cookies and "session" not in http.cookies
    assert re.match(r"^/launch/[A-Za-z0-9_-]{40,}$", resp.headers["Location"])
    # The state cookie is cleared once used.
    assert f"lti_state_{state}" not in http.cookies


def test_admin_role_launch_offers_scoped_admin(live_server, platform):
    page = launched(platform.launch(lti_roles=[ADMIN]))
    m = re.search(r'href="(/admin/\?lt=[^"]+)"', page.text)
    assert m
    admin = requests.get(live_server.url + m.group(1).replace("&amp;", "&"))
    assert admin.status_code == 200
    assert platform.client_id in admin.text
    other = SimPlatform(live_server)
    assert other.client_id not in admin.text, "an LMS admin sees only their own registration"
