"""The development platform's identity: where it lives, its course and users, its keys,
its registration with the tool, and the id_tokens it signs.

Where it lives.  The platform must be used from another origin than the tool so that the
tool runs cross-site in an iframe, as in a real LMS.  Its public base is
``DEVPLATFORM_BASE_URL`` when set, else the tool's base with the host swapped
``127.0.0.1`` <-> ``localhost`` (tool ``http://127.0.0.1:8000`` -> platform
``http://localhost:8000``).  The issuer is the platform base + ``/devplatform`` without a
trailing slash (Moodle sends its site URL without one; LTI Core §5.1.2, OIDC Core §2).

Nothing lives in process memory except parsed keys by ``kid`` (immutable key material):
keys, clients, links and the gradebook are in the database; tokens, nonces, sesskeys and
caches in :func:`lms_bridge.shared_store.store`.
"""
from __future__ import annotations

import json
import secrets
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import current_app, has_request_context, request, url_for
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..lti.registration import AGS_SCOPES, NRPS_SCOPE, upsert_registration
from ..lti.roles import INSTITUTION, MEMBERSHIP
from ..shared_store import store
from .models import DevClient, DevKey, DevLineItem, DevResourceLink

DEV_CLIENT_ID = "lms-bridge-dev"
DEV_DEPLOYMENT_ID = "1"
PRODUCT_FAMILY_CODE = "lms_bridge-devplatform"
PLATFORM_VERSION = "1.0"
ID_TOKEN_LIFETIME = 60  # seconds, like Moodle
KEYS_PUBLISHED = 3  # the newest keys stay in the JWKS, so tokens signed before a rotation still verify
SESSKEY_TTL = 3600

C = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
TOOL_CONFIG = "https://purl.imsglobal.org/spec/lti-tool-configuration"
SUPPORTED_SCOPES = AGS_SCOPES + [NRPS_SCOPE]
PII_CLAIMS = ("name", "given_name", "family_name", "email")

# -- the course and its people ---------------------------------------------------------

COURSE = {"id": "2", "label": "EVBAT-DEV", "title": "Battery safety for EV technicians (dev course)",
          "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseSection"]}
DEFAULT_LINK_TITLE = "Module 1: Working safely on high-voltage batteries"

# Subjects are Moodle-style user ids (Moodle's admin is user 2).
USERS: dict[str, dict] = {
    "teacher": {"sub": "3", "label": "Teacher", "given_name": "Tina", "family_name": "Teacher",
                "email": "tina.teacher@example.org", "roles": [MEMBERSHIP + "Instructor"]},
    "learner": {"sub": "4", "label": "Learner", "given_name": "Lena", "family_name": "Learner",
                "email": "lena.learner@example.org", "roles": [MEMBERSHIP + "Learner"]},
    "learner2": {"sub": "5", "label": "Second learner", "given_name": "Leo", "family_name": "Lindqvist",
                 "email": "leo.lindqvist@example.org", "roles": [MEMBERSHIP + "Learner"]},
    "admin": {"sub": "2", "label": "Administrator", "given_name": "Ada", "family_name": "Admin",
              "email": "ada.admin@example.org", "roles": [INSTITUTION + "Administrator"]},
    "anonymous": {"sub": "6", "label": "Anonymous learner", "anonymous": True, "roles": [MEMBERSHIP + "Learner"]},
}
USERS_BY_SUB = {u["sub"]: key for key, u in USERS.items()}


def user_by_sub(sub) -> tuple[str, dict] | None:
    key = USERS_BY_SUB.get(str(sub))
    return (key, USERS[key]) if key else None


def full_name(user: dict) -> str:
    return " ".join(p for p in (user.get("given_name"), user.get("family_name")) if p) or user["label"]


def is_teacher(user: dict) -> bool:
    return any(r in (MEMBERSHIP + "Instructor", INSTITUTION + "Administrator") for r in user["roles"])


def is_gradable(user: dict) -> bool:
    """Moodle accepts scores only for users who are graded in the course (its learners)."""
    return MEMBERSHIP + "Learner" in user["roles"]


# -- URLs ---------------------------------------------------------------------------------


def _swap_host(base: str) -> str:
    parts = urlsplit(base)
    host = parts.hostname or ""
    swapped = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(host)
    if swapped is None:
        return base  # no second name for this host: the platform shares the tool's origin
    netloc = swapped + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _request_base() -> str:
    return f"{request.scheme}://{request.host}"


