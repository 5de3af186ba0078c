"""The hardened launch (LTI Core §5; Security Framework §5.1.3 "Authentication Response Validation").

pylti1p3's ``MessageLaunch`` runs underneath; every validation step it has is replaced by a
stricter one here, because on its own it accepts replayed id_tokens, ignores ``azp``, allows
no clock-skew leeway and raises bare exceptions:

1. JWT format: three parts, an RSA ``alg`` (never ``none``/HMAC), a ``kid``.
2. State: the state from login, bound to this browser by a cookie or, when the platform
   offered it, by LTI Platform Storage; consumed atomically, so a replay is refused on any
   worker.
3. Registration: ``iss`` must be the platform that started the login, ``aud`` must hold our
   client_id; an ``aud`` array needs ``azp`` equal to our client_id and no other audiences.
4. Signature and time: the platform's key by ``kid`` (re-fetched once on an unknown kid),
   ``exp``/``iat`` required, with a configurable leeway.
5. LTI claims: version 1.3.0, message type, ``sub``, roles, deployment_id, resource link,
   deep linking settings and return URL.
6. Nonce: equal to the login's nonce and consumed once per registration.
7. Deployment: an unknown deployment is recorded (inactive unless the registration
   auto-activates) and refused until an operator activates it.

Every failure is a :class:`~lms_bridge.lti.errors.LaunchError` with a code and status.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import urlsplit

import jwt
from flask import current_app
from pylti1p3.exception import LtiException
from pylti1p3.message_launch import MessageLaunch
from pylti1p3.message_validators import get_validators
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..http_client import session as http_session
from ..shared_store import store
from . import directory, keys
from .directory import DeploymentInfo, RegistrationInfo
from .errors import ADMIN_HINT, RELAUNCH_HINT, bad_request, forbidden, untrusted
from .models import Context, Deployment, Membership, ResourceLink, User
from .roles import normalize
from .state import LaunchSession, consume_nonce, create_launch_session, take_state
from .tool_config import DatabaseToolConf

C = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
ALLOWED_ALGS = {"RS256", "RS384", "RS512"}
MESSAGE_TYPES = {"LtiResourceLinkRequest", "LtiDeepLinkingRequest", "LtiSubmissionReviewRequest", "DataPrivacyLaunchRequest"}


class _Form:
    """The smallest request adapter pylti1p3 needs."""

    def __init__(self, form: dict):
        self.form = form

    def get_param(self, key):
        return self.form.get(key)


def _b64json(part: str):
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


class HardenedMessageLaunch(MessageLaunch):
    """pylti1p3's message launch with the validation chain described in this module."""

    def __init__(self, form: dict, *, binding: str | None):
        super().__init__(_Form(form), DatabaseToolConf(), session_service=object(), cookie_service=object(),
                         requests_session=http_session())
        self._form = form
        self._binding = binding  # the browser's proof: cookie value or platform storage value
        self._state_record: dict | None = None
        self._db_registration: RegistrationInfo | None = None
        self._db_deployment: Deployment | None = None

    def _get_request_param(self, key):
        return self._form.get(key)

    def validate(self):
        self._validated = True
        try:
            (self.validate_jwt_format().validate_state().validate_registration().validate_jwt_signature()
             .validate_message().validate_nonce().validate_deployment())
        except Exception:
            self._validated = False
            raise
        return self

    # 1 ---------------------------------------------------------------------------------
    def validate_jwt_format(self):
        token = self._form.get("id_token")
        if not token:
            raise bad_request("missing_id_token", "The launch has no id_token.", RELAUNCH_HINT)
        parts = token.split(".")
        if len(parts) != 3:
            raise bad_request("malformed_jwt", "The id_token is not a JWT (it must have three dot-separated parts).")
        try:
            header, body = _b64json(parts[0]), _b64json(parts[1])
        except (ValueError, UnicodeError):
            raise bad_request("malformed_jwt", "The id_token could not be decoded as a JWT.")
        if not isinstance(header, dict) or not isinstance(body, dict):
            raise bad_request("malformed_jwt", "The id_token header or payload is not a JSON object.")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
            raise untrusted("alg_not_allowed", f"The id_token is signed with {alg!r}; only RS256/RS384/RS512 are accepted.",
                            ADMIN_HINT)
        if not header.get("kid") or not isinstance(header["kid"], str):
            raise untrusted("missing_kid", "The id_token header has no 'kid', so its signing key cannot be found.", ADMIN_HINT)
        self._jwt = {"header": header, "body": body}
        return self

    # 2 ---------------------------------------------------------------------------------
    def validate_state(self):
        state = self._form.get("state")
        if not state:
            raise bad_request("missing_state", "The launch has no 'state'.", RELAUNCH_HINT)
        record = take_state(state)
        if record is None:
            raise untrusted("unknown_state",
                            "This launch was already used or its login expired (state not found).", RELAUNCH_HINT)
        if not self._binding or not hmac.compare_digest(record["binding"], self._binding):
            where = "platform storage" if record.get("storage") == "platform" else "cookie"
            raise untrusted("state_not_bound",
                            f"The launch did not come back to the browser that started it (no matching {where}).",
                            "Your browser may block cookies in embedded frames: open the activity in a new window.")
        self._state_record = record
        return self

    # 3 ---------------------------------------------------------------------------------
    def validate_registration(self):
        body = self._jwt["body"]
        reg = directory.registration(self._state_record["registration_id"])
        if reg is None or not reg.active:
            raise forbidden("unknown_registration", "The platform's registration no longer exists or is inactive.", ADMIN_HINT)
        iss = body.get("iss")
        if not iss:
            raise bad_request("missing_iss", "The id_token has no 'iss' claim.")
        if iss != reg.issuer:
            raise forbidden("unregistered_issuer", f"The id_token's issuer {iss!r} is not the platform that started this login.",
                            ADMIN_HINT)
        aud = body.get("aud")
        if not aud:
            raise bad_request("missing_aud", "The id_token has no 'aud' claim.")
        if isinstance(aud, list):
            if reg.client_id not in aud:
                raise forbidden("unregistered_client", "The id_token is not addressed to this tool's client id.", ADMIN_HINT)
            if len(aud) > 1 or "azp" in body:
                if body.get("azp") != reg.client_id:
                    raise untrusted("bad_azp", "The id_token has several audiences but its 'azp' is not this tool's client id.")
                extra = [a for a in aud if a != reg.client_id]
                if extra:
                    raise untrusted("untrusted_audience", f"The id_token is also addressed to untrusted audiences: {extra}.")
        elif aud != reg.client_id:
            raise forbidden("unregistered_client", f"The id_token is addressed to {aud!r}, not to this tool's client id.",
                            "In Moodle, clear the activity's 'resource key' so the registration's client id is used.")
        self._db_registration = reg
        self._registration = None  # pylti1p3's object is built lazily when a service needs it
        return self

    # 4 ---------------------------------------------------------------------------------
    def validate_jwt_signature(self):
        header = self._jwt["header"]
        try:
            jwk = keys.platform_key(self._db_registration, header["kid"])
        except keys.PlatformKeyError as exc:
            if exc.code == "unknown_kid":
                raise untrusted("unknown_kid", str(exc), ADMIN_HINT)
            raise untrusted(exc.code, str(exc), ADMIN_HINT)
        if jwk.get("alg") and jwk["alg"] != header["alg"]:
            raise untrusted("alg_mismatch", f"The key {header['kid']!r} is for {jwk['alg']}, not {header['alg']}.")
        try:
            public_key = jwt.PyJWK(jwk, algorithm=header["alg"]).key
            self._verified_body = jwt.decode(
                self._form["id_token"], public_key, algorithms=[header["alg"]],
                audience=self._db_registration.client_id, issuer=self._db_registration.issuer,
                leeway=current_app.config["LTI_LEEWAY_SECONDS"],
                options={"require": ["exp", "iat"]},
            )
        except jwt.ExpiredSignatureError:
            raise untrusted("expired", "The id_token has expired ('exp' is in the past).", RELAUNCH_HINT)
        except jwt.ImmatureSignatureError:
            raise untrusted("bad_timestamps", "The id_token is not valid yet ('iat' or 'nbf' is in the future).",
                            "Check that the LMS server's clock is correct.")
        except jwt.MissingRequiredClaimError as exc:
            raise bad_request("missing_" + exc.claim, f"The id_token has no '{exc.claim}' claim.")
        except jwt.InvalidSignatureError:
            raise untrusted("bad_signature", "The id_token's signature does not match the platform's key.", ADMIN_HINT)
        except jwt.InvalidIssuedAtError:
            raise untrusted("bad_timestamps", "The id_token's 'iat' is not a valid time.")
        except (jwt.InvalidTokenError, jwt.PyJWKError, ValueError, TypeError) as exc:
            raise untrusted("invalid_token", f"The id_token was refused: {exc}.", ADMIN_HINT)
        if not isinstance(self._verified_body.get("exp"), (int, float)) or self._verified_body["exp"] < self._verified_body["iat"]:
            raise untrusted("bad_timestamps", "The id_token expires before it was issued.")
        self._jwt["body"] = self._verified_body
        return self

    # 5 ---------------------------------------------------------------------------------
    def validate_message(self):
        body = self._jwt["body"]
        version = body.get(C + "version")
        message_type = body.get(C + "message_type")
        if version is None and message_type is None:
            raise bad_request("not_lti", "The id_token is not an LTI message (no LTI version or message type claim).")
        if version is None:
            raise bad_request("missing_version", "The LTI version claim is missing.")
        if version != "1.3.0":
            raise bad_request("wrong_version", f"LTI version {version!r} is not supported; 1.3.0 is required.")
        if not message_type:
            raise bad_request("missing_message_type", "The LTI message_type claim is missing.")
        if message_type not in MESSAGE_TYPES:
            raise bad_request("unsupported_message_type", f"The message type {message_type!r} is not supported by this tool.")
        if not body.get("sub") and message_type != "DataPrivacyLaunchRequest":
            raise bad_request("missing_sub", "The id_token has no user ('sub' claim).")
        roles = body.get(C + "roles")
        if roles is None:
            raise bad_request("missing_roles", "The LTI roles claim is missing (an empty list is allowed).")
        if not isinstance(roles, list):
            raise bad_request("bad_roles", "The LTI roles claim must be a list.")
        if not body.get(C + "deployment_id"):
            raise bad_request("missing_deployment_id", "The LTI deployment_id claim is missing.")
        if message_type == "LtiResourceLinkRequest":
            link = body.get(C + "resource_link")
            if not isinstance(link, dict) or not link.get("id"):
                raise bad_request("missing_resource_link", "The resource_link claim (with an id) is missing.")
        if message_type == "LtiDeepLinkingRequest":
            self._check_deep_linking(body)
        # pylti1p3's own per-message validators, as a second opinion.
        try:
            for validator in get_validators():
                if validator.can_validate(body):
                    validator.validate(body)
        except LtiException as exc:
            raise bad_request("invalid_message", f"The LTI message is invalid: {exc}.")
        return self

    def _check_deep_linking(self, body):
        settings = body.get(DL + "deep_linking_settings")
        if not isinstance(settings, dict):
            raise bad_request("missing_deep_linking_settings", "The deep_linking_settings claim is missing.")
        url = settings.get("deep_link_return_url")
        if not url or not isinstance(url, str):
            raise bad_request("missing_deep_link_return_url", "The deep_linking_settings claim has no deep_link_return_url.")
        parts = urlsplit(url)
        issuer_scheme = urlsplit(self._db_registration.issuer).scheme
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.username or parts.password or parts.fragment:
            raise bad_request("bad_deep_link_return_url", f"deep_link_return_url {url!r} is not an absolute web address.")
        if parts.scheme == "http" and issuer_scheme == "https":
            raise bad_request("bad_deep_link_return_url", "deep_link_return_url must use https for an https platform.")
        accept = settings.get("accept_types")
        if not isinstance(accept, list) or "ltiResourceLink" not in accept:
            raise bad_request("deep_linking_types", "The platform does not accept LTI resource links in this deep linking request.")

    # 6 ---------------------------------------------------------------------------------
    def validate_nonce(self):
        body = self._jwt["body"]
        nonce = body.get("nonce")
        if not nonce:
            raise bad_request("missing_nonce", "The id_token has no 'nonce'.")
        if not hmac.compare_digest(str(nonce), self._state_record["nonce"]):
            raise untrusted("nonce_mismatch", "The id_token's nonce is not the one this tool sent.", RELAUNCH_HINT)
        ttl = int(body["exp"] - time.time()) + current_app.config["LTI_LEEWAY_SECONDS"] + 60
        if not consume_nonce(self._db_registration.id, nonce, ttl):
            raise untrusted("nonce_replayed", "This id_token was already used (nonce replay).", RELAUNCH_HINT)
        return self

    # 7 ---------------------------------------------------------------------------------
    def validate_deployment(self):
        reg = self._db_registration
        deployment_id = str(self._jwt["body"][C + "deployment_id"])
        dep = _deployment(reg, deployment_id)
        if not dep.active:
            raise forbidden("deployment_inactive",
                            f"Deployment {deployment_id!r} of {reg.name or reg.issuer} is not activated in lms_bridge.",
                            "An lms_bridge operator must activate this deployment on the admin page (it has been recorded).")
        self._db_deployment = dep
        return self

    def save_launch_data(self):
        return self

    # -- results ------------------------------------------------------------------------
    @property
    def registration(self) -> RegistrationInfo:
        return self._db_registration

    @property
    def deployment(self) -> DeploymentInfo:
        return self._db_deployment


