"""Admin pages: thin views over the registration and key services."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for

from ..extensions import db
from ..lti import keys
from ..lti.models import Deployment, Registration, ToolKey
from ..lti.registration import RegistrationError, tool_urls, upsert_registration
from ..web import check_csrf, log_event, public_url
from .. import outbox
from .access import current_principal, require_operator, require_principal
from .models import Operator

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _check_form(principal) -> None:
    # Operators post a CSRF token; launch-admins post their unguessable launch token instead.
    if principal.launch_token:
        if request.form.get("lt") != principal.launch_token:
            abort(400, description="The form did not come from this page.")
    else:
        check_csrf()


def _back(principal):
    return redirect(url_for("admin.index", lt=principal.launch_token) if principal.launch_token else url_for("admin.index"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        check_csrf()
        op = db.session.execute(db.select(Operator).filter_by(username=request.form.get("username", ""))).scalar_one_or_none()
        if op and op.check_password(request.form.get("password", "")):
            session.clear()
            session["operator_id"] = op.id
            log_event("admin.login", operator=op.username)
            return redirect(url_for("admin.index"))
        log_event("admin.login.failed", username=request.form.get("username", ""), remote=request.remote_addr)
        error = "Wrong user name or password."
    return render_template("admin/login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout():
    check_csrf()
    session.clear()
    return redirect(url_for("admin.login"))


@bp.get("/")
def index():
    principal = current_principal()
    if principal is None:
        return redirect(url_for("admin.login"))
    q = db.select(Registration).order_by(Registration.id)
    if not principal.is_operator:
        q = q.where(Registration.id == principal.registration_id)
    registrations = db.session.execute(q).scalars().all()
    tool_keys = db.session.execute(db.select(ToolKey).order_by(ToolKey.id.desc())).scalars().all() if principal.is_operator else []
    login_urls = {r.id: public_url("lti.login", registration_id=r.id) for r in registrations}
    deliveries = None
    if principal.is_operator:
        deliveries = {"counts": outbox.counts(),
                      "attention": outbox.messages(states=("parked", "pending", "delivering"), limit=50)}
    return render_template("admin/index.html", principal=principal, registrations=registrations, urls=tool_urls(),
                           tool_keys=tool_keys, login_urls=login_urls, deliveries=deliveries)


@bp.post("/outbox/<int:message_id>/retry")
def retry_delivery(message_id: int):
    """Put a parked score or credential delivery back in line (its attempts start again)."""
    principal = require_operator()
    _check_form(principal)
    if outbox.retry(message_id):
        log_event("admin.outbox.retry", message=message_id, by=principal.name)
        flash(f"Delivery {message_id} is back in line.")
    else:
        flash(f"Delivery {message_id} is not parked (any more).")
    return _back(principal)


@bp.post("/outbox/retry-parked")
def retry_parked_deliveries():
    principal = require_operator()
    _check_form(principal)
    n = outbox.retry_parked()
    log_event("admin.outbox.retry_parked", count=n, by=principal.name)
    flash(f"{n} parked deliveries are back in line.")
    return _back(principal)


@bp.post("/registrations")
def create_registration():
    principal = require_operator()
    _check_form(principal)
    f = request.form
    try:
        reg = upsert_registration(
            issuer=f.get("issuer", ""), client_id=f.get("client_id", "").strip(), auth_login_url=f.get("auth_login_url", "").strip(),
            auth_token_url=f.get("auth_token_url", "").strip(), key_set_url=f.get("key_set_url", "").strip() or None,
            name=f.get("name", "").strip(), deployment_ids=[d.strip() for d in f.get("deployment_ids", "").split(",") if d.strip()],
            auto_activate_deployments=bool(f.get("auto_activate_deployments")),
        )
    except RegistrationError as exc:
        flash(f"Not registered: {exc}", "error")
    else:
        flash(f"Registered {reg.issuer} (client id {reg.client_id}).", "ok")
        log_event("admin.registration.saved", registration=reg.id, by=principal.name)
    return _back(principal)


@bp.post("/registrations/<int:registration_id>/<any(activate, deactivate):action>")
def toggle_registration(registration_id: int, action: str):
    principal = require_operator()
    _check_form(principal)
    reg = db.get_or_404(Registration, registration_id)
    reg.active = action == "activate"
    db.session.commit()
    log_event(f"admin.registration.{action}", registration=reg.id, by=principal.name)
    return _back(principal)


@bp.post("/deployments/<int:deployment_pk>/<any(activate, deactivate):action>")
def toggle_deployment(deployment_pk: int, action: str):
    principal = require_principal()
    _check_form(principal)
    dep = db.get_or_404(Deployment, deployment_pk)
    if not principal.may_see(dep.registration_id):
        abort(404)
    dep.active = action == "activate"
    db.session.commit()
    log_event(f"admin.deployment.{action}", deployment=dep.id, by=principal.name)
    return _back(principal)


@bp.post("/keys/rotate")
def rotate_keys():
    principal = require_operator()
    _check_form(principal)
    new, retired = keys.rotate()
    flash(f"New signing key {new.kid}; the previous key stays published for the grace period.", "ok")
    log_event("admin.keys.rotated", kid=new.kid, retired=[k.kid for k in retired], by=principal.name)
    return _back(principal)
