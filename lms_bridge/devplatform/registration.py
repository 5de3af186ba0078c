"""LTI Dynamic Registration 1.0, platform side (1EdTech LTI Dynamic Registration).

* Registration initiation (DR §3.3): the platform opens the tool's registration URL with
  ``openid_configuration`` and a one-time ``registration_token`` (here: random, kept in the
  shared store for an hour, like Moodle's one-hour registration JWT).
* OpenID configuration (DR §3.4, §4.1 platform configuration): :func:`openid_configuration`.
* Client registration (DR §3.5, §3.6; RFC 7591 §2, §3.2.1): :func:`register` validates the
  tool's request as Moodle does (``response_types`` with ``id_token``, ``redirect_uris`` a
  list, ``token_endpoint_auth_method`` ``private_key_jwt``, ``application_type`` ``web``,
  required ``initiate_login_uri``, ``jwks_uri``, ``client_name`` and tool configuration
  with ``domain`` and ``target_link_uri``), creates a client with a random client_id and a
  new deployment id, and answers the registration with ``client_id`` and
  ``lti-tool-configuration.deployment_id``.  Errors are RFC 7591 §3.2.2 JSON errors.
* The tool ends with the ``org.imsglobal.lti.close`` postMessage (DR §3.7); the
  registration page then shows the new client (:func:`result`).
"""
from __future__ import annotations

import hashlib
import secrets
from urllib.parse import urlsplit

from ..extensions import db
from ..shared_store import store
from . import platform
from .models import DevClient

TOKEN_TTL = 3600
PLATFORM_CONFIG = "https://purl.imsglobal.org/spec/lti-platform-configuration"
TOOL_CONFIG = platform.TOOL_CONFIG
CLAIMS_SUPPORTED = ["iss", "aud", "sub", "iat", "exp", "nonce", "azp", "name", "given_name", "family_name", "email"]


class RegistrationError(Exception):
    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


def openid_configuration() -> dict:
    """The platform's OpenID configuration (DR §3.4.1, example in §4.1)."""
    return {
        "issuer": platform.issuer(),
        "authorization_endpoint": platform.platform_url("devplatform.auth"),
        "token_endpoint": platform.platform_url("devplatform.token"),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "jwks_uri": platform.platform_url("devplatform.jwks"),
        "registration_endpoint": platform.platform_url("devplatform.register"),
        "scopes_supported": ["openid", *platform.SUPPORTED_SCOPES],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": CLAIMS_SUPPORTED,
        PLATFORM_CONFIG: {
            "product_family_code": platform.PRODUCT_FAMILY_CODE,
            "version": platform.PLATFORM_VERSION,
            "messages_supported": [
                {"type": "LtiResourceLinkRequest"},
                {"type": "LtiDeepLinkingRequest", "placements": ["ContentArea"]},
            ],
            "variables": [],
        },
    }


def _token_key(token: str) -> str:
    return "devplatform:regtoken:" + hashlib.sha256(token.encode()).hexdigest()


def issue_registration_token() -> tuple[str, str]:
    """A one-time registration token and the handle under which the page finds the result."""
    token = secrets.token_urlsafe(32)
    handle = secrets.token_urlsafe(16)
    store().put(_token_key(token), {"handle": handle}, TOKEN_TTL)
    return token, handle


def result(handle: str) -> dict | None:
    return store().get("devplatform:regresult:" + handle) if handle else None


def _bad(description: str, error: str = "invalid_client_metadata"):
    raise RegistrationError(400, error, description)


def _url(value, name: str) -> str:
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
        _bad(f"{name} must be an absolute http(s) URL.", "invalid_redirect_uri" if name == "redirect_uris" else "invalid_client_metadata")
    return value