def tool_base() -> str:
    """The tool's public base: PUBLIC_BASE_URL, else derived from the request.

    A request may reach a development platform page on either host.  Without configuration
    the convention is: the platform answers on ``localhost`` and the tool on
    ``127.0.0.1`` (``make run`` serves the tool on 127.0.0.1), so a request on
    ``localhost`` means the tool is on 127.0.0.1 with the same port.
    """
    cfg = current_app.config
    if cfg.get("PUBLIC_BASE_URL"):
        return cfg["PUBLIC_BASE_URL"].rstrip("/")
    configured_platform = (cfg.get("DEVPLATFORM_BASE_URL") or "").rstrip("/")
    if not has_request_context():
        if configured_platform:
            return _stored_tool_base() or _swap_host(configured_platform)
        return "http://127.0.0.1:8000"
    here = _request_base()
    if configured_platform:
        if urlsplit(here).netloc != urlsplit(configured_platform).netloc:
            return here
        return _stored_tool_base() or _swap_host(configured_platform)
    if request.host.split(":")[0] == "localhost":
        return _swap_host(here)
    return here


def _stored_tool_base() -> str | None:
    client = db.session.execute(db.select(DevClient).filter_by(client_id=DEV_CLIENT_ID)).scalar_one_or_none()
    return (client.tool_configuration or {}).get("tool_base") if client else None


def platform_base() -> str:
    configured = (current_app.config.get("DEVPLATFORM_BASE_URL") or "").rstrip("/")
    return configured or _swap_host(tool_base())


def platform_url(endpoint: str, **values) -> str:
    """Absolute URL of a development platform endpoint, on the platform's origin."""
    return platform_base() + url_for(endpoint, **values)


def tool_url(endpoint: str, **values) -> str:
    return tool_base() + url_for(endpoint, **values)


def issuer() -> str:
    return platform_url("devplatform.home").rstrip("/")


def on_platform_origin() -> bool:
    return _origin(platform_base()) == _request_base()


# -- keys (Security Framework §6: RS256 keys published as a JWK Set) ---------------------

_parsed: dict[str, rsa.RSAPrivateKey] = {}


def create_key() -> DevKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    kid = "dev-" + secrets.token_hex(8)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    key = DevKey(kid=kid, private_pem=pem, public_jwk=jwk)
    db.session.add(key)
    db.session.commit()
    _parsed[kid] = private_key
    return key


def current_key() -> DevKey:
    """The newest key signs; created on first use."""
    key = db.session.execute(db.select(DevKey).order_by(DevKey.id.desc()).limit(1)).scalar_one_or_none()
    return key or create_key()


def rotate_key() -> DevKey:
    """Make a new signing key (Security Framework §6.4).  The previous keys stay published
    (the newest ``KEYS_PUBLISHED``) so the tool sees an unknown ``kid`` and must re-fetch."""
    return create_key()


def jwks() -> dict:
    keys = db.session.execute(db.select(DevKey).order_by(DevKey.id.desc()).limit(KEYS_PUBLISHED)).scalars()
    return {"keys": [k.public_jwk for k in keys]}


def sign(claims: dict) -> str:
    key = current_key()
    parsed = _parsed.get(key.kid)
    if parsed is None:
        parsed = _parsed[key.kid] = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
    return jwt.encode(claims, parsed, algorithm="RS256", headers={"kid": key.kid})


# -- clients (tools registered with the platform) ------------------------------------------


def client_by_id(client_id: str | None) -> DevClient | None:
    if not client_id:
        return None
    return db.session.execute(db.select(DevClient).filter_by(client_id=str(client_id))).scalar_one_or_none()


def clients() -> list[DevClient]:
    return list(db.session.execute(db.select(DevClient).order_by(DevClient.id)).scalars())


def client_scopes(client: DevClient) -> list[str]:
    return (client.tool_configuration or {}).get("scope", "").split()


def client_claims(client: DevClient) -> list[str]:
    return list((client.tool_configuration or {}).get("claims") or [])


def tool_origins(client: DevClient) -> list[str]:
    """Origins the tool's pages come from (its login, redirect and target URLs)."""
    conf = client.tool_configuration or {}
    urls = [conf.get("initiate_login_uri"), conf.get("target_link_uri"), *(conf.get("redirect_uris") or [])]
    origins: list[str] = []
    for url in filter(None, urls):
        origin = _origin(url)
        if origin not in origins:
            origins.append(origin)
    return origins


def deep_linking_target(client: DevClient) -> str:
    conf = client.tool_configuration or {}
    for message in conf.get("messages") or []:
        if isinstance(message, dict) and message.get("type") == "LtiDeepLinkingRequest" and message.get("target_link_uri"):
            return message["target_link_uri"]
    return conf.get("target_link_uri") or (conf.get("redirect_uris") or [""])[0]


def supports_deep_linking(client: DevClient) -> bool:
    conf = client.tool_configuration or {}
    return any(isinstance(m, dict) and m.get("type") == "LtiDeepLinkingRequest" for m in conf.get("messages") or [])


