"""Narrow, signed tokens for the content runtimes.

A SCORM runtime commits with a **commit token** that names one attempt (and its user) and
nothing else: it cannot open pages, read other attempts, or stand in for the launch token, which
never leaves the player page. It is signed (HMAC-SHA256 with a key derived from ``SECRET_KEY``
for this purpose only) and expires with the launch, so checking it costs no database or store
round trip: what lets the commit endpoint take hundreds of commits a second.

Format: ``base64url(JSON claims) "." base64url(HMAC)``; claims ``a`` (attempt id), ``u`` (user
pk), ``e`` (expiry, Unix seconds), ``p`` (purpose).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from flask import current_app

_keys: dict[tuple[str, str], bytes] = {}


def _key(purpose: str) -> bytes:
    secret = current_app.config["SECRET_KEY"]
    cached = _keys.get((secret, purpose))
    if cached is None:
        cached = _keys[(secret, purpose)] = hmac.new(secret.encode(), f"lms_bridge.player.{purpose}".encode(),
                                                    hashlib.sha256).digest()
    return cached


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(purpose: str, *, attempt_id: int, user_pk: int, ttl: int | None = None, **extra) -> str:
    """A token for ``purpose`` naming one attempt; ``extra`` claims (short keys) ride along."""
    ttl = ttl or current_app.config.get("LAUNCH_TOKEN_TTL", 4 * 3600)
    claims = {**extra, "a": attempt_id, "u": user_pk, "e": int(time.time()) + int(ttl), "p": purpose}
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = _b64(hmac.new(_key(purpose), body.encode("ascii"), hashlib.sha256).digest())
    return f"{body}.{sig}"


def verify(purpose: str, token: str | None) -> dict | None:
    """The claims of a valid, unexpired token for ``purpose``, else None."""
    if not token or len(token) > 400 or token.count(".") != 1:
        return None
    body, sig = token.split(".")
    try:
        expected = _b64(hmac.new(_key(purpose), body.encode("ascii"), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, sig):
            return None
        claims = json.loads(_unb64(body))
    except (ValueError, UnicodeError):
        return None
    if not isinstance(claims, dict) or claims.get("p") != purpose or not isinstance(claims.get("e"), int):
        return None
    if claims["e"] < time.time():
        return None
    return claims