def validate(body) -> dict:
    """The stored tool configuration for a valid client registration request (DR §3.5.2)."""
    if not isinstance(body, dict):
        _bad("The registration must be a JSON object.")
    for key in ("response_types", "initiate_login_uri", "redirect_uris", "client_name", "jwks_uri",
                "token_endpoint_auth_method", TOOL_CONFIG):
        if not body.get(key):
            _bad(f"missing required attribute {key}")
    if body.get("application_type") not in (None, "", "web"):
        _bad("application_type must be 'web'.")
    if not isinstance(body["response_types"], list) or "id_token" not in body["response_types"]:
        _bad("response_types must include 'id_token'.")
    grants = body.get("grant_types")
    if grants is not None and (not isinstance(grants, list) or not {"implicit", "client_credentials"} <= set(grants)):
        _bad("grant_types must include 'implicit' and 'client_credentials'.")
    if body["token_endpoint_auth_method"] != "private_key_jwt":
        _bad("token_endpoint_auth_method must be 'private_key_jwt'.")
    if not isinstance(body["redirect_uris"], list):
        _bad("redirect_uris must be a list.", "invalid_redirect_uri")
    redirect_uris = [_url(u, "redirect_uris") for u in body["redirect_uris"]]
    if not isinstance(body["client_name"], str):
        _bad("client_name must be a string.")
    scope = body.get("scope") or ""
    if not isinstance(scope, str):
        _bad("scope must be a space-separated string.")
    tool = body[TOOL_CONFIG]
    if not isinstance(tool, dict):
        _bad(f"{TOOL_CONFIG} must be an object.")
    domain = tool.get("domain")
    if not isinstance(domain, str) or not domain:
        _bad(f"missing required attribute {TOOL_CONFIG}.domain")
    target_link_uri = _url(tool.get("target_link_uri"), f"{TOOL_CONFIG}.target_link_uri")
    login = _url(body["initiate_login_uri"], "initiate_login_uri")
    jwks_uri = _url(body["jwks_uri"], "jwks_uri")
    domain_host = urlsplit("//" + domain).hostname
    for name, url in [("initiate_login_uri", login), ("target_link_uri", target_link_uri)] + \
            [("redirect_uris", u) for u in redirect_uris]:
        if urlsplit(url).hostname != domain_host:
            _bad(f"{name} {url!r} is not on the tool's domain {domain!r}.")
    claims = tool.get("claims") or []
    messages = tool.get("messages") or []
    custom = tool.get("custom_parameters") or {}
    if not isinstance(claims, list) or not all(isinstance(c, str) for c in claims):
        _bad(f"{TOOL_CONFIG}.claims must be a list of strings.")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        _bad(f"{TOOL_CONFIG}.messages must be a list of objects.")
    if not isinstance(custom, dict) or not all(isinstance(v, str) for v in custom.values()):
        _bad(f"{TOOL_CONFIG}.custom_parameters must be an object of strings.")
    granted = [s for s in scope.split() if s in platform.SUPPORTED_SCOPES]
    return {
        "client_name": body["client_name"], "initiate_login_uri": login, "redirect_uris": redirect_uris,
        "target_link_uri": target_link_uri, "jwks_uri": jwks_uri, "domain": domain, "scope": " ".join(granted),
        "claims": claims, "messages": [m for m in messages if m.get("type") == "LtiDeepLinkingRequest"],
        "custom_parameters": custom, "logo_uri": body.get("logo_uri") or "",
        "description": tool.get("description") or "",
    }


def register(authorization: str | None, body) -> tuple[DevClient, dict]:
    """Handle ``POST /devplatform/register``; returns the client and the registration response."""
    if not authorization or not authorization.startswith("Bearer "):
        raise RegistrationError(401, "invalid_token", "The registration needs the Bearer registration token.")
    token = authorization[len("Bearer "):].strip()
    if store().get(_token_key(token)) is None:
        raise RegistrationError(401, "invalid_token", "The registration token is unknown, expired or already used.")
    conf = validate(body)
    record = store().take(_token_key(token))
    if record is None:
        raise RegistrationError(401, "invalid_token", "The registration token was already used.")
    client = DevClient(client_id=secrets.token_urlsafe(12), deployment_id="pending",
                       name=conf["client_name"][:200], tool_configuration=conf)
    db.session.add(client)
    db.session.flush()
    client.deployment_id = str(client.id)  # Moodle: the deployment id is the tool type's id
    platform.place_link(client, title=f"{client.name}: first activity", target_link_uri=conf["target_link_uri"])
    db.session.commit()
    response = {k: v for k, v in body.items() if k != TOOL_CONFIG}
    response.update({
        "client_id": client.client_id,
        "scope": conf["scope"],
        "token_endpoint_auth_method": "private_key_jwt",
        TOOL_CONFIG: {**body[TOOL_CONFIG], "deployment_id": client.deployment_id},
    })
    store().put("devplatform:regresult:" + record["handle"],
                {"client_id": client.client_id, "deployment_id": client.deployment_id, "name": client.name,
                 "scope": conf["scope"]}, TOKEN_TTL)
    return client, response
