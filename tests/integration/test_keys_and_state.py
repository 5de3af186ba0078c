"""Tool keys and rotation, platform key sets with re-fetch, state shared across workers and hosts."""
from __future__ import annotations

import concurrent.futures
import subprocess

import requests

from tests.support.platform import JwksServer, Key, SimPlatform, error_code
from tests.support.servers import BIN, ROOT, LiveServer


def flask_cmd(server: LiveServer, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT, env=server.env,
                          capture_output=True, text=True, timeout=60)


def test_jwks_publishes_rsa_keys_at_top_level(live_server):
    flask_cmd(live_server, "ensure-key")
    jwks = requests.get(live_server.url + "/.well-known/jwks.json").json()
    assert list(jwks) == ["keys"] and jwks["keys"]
    for key in jwks["keys"]:
        assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and key["kid"]
        assert "d" not in key and "p" not in key, "never publish private parts"
        assert len(requests.utils.unquote(key["n"])) >= 340  # 2048-bit modulus, base64url


def test_rotate_keys_keeps_the_old_key_published_for_the_grace_period(live_server):
    before = {k["kid"] for k in requests.get(live_server.url + "/.well-known/jwks.json").json()["keys"]}
    res = flask_cmd(live_server, "rotate-keys", "--grace-days", "7")
    assert res.returncode == 0, res.stderr
    new_kid = res.stdout.split("new signing key: ")[1].split()[0]
    after = {k["kid"] for k in requests.get(live_server.url + "/.well-known/jwks.json").json()["keys"]}
    assert new_kid in after and before <= after
    # Rotating again without grace unpublishes the key it replaces at once; the first key keeps its 7 days.
    res = flask_cmd(live_server, "rotate-keys", "--grace-days", "0")
    final = {k["kid"] for k in requests.get(live_server.url + "/.well-known/jwks.json").json()["keys"]}
    newest = res.stdout.split("new signing key: ")[1].split()[0]
    assert newest in final and new_kid not in final and before <= final
    with live_server.app.app_context():
        from lms_bridge.lti import keys

        kid, _ = keys.signing_key()
        assert kid == newest, "the newest key signs"


def test_platform_key_set_is_cached_and_refetched_once_on_unknown_kid(live_server):
    jwks = JwksServer()
    try:
        platform = SimPlatform(live_server, jwks=jwks)
        assert platform.launch().status_code == 303
        assert platform.launch().status_code == 303
        assert jwks.fetches == 1, "the key set is cached in the shared store"
        # The platform rotates (Brightspace does, hourly): a new kid triggers one re-fetch.
        new_key = Key()
        jwks.keys.append(new_key)
        platform.key = new_key
        assert platform.launch().status_code == 303
        assert jwks.fetches == 2
        # Forged kids do not make the tool hammer the platform: a small re-fetch budget per minute.
        from lms_bridge.lti.keys import REFETCH_LIMIT

        for i in range(REFETCH_LIMIT + 5):
            resp = platform.launch(headers={"kid": f"forged-{i}"})
            assert resp.status_code == 401 and error_code(resp) == "unknown_kid"
        assert jwks.fetches == REFETCH_LIMIT + 1
    finally:
        jwks.close()


def test_platform_key_set_unreachable_is_a_clear_error(live_server):
    jwks = JwksServer()
    platform = SimPlatform(live_server, jwks=jwks)
    jwks.close()
    resp = platform.launch()
    assert resp.status_code == 401 and error_code(resp) == "platform_keys_unavailable"
    assert "could not be fetched" in resp.text


def test_concurrent_replay_across_workers_succeeds_once(live_server):
    """The same id_token posted 12 times at once to 2 workers: exactly one launch."""
    platform = SimPlatform(live_server)
    http = requests.Session()
    state, nonce = platform.login_state(http)
    token = platform.sign(platform.claims(nonce))

    def post(_):
        return platform.post_launch(http, state, token).status_code

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(post, range(12)))
    assert codes.count(303) == 1 and codes.count(401) == 11, codes


def test_state_is_shared_between_hosts(live_server):
    """Login on one host, launch on another host sharing the database (and Redis): it works once."""
    other = LiveServer(url=live_server.url, platform_url=live_server.platform_url, env=dict(live_server.env),
                       tmp=live_server.tmp, workers=1)
    from tests.support.servers import free_port

    port = free_port()
    other.env["BIND"] = f"127.0.0.1:{port}"
    other.url = f"http://127.0.0.1:{port}"
    other.start()
    try:
        platform = SimPlatform(live_server)
        http = requests.Session()
        state, nonce = platform.login_state(http)            # host A
        token = platform.sign(platform.claims(nonce))
        cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
        second = requests.post(other.url + "/lti/launch", data={"state": state, "id_token": token},
                               headers={"Cookie": cookie}, allow_redirects=False)   # host B
        assert second.status_code == 303, second.text[:300]
        replay = platform.post_launch(http, state, token)   # back on host A
        assert replay.status_code == 401 and error_code(replay) == "unknown_state"
    finally:
        other.stop()


def test_launch_token_expires_and_is_opaque(live_server):
    platform = SimPlatform(live_server)
    resp = platform.launch()
    page = requests.get(live_server.url + resp.headers["Location"])
    assert page.status_code == 200
    assert requests.get(live_server.url + "/launch/not-a-real-token").status_code == 404


def test_registration_changes_reach_every_worker_at_once(live_server):
    """Registrations are cached in the shared store; a committed change invalidates the cache everywhere."""
    platform = SimPlatform(live_server)
    for _ in range(4):  # warm the cache on both workers
        assert platform.launch().status_code == 303
    from lms_bridge.extensions import db
    from lms_bridge.lti.models import Deployment, Registration

    with live_server.app.app_context():
        dep = db.session.execute(db.select(Deployment).filter_by(registration_id=platform.registration_id)).scalar_one()
        dep.active = False
        db.session.commit()
    for _ in range(4):
        resp = platform.launch()
        assert resp.status_code == 403 and error_code(resp) == "deployment_inactive"
    with live_server.app.app_context():
        db.session.get(Registration, platform.registration_id).active = False
        db.session.commit()
    for _ in range(4):
        resp = platform.login(requests.Session())
        assert resp.status_code == 403 and error_code(resp) == "registration_inactive"