# -- placed links and their gradebook columns ---------------------------------------------


def links(client_id: str | None = None) -> list[DevResourceLink]:
    q = db.select(DevResourceLink).order_by(DevResourceLink.id)
    if client_id:
        q = q.filter_by(client_id=client_id)
    return list(db.session.execute(q).scalars())


def place_link(client: DevClient, *, title: str, target_link_uri: str, text: str | None = None,
               custom: dict | None = None, score_maximum: float = 100.0, line_item_label: str | None = None,
               resource_id: str | None = None, tag: str | None = None) -> DevResourceLink:
    """Add an activity to the course with its own gradebook column (flushes, does not commit)."""
    link = DevResourceLink(client_id=client.client_id, context_id=COURSE["id"], title=title, text=text,
                           target_link_uri=target_link_uri, custom=custom or {})
    db.session.add(link)
    db.session.flush()
    item = DevLineItem(context_id=COURSE["id"], client_id=client.client_id, label=line_item_label or title,
                       score_maximum=score_maximum, resource_link_id=link.resource_link_id,
                       resource_id=resource_id, tag=tag)
    db.session.add(item)
    db.session.flush()
    link.line_item_id = item.id
    return link


# -- self-registration ----------------------------------------------------------------------


def dev_tool_configuration() -> dict:
    """What the tool would send in a Dynamic Registration (DR §3.5.2), for the built-in client."""
    base = tool_base()
    launch = tool_url("lti.launch")
    return {
        "tool_base": base,
        "client_name": current_app.config.get("TOOL_NAME", "lms_bridge"),
        "initiate_login_uri": tool_url("lti.login"),
        "redirect_uris": [launch],
        "target_link_uri": launch,
        "jwks_uri": tool_url("lti.jwks"),
        "domain": urlsplit(base).netloc,
        "scope": " ".join(SUPPORTED_SCOPES),
        "claims": ["iss", "sub", *PII_CLAIMS],
        "messages": [{"type": "LtiDeepLinkingRequest", "target_link_uri": launch}],
        "custom_parameters": {},
    }


def ensure_registered() -> DevClient:
    """Register the platform and the tool with each other (idempotent).

    Creates the platform key, the client ``lms-bridge-dev`` (deployment ``1``) pointing at
    the tool's login, launch and JWKS URLs, a first activity in the course, and the tool's
    registration of this platform (source ``devplatform``).
    """
    current_key()
    conf = dev_tool_configuration()
    client = client_by_id(DEV_CLIENT_ID)
    if client is None:
        try:
            with db.session.begin_nested():
                client = DevClient(client_id=DEV_CLIENT_ID, deployment_id=DEV_DEPLOYMENT_ID,
                                   name="lms_bridge (this server)", tool_configuration=conf)
                db.session.add(client)
        except IntegrityError:  # another worker registered it first
            client = client_by_id(DEV_CLIENT_ID)
    if client.tool_configuration != conf:
        client.tool_configuration = conf
    placed = links(DEV_CLIENT_ID)
    for link in placed:  # the tool moved (another port or host): follow it
        if _origin(link.target_link_uri) != _origin(conf["target_link_uri"]):
            parts = urlsplit(link.target_link_uri)
            link.target_link_uri = _origin(conf["target_link_uri"]) + parts.path + (f"?{parts.query}" if parts.query else "")
    if not placed:
        place_link(client, title=DEFAULT_LINK_TITLE, target_link_uri=conf["target_link_uri"],
                   text="Insulation, isolation and the live-working rules for HV battery packs.")
    db.session.commit()
    _register_with_tool(client)
    return client


def _register_with_tool(client: DevClient) -> None:
    values = dict(issuer=issuer(), client_id=client.client_id, auth_login_url=platform_url("devplatform.auth"),
                  auth_token_url=platform_url("devplatform.token"), key_set_url=platform_url("devplatform.jwks"),
                  deployment_ids=[client.deployment_id], source="devplatform", name="Development platform",
                  product_family_code=PRODUCT_FAMILY_CODE)
    try:
        upsert_registration(**values)
    except IntegrityError:  # two workers raced on the first registration: the other one won
        db.session.rollback()
        upsert_registration(**values)


# -- launches --------------------------------------------------------------------------------


def message_hint(message_type: str, link: DevResourceLink | None, document_target: str,
                 deep_linking: dict | None = None) -> str:
    """``lti_message_hint``: JSON, as Moodle sends it (opaque to the tool, LTI Core §4.1.1)."""
    hint = {"message_type": message_type, "document_target": document_target, "launchid": uuid.uuid4().hex}
    if link is not None:
        hint["resource_link_id"] = link.resource_link_id
    if deep_linking:
        hint["dl"] = deep_linking  # the teacher's deep linking request options (devplatform.deeplinking)
    return json.dumps(hint, separators=(",", ":"))


