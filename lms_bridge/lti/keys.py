"""Tool keys and platform key sets (1EdTech Security Framework §6.3 key set URL, §6.4 rotation).

Tool keys live in the database so every worker and host signs with the same key.  Parsed
key objects are cached per process by ``kid``: a kid's key material never changes, so this
cache holds no state that could diverge between workers.

Platform key sets are cached in the shared store with a TTL and re-fetched once when a launch
names a ``kid`` the cached set lacks (platforms such as Brightspace rotate hourly), within a
per-platform budget of re-fetches.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import current_app

from ..extensions import db
from ..http_client import OutboundError, get_json
from ..shared_store import store
from .models import ToolKey, utcnow

MIN_KEY_BITS = 2048
# An unknown kid re-fetches the platform's key set at once, but at most REFETCH_LIMIT times per
# REFETCH_WINDOW seconds per key set, so forged kids cannot make the tool hammer a platform.
REFETCH_LIMIT = 5
REFETCH_WINDOW = 60
_private_keys: dict[str, rsa.RSAPrivateKey] = {}


def public_jwk(private_key: rsa.RSAPrivateKey, kid: str) -> dict:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return jwk


def create_key(bits: int = MIN_KEY_BITS, state: str = "active") -> ToolKey:
    if bits < MIN_KEY_BITS:
        raise ValueError(f"RSA keys must have at least {MIN_KEY_BITS} bits")
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    kid = secrets.token_hex(12)
    key = ToolKey(kid=kid, private_pem=pem, public_jwk=public_jwk(private_key, kid), state=state)
    db.session.add(key)
    return key


def ensure_tool_key() -> ToolKey:
    """The active key, created on first use."""
    key = db.session.execute(db.select(ToolKey).filter_by(state="active").order_by(ToolKey.id.desc())).scalars().first()
    if key is None:
        key = create_key()
        db.session.commit()
    return key


def signing_key() -> tuple[str, rsa.RSAPrivateKey]:
    """(kid, parsed private key) of the active key; parsed once per process."""
    key = ensure_tool_key()
    parsed = _private_keys.get(key.kid)
    if parsed is None:
        parsed = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
        _private_keys[key.kid] = parsed
    return key.kid, parsed


def sign_jwt(claims: dict, headers: dict | None = None) -> str:
    kid, key = signing_key()
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, **(headers or {})})


def published_jwks() -> dict:
    """The JWKS document: the active key and retiring keys still in their grace period."""
    now = utcnow()
    keys = db.session.execute(
        db.select(ToolKey).where(ToolKey.state.in_(("active", "retiring"))).order_by(ToolKey.id.desc())
    ).scalars()
    return {"keys": [k.public_jwk for k in keys if k.state == "active" or (k.retire_after and k.retire_after > now)]}


def rotate(grace_days: int | None = None, bits: int = MIN_KEY_BITS) -> tuple[ToolKey, list[ToolKey]]:
    """Make a new active key; the old active key keeps being published for ``grace_days``.

    Retiring keys whose grace period has passed are retired in the same step.
    Returns (new key, keys retired now).
    """
    if grace_days is None:
        grace_days = current_app.config["KEY_ROTATION_GRACE_DAYS"]
    now = utcnow()
    retired = []
    for key in db.session.execute(db.select(ToolKey).where(ToolKey.state.in_(("active", "retiring")))).scalars():
        if key.state == "active":
            key.state = "retiring"
            key.retire_after = now + timedelta(days=grace_days)
        elif key.retire_after is None or key.retire_after <= now:
            key.state = "retired"
            retired.append(key)
    new = create_key(bits)
    db.session.commit()
    return new, retired


# -- platform key sets -------------------------------------------------------------------


class PlatformKeyError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _cache_key(url: str) -> str:
    return "jwks:" + hashlib.sha256(url.encode()).hexdigest()


def _fetch(url: str) -> dict:
    try:
        data = get_json(url)
    except OutboundError as exc:
        raise PlatformKeyError("platform_keys_unavailable", f"The platform's key set could not be fetched: {exc}") from exc
    if not isinstance(data.get("keys"), list):
        raise PlatformKeyError("platform_keys_invalid", f"The platform's key set at {url} has no \"keys\" list")
    store().put(_cache_key(url), data, current_app.config["PLATFORM_JWKS_TTL"])
    return data


def _find(key_set: dict, kid: str) -> dict | None:
    candidates = [k for k in key_set.get("keys", []) if isinstance(k, dict)]
    for jwk in candidates:
        if jwk.get("kid") == kid:
            return jwk
    # A single pasted key without a kid (registered from PEM) stands for the platform's one key.
    if len(candidates) == 1 and not candidates[0].get("kid"):
        return candidates[0]
    return None


def platform_key(registration, kid: str) -> dict:
    """The platform's public JWK for ``kid``, re-fetching the key set once on an unknown kid."""
    if registration.key_set:
        jwk = _find(registration.key_set, kid)
        if jwk is None:
            raise PlatformKeyError("unknown_kid", f"No key with kid {kid!r} in the key set registered for this platform")
        return jwk
    url = registration.key_set_url
    if not url:
        raise PlatformKeyError("platform_keys_missing", "The registration has neither a key set URL nor a key set")
    cached = store().get(_cache_key(url))
    if cached is not None:
        jwk = _find(cached, kid)
        if jwk is not None:
            return jwk
        # Unknown kid: the platform may have rotated. Re-fetch, but not on every forged kid.
        if store().incr("jwks-refetch:" + _cache_key(url), REFETCH_WINDOW) > REFETCH_LIMIT:
            raise PlatformKeyError("unknown_kid", f"No key with kid {kid!r} in the platform's key set")
    jwk = _find(_fetch(url), kid)
    if jwk is None:
        raise PlatformKeyError("unknown_kid", f"No key with kid {kid!r} in the platform's key set")
    return jwk
