"""LTI Platform Storage: with ``lti_storage_target`` the state binding lives in the platform's
frame (lti.put_data / lti.get_data), not in a cookie.  The browser half runs in the browser
tests; here the HTTP half is checked step by step."""
from __future__ import annotations

import json
import re

import requests

from tests.support.platform import SimPlatform, error_code


def storage_config(page: str) -> dict:
    raw = re.search(r'<script type="application/json" id="lti-storage-config">(.*?)</script>', page, re.S).group(1)
    return json.loads(raw)


def test_login_puts_the_binding_in_platform_storage_and_sets_no_cookie(live_server):
    platform = SimPlatform(live_server)
    http = requests.Session()
    resp = platform.login(http, lti_storage_target="post_message_forwarding")
    assert resp.status_code == 200 and "Set-Cookie" not in resp.headers
    cfg = storage_config(resp.text)
    assert cfg["mode"] == "put" and cfg["target"] == "post_message_forwarding"
    assert cfg["platformOrigin"] == platform.issuer  # origin of the platform's auth endpoint
    assert cfg["key"].startswith("lms_bridge_state_") and cfg["value"]
    assert cfg["next"].startswith(platform.issuer + "/mod/lti/auth.php?")

    state = re.search(r"[?&]state=([^&]+)", cfg["next"]).group(1)
    nonce = re.search(r"[?&]nonce=([^&]+)", cfg["next"]).group(1)
    token = platform.sign(platform.claims(nonce))
    # The launch comes back without any cookie: the tool asks the platform's storage.
    launch = requests.post(live_server.url + "/lti/launch", data={"state": state, "id_token": token}, allow_redirects=False)
    assert launch.status_code == 200
    get_cfg = storage_config(launch.text)
    assert get_cfg == {"mode": "get", "target": "post_message_forwarding", "platformOrigin": platform.issuer,
                       "key": cfg["key"], "form": "storage-form"}
    assert token not in launch.text, "the id_token stays on the server while the browser asks"
    handle = re.search(r'name="handle" value="([^"]+)"', launch.text).group(1)

    wrong = requests.post(live_server.url + "/lti/launch/storage", data={"handle": handle, "binding": "guess"},
                          allow_redirects=False)
    assert wrong.status_code == 401 and error_code(wrong) == "state_not_bound"


def test_platform_storage_round_trip(live_server):
    platform = SimPlatform(live_server)
    resp = platform.login(requests.Session(), lti_storage_target="_parent")
    cfg = storage_config(resp.text)
    state = re.search(r"[?&]state=([^&]+)", cfg["next"]).group(1)
    nonce = re.search(r"[?&]nonce=([^&]+)", cfg["next"]).group(1)
    launch = requests.post(live_server.url + "/lti/launch", data={"state": state, "id_token": platform.sign(platform.claims(nonce))})
    handle = re.search(r'name="handle" value="([^"]+)"', launch.text).group(1)
    done = requests.post(live_server.url + "/lti/launch/storage", data={"handle": handle, "binding": cfg["value"]},
                         allow_redirects=False)
    assert done.status_code == 303 and done.headers["Location"].startswith("/launch/")
    again = requests.post(live_server.url + "/lti/launch/storage", data={"handle": handle, "binding": cfg["value"]},
                          allow_redirects=False)
    assert again.status_code == 401 and error_code(again) == "unknown_state"


def test_platform_storage_fallback_to_cookie(live_server):
    """When the platform's frame does not answer, the page falls back to a cookie binding."""
    platform = SimPlatform(live_server)
    http = requests.Session()
    cfg = storage_config(platform.login(http, lti_storage_target="post_message_forwarding").text)
    fallback = http.get(live_server.url + cfg["fallback"], allow_redirects=False)
    assert fallback.status_code == 302 and "Partitioned" in fallback.headers["Set-Cookie"]
    state = re.search(r"[?&]state=([^&]+)", fallback.headers["Location"]).group(1)
    nonce = re.search(r"[?&]nonce=([^&]+)", fallback.headers["Location"]).group(1)
    assert platform.post_launch(http, state, platform.sign(platform.claims(nonce))).status_code == 303
