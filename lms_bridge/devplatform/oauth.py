"""OAuth 2.0 for LTI Advantage services, platform side (1EdTech Security Framework §4.1).

The token endpoint implements the client credentials grant (RFC 6749 §4.4) with a JWT
client assertion (RFC 7523 §2.2, §3; Security Framework §4.1.1): the assertion is signed
with the tool's private key and checked against the tool's JWK Set, fetched over HTTP from
the client's ``jwks_uri`` like Moodle does (cached briefly in the shared store, fetched
again when the ``kid`` is unknown).  ``iss`` and ``sub`` must be the client_id, ``aud``
must contain the token endpoint URL, ``exp`` must be in the future and ``jti`` is accepted
once.  Requested scopes must be a subset of the client's.  Access tokens are opaque
random strings kept in the shared store for ``expires_in`` seconds (RFC 6750 bearer use).
"""
from __future__ import annotations

import hashlib
import logging
import secrets
import time

import jwt
from flask import current_app

from ..extensions import db
from ..http_client import OutboundError, get_json
from ..shared_store import store
from ..web import log_event
from . import platform

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_TTL = 3600
JWKS_TTL = 300  # the tool's key set is cached briefly
REFETCH_INTERVAL = 5  # at most one forced re-fetch of a key set per this many seconds
ALLOWED_ALGS = ["RS256", "RS384", "RS512"]
COUNTER_TTL = 10 * 365 * 24 * 3600
TOKEN_REQUESTS = "devplatform:count:token-requests"
TOKENS_ISSUED = "devplatform:count:tokens-issued"


