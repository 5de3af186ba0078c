"""Registrations: by hand (operator command, admin page) and LTI Dynamic Registration 1.0.

Dynamic Registration (1EdTech LTI Dynamic Registration 1.0): the platform opens
``/lti/register?openid_configuration=...&registration_token=...``; the tool fetches the
platform's OpenID configuration (§3.4), checks it (§3.5.1: the issuer's host is the
configuration URL's host), posts its client registration (§3.5.2) and stores what the
platform answers (§3.6), then tells the platform window to close (§3.7).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app

from ..extensions import db
from ..http_client import OutboundError, get_json, post_json
from ..web import public_url
from .models import Deployment, Registration

AGS_SCOPES = [
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
]
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
TOOL_CONFIG = "https://purl.imsglobal.org/spec/lti-tool-configuration"
PLATFORM_CONFIG = "https://purl.imsglobal.org/spec/lti-platform-configuration"


class RegistrationError(Exception):
    pass


def upsert_registration(*, issuer: str, client_id: str, auth_login_url: str, auth_token_url: str = "",
                        key_set_url: str | None = None, key_set: dict | None = None, auth_audience: str | None = None,
                        name: str = "", deployment_ids=(), source: str = "manual", active: bool = True,
                        auto_activate_deployments: bool | None = None, platform_configuration: dict | None = None,
                        product_family_code: str | None = None) -> Registration:
    """Create or update the registration for (issuer, client_id) and activate the given deployments.

    Idempotent: running it twice with the same values changes nothing.
    """
    issuer = issuer.strip()  # compared byte for byte with the id_token's iss: never rewritten
    if not issuer or not client_id or not auth_login_url:
        raise RegistrationError("issuer, client_id and auth_login_url are required")
    if not key_set_url and not key_set:
        raise RegistrationError("give the platform's key set URL or its public key set")
    for url in filter(None, (auth_login_url, auth_token_url, key_set_url)):
        if urlsplit(url).scheme not in ("http", "https"):
            raise RegistrationError(f"{url!r} is not an http(s) URL")
    reg = db.session.execute(db.select(Registration).filter_by(issuer=issuer, client_id=client_id)).scalar_one_or_none()
    if reg is None:
        reg = Registration(issuer=issuer, client_id=client_id, source=source, active=active)
        db.session.add(reg)
    reg.name = name or reg.name or urlsplit(issuer).netloc
    reg.auth_login_url = auth_login_url
    reg.auth_token_url = auth_token_url or ""
    reg.key_set_url = key_set_url
    reg.key_set = key_set
    reg.auth_audience = auth_audience
    if auto_activate_deployments is not None:
        reg.auto_activate_deployments = auto_activate_deployments
    if platform_configuration is not None:
        reg.platform_configuration = platform_configuration
    if product_family_code:
        reg.product_family_code = product_family_code
    db.session.flush()
    for deployment_id in deployment_ids:
        deployment_id = str(deployment_id)
        dep = db.session.execute(
            db.select(Deployment).filter_by(registration_id=reg.id, deployment_id=deployment_id)
        ).scalar_one_or_none()
        if dep is None:
            db.session.add(Deployment(registration_id=reg.id, deployment_id=deployment_id, active=True,
                                      name=f"Deployment {deployment_id}"))
        else:
            dep.active = True
    db.session.commit()
    return reg


def tool_urls() -> dict:
    """Every value an LMS administrator pastes in for a manual registration."""
    return {
        "tool_name": current_app.config["TOOL_NAME"],
        "description": current_app.config["TOOL_DESCRIPTION"],
        "tool_url": public_url("lti.launch"),
        "target_link_uri": public_url("lti.launch"),
        "initiate_login_url": public_url("lti.login"),
        "redirect_uris": [public_url("lti.launch")],
        "jwks_url": public_url("lti.jwks"),
        "public_keyset_url": public_url("lti.jwks"),
        "deep_linking_url": public_url("lti.launch"),
        "dynamic_registration_url": public_url("lti.register"),
        "domain": urlsplit(public_url("lti.launch")).netloc,
        "logo_url": public_url("static", filename="logo.svg"),
        "scopes": AGS_SCOPES + [NRPS_SCOPE],
        "claims": ["iss", "sub", "name", "given_name", "family_name", "email", "locale"],
        "messages": ["LtiResourceLinkRequest", "LtiDeepLinkingRequest"],
    }


def fetch_platform_configuration(openid_configuration_url: str) -> dict:
    """Fetch and check the platform's OpenID configuration (DR §3.4, §3.5.1)."""
    if urlsplit(openid_configuration_url).scheme not in ("http", "https"):
        raise RegistrationError("openid_configuration is not an http(s) URL")
    try:
        config = get_json(openid_configuration_url)
    except OutboundError as exc:
        raise RegistrationError(f"The platform's OpenID configuration could not be read: {exc}") from exc
    missing = [k for k in ("issuer", "authorization_endpoint", "registration_endpoint", "jwks_uri", "token_endpoint")
               if not isinstance(config.get(k), str) or not config.get(k)]
    if missing:
        raise RegistrationError(f"The platform's OpenID configuration lacks {', '.join(missing)}")
    if urlsplit(config["issuer"]).hostname != urlsplit(openid_configuration_url).hostname:
        raise RegistrationError(
            f"The configuration's issuer {config['issuer']!r} is not on the host that served it; refusing it (DR §3.5.1)")
    return config


