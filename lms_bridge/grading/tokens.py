"""OAuth 2.0 access tokens for LTI Advantage services (1EdTech Security Framework §4.1).

The tool asks the platform's token endpoint for a token with the client credentials grant
(RFC 6749 §4.4) authenticated by a JWT client assertion (RFC 7523 §2.2; Security Framework
§4.1.1: ``iss`` = ``sub`` = client_id, ``aud`` = the token endpoint, short ``exp``, fresh ``jti``),
signed with the tool's active key (:func:`lms_bridge.lti.keys.sign_jwt`: the private key is parsed
once per process and cached by ``kid``).

Tokens are cached in the shared store (Redis in production, the database on the embedded default),
so every worker and host uses the same one, keyed by issuer + client_id + the sorted scopes: a call
asks only for the scopes it needs (some platforms issue narrow tokens), and a score post and a line
item lookup use different tokens. Each process also keeps the tokens it used in memory (a token is
an immutable value with an expiry), so a score costs no store round trip.

A token is refreshed before it expires (``REFRESH_MARGIN``): the first worker that sees it in its
refresh window takes a lock in the shared store and fetches a new one, while the others go on using
the old one, still valid; when there is no usable token at all, the others wait for the one fetch
(single flight) instead of all asking the platform at once.
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass

import requests

from ..http_client import parse_retry_after, session, timeout
from ..lti.keys import sign_jwt
from ..shared_store import store

log = logging.getLogger("lms_bridge.grading")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_TTL = 300
# Refresh when less than this share of the token's life (at least MIN_MARGIN seconds) is left.
REFRESH_SHARE = 0.1
MIN_MARGIN = 30.0
# A token this close to its expiry is not used any more (a call may take a while to arrive).
USE_MARGIN = 5.0
DEFAULT_EXPIRES_IN = 3600  # when the platform omits expires_in (Moodle sends 3600)
WAIT_POLL = 0.05

_local: dict[str, "AccessToken"] = {}
_local_lock = threading.Lock()
_requests_made = 0  # token requests this process sent (benchmarks)


class TokenError(Exception):
    """No access token: ``transient`` says whether trying again later can help."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class AccessToken:
    value: str
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float

    @property
    def margin(self) -> float:
        return max(MIN_MARGIN, (self.expires_at - self.issued_at) * REFRESH_SHARE)

    def usable(self, now: float) -> bool:
        """Still valid for a call that may take a while (not inside the last seconds of its life)."""
        return now < self.expires_at - min(USE_MARGIN, self.margin)

    def fresh(self, now: float) -> bool:
        """Not yet due for refresh."""
        return now < self.expires_at - self.margin

    def age(self, now: float) -> float:
        return now - self.issued_at

    def as_dict(self) -> dict:
        return {"value": self.value, "scopes": list(self.scopes), "issued_at": self.issued_at,
                "expires_at": self.expires_at}

    @classmethod
    def of(cls, data) -> AccessToken | None:
        try:
            return cls(str(data["value"]), tuple(data["scopes"]), float(data["issued_at"]), float(data["expires_at"]))
        except (KeyError, TypeError, ValueError):
            return None


def normalise_scopes(scopes) -> tuple[str, ...]:
    return tuple(sorted(set(scopes)))


def cache_key(issuer: str, client_id: str, scopes) -> str:
    """The shared-store key of a token: issuer + client_id + sorted scopes (Canvas cloud tenants
    share one issuer, so the client_id is part of it)."""
    material = json.dumps([issuer, client_id, list(normalise_scopes(scopes))], separators=(",", ":"))
    return "ags-token:" + hashlib.sha256(material.encode()).hexdigest()


def client_assertion(registration) -> str:
    """The signed JWT that authenticates the tool at the token endpoint (Security Framework §4.1.1)."""
    now = int(time.time())
    audience = registration.auth_audience or registration.auth_token_url
    return sign_jwt({"iss": registration.client_id, "sub": registration.client_id, "aud": audience,
                     "iat": now, "exp": now + ASSERTION_TTL, "jti": str(uuid.uuid4())})


def requests_made() -> int:
    """How many token requests this process has sent (for benchmarks)."""
    return _requests_made


def access_token(registration, scopes) -> AccessToken:
    """A valid access token for ``scopes`` at ``registration``'s platform; raises :class:`TokenError`."""
    scopes = normalise_scopes(scopes)
    key = cache_key(registration.issuer, registration.client_id, scopes)
    now = time.time()
    token = _local.get(key)
    if token is not None and token.fresh(now):
        return token
    shared = AccessToken.of(store().get(key))
    if shared is not None and shared.fresh(now):
        _remember(key, shared)
        return shared
    current = shared if shared is not None and shared.usable(now) else (
        token if token is not None and token.usable(now) else None)
    return _refresh(registration, scopes, key, current)


def _remember(key: str, token: AccessToken) -> None:
    with _local_lock:
        _local[key] = token


