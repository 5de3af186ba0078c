"""The issuer connector interface: registry and outbox kinds, stable idempotency keys, settings
(profile merged with the course override) and their checks, the webhook's signatures (HMAC and
detached JWS), how a receiver's answer becomes delivered / retry / park (against a real local HTTP
server), and Open Badge Factory's answer formats."""
from __future__ import annotations

import json
import threading
import time
from email.utils import format_datetime
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lms_bridge.credentials import connectors
from lms_bridge.credentials.connectors import open_badge_factory as obf
from lms_bridge.credentials.connectors import webhook
from lms_bridge.credentials.models import CourseIssuing, IssuerProfile
from lms_bridge.outbox import Permanent, RetryLater
from tests.support.db_app import database_app


def test_registry_and_outbox_kinds():
    from lms_bridge.outbox.service import _handlers

    assert connectors.names() == ["builtin", "edc", "open_badge_factory", "webhook"]
    for name in connectors.names():
        assert _handlers[connectors.kind(name)] is connectors.deliver
        assert connectors.get(name).name == name and connectors.get(name).label
    with pytest.raises(ValueError, match="unknown issuer connector 'smtp'"):
        connectors.get("smtp")
    assert connectors.dedupe_key(12, "webhook") == "12:webhook"


def test_idempotency_keys_are_stable_per_completion_and_connector():
    a = connectors.idempotency_key("6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f", "webhook")
    assert a == connectors.idempotency_key("6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f", "webhook")
    assert a != connectors.idempotency_key("6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f", "edc")
    assert a != connectors.idempotency_key("00000000-4a5b-4c6d-8e7f-9a0b1c2d3e4f", "webhook")
    assert len(a) == 36


def test_course_settings_override_the_profile():
    profile = IssuerProfile(settings={"open_badge_factory": {"client_id": "C", "client_secret": "S", "badge_id": "B0"},
                                      "webhook": {"url": "https://hub.example.org"}})
    override = CourseIssuing(settings={"open_badge_factory": {"badge_id": "B42"}})
    assert connectors.settings_for(profile, override, "open_badge_factory") == {
        "client_id": "C", "client_secret": "S", "badge_id": "B42"}
    assert connectors.settings_for(profile, None, "open_badge_factory")["badge_id"] == "B0"
    assert connectors.settings_for(profile, override, "edc") == {}
    assert profile.settings["open_badge_factory"]["badge_id"] == "B0"  # merging copies
    assert connectors.check_all(["webhook", "nope"], profile) == [
        "webhook: set a secret (HMAC signature) or jws: true, so the receiver can tell the record is ours",
        "unknown issuer connector 'nope'; known: builtin, edc, open_badge_factory, webhook"]


@pytest.mark.parametrize("name, settings, problem", [
    ("webhook", {}, "url"),
    ("webhook", {"url": "ftp://hub.example.org", "secret": "s" * 16}, "url"),
    ("webhook", {"url": "https://hub.example.org", "secret": "short"}, "at least 16"),
    ("webhook", {"url": "https://hub.example.org"}, "secret"),
    ("open_badge_factory", {"client_id": "C", "badge_id": "B"}, "client_secret"),
    ("open_badge_factory", {"client_id": "C", "client_secret": "S"}, "badge_id"),
    ("edc", {"legal_identifier": "BE1"}, "country"),
    ("edc", {"legal_identifier": "BE1", "country": "BEL", "endpoint": "mailto:x@example.org"}, "endpoint"),
])
def test_settings_checks(name, settings, problem):
    problems = connectors.get(name).check_settings(settings)
    assert problems and any(problem in p for p in problems), problems


@pytest.mark.parametrize("name, settings", [
    ("builtin", {}),
    ("webhook", {"url": "https://hub.example.org", "secret": "s" * 16}),
    ("webhook", {"url": "https://hub.example.org", "jws": True}),
    ("open_badge_factory", {"client_id": "C", "client_secret": "S", "badges": {"urn:x": "B"}}),
    ("edc", {"legal_identifier": "BE1", "country": "bel"}),
])
def test_settings_that_work(name, settings):
    assert connectors.get(name).check_settings(settings) == []


def test_hmac_signature():
    body = b'{"type":"CompletionRecord"}'
    now = int(time.time())
    header = webhook.hmac_signature("s" * 20, body, now)
    assert header.startswith(f"t={now},v1=") and len(header.split("v1=")[1]) == 64
    assert webhook.check_hmac_signature("s" * 20, body, header)
    assert not webhook.check_hmac_signature("s" * 20, body + b" ", header)
    assert not webhook.check_hmac_signature("t" * 20, body, header)
    assert not webhook.check_hmac_signature("s" * 20, body, header, now=now + 3600)  # an old replay
    assert webhook.check_hmac_signature("s" * 20, body, header, tolerance=None, now=now + 3600)
    assert not webhook.check_hmac_signature("s" * 20, body, "garbage")


