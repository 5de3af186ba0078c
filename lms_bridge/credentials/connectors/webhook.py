"""A signed webhook: the JSON completion record POSTed to an issuer such as a skills hub.

Request (one per completion; every retry sends the same body and the same key)::

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <stable key of this completion and connector>
    X-LMS-Bridge-Event: completion
    X-LMS-Bridge-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
    X-LMS-Bridge-JWS: <detached compact JWS of the body>           (when "jws" is on)

    {completion record: lms_bridge.credentials.completion.completion_record}

* ``Idempotency-Key`` (IETF draft-ietf-httpapi-idempotency-key-header): the receiver keeps the keys
  it has processed and answers a repeat with 2xx (or 409): the record then counts as delivered.
* The HMAC signature covers the timestamp and the exact body bytes, so a receiver that knows the
  shared ``secret`` can check origin and integrity and refuse old replays.
* With ``jws``, the body is also signed with the issuer profile's Ed25519 key as a detached JWS
  (RFC 7515 Appendix F, ``alg`` EdDSA, ``kid`` the issuer's did:web verification method): the
  receiver verifies it with the key published at ``/issuers/<slug>/jwks.json``, no shared secret.

Answers: 2xx delivered; 409 delivered (the receiver already had it); 408, 425, 429 and 5xx,
timeouts and connection errors are retried with backoff; any other 4xx parks the delivery with the
receiver's own message for an operator.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from ..models import IssuerProfile
from . import DeliveryContext, IssuerConnector, post_json, record_receipt, register

SIGNATURE_HEADER = "X-LMS-Bridge-Signature"
JWS_HEADER = "X-LMS-Bridge-JWS"
EVENT_HEADER = "X-LMS-Bridge-Event"


def hmac_signature(secret: str, body: bytes, timestamp: int) -> str:
    """The value of the signature header for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def check_hmac_signature(secret: str, body: bytes, header: str, *, tolerance: int | None = 300,
                         now: float | None = None) -> bool:
    """For receivers (and tests): is ``header`` a valid signature of ``body``, recent enough?"""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if tolerance is not None and abs((now or time.time()) - timestamp) > tolerance:
        return False
    expected = hmac_signature(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def detached_jws(body: bytes, profile: IssuerProfile) -> str:
    """RFC 7515 Appendix F: ``<protected header>..<signature>`` over ``body``, EdDSA (RFC 8037)."""
    from ..issuer import signing_key
    from ..keys import b64url_encode

    key = signing_key(profile)
    header = {"alg": "EdDSA", "kid": key.verification_method, "typ": "JOSE"}
    protected = b64url_encode(json.dumps(header, separators=(",", ":")).encode("utf-8"))
    signature = key.sign(f"{protected}.{b64url_encode(body)}".encode("ascii"))
    return f"{protected}..{b64url_encode(signature)}"


@register
class WebhookConnector(IssuerConnector):
    name = "webhook"
    label = "Signed webhook"
    setting_help = {
        "url": "the receiver's URL (https in production)",
        "secret": "shared secret for the HMAC-SHA256 signature header (at least 16 characters)",
        "jws": "true to also sign the body with the issuer's key (detached JWS header)",
        "include_email": "true to send the learner's e-mail address (otherwise only its salted hash)",
        "token": "optional bearer token sent in Authorization",
    }

    def check_settings(self, settings: Mapping) -> list[str]:
        problems = []
        url = str(settings.get("url") or "")
        if not url.startswith(("https://", "http://")):
            problems.append("url (the receiver's http(s) URL) is missing")
        secret = settings.get("secret")
        if secret and len(str(secret)) < 16:
            problems.append("secret must have at least 16 characters")
        if not secret and not settings.get("jws"):
            problems.append("set a secret (HMAC signature) or jws: true, so the receiver can tell the record is ours")
        return problems

    def target(self, settings: Mapping, profile: IssuerProfile) -> str:
        return str(settings.get("url") or "webhook (no URL configured)")

    def body(self, ctx: DeliveryContext) -> bytes:
        from ...extensions import db
        from ...lti.models import User
        from ..completion import completion_record

        email = None
        if ctx.settings.get("include_email") and ctx.completion.user_pk is not None:
            user = db.session.get(User, ctx.completion.user_pk)
            email = user.email if user is not None else None
        record = completion_record(ctx.completion, include_email=email)
        return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def deliver(self, ctx: DeliveryContext) -> str:
        from ...outbox import Permanent
        from ..issuer import IssuingError

        try:
            body = self.body(ctx)
        except IssuingError as exc:
            raise Permanent(str(exc), status="not configured") from exc
        headers = {"Content-Type": "application/json", "Idempotency-Key": ctx.idempotency_key, EVENT_HEADER: "completion"}
        if ctx.settings.get("secret"):
            headers[SIGNATURE_HEADER] = hmac_signature(str(ctx.settings["secret"]), body, int(time.time()))
        if ctx.settings.get("jws"):
            headers[JWS_HEADER] = detached_jws(body, ctx.profile)
        if ctx.settings.get("token"):
            headers["Authorization"] = f"Bearer {ctx.settings['token']}"
        url = str(ctx.settings["url"])
        resp, status = post_json(url, body, headers, what="The webhook receiver")
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        external = answer.get("id") if isinstance(answer, dict) and isinstance(answer.get("id"), (str, int)) else None
        record_receipt(ctx.completion.id, self.name, external_id=str(external) if external is not None else None,
                       note=f"{url}: {status}", document=answer if isinstance(answer, dict) else None)
        return status