def client_registration_request(config: dict) -> dict:
    """The tool's client registration (DR §3.5.2), asking only for scopes the platform offers."""
    urls = tool_urls()
    offered = config.get("scopes_supported")
    scopes = [s for s in urls["scopes"] if offered is None or s in offered]
    platform = config.get(PLATFORM_CONFIG) or {}
    supported_messages = {m.get("type") for m in platform.get("messages_supported", []) if isinstance(m, dict)}
    messages = [{"type": "LtiDeepLinkingRequest", "target_link_uri": urls["target_link_uri"],
                 "label": urls["tool_name"], "placements": ["ContentArea"],
                 "supported_types": ["ltiResourceLink"]}]
    if supported_messages and "LtiDeepLinkingRequest" not in supported_messages:
        messages = []
    return {
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": urls["initiate_login_url"],
        "redirect_uris": urls["redirect_uris"],
        "client_name": urls["tool_name"],
        "jwks_uri": urls["jwks_url"],
        "logo_uri": urls["logo_url"],
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(scopes),
        TOOL_CONFIG: {
            "domain": urls["domain"],
            "description": urls["description"],
            "target_link_uri": urls["target_link_uri"],
            "claims": [c for c in urls["claims"] if not config.get("claims_supported") or c in config["claims_supported"]],
            "messages": messages,
        },
    }


def register_dynamically(openid_configuration_url: str, registration_token: str | None) -> Registration:
    config = fetch_platform_configuration(openid_configuration_url)
    headers = {"Authorization": f"Bearer {registration_token}"} if registration_token else {}
    try:
        status, answer = post_json(config["registration_endpoint"], client_registration_request(config), headers)
    except OutboundError as exc:
        raise RegistrationError(f"The platform's registration endpoint could not be reached: {exc}") from exc
    if status not in (200, 201) or not answer or not answer.get("client_id"):
        detail = (answer or {}).get("error_description") or (answer or {}).get("error") or ""
        raise RegistrationError(f"The platform refused the registration (HTTP {status}) {detail}".strip())
    tool_config = answer.get(TOOL_CONFIG) or {}
    deployment_id = tool_config.get("deployment_id")
    platform = config.get(PLATFORM_CONFIG) or {}
    mode = current_app.config["DYNAMIC_REGISTRATION"]
    return upsert_registration(
        issuer=config["issuer"], client_id=str(answer["client_id"]),
        auth_login_url=config["authorization_endpoint"], auth_token_url=config["token_endpoint"],
        key_set_url=config["jwks_uri"], auth_audience=config.get("authorization_server"),
        name=platform.get("product_family_code", "") and f"{platform.get('product_family_code')} {urlsplit(config['issuer']).netloc}",
        deployment_ids=[deployment_id] if deployment_id else [], source="dynamic", active=(mode == "open"),
        platform_configuration=config, product_family_code=platform.get("product_family_code"),
    )