class OAuthError(Exception):
    """An OAuth 2.0 error response (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


class KeySetError(Exception):
    pass


# -- the tool's key set --------------------------------------------------------------------


def _jwks_cache_key(url: str) -> str:
    return "devplatform:tooljwks:" + hashlib.sha256(url.encode()).hexdigest()


def _fetch_key_set(url: str) -> dict:
    try:
        data = get_json(url)
    except OutboundError as exc:
        raise KeySetError(f"the tool's key set could not be fetched: {exc}") from exc
    if not isinstance(data.get("keys"), list):
        raise KeySetError(f"the tool's key set at {url} has no top-level \"keys\" list")
    store().put(_jwks_cache_key(url), data, JWKS_TTL)
    return data


def _find(key_set: dict, kid: str) -> dict | None:
    return next((k for k in key_set.get("keys", []) if isinstance(k, dict) and k.get("kid") == kid), None)


def tool_key(jwks_uri: str, kid: str) -> dict:
    """The tool's public JWK for ``kid``.  Call with no database transaction open: this may
    make an HTTP request (to this very server, when the tool is lms_bridge)."""
    cached = store().get(_jwks_cache_key(jwks_uri))
    if cached is not None:
        jwk = _find(cached, kid)
        if jwk is not None:
            return jwk
        if not store().add("devplatform:tooljwks-refetch:" + _jwks_cache_key(jwks_uri), 1, REFETCH_INTERVAL):
            raise KeySetError(f"no key with kid {kid!r} in the tool's key set")
    jwk = _find(_fetch_key_set(jwks_uri), kid)
    if jwk is None:
        raise KeySetError(f"no key with kid {kid!r} in the tool's key set at {jwks_uri}")
    return jwk


def verify_tool_jwt(token: str, *, client_id: str, jwks_uri: str, audience: str, leeway: int | None = None) -> dict:
    """Verify a JWT the tool signed (client assertions, deep linking responses).

    Raises ``jwt.InvalidTokenError`` or :class:`KeySetError` with a readable message.
    """
    header = jwt.get_unverified_header(token)
    if header.get("alg") not in ALLOWED_ALGS:
        raise jwt.InvalidAlgorithmError(f"alg {header.get('alg')!r} is not allowed; use RS256")
    if not header.get("kid"):
        raise jwt.InvalidTokenError("the JWT header has no kid")
    jwk = tool_key(jwks_uri, header["kid"])
    key = jwt.PyJWK(jwk, algorithm=header["alg"]).key
    if leeway is None:
        leeway = current_app.config.get("LTI_LEEWAY_SECONDS", 10)
    return jwt.decode(token, key, algorithms=[header["alg"]], audience=audience, issuer=client_id, leeway=leeway,
                      options={"require": ["exp", "iat", "iss", "aud"]})


# -- the token endpoint ----------------------------------------------------------------------


def _count(key: str) -> None:
    try:
        store().incr(key, COUNTER_TTL)
    except Exception:  # a counter must never break a token request
        logging.getLogger(__name__).exception("could not count %s", key)


def counts() -> dict:
    """How many token requests arrived and how many tokens were issued (for tests and the gradebook)."""
    return {"token_requests": _read_counter(TOKEN_REQUESTS), "tokens_issued": _read_counter(TOKENS_ISSUED)}


def _read_counter(key: str) -> int:
    raw = store().get(key)
    return int(raw) if raw is not None else 0


def issue_token(form: dict) -> dict:
    """Answer a client credentials token request (RFC 6749 §4.4.2, §5.1)."""
    _count(TOKEN_REQUESTS)
    if form.get("grant_type") != "client_credentials":
        raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials.")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}.")
    assertion = form.get("client_assertion") or ""
    if not assertion:
        raise OAuthError("invalid_request", "client_assertion is missing.")
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise OAuthError("invalid_client", f"client_assertion is not a JWT: {exc}", 401)
    client_id = unverified.get("iss")
    if not client_id or unverified.get("sub") != client_id:
        raise OAuthError("invalid_client", "client_assertion must have iss and sub equal to the client_id.", 401)
    client = platform.client_by_id(client_id)
    if client is None:
        raise OAuthError("invalid_client", f"No tool is registered with client_id {client_id!r}.", 401)
    jwks_uri = (client.tool_configuration or {}).get("jwks_uri")
    client_scopes = platform.client_scopes(client)
    token_url = platform.platform_url("devplatform.token")
    db.session.rollback()  # never hold a transaction open across the HTTP fetch of the tool's keys
    if not jwks_uri:
        raise OAuthError("invalid_client", "The tool has no key set URL registered.", 401)
    try:
        claims = verify_tool_jwt(assertion, client_id=client_id, jwks_uri=jwks_uri, audience=token_url)
    except KeySetError as exc:
        raise OAuthError("invalid_client", f"client_assertion could not be checked: {exc}.", 401)
    except jwt.InvalidAudienceError:
        raise OAuthError("invalid_client", f"client_assertion's aud must contain the token endpoint {token_url}.", 401)
    except jwt.ExpiredSignatureError:
        raise OAuthError("invalid_client", "client_assertion has expired.", 401)
    except jwt.MissingRequiredClaimError as exc:
        raise OAuthError("invalid_client", f"client_assertion has no {exc.claim!r} claim.", 401)
    except (jwt.InvalidTokenError, jwt.PyJWKError, ValueError, TypeError) as exc:
        raise OAuthError("invalid_client", f"client_assertion was refused: {exc}.", 401)
    jti = claims.get("jti")
    if not jti:
        raise OAuthError("invalid_client", "client_assertion has no jti.", 401)
    ttl = int(claims["exp"] - time.time()) + 60 + current_app.config.get("LTI_LEEWAY_SECONDS", 10)
    if not store().add(f"devplatform:jti:{client_id}:{jti}", 1, max(ttl, 60)):
        raise OAuthError("invalid_client", "client_assertion was already used (jti replay).", 401)
    requested = (form.get("scope") or "").split()
    if not requested:
        raise OAuthError("invalid_scope", "No scope was requested.")
    refused = [s for s in requested if s not in client_scopes]
    if refused:
        raise OAuthError("invalid_scope", f"Scopes not granted to this tool: {' '.join(refused)}.")
    granted = list(dict.fromkeys(requested))
    token = secrets.token_urlsafe(32)
    store().put(_token_key(token), {"client_id": client_id, "scopes": granted}, TOKEN_TTL)
    _count(TOKENS_ISSUED)
    log_event("devplatform.token.issued", client_id=client_id, scope=" ".join(granted))
    return {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL, "scope": " ".join(granted)}


def _token_key(token: str) -> str:
    return "devplatform:token:" + hashlib.sha256(token.encode()).hexdigest()


# -- bearer tokens on the service endpoints (RFC 6750 §2.1, §3.1) ----------------------------


class BearerError(Exception):
    def __init__(self, status: int, error: str, description: str, scope: str = ""):
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.scope = scope

    def www_authenticate(self) -> str:
        value = f'Bearer realm="lms_bridge devplatform", error="{self.error}", error_description="{self.description}"'
        if self.scope:
            value += f', scope="{self.scope}"'
        return value


def check_bearer(authorization: str | None, any_of: list[str]) -> dict:
    """The grant behind ``Authorization: Bearer ...`` if it holds one of ``any_of`` scopes."""
    if not authorization or not authorization.startswith("Bearer "):
        raise BearerError(401, "invalid_request", "An Authorization: Bearer access token is required.")
    grant = store().get(_token_key(authorization[len("Bearer "):].strip()))
    if grant is None:
        raise BearerError(401, "invalid_token", "The access token is unknown or has expired.")
    if not any(s in grant["scopes"] for s in any_of):
        raise BearerError(403, "insufficient_scope", "The access token lacks the scope this request needs.",
                          " ".join(any_of))
    return grant