def _refresh(registration, scopes: tuple[str, ...], key: str, current: AccessToken | None) -> AccessToken:
    """Fetch a new token under a shared lock; without the lock, use ``current`` or wait for the holder."""
    lock_key = key + ":lock"
    lock_ttl = int(timeout() * 2) + 5
    deadline = time.monotonic() + lock_ttl + 1
    owner = secrets.token_hex(8)
    while True:
        if store().add(lock_key, owner, lock_ttl):
            try:
                # Another worker may have stored a new token between our read and the lock.
                shared = AccessToken.of(store().get(key))
                if shared is not None and shared.fresh(time.time()):
                    _remember(key, shared)
                    return shared
                try:
                    token = _request(registration, scopes)
                except TokenError as exc:
                    if current is not None and current.usable(time.time()):
                        log.warning("ags: token refresh failed, the current token serves on: %s", exc)
                        return current
                    raise
                store().put(key, token.as_dict(), max(1, int(token.expires_at - time.time())))
                _remember(key, token)
                return token
            finally:
                if store().get(lock_key) == owner:
                    store().delete(lock_key)
        if current is not None:
            return current  # still valid: someone else is refreshing it
        time.sleep(WAIT_POLL)
        shared = AccessToken.of(store().get(key))
        if shared is not None and shared.usable(time.time()):
            _remember(key, shared)
            return shared
        if time.monotonic() > deadline:
            raise TokenError("another worker has been fetching an access token from the platform for too long",
                             transient=True)


def discard(registration, token: AccessToken) -> None:
    """Forget ``token`` (the platform refused it): here, and in the shared store unless a newer one
    is already there."""
    key = cache_key(registration.issuer, registration.client_id, token.scopes)
    with _local_lock:
        if _local.get(key) == token:
            del _local[key]
    shared = AccessToken.of(store().get(key))
    if shared is not None and shared.value == token.value:
        store().delete(key)


def _request(registration, scopes: tuple[str, ...]) -> AccessToken:
    """One token request (RFC 6749 §4.4.2) and its answer (§5.1, §5.2)."""
    global _requests_made
    url = registration.auth_token_url
    if not url:
        raise TokenError("The platform's registration has no token URL: add it on /admin/ (Moodle: "
                         "/mod/lti/token.php of the site).", transient=False)
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(registration), "scope": " ".join(scopes)}
    _requests_made += 1
    issued_at = time.time()
    try:
        resp = session().post(url, data=form, headers={"Accept": "application/json"}, timeout=timeout())
    except requests.Timeout as exc:
        raise TokenError(f"the token endpoint {url} did not answer within {timeout():g} s", transient=True) from exc
    except requests.RequestException as exc:
        raise TokenError(f"could not connect to the token endpoint {url} ({exc.__class__.__name__})",
                         transient=True) from exc
    log.info(json.dumps({"event": "ags.token.requested", "issuer": registration.issuer,
                         "client_id": registration.client_id, "scope": " ".join(scopes), "status": resp.status_code}))
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code == 200 and isinstance(body, dict) and isinstance(body.get("access_token"), str):
        try:
            expires_in = float(body.get("expires_in") or DEFAULT_EXPIRES_IN)
        except (TypeError, ValueError):
            expires_in = DEFAULT_EXPIRES_IN
        granted = tuple(str(body.get("scope") or " ".join(scopes)).split())
        missing = [s for s in scopes if s not in granted]
        if missing:
            raise TokenError(f"the platform issued a token without the scope(s) {' '.join(missing)}: enable the "
                             "Assignment and Grade Services for lms_bridge in the platform's tool settings (Moodle: "
                             "Services > IMS LTI Assignment and Grade Services: 'Use this service for grade sync "
                             "and column management')", transient=False, status=200)
        return AccessToken(body["access_token"], scopes, issued_at, issued_at + max(1.0, expires_in))
    raise token_failure(url, resp.status_code, body, resp.headers.get("Content-Type", ""), resp.text,
                        resp.headers.get("Retry-After"))


def token_failure(url: str, status: int, body, content_type: str, text: str, retry_after: str | None) -> TokenError:
    """Say plainly why the platform gave no token and what to do."""

    if status == 429 or status >= 500:
        return TokenError(f"the token endpoint {url} answered HTTP {status}", transient=True, status=status,
                          retry_after=parse_retry_after(retry_after))
    if isinstance(body, dict) and body.get("error"):
        error, description = str(body["error"]), str(body.get("error_description") or "")
        what = f"the platform refused the token request: {error}" + (f" ({description})" if description else "")
        if error == "invalid_scope":
            hint = ("enable the Assignment and Grade Services for lms_bridge in the platform's tool settings "
                    "(Moodle: Services > IMS LTI Assignment and Grade Services)")
        elif error in ("invalid_client", "unauthorized_client"):
            hint = ("check the registration's client_id and token URL, and that the platform can fetch the tool's "
                    "key set (/.well-known/jwks.json)")
        else:
            hint = "check the registration of this platform on /admin/"
        return TokenError(f"{what}; {hint}", transient=False, status=status)
    if status == 404 and "html" in content_type.lower():
        # Moodle whose outgoing HTTP may not reach the tool (PLATFORMS.md, "Keys and services").
        return TokenError(
            f"the token endpoint {url} answered HTTP 404 with an HTML page: Moodle could not fetch the tool's key set "
            "(its cURL security settings block the tool's address or port). Clear the tool's host from 'cURL blocked "
            "hosts list' and add its port to 'cURL allowed ports list' (Site administration > General > Security > "
            "HTTP security), or register the tool with its public key instead of the key set URL", transient=False,
            status=status)
    excerpt = " ".join(text.split())[:200]
    return TokenError(f"the token endpoint {url} answered HTTP {status}: {excerpt}", transient=False, status=status)
