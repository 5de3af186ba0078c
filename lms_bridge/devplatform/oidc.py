"""The platform's OIDC side of an LTI launch.

1. Login initiation (LTI Security Framework §5.1.1.1; LTI Core §4.1): the platform's launch
   page POSTs ``iss``, ``login_hint``, ``target_link_uri``, ``lti_message_hint``,
   ``client_id``, ``lti_deployment_id`` and, for Platform Storage, ``lti_storage_target`` to
   the tool's ``initiate_login_uri`` (see :func:`login_initiation`).
2. Authentication request / response (Security Framework §5.1.1.2-5.1.1.5, OIDC Core
   §3.1.2 with the implicit flow and ``response_mode=form_post``): :func:`authorize`
   validates the tool's request to ``/devplatform/auth`` and answers with an id_token
   posted to the registered ``redirect_uri``.  Errors that can be returned to the tool are
   posted back as ``error``/``error_description``/``state`` (OIDC Core §3.1.2.6); errors
   about the client or the redirect URI are shown to the person instead (§3.1.2.6: never
   redirect to an unverified URI).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..extensions import db
from . import platform
from .deeplinking import request_options
from .models import DevClient, DevResourceLink


class AuthError(Exception):
    """An authentication request that fails; ``redirect_uri`` set when the error may be posted back."""

    def __init__(self, error: str, description: str, *, redirect_uri: str | None = None, state: str | None = None):
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state

    @property
    def form(self) -> dict:
        form = {"error": self.error, "error_description": self.description}
        if self.state:
            form["state"] = self.state
        return form


@dataclass
class AuthResponse:
    redirect_uri: str
    form: dict = field(default_factory=dict)


def authorize(params: dict) -> AuthResponse:
    """Validate an authentication request and build the id_token response."""
    client_id = params.get("client_id") or ""
    client = platform.client_by_id(client_id)
    if client is None:
        raise AuthError("unauthorized_client", f"No tool is registered with client_id {client_id!r}.")
    redirect_uri = params.get("redirect_uri") or ""
    allowed = (client.tool_configuration or {}).get("redirect_uris") or []
    if redirect_uri not in allowed:  # exact string match, like Moodle (Security Framework §5.1.1.2)
        raise AuthError("invalid_request",
                        f"redirect_uri {redirect_uri!r} is not one of the tool's registered redirect URIs {allowed}.")
    state = params.get("state") or None

    def fail(error: str, description: str):
        raise AuthError(error, description, redirect_uri=redirect_uri, state=state)

    if params.get("scope") != "openid":
        fail("invalid_scope", "scope must be 'openid'.")
    if params.get("response_type") != "id_token":
        fail("unsupported_response_type", "response_type must be 'id_token'.")
    if params.get("response_mode") != "form_post":
        fail("invalid_request", "response_mode must be 'form_post'.")
    if params.get("prompt") != "none":
        fail("invalid_request", "prompt must be 'none'.")
    if not state:
        fail("invalid_request", "The authentication request has no state.")
    nonce = params.get("nonce")
    if not nonce:
        fail("invalid_request", "The authentication request has no nonce.")
    found = platform.user_by_sub(params.get("login_hint"))
    if found is None:
        fail("login_required", f"login_hint {params.get('login_hint')!r} is not a user of this platform.")
    _, user = found
    try:
        hint = json.loads(params.get("lti_message_hint") or "")
    except ValueError:
        hint = None
    if not isinstance(hint, dict) or hint.get("message_type") not in ("LtiResourceLinkRequest", "LtiDeepLinkingRequest"):
        fail("invalid_request", "lti_message_hint is missing or is not the JSON this platform sent.")
    document_target = hint.get("document_target") if hint.get("document_target") in ("iframe", "window") else "iframe"
    message_type = hint["message_type"]
    link = None
    if message_type == "LtiResourceLinkRequest":
        link = _link(client, hint.get("resource_link_id"))
        if link is None:
            fail("invalid_request", f"The activity {hint.get('resource_link_id')!r} does not exist for this tool.")
        target_link_uri = link.target_link_uri
    else:
        if not platform.is_teacher(user):
            fail("invalid_request", "Only teachers and administrators may add content (deep linking).")
        target_link_uri = platform.deep_linking_target(client)
    try:  # options of a deep linking request travel in the hint; checked again, the hint came back via the tool
        options = request_options(hint.get("dl")) if message_type == "LtiDeepLinkingRequest" else {}
    except ValueError as exc:
        fail("invalid_request", f"lti_message_hint: {exc}.")
    id_token = platform.build_id_token(client, user, message_type=message_type, link=link, nonce=nonce,
                                       document_target=document_target, target_link_uri=target_link_uri,
                                       deep_linking=options)
    return AuthResponse(redirect_uri, {"id_token": id_token, "state": state})


def _link(client: DevClient, resource_link_id) -> DevResourceLink | None:
    try:
        pk = int(str(resource_link_id))
    except ValueError:
        return None
    link = db.session.get(DevResourceLink, pk)
    return link if link is not None and link.client_id == client.client_id else None


@dataclass
class LoginInitiation:
    """The auto-submitted form of the launch page (Security Framework §5.1.1.1)."""

    action: str
    fields: dict
    window: bool
    tool_origins: list[str]


def login_initiation(client: DevClient, user: dict, *, message_type: str, link: DevResourceLink | None,
                     target: str, storage: bool, deep_linking: dict | None = None) -> LoginInitiation:
    conf = client.tool_configuration or {}
    if message_type == "LtiResourceLinkRequest":
        target_link_uri = link.target_link_uri
    else:
        target_link_uri = platform.deep_linking_target(client)
    fields = {
        "iss": platform.issuer(),
        "login_hint": user["sub"],
        "target_link_uri": target_link_uri,
        "lti_message_hint": platform.message_hint(message_type, link, target, deep_linking),
        "client_id": client.client_id,
        "lti_deployment_id": client.deployment_id,
    }
    if target == "iframe" and storage:
        fields["lti_storage_target"] = "post_message_forwarding"
    return LoginInitiation(conf.get("initiate_login_uri", ""), fields, target == "window", platform.tool_origins(client))
