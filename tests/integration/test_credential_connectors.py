"""Issuer connectors against real HTTP receivers, on the selected backend (SQLite or PostgreSQL).

The tool runs as gunicorn (its published issuer keys are fetched from it) with its own delivery
workers off: each test records a completion through the progress service and the event relay, then
drives the outbox itself (``work_once``), so every attempt and its outcome can be looked at:

* webhook: a receiver's 4xx parks the delivery with the receiver's own message, and an operator's
  retry (command line or admin page) delivers it; 409 counts as delivered; 429 is retried after its
  ``Retry-After``; a receiver slower than ``HTTP_TIMEOUT`` is retried; a missing URL parks at once;
* Open Badge Factory, against **a fake OBF server written for these tests** (the real service cannot
  be reached from here) that implements the documented REST API v1 endpoints the connector uses:
  token, event lookup, badge issue; an issue whose answer is lost is not repeated, an expired token is
  fetched again, a learner without e-mail is parked with the reason;
* EDC: the validated export is stored and POSTed to the configured endpoint with the idempotency
  key; missing issuer identifiers park with an explanation.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.integration.test_admin_and_cli import csrf, operator_session
from tests.integration.test_credentials_e2e import Receiver
from tests.integration.test_keys_and_state import flask_cmd
from tests.support.servers import launch_server
from tests.unit.credentials.test_completion import NATIVE, attempt_for, complete, learner

SECRET = "hook-secret-0123456789"


@pytest.fixture(scope="module")
def server():
    live = launch_server(workers=1, OUTBOX_WORKER="off", OUTBOX_BACKOFF_BASE="0.2", OUTBOX_BACKOFF_MAX="30",
                         HTTP_TIMEOUT="1.5")
    try:
        res = flask_cmd(live, "issuer-profile", "seed")
        assert res.returncode == 0, res.stderr
        with live.app.app_context():
            from lms_bridge.extensions import db
            from lms_bridge.packages.service import import_package

            live.extra["course_id"] = import_package(NATIVE).course_id
            db.session.remove()
        yield live
    finally:
        live.stop()
        live.db.drop()


def configure(server, *args: str) -> None:
    res = flask_cmd(server, "issuer-profile", "update", "trireme", *args)
    assert res.returncode == 0, res.stdout + res.stderr


def new_completion(server, **user) -> dict:
    """A learner completes the course (progress service), the event relay records the completion."""
    from lms_bridge.credentials.models import Completion
    from lms_bridge.extensions import db
    from lms_bridge.player import events

    with server.app.app_context():
        user_pk, reg = learner(**user)
        complete(attempt_for(server.extra["course_id"], user_pk, reg))
        events.relay()
        c = db.session.execute(db.select(Completion).filter_by(user_pk=user_pk)).scalar_one()
        info = {"id": c.id, "uuid": c.uuid, "course_id": c.course_id}
        db.session.remove()
    return info


def deliver(server, times: int = 1):
    from lms_bridge.extensions import db
    from lms_bridge.outbox import work_once

    with server.app.app_context():
        results = [work_once() for _ in range(times)]
        db.session.remove()
    return results


def message(server, completion: dict, connector: str) -> dict:
    from lms_bridge.extensions import db
    from lms_bridge.outbox import OutboxMessage

    with server.app.app_context():
        m = db.session.execute(db.select(OutboxMessage).filter_by(
            kind=f"credential.{connector}", dedupe_key=f"{completion['id']}:{connector}")).scalar_one()
        row = {c.name: getattr(m, c.name) for c in m.__table__.columns}
        db.session.remove()
    return row


def receipt(server, completion: dict, connector: str):
    from lms_bridge.credentials.connectors import receipt as find

    with server.app.app_context():
        found = find(completion["id"], connector)
        row = {"external_id": found.external_id, "note": found.note, "document": found.document} if found else None
        from lms_bridge.extensions import db

        db.session.remove()
    return row


def make_due(server, completion: dict, connector: str) -> None:
    """Skip the backoff wait of a pending delivery (the schedule itself is checked elsewhere)."""
    from lms_bridge.extensions import db
    from lms_bridge.outbox import OutboxMessage
    from lms_bridge.outbox.models import utcnow

    with server.app.app_context():
        db.session.execute(db.update(OutboxMessage).where(
            OutboxMessage.kind == f"credential.{connector}",
            OutboxMessage.dedupe_key == f"{completion['id']}:{connector}").values(next_attempt_at=utcnow()))
        db.session.commit()
        db.session.remove()


# -- webhook --------------------------------------------------------------------------------------


def test_webhook_refusal_is_parked_with_the_receivers_message_then_retried_by_an_operator(server):
    hub = Receiver(status=422, body={"message": "unknown course urn:lms-bridge:mooc:hydrogen-fcev-basics; register it"})
    try:
        configure(server, "--connectors", "webhook", "--set", f"webhook.url={hub.url}", "--set", f"webhook.secret={SECRET}")
        done = new_completion(server)
        deliver(server)
        row = message(server, done, "webhook")
        assert row["state"] == "parked" and row["last_status"] == "HTTP 422" and row["attempts"] == 1
        assert "unknown course urn:lms-bridge:mooc:hydrogen-fcev-basics; register it" in row["last_error"]
        assert "retry" in row["last_error"]
        # The operator sees it on the course page, with the receiver's message.
        http = operator_session(server)
        page = http.get(f"{server.url}/admin/credentials/courses/{done['course_id']}", timeout=10).text
        assert f'data-delivery="{row["id"]}" data-state="parked"' in page and "register it" in page
        index = http.get(f"{server.url}/admin/credentials/", timeout=10).text
        assert "<strong>1</strong> parked" in index
        # The receiver is fixed; the operator retries from the page.
        hub.status, hub.body = 201, {"id": "hub-record-7"}
        resp = http.post(f"{server.url}/admin/credentials/deliveries/{row['id']}/retry",
                         data={"csrf_token": csrf(page)}, timeout=10, allow_redirects=False)
        assert resp.status_code == 302
        deliver(server)
        row = message(server, done, "webhook")
        assert row["state"] == "delivered" and row["last_status"] == "HTTP 201"
        assert receipt(server, done, "webhook")["external_id"] == "hub-record-7"
        keys = {r["headers"]["Idempotency-Key"] for r in hub.requests}
        assert len(hub.requests) == 2 and len(keys) == 1
        # The command line says the same, and has nothing left to retry.
        listed = flask_cmd(server, "deliveries", "list")
        assert listed.returncode == 0 and f"{row['id']:>6}  delivered" in listed.stdout
        again = flask_cmd(server, "deliveries", "retry", str(row["id"]))
        assert again.returncode != 0 and "not parked" in again.stderr
    finally:
        hub.close()


def test_webhook_retry_from_the_command_line(server):
    hub = Receiver(status=403, body={"error": "signature not accepted"})
    try:
        configure(server, "--connectors", "webhook", "--set", f"webhook.url={hub.url}", "--set", f"webhook.secret={SECRET}")
        done = new_completion(server)
        deliver(server)
        row = message(server, done, "webhook")
        assert row["state"] == "parked" and "signature not accepted" in row["last_error"]
        hub.status = 200
        res = flask_cmd(server, "deliveries", "retry", str(row["id"]))
        assert res.returncode == 0, res.stderr
        deliver(server)
        assert message(server, done, "webhook")["state"] == "delivered"
    finally:
        hub.close()


def test_webhook_409_means_the_receiver_has_it(server):
    hub = Receiver(status=409, body={"message": "already recorded"})
    try:
        configure(server, "--connectors", "webhook", "--set", f"webhook.url={hub.url}", "--set", f"webhook.secret={SECRET}")
        done = new_completion(server)
        deliver(server)
        row = message(server, done, "webhook")
        assert row["state"] == "delivered" and row["last_status"] == "HTTP 409, already received"
    finally:
        hub.close()


def test_webhook_429_is_retried_after_retry_after(server):
    from lms_bridge.outbox.models import utcnow

    hub = Receiver(status=429, body={"message": "slow down"})
    hub.headers["Retry-After"] = "7"
    try:
        configure(server, "--connectors", "webhook", "--set", f"webhook.url={hub.url}", "--set", f"webhook.secret={SECRET}")
        done = new_completion(server)
        before = utcnow()
        deliver(server)
        row = message(server, done, "webhook")
        assert row["state"] == "pending" and row["last_status"] == "HTTP 429" and "slow down" in row["last_error"]
        assert 6 <= (row["next_attempt_at"] - before).total_seconds() <= 9  # Retry-After, not the 0.2 s backoff
        deliver(server)
        assert message(server, done, "webhook")["attempts"] == 1  # not due yet
    finally:
        hub.close()


def test_slow_receiver_times_out_and_is_retried(server):
    hub = Receiver(status=201)
    hub.delays = [3]  # the first answer comes after HTTP_TIMEOUT=1.5
    try:
        configure(server, "--connectors", "webhook", "--set", f"webhook.url={hub.url}", "--set", f"webhook.secret={SECRET}")
        done = new_completion(server)
        started = time.monotonic()
        deliver(server)
        assert time.monotonic() - started < 3
        row = message(server, done, "webhook")
        assert row["state"] == "pending" and row["last_status"] == "timeout" and "did not answer within 1.5 s" in row["last_error"]
        time.sleep(1.6)  # the slow answer is abandoned; retry after the backoff
        make_due(server, done, "webhook")
        deliver(server)
        row = message(server, done, "webhook")
        assert row["state"] == "delivered" and row["attempts"] == 2
        keys = {r["headers"]["Idempotency-Key"] for r in hub.requests}
        assert len(keys) == 1  # the receiver saw both, with one key: it acts once
    finally:
        hub.close()


def test_webhook_without_url_is_parked_at_once(server):
    configure(server, "--connectors", "webhook", "--unset", "webhook.url", "--set", f"webhook.secret={SECRET}")
    done = new_completion(server)
    deliver(server)
    row = message(server, done, "webhook")
    assert row["state"] == "parked" and row["last_status"] == "not configured"
    assert "url" in row["last_error"] and "issuer-profile update" in row["last_error"]


# -- Open Badge Factory (a fake server, see FakeOBF) --------------------------------------------------


class FakeOBF:
    """FAKE Open Badge Factory, for tests only: the real service (openbadgefactory.com) cannot be
    reached from the test machine. It implements the REST API v1 endpoints the connector uses, as
    documented: OAuth2 client-credentials token, issuing events (JSON lines), badge issue (201 +
    Location). ``lose_next_issue`` makes it issue but answer 502 (an answer lost on the way);
    ``expire_tokens`` invalidates every token it handed out."""

    CLIENT, SECRET, BADGE = "OBFCLIENT1", "obf-secret", "BADGE42"

    def __init__(self):
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.events: list[dict] = []
        self.issue_requests = 0
        self.lose_next_issue = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status, body=None, headers=None, lines=False):
                data = b"" if body is None else (
                    "\n".join(json.dumps(b) for b in body).encode() if lines else json.dumps(body).encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in fake.tokens:
                    self._send(401, {"error": "invalid_token"})
                    return False
                return True

            def do_POST(self):  # noqa: N802
                path = urlsplit(self.path).path
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if path == "/v1/client/oauth2/token":
                    fake.token_requests += 1
                    if (body.get("grant_type"), body.get("client_id"), body.get("client_secret")) != (
                            "client_credentials", fake.CLIENT, fake.SECRET):
                        return self._send(401, {"error": "invalid_client"})
                    token = f"tok-{fake.token_requests}"
                    fake.tokens.add(token)
                    return self._send(200, {"access_token": token, "token_type": "bearer", "expires_in": 36000})
                if path.startswith(f"/v1/badge/{fake.CLIENT}/"):
                    if not self._authorised():
                        return None
                    fake.issue_requests += 1
                    badge = path.rsplit("/", 1)[1]
                    if badge != fake.BADGE:
                        return self._send(404, {"error": f"badge {badge} not found"})
                    if not body.get("recipient"):
                        return self._send(400, {"error": "recipient missing"})
                    event = {"id": f"EV{len(fake.events) + 1:04d}", "badge_id": badge, "recipient": body["recipient"],
                             "issued_on": body.get("issued_on"), "log_entry": body.get("log_entry"),
                             "api_consumer_id": body.get("api_consumer_id")}
                    fake.events.append(event)
                    if fake.lose_next_issue:
                        fake.lose_next_issue = False
                        return self._send(502, {"error": "bad gateway"})
                    return self._send(201, None, {"Location": f"/v1/event/{fake.CLIENT}/{event['id']}"})
                return self._send(404, {"error": "no such endpoint"})

            def do_GET(self):  # noqa: N802
                parts = urlsplit(self.path)
                if parts.path == f"/v1/event/{fake.CLIENT}":
                    if not self._authorised():
                        return None
                    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
                    found = [e for e in fake.events if e["badge_id"] == q.get("badge_id")
                             and set(q.get("recipient", "").split("|")) & set(e["recipient"])]
                    return self._send(200, found, lines=True)
                return self._send(404, {"error": "no such endpoint"})

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def expire_tokens(self):
        self.tokens.clear()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def obf(server):
    fake = FakeOBF()
    # Each test starts with an empty token cache: the process-wide cache is keyed by API address.
    configure(server, "--connectors", "open_badge_factory", "--set", f"open_badge_factory.api_base={fake.url}",
              "--set", f"open_badge_factory.client_id={fake.CLIENT}",
              "--set", f"open_badge_factory.client_secret={fake.SECRET}",
              "--set", f"open_badge_factory.badges={json.dumps({'urn:lms-bridge:mooc:hydrogen-fcev-basics': fake.BADGE})}")
    yield fake
    fake.close()


def test_obf_issues_the_badge_once_even_when_its_answer_is_lost(server, obf):
    obf.lose_next_issue = True
    done = new_completion(server, email="Ada.Lovelace@Example.org")
    deliver(server)
    row = message(server, done, "open_badge_factory")
    assert row["state"] == "pending" and row["last_status"] == "HTTP 502"
    assert len(obf.events) == 1  # OBF did issue it; we just did not hear
    make_due(server, done, "open_badge_factory")
    deliver(server)
    row = message(server, done, "open_badge_factory")
    assert row["state"] == "delivered" and "already issued" in row["last_status"]
    assert len(obf.events) == 1 and obf.issue_requests == 1  # found by its idempotency key, not issued again
    event = obf.events[0]
    assert event["recipient"] == ["Ada.Lovelace@Example.org"] and event["api_consumer_id"] == "lms_bridge"
    assert event["log_entry"]["idempotency_key"] == row["idempotency_key"]
    assert event["log_entry"]["completion"] == f"urn:uuid:{done['uuid']}"
    assert receipt(server, done, "open_badge_factory")["external_id"] == event["id"]
    assert obf.token_requests == 1  # one token for both attempts


def test_obf_token_is_fetched_again_when_expired(server, obf):
    first = new_completion(server)
    deliver(server)
    assert message(server, first, "open_badge_factory")["state"] == "delivered"
    obf.expire_tokens()
    second = new_completion(server, email="grace@example.org")
    deliver(server)
    row = message(server, second, "open_badge_factory")
    assert row["state"] == "delivered" and row["last_status"].startswith("HTTP 201, event EV")
    assert obf.token_requests == 2 and len(obf.events) == 2
    assert receipt(server, second, "open_badge_factory")["note"].startswith(f"issued badge {obf.BADGE}")


def test_obf_needs_an_email_and_a_badge(server, obf):
    no_email = new_completion(server, email=None)
    deliver(server)
    row = message(server, no_email, "open_badge_factory")
    assert row["state"] == "parked" and row["last_status"] == "no e-mail" and "share e-mail addresses" in row["last_error"]
    configure(server, "--unset", "open_badge_factory.badges")
    no_badge = new_completion(server)
    deliver(server)
    row = message(server, no_badge, "open_badge_factory")
    assert row["state"] == "parked" and "badge_id" in row["last_error"]
    assert obf.events == []
    # The badge is usually per course: the course override's settings are merged over the profile's.
    course = str(server.extra["course_id"])
    res = flask_cmd(server, "issuer-profile", "course", course, "--set", "open_badge_factory.badge_id=NO-SUCH-BADGE")
    assert res.returncode == 0 and json.loads(res.stdout)["settings"] == {
        "open_badge_factory": {"badge_id": "NO-SUCH-BADGE"}}, res.stdout + res.stderr
    try:
        refused = new_completion(server, email="x@example.org")
        deliver(server)
        row = message(server, refused, "open_badge_factory")
        assert row["state"] == "parked" and row["last_status"] == "HTTP 404"
        assert "badge NO-SUCH-BADGE not found" in row["last_error"]
    finally:
        res = flask_cmd(server, "issuer-profile", "course", course, "--unset", "open_badge_factory.badge_id")
        assert res.returncode == 0, res.stderr


# -- EDC export ---------------------------------------------------------------------------------------


def test_edc_export_is_validated_stored_and_posted(server):
    from lms_bridge.credentials.connectors.edc import validate_export

    endpoint = Receiver(status=202)
    try:
        configure(server, "--connectors", "edc", "--set", "edc.legal_identifier=BE0123456789", "--set", "edc.country=BEL",
                  "--set", f"edc.endpoint={endpoint.url}", "--set", "edc.token=edc-upload-token",
                  "--set", "edc.include_email=true")
        done = new_completion(server, given_name="Ada", family_name="Lovelace", email="ada@example.org")
        deliver(server)
        row = message(server, done, "edc")
        assert row["state"] == "delivered", row["last_error"]
        stored = receipt(server, done, "edc")["document"]
        assert validate_export(stored) == []
        subject = stored["credentialSubject"]
        assert subject["fullName"] == {"en": "Ada Lovelace"}
        assert subject["contactPoint"][0]["emailAddress"][0]["id"] == "mailto:ada@example.org"
        (sent,) = endpoint.requests
        assert json.loads(sent["body"]) == stored
        assert sent["headers"]["Content-Type"] == "application/ld+json"
        assert sent["headers"]["Authorization"] == "Bearer edc-upload-token"
        assert sent["headers"]["Idempotency-Key"] == row["idempotency_key"]
        # Operators download the same export.
        http = operator_session(server)
        resp = http.get(f"{server.url}/admin/credentials/completions/{done['uuid']}/edc.jsonld", timeout=10)
        assert resp.status_code == 200 and resp.json() == stored
        assert requests.get(f"{server.url}/admin/credentials/completions/{done['uuid']}/edc.jsonld",
                            timeout=10).status_code == 403
    finally:
        endpoint.close()


def test_edc_export_without_issuer_identifiers_is_parked(server):
    configure(server, "--connectors", "edc", "--unset", "edc.legal_identifier", "--unset", "edc.endpoint",
              "--set", "edc.country=BEL")
    done = new_completion(server)
    deliver(server)
    row = message(server, done, "edc")
    assert row["state"] == "parked" and "legal_identifier" in row["last_error"]
    assert receipt(server, done, "edc") is None


# -- operator commands ------------------------------------------------------------------------------


def test_operator_commands(server):
    listed = flask_cmd(server, "issuer-profile", "list")
    assert listed.returncode == 0, listed.stderr
    profiles = {p["slug"]: p for p in json.loads(listed.stdout)}
    assert {"albatts", "drives", "trireme", "default"} <= set(profiles)
    trireme = profiles["trireme"]
    assert trireme["source_project"] == "TRIREME" and trireme["id"] == (
        "did:web:" + server.url.split("://", 1)[1].replace(":", "%3A") + ":issuers:trireme")
    assert trireme["did"] == f"{server.url}/issuers/trireme/did.json"
    assert "hook-secret" not in listed.stdout and "obf-secret" not in listed.stdout  # secrets are masked
    assert flask_cmd(server, "issuer-profile", "seed").stdout.count("exists") == 3  # idempotent
    bad = flask_cmd(server, "issuer-profile", "update", "trireme", "--connectors", "builtin,fax")
    assert bad.returncode != 0 and "unknown issuer connector 'fax'" in bad.stderr
    warned = flask_cmd(server, "issuer-profile", "create", "hub", "--name", "Skills hub", "--connectors", "webhook")
    assert warned.returncode == 0 and "warning: webhook: url" in warned.stderr
    rotated = flask_cmd(server, "issuer-profile", "rotate-key", "hub")
    assert rotated.returncode == 0 and "new signing key" in rotated.stdout
    assert len(requests.get(f"{server.url}/issuers/hub/jwks.json", timeout=10).json()["keys"]) == 2
    help_text = flask_cmd(server, "issuer-profile", "connectors").stdout
    assert "webhook.secret" in help_text and "open_badge_factory.badge_id" in help_text and "edc.country" in help_text
    done = new_completion(server)
    completions = flask_cmd(server, "completions", "list", "--course", str(server.extra["course_id"]))
    assert completions.returncode == 0 and done["uuid"] in completions.stdout
    records = json.loads(flask_cmd(server, "completions", "list", "--json").stdout)
    assert any(r["id"] == f"urn:uuid:{done['uuid']}" and r["achievement"]["eqfLevel"] == 4 for r in records)
    missing = flask_cmd(server, "credentials", "revoke", "urn:uuid:00000000-0000-4000-8000-000000000000", "--reason", "x")
    assert missing.returncode != 0 and "no credential" in missing.stderr