def _deployment(reg: RegistrationInfo, deployment_id: str) -> DeploymentInfo:
    dep = directory.deployment(reg.id, deployment_id)
    if dep is not None:
        return dep
    new = Deployment(registration_id=reg.id, deployment_id=deployment_id, active=reg.auto_activate_deployments,
                     name=f"Deployment {deployment_id}")
    try:
        with db.session.begin_nested():
            db.session.add(new)
        db.session.commit()
    except IntegrityError:  # another worker recorded it first
        db.session.rollback()
    return directory.deployment(reg.id, deployment_id)


def _upsert(model, lookup: dict, values: dict):
    """Find by ``lookup`` and update, or insert; safe when two workers race."""
    obj = db.session.execute(db.select(model).filter_by(**lookup)).scalar_one_or_none()
    if obj is None:
        obj = model(**lookup, **values)
        try:
            with db.session.begin_nested():
                db.session.add(obj)
        except IntegrityError:
            obj = db.session.execute(db.select(model).filter_by(**lookup)).scalar_one()
        else:
            return obj
    for key, value in values.items():
        if getattr(obj, key) != value:
            setattr(obj, key, value)
    return obj


RECORDED_PREFIX = "recorded:"
RECORDED_TTL = 3600
# The claims that record_launch copies into the database: when none changed since the last launch,
# the rows are up to date and their ids come from the shared store instead of four queries.
_RECORDED_CLAIMS = ("sub", "name", "given_name", "family_name", "email", "locale", C + "context", C + "resource_link",
                    C + "custom", C + "roles", AGS_CLAIM, NRPS_CLAIM)


