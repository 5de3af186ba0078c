"""OIDC third-party login initiation (LTI Security Framework §5.1.1; LTI Core §4.1).

The platform sends ``iss``, ``login_hint``, ``target_link_uri`` and optionally
``lti_message_hint``, ``client_id``, ``lti_deployment_id`` (Canvas: ``deployment_id``) and
``lti_storage_target`` (LTI Platform Storage).  The tool answers with an authentication
request to the platform's auth endpoint, carrying fresh ``state`` and ``nonce``.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..web import public_host, public_url
from . import directory
from .directory import RegistrationInfo
from .errors import bad_request, forbidden
from .state import new_state


@dataclass
class LoginResult:
    auth_url: str
    state: str
    binding: str
    nonce: str
    registration: RegistrationInfo
    storage_target: str | None

    @property
    def platform_origin(self) -> str:
        parts = urlsplit(self.registration.auth_login_url)
        return f"{parts.scheme}://{parts.netloc}"


def find_registration(iss: str, client_id: str | None, registration_id: int | None) -> RegistrationInfo:
    if registration_id is not None:
        reg = directory.registration(registration_id)
        if reg is None or reg.issuer != iss:
            raise forbidden("unknown_registration", f"No registration {registration_id} for platform {iss!r}.",
                            "Check the login URL configured in the LMS.")
        if client_id and reg.client_id != client_id:
            raise forbidden("unknown_client", f"Client id {client_id!r} does not belong to registration {registration_id}.")
    else:
        regs = directory.registrations_for(iss, client_id)
        if not regs:
            if client_id and directory.issuer_known(iss):
                raise forbidden("unknown_client", f"Platform {iss!r} is registered, but not with client id {client_id!r}.",
                                "Register this client id in lms_bridge, or use Dynamic Registration.")
            raise forbidden("unknown_platform", f"The platform {iss!r} is not registered with this tool.",
                            "An administrator must register the platform first (Dynamic Registration or `flask register-platform`).")
        if len(regs) > 1:
            raise bad_request("ambiguous_registration",
                              f"The platform {iss!r} has several registrations here and sent no client_id.",
                              "Configure the login URL with the registration id, /lti/login/<id>, shown on the admin page.")
        reg = regs[0]
    if not reg.active:
        raise forbidden("registration_inactive", f"The registration of {iss!r} is waiting for an operator to activate it.",
                        "An lms_bridge operator must activate it on the admin page.")
    return reg


def _with_query(url: str, params: dict) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def initiate_login(params: dict, registration_id: int | None = None) -> LoginResult:
    iss = (params.get("iss") or "").strip()
    login_hint = params.get("login_hint")
    target_link_uri = params.get("target_link_uri")
    if not iss:
        raise bad_request("missing_iss", "The login request has no 'iss' (issuer).", "The LMS must send iss when starting a launch.")
    if not login_hint:
        raise bad_request("missing_login_hint", "The login request has no 'login_hint'.")
    if not target_link_uri:
        raise bad_request("missing_target_link_uri", "The login request has no 'target_link_uri'.")
    target = urlsplit(target_link_uri)
    if target.scheme not in ("http", "https") or target.netloc != public_host():
        raise bad_request("foreign_target_link_uri",
                          f"target_link_uri {target_link_uri!r} does not point at this tool ({public_host()}).",
                          "Use the tool URL shown on lms_bridge's /lti/config page.")
    client_id = params.get("client_id") or None
    reg = find_registration(iss, client_id, registration_id)
    storage_target = params.get("lti_storage_target") or None
    state, record = new_state({
        "registration_id": reg.id,
        "login_hint": login_hint,
        "lti_message_hint": params.get("lti_message_hint"),
        "target_link_uri": target_link_uri,
        "deployment_id": params.get("lti_deployment_id") or params.get("deployment_id"),
        "storage": "platform" if storage_target else "cookie",
        "storage_target": storage_target,
    })
    return LoginResult(auth_request_url(reg, state, record), state, record["binding"], record["nonce"], reg,
                       storage_target)


def auth_request_url(reg: RegistrationInfo, state: str, record: dict) -> str:
    """The OIDC authentication request (Security Framework §5.1.1.2), sent to the platform."""
    return _with_query(reg.auth_login_url, {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": reg.client_id,
        "redirect_uri": public_url("lti.launch"),
        "login_hint": record["login_hint"],
        "lti_message_hint": record.get("lti_message_hint"),
        "state": state,
        "nonce": record["nonce"],
    })