def lineitems_url(client: DevClient) -> str:
    return platform_url("devplatform.lineitems", context_id=COURSE["id"]) + f"?type_id={client.id}"


def lineitem_url(client_pk: int, item: DevLineItem) -> str:
    return platform_url("devplatform.lineitem", context_id=item.context_id, item_id=item.id) + f"?type_id={client_pk}"


def memberships_url(client: DevClient) -> str:
    return platform_url("devplatform.memberships", context_id=COURSE["id"]) + f"?type_id={client.id}"


def build_id_token(client: DevClient, user: dict, *, message_type: str, link: DevResourceLink | None,
                   nonce: str, document_target: str, target_link_uri: str,
                   deep_linking: dict | None = None) -> str:
    """The id_token of a launch (LTI Core §5.1 and §5.3/5.4 claims; Security Framework §5.1.2),
    shaped like Moodle's: lifetime 60 s, ``context_memberships_url`` also in ``custom``."""
    now = int(time.time())
    scopes = client_scopes(client)
    nrps_url = memberships_url(client) if NRPS_SCOPE in scopes else None
    claims: dict = {
        "iss": issuer(), "aud": client.client_id, "azp": client.client_id, "sub": user["sub"],
        "nonce": nonce, "iat": now, "exp": now + ID_TOKEN_LIFETIME,
        C + "version": "1.3.0",
        C + "message_type": message_type,
        C + "deployment_id": client.deployment_id,
        C + "target_link_uri": target_link_uri,
        C + "roles": list(user["roles"]),
        C + "context": {"id": COURSE["id"], "label": COURSE["label"], "title": COURSE["title"], "type": COURSE["type"]},
        C + "tool_platform": {"guid": urlsplit(platform_base()).netloc, "name": "lms_bridge development platform",
                              "version": PLATFORM_VERSION, "product_family_code": PRODUCT_FAMILY_CODE},
        C + "launch_presentation": {"locale": "en", "document_target": document_target,
                                    "return_url": platform_url("devplatform.home")},
    }
    if not user.get("anonymous"):
        allowed = client_claims(client)
        for claim in PII_CLAIMS:
            value = full_name(user) if claim == "name" else user.get(claim)
            if value and claim in allowed:
                claims[claim] = value
    custom = dict((client.tool_configuration or {}).get("custom_parameters") or {})
    if link is not None:
        custom.update(link.custom or {})
    if nrps_url:
        custom["context_memberships_url"] = nrps_url
    claims[C + "custom"] = custom
    ags_scopes = [s for s in scopes if s in AGS_SCOPES]
    if ags_scopes:
        ags = {"scope": ags_scopes, "lineitems": lineitems_url(client)}
        if message_type == "LtiResourceLinkRequest" and link is not None and link.line_item_id:
            item = db.session.get(DevLineItem, link.line_item_id)
            if item is not None:
                ags["lineitem"] = lineitem_url(client.id, item)
        claims[AGS_CLAIM] = ags
    if nrps_url:
        claims[NRPS_CLAIM] = {"context_memberships_url": nrps_url, "service_versions": ["1.0", "2.0"]}
    if message_type == "LtiResourceLinkRequest":
        claims[C + "resource_link"] = {"id": link.resource_link_id, "title": link.title}
        if link.text:
            claims[C + "resource_link"]["description"] = link.text
    elif message_type == "LtiDeepLinkingRequest":
        claims[DL + "deep_linking_settings"] = _deep_linking_settings(client, user, deep_linking)
    return sign(claims)


def _deep_linking_settings(client: DevClient, user: dict, options: dict | None = None) -> dict:
    """Deep Linking 2.0 §4.4.1 settings, as Moodle sends them; the return URL carries a
    one-time ``sesskey`` that remembers who asked, for which tool, and the opaque ``data``.
    ``options`` (validated ``accept_types``/``accept_multiple``/``accept_lineitem``) change them."""
    sesskey = secrets.token_urlsafe(12)
    data = "dl-" + secrets.token_urlsafe(12)
    store().put("devplatform:sesskey:" + sesskey,
                {"client_id": client.client_id, "user": user["sub"], "data": data, "context_id": COURSE["id"]},
                SESSKEY_TTL)
    return_url = platform_url("devplatform.deep_link_return", course=COURSE["id"], id=client.id, sesskey=sesskey)
    return {
        "deep_link_return_url": return_url,
        "accept_types": ["ltiResourceLink"],
        "accept_presentation_document_targets": ["frame", "iframe", "window"],
        "accept_multiple": True,
        "auto_create": False,
        "title": "Add content to " + COURSE["title"],
        "data": data,
        **(options or {}),
    }
