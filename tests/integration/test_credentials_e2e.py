"""Completion to micro-credential over real HTTP against gunicorn (2 workers, in-process outbox
workers) and the development platform, on the selected backend (SQLite or PostgreSQL + Redis).

A learner launches the TRIREME hydrogen course from two placements in the LMS, completes it in both
(the final quiz submitted in parallel, three times) while a replay of the completion event is
injected: one completion record, one credential, and the issuer profile's webhook receiver (a real
HTTP server in this process, failing its first attempts with 500) accepts exactly one delivery,
every attempt carrying the same Idempotency-Key, signed (HMAC and detached JWS). The credential
appears in the player and on the learner's page, verifies on the verification endpoint with the key
published in the issuer's did:web document, validates against the OB 3.0 schema, comes baked in PNG
and SVG, and the EDC export validates against the ELM 3 shapes. Revoking (command line, then the
operator page) sets the status list bit, and verification then says revoked."""
from __future__ import annotations

import json
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.integration.test_admin_and_cli import csrf, operator_session
from tests.integration.test_ags_passback import Learner, wait_for
from tests.integration.test_keys_and_state import flask_cmd
from tests.integration.test_player_common import MOOC, import_course, in_app, place_link
from tests.support.servers import launch_server

# rdflib's JSON-LD parser (the independent EDC check below) still uses its own deprecated API.
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")

SAMPLES = Path("/work/shared/samples")
ELM3 = SAMPLES / "edc" / "elm3_model"
WEBHOOK_SECRET = "whsec-" + "0123456789abcdef" * 2
FAILURES = 2