def test_detached_jws_verifies_with_the_published_key():
    from lms_bridge.credentials import issuer
    from lms_bridge.credentials.keys import PublicKey, b64url_decode, b64url_encode, find_jwk

    with database_app(OUTBOX_WORKER="off", PUBLIC_BASE_URL="https://tool.example.org:8443") as app, app.app_context():
        profile = issuer.new_profile(slug="hub", name="Skills hub")
        from lms_bridge.extensions import db

        db.session.commit()
        body = json.dumps({"type": "CompletionRecord", "id": "urn:uuid:1"}).encode()
        protected, empty, signature = webhook.detached_jws(body, profile).split(".")
        header = json.loads(b64url_decode(protected))
        assert empty == "" and header["alg"] == "EdDSA"
        assert header["kid"] == f"did:web:tool.example.org%3A8443:issuers:hub#{profile.kid}"
        key = PublicKey.from_jwk(find_jwk(issuer.jwks(profile), header["kid"]))
        assert key.verify(b64url_decode(signature), f"{protected}.{b64url_encode(body)}".encode(), "EdDSA")
        assert not key.verify(b64url_decode(signature), f"{protected}.{b64url_encode(body[:-1])}".encode(), "EdDSA")
        db.session.remove()


# -- how answers are sorted (a real local HTTP server) -------------------------------------------------


class Answers:
    """A local server answering each POST with the next (status, headers, body) of ``script``."""

    def __init__(self):
        self.script: list[tuple[int, dict, bytes]] = []
        answers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, body = answers.script.pop(0)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/receive"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def post(self, status: int, headers: dict | None = None, body: bytes | dict = b""):
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.script.append((status, headers or {}, body))
        return connectors.post_json(self.url, b"{}", {"Content-Type": "application/json"}, what="The receiver")


@pytest.fixture(scope="module")
def answers():
    server = Answers()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_success_and_already_received(answers):
    resp, status = answers.post(201, body={"id": "r1"})
    assert status == "HTTP 201" and resp.json() == {"id": "r1"}
    assert answers.post(204)[1] == "HTTP 204"
    assert answers.post(409, body={"message": "duplicate"})[1] == "HTTP 409, already received"


def test_refusals_are_permanent_with_the_receivers_words(answers):
    with pytest.raises(Permanent) as err:
        answers.post(422, body={"message": "course urn:x is not registered"})
    assert err.value.status == "HTTP 422" and "course urn:x is not registered" in str(err.value)
    with pytest.raises(Permanent) as err:
        answers.post(400, {"Content-Type": "text/html"}, b"<html><body><h1>Bad   request</h1>\n</body></html>")
    assert "<h1>Bad request</h1>" in str(err.value)
    with pytest.raises(Permanent, match="redirect to 'https://elsewhere.example.org/'"):
        answers.post(301, {"Location": "https://elsewhere.example.org/"})


@pytest.mark.parametrize("status", [500, 502, 503, 408, 425, 429])
def test_transient_answers_are_retried(answers, status):
    with pytest.raises(RetryLater) as err:
        answers.post(status, {"Retry-After": "12"}, {"error": "busy"})
    assert err.value.status == f"HTTP {status}" and err.value.retry_after == 12.0 and "busy" in str(err.value)


def test_retry_after_as_a_date(answers):
    when = datetime.now(UTC) + timedelta(seconds=90)
    with pytest.raises(RetryLater) as err:
        answers.post(503, {"Retry-After": format_datetime(when, usegmt=True)})
    assert 80 <= err.value.retry_after <= 91


def test_unreachable_receiver_is_retried():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(RetryLater) as err:
        connectors.post_json(f"http://127.0.0.1:{port}/x", b"{}", {}, what="The receiver")
    assert err.value.status == "unreachable" and "could not be reached" in str(err.value)


# -- Open Badge Factory answer formats ---------------------------------------------------------------


class _Resp:
    def __init__(self, text):
        self.text = text


def test_obf_event_lists_are_json_lines_or_arrays():
    lines = '{"id": "EV1", "log_entry": "{\\"idempotency_key\\": \\"k1\\"}"}\n\n{"id": "EV2", "log_entry": {"x": 1}}\n'
    events = obf._events(_Resp(lines))
    assert [e["id"] for e in events] == ["EV1", "EV2"]
    assert obf._log_entry(events[0]) == {"idempotency_key": "k1"} and obf._log_entry(events[1]) == {"x": 1}
    assert [e["id"] for e in obf._events(_Resp('[{"id": "EV3"}]'))] == ["EV3"]
    assert obf._events(_Resp("")) == [] and obf._log_entry({"log_entry": "not json"}) == {}


def test_obf_badge_per_course():
    settings = {"badges": {"urn:a": "BA", "urn:b": "BB"}}
    assert obf.badge_for(settings, "urn:b") == "BB" and obf.badge_for(settings, "urn:c") is None
    assert obf.badge_for({**settings, "badge_id": "B0"}, "urn:a") == "B0"  # the course override's badge wins