def _recorded_key(reg: RegistrationInfo, dep: DeploymentInfo, body: dict) -> str:
    material = json.dumps([reg.id, dep.id, reg.name, reg.issuer] + [body.get(k) for k in _RECORDED_CLAIMS],
                          sort_keys=True, default=str)
    return RECORDED_PREFIX + hashlib.sha256(material.encode()).hexdigest()


def record_launch(launch: HardenedMessageLaunch) -> LaunchSession:
    """Record who launched from where (User, Context, Membership, ResourceLink) and open a launch session."""
    body = launch.get_launch_data()
    reg, dep = launch.registration, launch.deployment
    roles = normalize(body.get(C + "roles"))
    message_type = body[C + "message_type"]
    recorded_key = _recorded_key(reg, dep, body)
    recorded = store().get(recorded_key)
    if recorded is not None:
        db.session.rollback()  # nothing to write: end the read transaction
        return create_launch_session(message_type=message_type, roles=roles, claims=body, **recorded)
    user = None
    if body.get("sub"):
        user = _upsert(User, {"registration_id": reg.id, "sub": str(body["sub"])}, {
            k: (body.get(k) if isinstance(body.get(k), str) else None)
            for k in ("name", "given_name", "family_name", "email", "locale")
        })
    context = None
    ctx_claim = body.get(C + "context")
    if isinstance(ctx_claim, dict) and ctx_claim.get("id"):
        nrps = body.get(NRPS_CLAIM) or {}
        context = _upsert(Context, {"deployment_id": dep.id, "context_id": str(ctx_claim["id"])}, {
            "label": ctx_claim.get("label"), "title": ctx_claim.get("title"),
            "types": [t for t in ctx_claim.get("type") or [] if isinstance(t, str)],
            "memberships_url": nrps.get("context_memberships_url") if isinstance(nrps, dict) else None,
        })
    link = None
    link_claim = body.get(C + "resource_link")
    if isinstance(link_claim, dict) and link_claim.get("id"):
        db.session.flush()
        link = _upsert(ResourceLink, {"deployment_id": dep.id, "resource_link_id": str(link_claim["id"])}, {
            "context_pk": context.id if context else None,
            "title": link_claim.get("title"), "description": link_claim.get("description"),
            "custom": body.get(C + "custom") if isinstance(body.get(C + "custom"), dict) else {},
            "ags_endpoint": body.get(AGS_CLAIM) if isinstance(body.get(AGS_CLAIM), dict) else None,
        })
    if context is not None and user is not None:
        db.session.flush()
        _upsert(Membership, {"context_pk": context.id, "user_id": user.id}, {"roles": roles})
    db.session.flush()
    # Everything the post-launch pages show travels with the launch session: no queries there.
    ids = {
        "registration_id": reg.id, "deployment_pk": dep.id, "user_pk": user.id if user else None,
        "context_pk": context.id if context else None, "resource_link_pk": link.id if link else None,
    }
    display = {
        "platform": reg.name or reg.issuer,
        "user_name": user.display_name if user else None, "given_name": user.given_name if user else None,
        "context_title": (context.title or context.label or context.context_id) if context else None,
        "context_label": context.label if context else None,
        "link_title": link.title if link else None, "resource_link_id": link.resource_link_id if link else None,
    }
    db.session.commit()
    store().put(recorded_key, {"display": display, **ids}, RECORDED_TTL)
    return create_launch_session(message_type=message_type, roles=roles, claims=body, display=display, **ids)


def launch(form: dict, binding: str | None) -> LaunchSession:
    """Validate a launch POST and record it; raises LaunchError."""
    message = HardenedMessageLaunch(form, binding=binding)
    message.validate()
    return record_launch(message)
