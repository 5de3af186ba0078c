"""Operator view of credentials, under ``/admin/credentials``: per course, the completions and the
credentials issued, the deliveries to issuers (pending, retrying, parked, delivered) with retry and
revoke actions.

Access is the admin pages' own (:mod:`lms_bridge.admin.access`): operators see everything; an LMS
administrator who launched the tool sees the completions of learners from their registration only,
may retry their deliveries, but may not revoke (revocation is the issuer's decision, an operator's).
"""
from __future__ import annotations

from collections import defaultdict

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from ..admin.access import Principal, require_operator, require_principal
from ..admin.views import _check_form
from ..extensions import db
from ..outbox import OutboxMessage
from ..outbox import retry as retry_message
from ..packages.models import Course, CourseVersion
from ..web import log_event
from . import connectors
from . import issuer as issuer_service
from .completion import completion_record
from .models import Completion, Credential, DeliveryReceipt, IssuerProfile

bp = Blueprint("credentials_admin", __name__, url_prefix="/admin/credentials")


def _scoped(query, principal: Principal):
    if not principal.is_operator:
        query = query.where(Completion.registration_id == principal.registration_id)
    return query


def delivery_state(message: OutboxMessage) -> str:
    """pending / retrying (failed, will try again) / delivering / delivered / parked / superseded."""
    if message.state == "pending" and message.attempts and message.last_error:
        return "retrying"
    return message.state


def deliveries_for(completion_ids: list[int]) -> dict[int, list[OutboxMessage]]:
    """Outbox messages of these completions, by completion id (newest first)."""
    if not completion_ids:
        return {}
    keys = {connectors.dedupe_key(cid, name): cid for cid in completion_ids for name in connectors.names()}
    rows = db.session.execute(db.select(OutboxMessage).where(
        OutboxMessage.kind.startswith(connectors.KIND_PREFIX), OutboxMessage.dedupe_key.in_(list(keys)))
        .order_by(OutboxMessage.id.desc())).scalars()
    found: dict[int, list[OutboxMessage]] = defaultdict(list)
    for row in rows:
        found[keys[row.dedupe_key]].append(row)
    return found


def _back(principal: Principal, course_id: int | None = None):
    lt = principal.launch_token
    if course_id is not None:
        return redirect(url_for("credentials_admin.course", course_id=course_id, lt=lt) if lt
                        else url_for("credentials_admin.course", course_id=course_id))
    return redirect(url_for("credentials_admin.index", lt=lt) if lt else url_for("credentials_admin.index"))


@bp.get("/")
def index():
    principal = require_principal()
    counts = db.session.execute(_scoped(
        db.select(Completion.course_id, db.func.count(Completion.id), db.func.count(Credential.id),
                  db.func.count(Credential.revoked_at), db.func.max(Completion.course_title))
        .outerjoin(Credential, Credential.completion_id == Completion.id)
        .group_by(Completion.course_id), principal)).all()
    by_course = {row[0]: row for row in counts}
    courses = db.session.execute(db.select(Course, CourseVersion).join(
        CourseVersion, CourseVersion.id == Course.current_version_id).order_by(CourseVersion.title)).all()
    problem_states = {"parked": 0, "retrying": 0, "pending": 0}
    ids = db.session.execute(_scoped(db.select(Completion.id), principal)).scalars().all()
    for messages in deliveries_for(list(ids)).values():
        for m in messages:
            state = delivery_state(m)
            if state in problem_states:
                problem_states[state] += 1
    profiles = db.session.execute(db.select(IssuerProfile).order_by(IssuerProfile.slug)).scalars().all() \
        if principal.is_operator else []
    problems = {p.id: connectors.check_all(list(p.connectors or []), p) for p in profiles}
    return render_template("credentials/admin_index.html", principal=principal, courses=courses, by_course=by_course,
                           orphans=[row for cid, row in by_course.items() if cid is None],
                           deliveries=problem_states, profiles=profiles, problems=problems,
                           issuer_urls={p.id: issuer_service.issuer_urls(p) for p in profiles},
                           issuer_ids={p.id: issuer_service.issuer_id(p) for p in profiles})


@bp.get("/courses/<int:course_id>")
def course(course_id: int):
    principal = require_principal()
    found = db.session.get(Course, course_id)
    if found is None:
        abort(404)
    completions = db.session.execute(_scoped(db.select(Completion).filter_by(course_id=course_id)
                                             .order_by(Completion.completed_at.desc()), principal)).scalars().all()
    deliveries = deliveries_for([c.id for c in completions])
    receipts = defaultdict(dict)
    if completions:
        for r in db.session.execute(db.select(DeliveryReceipt).where(
                DeliveryReceipt.completion_id.in_([c.id for c in completions]))).scalars():
            receipts[r.completion_id][r.connector] = r
    title = found.current_version.title if found.current_version else found.package_identifier
    return render_template("credentials/admin_course.html", principal=principal, course=found, title=title,
                           completions=completions, deliveries=deliveries, receipts=receipts,
                           delivery_state=delivery_state)


@bp.post("/deliveries/<int:message_id>/retry")
def retry(message_id: int):
    principal = require_principal()
    _check_form(principal)
    message = db.get_or_404(OutboxMessage, message_id)
    if not message.kind.startswith(connectors.KIND_PREFIX):
        abort(404)
    completion = db.session.get(Completion, int(message.dedupe_key.split(":", 1)[0]))
    if completion is None or not principal.may_see(completion.registration_id or -1):
        abort(404)
    if retry_message(message_id):
        flash(f"Delivery {message_id} ({message.kind}) is back in line.", "ok")
        log_event("admin.credentials.retry", message=message_id, by=principal.name)
    else:
        flash(f"Delivery {message_id} is not parked; nothing to retry.", "error")
    return _back(principal, completion.course_id)


@bp.post("/credentials/<credential_id>/revoke")
def revoke(credential_id: str):
    principal = require_operator()
    _check_form(principal)
    credential = issuer_service.credential_by_uuid(credential_id)
    if credential is None:
        abort(404)
    reason = (request.form.get("reason") or "").strip()
    if not reason:
        flash("Say why the credential is revoked (the reason is kept with it).", "error")
    elif issuer_service.revoke(credential, reason):
        flash(f"Credential {credential.urn} revoked: its status list now says so.", "ok")
        log_event("admin.credentials.revoked", credential=credential.uuid, by=principal.name, reason=reason)
    else:
        flash(f"Credential {credential.urn} was already revoked.", "error")
    return _back(principal, credential.completion.course_id)


@bp.get("/completions/<completion_uuid>.json")
def completion_json(completion_uuid: str):
    principal = require_principal()
    completion = db.session.execute(db.select(Completion).filter_by(uuid=completion_uuid)).scalar_one_or_none()
    if completion is None or not principal.may_see(completion.registration_id or -1):
        abort(404)
    return completion_record(completion)


@bp.get("/completions/<completion_uuid>/edc.jsonld")
def completion_edc(completion_uuid: str):
    principal = require_principal()
    completion = db.session.execute(db.select(Completion).filter_by(uuid=completion_uuid)).scalar_one_or_none()
    if completion is None or not principal.may_see(completion.registration_id or -1):
        abort(404)
    receipt = connectors.receipt(completion.id, "edc")
    if receipt is None or not receipt.document:
        abort(404)
    from .views import JSON_LD, _json

    resp = _json(receipt.document, JSON_LD, cache="no-store")
    resp.headers["Content-Disposition"] = f'attachment; filename="edc-{completion.uuid}.jsonld"'
    return resp