class Receiver:
    """A webhook receiver: a real HTTP server that answers 500 to its first ``failures`` requests,
    then accepts (201), deduplicating on the Idempotency-Key as a receiver should."""

    def __init__(self, failures: int = 0, status: int = 201, body: dict | None = None):
        self.requests: list[dict] = []
        self.accepted: list[dict] = []
        self.failures, self.status, self.body = failures, status, body
        self.headers: dict[str, str] = {}  # sent with every answer (e.g. Retry-After)
        self.delays: list[float] = []  # seconds to wait before answering the 1st, 2nd... request
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    delay = receiver.delays[len(receiver.requests)] if len(receiver.requests) < len(receiver.delays) else 0
                if delay:
                    time.sleep(delay)
                with receiver.lock:
                    seen = {r["headers"].get("Idempotency-Key") for r in receiver.accepted}
                    entry = {"headers": dict(self.headers), "body": body, "path": self.path}
                    receiver.requests.append(entry)
                    if len(receiver.requests) <= receiver.failures:
                        status, answer = 500, {"message": "hub database unavailable"}
                    elif entry["headers"].get("Idempotency-Key") in seen:
                        status, answer = 200, {"id": "dup", "duplicate": True}
                    else:
                        status = receiver.status
                        if 200 <= status < 300:  # only what it accepted counts as received
                            receiver.accepted.append(entry)
                        answer = receiver.body or {"id": f"hub-{len(receiver.accepted)}"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/completions"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def receiver():
    hub = Receiver(failures=FAILURES)
    yield hub
    hub.close()


@pytest.fixture(scope="module")
def server(receiver):
    """Short retry delays, so the receiver's failures are retried within seconds."""
    live = launch_server(workers=2, OUTBOX_POLL_SECONDS="0.3", OUTBOX_BACKOFF_BASE="0.3", OUTBOX_BACKOFF_MAX="2")
    try:
        for args in (("issuer-profile", "seed"),
                     ("issuer-profile", "update", "trireme", "--name", "TRIREME project",
                      "--url", "https://trireme.example.eu", "--email", "credentials@trireme.example.eu",
                      "--connectors", "builtin,webhook,edc", "--validity-days", "730",
                      "--set", f"webhook.url={receiver.url}", "--set", f"webhook.secret={WEBHOOK_SECRET}",
                      "--set", "webhook.jws=true", "--set", "edc.legal_identifier=BE0123456789",
                      "--set", "edc.country=BEL", "--set", "edc.legal_name=TRIREME consortium")):
            res = flask_cmd(live, *args)
            assert res.returncode == 0, res.stdout + res.stderr
        assert "warning" not in res.stderr, res.stderr  # the connectors are fully configured
        yield live
    finally:
        live.stop()
        live.db.drop()


@pytest.fixture(scope="module")
def native(server):
    return import_course(server, MOOC / "hydrogen-fcev-basics-native")


def credential_state(server, token: str) -> dict:
    resp = requests.get(f"{server.url}/player/{token}/credential.json", timeout=10)
    assert resp.status_code == 200, resp.text[:500]
    return resp.json()


def db_counts(server, sub: str) -> dict:
    def run():
        from lms_bridge.credentials.models import Completion, Credential
        from lms_bridge.extensions import db
        from lms_bridge.lti.models import User
        from lms_bridge.outbox import OutboxMessage
        from lms_bridge.player.models import ProgressEvent

        ids = db.session.execute(db.select(Completion.id).join(User, User.id == Completion.user_pk)
                                 .where(User.sub == sub)).scalars().all()
        keys = [f"{i}:{name}" for i in ids for name in ("builtin", "webhook", "edc")]
        messages = db.session.execute(db.select(OutboxMessage.kind, OutboxMessage.state).where(
            OutboxMessage.dedupe_key.in_(keys))).all() if keys else []
        credentials = db.session.execute(db.select(db.func.count()).select_from(Credential).where(
            Credential.completion_id.in_(ids))).scalar() if ids else 0
        events = db.session.execute(db.select(ProgressEvent.attempt_id, ProgressEvent.consumed)
                                    .join(User, User.id == ProgressEvent.user_pk)
                                    .where(User.sub == sub, ProgressEvent.kind == "course_completed")).all()
        db.session.remove()
        return {"completions": len(ids), "credentials": credentials, "messages": sorted(messages),
                "events": [tuple(e) for e in events]}

    return in_app(server, run)


def replay_completion_event(server, link: str, sub: str) -> None:
    """Write a second course_completed event for the learner's attempt on ``link`` (a relay that
    crashed after acting and before noting it would hand it out again)."""
    def run():
        from lms_bridge.extensions import db
        from lms_bridge.lti.models import ResourceLink, User
        from lms_bridge.player.models import Attempt, ProgressEvent

        attempt = db.session.execute(db.select(Attempt).join(ResourceLink, ResourceLink.id == Attempt.resource_link_pk)
                                     .join(User, User.id == Attempt.user_pk)
                                     .where(ResourceLink.resource_link_id == link, User.sub == sub)).scalar_one()
        db.session.add(ProgressEvent(kind="course_completed", attempt_id=attempt.id, user_pk=attempt.user_pk,
                                     course_id=attempt.course_id, version_id=attempt.version_id,
                                     payload={"score_scaled": attempt.score_scaled}))
        db.session.commit()
        db.session.remove()

    in_app(server, run)


def fetch_did_key(server):
    """A resolve_key for the library's verifier that reads OUR published did:web document over HTTP."""
    from lms_bridge.credentials.keys import PublicKey

    def resolve(issuer: str, ref: str | None):
        prefix = "did:web:" + server.url.split("://", 1)[1].replace(":", "%3A")
        assert issuer.startswith(prefix + ":issuers:"), issuer
        path = issuer[len(prefix):].replace(":", "/")
        doc = requests.get(server.url + path + "/did.json", timeout=10).json()
        method = next(m for m in doc["verificationMethod"] if m["id"] == ref)
        return PublicKey.from_multibase(method["publicKeyMultibase"], kid=ref, source="fetched by the test")

    return resolve


def baked_png_payload(image: bytes) -> str:
    """The ``openbadgecredential`` iTXt chunk of a PNG (OB 3.0 §5.3.1), read independently of the tool."""
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    pos, found = 8, []
    while pos < len(image):
        length, kind = struct.unpack(">I4s", image[pos:pos + 8])
        data = image[pos + 8:pos + 8 + length]
        if kind == b"iTXt" and data.split(b"\x00", 1)[0] == b"openbadgecredential":
            rest = data.split(b"\x00", 1)[1]
            assert rest[:2] == b"\x00\x00"  # not compressed
            found.append(rest[2:].split(b"\x00", 2)[2].decode("utf-8"))
        pos += 12 + length
    assert len(found) == 1, "exactly one openbadgecredential chunk"
    return found[0]


def verify_api(server, credential) -> dict:
    resp = requests.post(f"{server.url}/api/v1/verify", json={"credential": credential}, timeout=30)
    assert resp.status_code == 200, resp.text[:1000]
    return resp.json()


def check(answer: dict, name: str) -> dict:
    return next(c for c in answer["checks"] if c["name"] == name)


def validate_edc_independently(document: dict) -> tuple[bool, str]:
    """pyshacl against the ELM 3 shapes of shared/samples, contexts inlined from the samples folder."""
    import rdflib
    from pyshacl import validate

    contexts = {"https://www.w3.org/2018/credentials/v1": SAMPLES / "openbadges3" / "contexts" / "2018-credentials-v1.jsonld",
                "http://data.europa.eu/snb/model/context/edc-ap": ELM3 / "edc-ap-context.jsonld"}
    inline = {**document, "@context": [json.loads(contexts[c].read_text())["@context"] for c in document["@context"]]}
    data = rdflib.Graph().parse(data=json.dumps(inline), format="json-ld")
    shapes = rdflib.Graph()
    shapes.parse(ELM3 / "EDC-generic-no-cv.shacl.ttl", format="turtle")
    shapes.parse(ELM3 / "EDC-generic-full.shacl.ttl", format="turtle")
    conforms, _graph, text = validate(data, shacl_graph=shapes, inference="none", advanced=True)
    return conforms, text


def test_completion_becomes_one_verifiable_credential_delivered_once(server, native, receiver):
    from lms_bridge.credentials import schema, statuslist, verify
    from lms_bridge.credentials.connectors.webhook import check_hmac_signature
    from lms_bridge.credentials.keys import PublicKey, b64url_decode, find_jwk
    from lms_bridge.packages.xml import parse_xml

    link_a = place_link(server, "Hydrogen basics (section A)", course=native["course_id"])
    link_b = place_link(server, "Hydrogen basics (section B)", course=native["course_id"])
    first, second = Learner(server, native, link_a), Learner(server, native, link_b)
    first.lessons()
    second.lessons()
    assert credential_state(server, first.token)["state"] == "none"
    # Completed twice in parallel on one placement and once on the other: three quiz submissions,
    # two attempts, two course_completed events committed at the same moment.
    threads = [threading.Thread(target=learner.answer_quiz) for learner in (first, first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    replay_completion_event(server, link_a, "4")

    state = wait_for(lambda: (s := credential_state(server, first.token))["state"] == "issued" and s, 60,
                     "the credential to be issued")
    assert credential_state(server, second.token)["credential"] == state["credential"]
    wait_for(lambda: receiver.accepted, 60, "the webhook delivery")
    wait_for(lambda: all(s == "delivered" for _k, s in db_counts(server, "4")["messages"]), 60, "every delivery")
    time.sleep(2)  # anything still to come (a second record, a second delivery) would arrive now
    counts = db_counts(server, "4")
    assert counts["completions"] == 1 and counts["credentials"] == 1
    # ...out of three course_completed events (two attempts, one replayed), all acted on.
    events = counts["events"]
    assert len(events) == 3 and len({a for a, _ in events}) == 2 and all(c for _, c in events)
    assert counts["messages"] == [("credential.builtin", "delivered"), ("credential.edc", "delivered"),
                                  ("credential.webhook", "delivered")]

    # -- the webhook: failed twice, accepted once, one key on every attempt, signed ---------------
    assert len(receiver.accepted) == 1 and len(receiver.requests) == FAILURES + 1
    keys = {r["headers"]["Idempotency-Key"] for r in receiver.requests}
    assert len(keys) == 1 and len(next(iter(keys))) == 36
    bodies = {r["body"] for r in receiver.requests}
    assert len(bodies) == 1, "every attempt sends the same record"
    accepted = receiver.accepted[0]
    body = accepted["body"]
    assert check_hmac_signature(WEBHOOK_SECRET, body, accepted["headers"]["X-LMS-Bridge-Signature"])
    assert not check_hmac_signature("another secret of 32 characters!", body, accepted["headers"]["X-LMS-Bridge-Signature"])
    protected, empty, signature = accepted["headers"]["X-LMS-Bridge-JWS"].split(".")
    header = json.loads(b64url_decode(protected))
    assert empty == "" and header["alg"] == "EdDSA"
    jwks = requests.get(f"{server.url}/issuers/trireme/jwks.json", timeout=10).json()
    key = PublicKey.from_jwk(find_jwk(jwks, header["kid"]))
    from lms_bridge.credentials.keys import b64url_encode

    assert key.verify(b64url_decode(signature), f"{protected}.{b64url_encode(body)}".encode(), "EdDSA")
    assert not key.verify(b64url_decode(signature), f"{protected}.{b64url_encode(body + b' ')}".encode(), "EdDSA")
    record = json.loads(body)
    assert record["type"] == "CompletionRecord" and record["course"]["title"] == "Hydrogen fuel-cell vehicle basics"
    assert record["achievement"]["eqfLevel"] == 4 and len(record["achievement"]["escoSkills"]) == 8
    assert record["learner"]["ltiUserId"] == "4" and record["learner"]["emailHash"].startswith("sha256$")
    assert "email" not in record["learner"]
    assert record["credential"]["id"] == state["credential"] and record["result"]["passed"] is True

    # -- the learner sees it: player panel, credential page, downloads ------------------------------
    player = first.open("q1-final-quiz").text
    assert 'id="credential-panel"' in player and "credential-panel\" aria-labelledby" in player
    assert f"/player/{first.token}/credential.json" in player
    page = requests.get(server.url + state["page"], timeout=10)
    assert page.status_code == 200 and 'data-state="issued"' in page.text
    assert 'id="eqf-level">4' in page.text and "fuel cell types" in page.text and 'id="skills"' in page.text
    assert state["verifyUrl"] in page.text and 'id="copy-verify-url"' in page.text
    for fmt in ("png", "svg", "json", "jwt", "edc"):
        assert f'id="download-{fmt}"' in page.text
    links = {fmt: server.url + path for fmt, path in state["links"].items()}
    credential = requests.get(links["json"], timeout=10).json()
    jwt = requests.get(links["jwt"], timeout=10).text
    assert credential["id"] == state["credential"] and jwt.count(".") == 2

    # -- the OB 3.0 schema, and what the credential says -----------------------------------------
    assert schema.validate_ob3(credential) == []
    did = credential["issuer"]["id"]
    assert did == "did:web:" + server.url.split("://", 1)[1].replace(":", "%3A") + ":issuers:trireme"
    assert credential["issuer"]["name"] == "TRIREME project" and credential["validUntil"]
    achievement = credential["credentialSubject"]["achievement"]
    assert achievement["achievementType"] == "MicroCredential" and achievement["creditsAvailable"] == 0.2
    assert {a["targetCode"] for a in achievement["alignment"] if a["targetType"] == "ext:EQFLevel"} == {"4"}
    assert sum(a["targetFramework"] == "ESCO" for a in achievement["alignment"]) == 8
    identities = {i["identityType"]: i for i in credential["credentialSubject"]["identifier"]}
    assert identities["emailAddress"]["hashed"] and identities["ltiUserId"]["hashed"]
    assert "lena" not in json.dumps(credential).lower()  # no personal data in clear
    assert credential["proof"][0]["cryptosuite"] == "eddsa-rdfc-2022"

    # -- the verification endpoint: signature, key from our did:web, expiry, revocation -----------
    for form in (credential, jwt, baked_png_payload(requests.get(links["png"], timeout=10).content)):
        answer = verify_api(server, form)
        assert answer["ok"] is True, answer
        assert check(answer, "signature")["ok"] and check(answer, "schema")["ok"]
        assert f"{server.url}/issuers/trireme/did.json" in check(answer, "issuer_key")["detail"]
        assert answer["key"]["selfAsserted"] is False
        until = check(answer, "valid_until")
        assert until["ok"] and not until["skipped"] and "valid until" in until["detail"]
        revocation = check(answer, "revocation")
        assert revocation["ok"] and not revocation["skipped"] and "not been revoked" in revocation["detail"]
    assert verify_api(server, jwt)["format"] == "vc-jwt"
    # The published DID document alone is enough for anyone to verify it.
    independent = verify.verify(credential, resolve_key=fetch_did_key(server), trust_embedded_keys=False)
    assert independent.ok, independent.summary()
    # A tampered copy fails, and a foreign key cannot speak for our issuer.
    tampered = json.loads(json.dumps(credential))
    tampered["credentialSubject"]["achievement"]["name"] = "Rocket science"
    answer = verify_api(server, tampered)
    assert answer["ok"] is False and not check(answer, "signature")["ok"]
    # Baked SVG (OB 3.0 §5.3.2), read with the project's hardened XML parser.
    svg = parse_xml(requests.get(links["svg"], timeout=10).content, name="credential.svg")
    baked = svg.find("{https://purl.imsglobal.org/ob/v3p0}credential")
    assert json.loads(baked.text) == credential
    # The public verification page says plainly what was checked.
    human = requests.get(state["verifyUrl"], timeout=30)
    assert human.status_code == 200 and "This credential is valid" in human.text
    for label in ("Issuer key", "Signature", "Expiry", "Revocation", "Open Badges 3.0 schema"):
        assert label in human.text

    # -- the European Digital Credential export --------------------------------------------------
    edc = requests.get(f"{server.url}/player/{first.token}/credential/edc.jsonld", timeout=10)
    assert edc.status_code == 200
    document = edc.json()
    assert document["type"] == ["VerifiableCredential", "EuropeanDigitalCredential"]
    conforms, report = validate_edc_independently(document)
    assert conforms, report

    # -- revocation on the command line: the status list bit, then "revoked" ----------------------
    entry = credential["credentialStatus"]
    status_list = requests.get(entry["statusListCredential"], timeout=10).json()
    index = int(entry["statusListIndex"])
    assert not statuslist.is_set(status_list["credentialSubject"]["encodedList"], index)
    res = flask_cmd(server, "credentials", "revoke", credential["id"], "--reason", "issued by mistake")
    assert res.returncode == 0, res.stderr
    status_list = requests.get(entry["statusListCredential"], timeout=10).json()
    assert statuslist.is_set(status_list["credentialSubject"]["encodedList"], index)
    listed = verify.verify(status_list, resolve_key=fetch_did_key(server), schema=False, trust_embedded_keys=False)
    assert listed.ok, listed.summary()  # the list itself is signed by the issuer
    answer = verify_api(server, jwt)
    assert answer["ok"] is False and not check(answer, "revocation")["ok"]
    assert "revoked" in check(answer, "revocation")["detail"]
    assert "NOT valid" in requests.get(state["verifyUrl"], timeout=30).text
    assert credential_state(server, first.token)["state"] == "revoked"
    again = flask_cmd(server, "credentials", "revoke", credential["id"], "--reason", "twice")
    assert again.returncode != 0 and "already revoked" in again.stderr


def test_operator_sees_completions_and_revokes(server, native, receiver):
    link = place_link(server, "Hydrogen basics (section C)", course=native["course_id"])
    learner = Learner(server, native, link, "learner2")
    learner.lessons()
    learner.answer_quiz()
    state = wait_for(lambda: (s := credential_state(server, learner.token))["state"] == "issued" and s, 60,
                     "the second learner's credential")
    http = operator_session(server)
    index = http.get(f"{server.url}/admin/credentials/", timeout=10)
    assert index.status_code == 200 and 'data-profile="trireme"' in index.text
    assert f'data-course="{native["course_id"]}"' in index.text
    page = http.get(f"{server.url}/admin/credentials/courses/{native['course_id']}", timeout=10)
    assert page.status_code == 200 and "Leo Lindqvist" in page.text and "Lena Learner" in page.text
    uuid = state["credential"].removeprefix("urn:uuid:")
    assert f'/admin/credentials/credentials/{uuid}/revoke' in page.text
    wait_for(lambda: 'data-state="delivered"' in http.get(
        f"{server.url}/admin/credentials/courses/{native['course_id']}", timeout=10).text, 30, "deliveries shown")
    # Revoking needs a reason, a CSRF token and an operator.
    url = f"{server.url}/admin/credentials/credentials/{uuid}/revoke"
    assert requests.post(url, data={"reason": "x"}, timeout=10).status_code == 403
    assert http.post(url, data={"reason": "x"}, timeout=10).status_code == 400
    resp = http.post(url, data={"csrf_token": csrf(page.text), "reason": "identity mix-up"}, timeout=10,
                     allow_redirects=True)
    assert resp.status_code == 200 and "revoked" in resp.text and "identity mix-up" in resp.text
    answer = verify_api(server, requests.get(server.url + state["links"]["json"], timeout=10).json())
    assert answer["ok"] is False and "revoked" in check(answer, "revocation")["detail"]
    # The learner's own page says so too.
    assert credential_state(server, learner.token)["state"] == "revoked"
