"""HTTP endpoints of the LTI tool: thin views over login, launch, keys and registration."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for

from ..web import error_page, log_event, support_reference
from . import directory, keys
from .errors import LaunchError
from .launch import launch as run_launch
from .login import auth_request_url, initiate_login
from .registration import RegistrationError, register_dynamically, tool_urls
from .state import park_pending, peek_state, take_pending, update_state

bp = Blueprint("lti", __name__)

STATE_COOKIE = "lti_state_"


def _refuse(err: LaunchError, stage: str):
    ref = support_reference()
    log_event(f"lti.{stage}.refused", logging.WARNING, code=err.code, status=err.status, reference=ref,
              iss=request.values.get("iss"), client_id=request.values.get("client_id"), remote=request.remote_addr)
    return error_page(err.status, "This launch could not be completed", err.message, err.hint, code=err.code, reference=ref)


def _cookie_attrs() -> dict:
    """State cookies must survive a cross-site form POST from the LMS, also inside an iframe.

    ``SameSite=None`` needs ``Secure``; browsers accept Secure cookies over plain HTTP on
    localhost only, so elsewhere without TLS the cookie falls back to Lax (same-site LMS only).
    """
    secure = request.is_secure or request.host.split(":")[0] in ("localhost", "127.0.0.1", "[::1]")
    if secure:
        return {"secure": True, "samesite": "None", "partitioned": True}
    return {"secure": False, "samesite": "Lax"}


@bp.route("/lti/login", methods=["GET", "POST"])
@bp.route("/lti/login/<int:registration_id>", methods=["GET", "POST"])
def login(registration_id: int | None = None):
    params = request.values.to_dict()
    try:
        result = initiate_login(params, registration_id)
    except LaunchError as err:
        return _refuse(err, "login")
    if result.storage_target:
        # LTI Platform Storage: keep the state binding in the platform's frame, not in a cookie.
        return render_template("lti/login_storage.html", result=result,
                               fallback_url=url_for("lti.login_cookie_fallback", state=result.state))
    resp = redirect(result.auth_url, 302)
    resp.set_cookie(STATE_COOKIE + result.state, result.binding, max_age=current_app.config["LTI_STATE_TTL"],
                    httponly=True, path="/lti/", **_cookie_attrs())
    return resp


@bp.get("/lti/login/fallback")
def login_cookie_fallback():
    """Platform storage did not answer: bind the state with a cookie instead and go on."""
    state = request.args.get("state", "")
    record = peek_state(state)
    if record is None or record.get("storage") != "platform":
        return error_page(400, "This launch could not be completed", "The login has expired.", "Open the activity again.",
                          code="unknown_state")
    record["storage"] = "cookie"
    update_state(state, record)
    reg = directory.registration(record["registration_id"])
    resp = redirect(auth_request_url(reg, state, record), 302)
    resp.set_cookie(STATE_COOKIE + state, record["binding"], max_age=current_app.config["LTI_STATE_TTL"],
                    httponly=True, path="/lti/", **_cookie_attrs())
    return resp


def _finish(form: dict, binding: str | None, state: str | None):
    try:
        session = run_launch(form, binding)
    except LaunchError as err:
        return _refuse(err, "launch")
    log_event("lti.launch.accepted", registration=session.registration_id, deployment=session.deployment_pk,
              message_type=session.message_type, user=session.user_pk)
    resp = redirect(url_for("player.landing", token=session.token), 303)
    if state:
        resp.delete_cookie(STATE_COOKIE + state, path="/lti/", **_cookie_attrs())
    return resp


@bp.route("/lti/launch", methods=["GET", "POST"])
def launch():
    if request.method == "GET":
        return error_page(405, "Open this tool from your LMS",
                          "This is lms_bridge's LTI launch address; it only works when your LMS opens it.",
                          "Go to your course in the LMS and open the activity there.", code="not_a_launch")
    form = request.form.to_dict()
    if form.get("error"):  # an OIDC error response from the platform (OIDC Core §3.1.2.6)
        err = LaunchError("platform_error", 400, f"The platform refused the login: {form.get('error')} "
                          f"{form.get('error_description', '')}".strip(), "Check the tool's registration in the LMS.")
        return _refuse(err, "launch")
    state = form.get("state") or ""
    cookie = request.cookies.get(STATE_COOKIE + state)
    record = peek_state(state) if state and not cookie else None
    if record is not None and record.get("storage") == "platform":
        # Third-party cookies are not needed: ask the platform's storage frame for the binding.
        handle = park_pending(form)
        return render_template("lti/launch_storage.html", handle=handle, state=state, record=record,
                               platform_origin=_platform_origin(record))
    return _finish(form, cookie, state)


def _platform_origin(record: dict) -> str:
    reg = directory.registration(record["registration_id"])
    parts = urlsplit(reg.auth_login_url)
    return f"{parts.scheme}://{parts.netloc}"


@bp.post("/lti/launch/storage")
def launch_storage():
    """Second half of a Platform Storage launch: the page posts back what the platform stored."""
    form = take_pending(request.form.get("handle", ""))
    if form is None:
        return _refuse(LaunchError("unknown_state", 401, "This launch was already used or has expired.",
                                   "Go back to your course in the LMS and open the activity again."), "launch")
    return _finish(form, request.form.get("binding") or None, None)


@bp.get("/.well-known/jwks.json")
def jwks():
    resp = jsonify(keys.published_jwks())
    resp.headers["Cache-Control"] = "public, max-age=300"
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


@bp.get("/lti/config")
def config():
    """Values for a manual registration, as JSON (LMS admins and scripts read it)."""
    return jsonify(tool_urls())


@bp.get("/lti/register")
def register():
    mode = current_app.config["DYNAMIC_REGISTRATION"]
    if mode == "off":
        return error_page(403, "Dynamic Registration is off", "This lms_bridge does not accept Dynamic Registration.",
                          "Ask its operator for the values of a manual registration.", code="dynamic_registration_off")
    openid_configuration = request.args.get("openid_configuration")
    if not openid_configuration:
        return error_page(400, "Not a registration request",
                          "This address is for LTI Dynamic Registration: paste it into your LMS as the tool URL.",
                          "In Moodle: Site administration > Plugins > Activity modules > External tool > Manage tools.",
                          code="missing_openid_configuration")
    try:
        reg = register_dynamically(openid_configuration, request.args.get("registration_token"))
    except RegistrationError as exc:
        ref = support_reference()
        log_event("lti.register.failed", logging.WARNING, reference=ref, error=str(exc))
        return error_page(400, "Registration failed", str(exc),
                          "Check that the LMS can be reached from this server, then try again.",
                          code="registration_failed", reference=ref)
    log_event("lti.register.done", registration=reg.id, issuer=reg.issuer, client_id=reg.client_id)
    return render_template("lti/registered.html", reg=reg, pending=not reg.active)
