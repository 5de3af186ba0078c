"""Credential pages and documents: what issuers publish, what learners get, what verifiers check.

Public (no sign-in; credentials carry only salted hashes of the learner's identifiers):

* ``GET /issuers/<slug>``: the issuer ``Profile`` (OB 3.0 Appendix B.1), id ``did:web:...:issuers:<slug>``;
* ``GET /issuers/<slug>/did.json``: its DID document (DID Web §3.2; keys as Multikey);
* ``GET /issuers/<slug>/jwks.json``: the same keys as a JWK Set (RFC 7517 §5);
* ``GET /issuers/<slug>/status/<list>``: the Bitstring Status List credential (v1.0 §2.2), JSON with a
  Data Integrity proof, or VC-JWT with ``Accept: application/vc+jwt`` or ``?format=jwt``;
* ``GET /credentials/<id>/credential.<json|jwt|png|svg>``: the credential, or baked into an image
  (OB 3.0 §5.3; ``?proof=jwt`` bakes the VC-JWT instead of the JSON);
* ``GET /credentials/<id>/verify``: a page saying plainly what was checked; ``GET|POST /verify``: the
  same for a credential pasted in;
* ``POST /api/v1/verify``: ``{"credential": <JSON credential or VC-JWT>}`` -> the checks as JSON.

For the learner, by launch token (``/player/<token>/...``, so it works in an LMS iframe without
cookies): ``credential`` (the page: credential, skills, EQF level, downloads, the verification URL to
copy), ``credential.json`` (what the player's credential panel shows), ``credential/edc.jsonld``.
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, abort, jsonify, render_template, request
from marshmallow import Schema, ValidationError, fields

from ..extensions import db
from ..lti.state import LaunchSession, load_launch_session
from . import completion as _completion  # noqa: F401  (the course_completed subscriber and the
from . import issuer as issuer_service       # connectors' outbox handlers register on import)
from .models import Completion, Credential, DeliveryReceipt, StatusList

bp = Blueprint("credentials", __name__)

MAX_VERIFY_BYTES = 1024 * 1024
JSON_LD = "application/ld+json"
DOWNLOAD_FORMATS = ("json", "jwt", "png", "svg")


def _json(document: dict, mimetype: str = "application/json", *, cache: str = "public, max-age=300") -> Response:
    resp = Response(json.dumps(document, ensure_ascii=False, indent=1), mimetype=mimetype)
    resp.headers["Access-Control-Allow-Origin"] = "*"
    resp.headers["Cache-Control"] = cache
    return resp


def _profile_or_404(slug: str):
    profile = issuer_service.profile_by_slug(slug)
    if profile is None:
        abort(404)
    return profile


def _credential_or_404(credential_id: str) -> Credential:
    credential = issuer_service.credential_by_uuid(credential_id)
    if credential is None:
        abort(404)
    return credential


# --------------------------------------------------------------------------- issuer documents


@bp.get("/issuers/<slug>")
def issuer_profile(slug: str):
    return _json(issuer_service.profile_document(_profile_or_404(slug)), JSON_LD)


@bp.get("/issuers/<slug>/did.json")
def issuer_did(slug: str):
    return _json(issuer_service.did_document(_profile_or_404(slug)), "application/did+json")


@bp.get("/issuers/<slug>/jwks.json")
def issuer_jwks(slug: str):
    return _json(issuer_service.jwks(_profile_or_404(slug)), "application/jwk-set+json")


@bp.get("/issuers/<slug>/status/<int:list_id>")
def status_list(slug: str, list_id: int):
    profile = _profile_or_404(slug)
    listed = db.session.get(StatusList, list_id)
    if listed is None or listed.issuer_profile_id != profile.id:
        abort(404)
    document, jwt = issuer_service.status_list_documents(listed)
    # Verifiers must see a revocation soon: a short cache lifetime (Bitstring Status List §6.3).
    if request.args.get("format") == "jwt" or request.accept_mimetypes.best == "application/vc+jwt":
        resp = Response(jwt, mimetype="application/vc+jwt")
        resp.headers["Access-Control-Allow-Origin"] = "*"
        resp.headers["Cache-Control"] = "public, max-age=60"
        return resp
    return _json(document, JSON_LD, cache="public, max-age=60")


# --------------------------------------------------------------------------- credentials


def _download_name(credential: Credential, ext: str) -> str:
    title = "".join(c if c.isalnum() else "-" for c in credential.completion.course_title.lower()).strip("-")
    return f"{title[:60] or 'credential'}-{credential.uuid[:8]}.{ext}"


@bp.get("/credentials/<credential_id>/credential.<fmt>")
def download(credential_id: str, fmt: str):
    if fmt not in DOWNLOAD_FORMATS:
        abort(404)
    credential = _credential_or_404(credential_id)
    proof_jwt = request.args.get("proof") == "jwt"
    if fmt == "json":
        resp = _json(credential.credential_json, JSON_LD, cache="no-cache")
    elif fmt == "jwt":
        resp = Response(credential.credential_jwt, mimetype="application/vc+jwt")
    elif fmt == "png":
        payload = credential.credential_jwt if proof_jwt else json.dumps(credential.credential_json, ensure_ascii=False)
        resp = Response(issuer_service.bake_png(payload), mimetype="image/png")
    else:
        resp = Response(issuer_service.bake_svg(credential, jwt=proof_jwt), mimetype="image/svg+xml")
    if request.args.get("download"):
        resp.headers["Content-Disposition"] = f'attachment; filename="{_download_name(credential, fmt)}"'
    resp.headers["Access-Control-Allow-Origin"] = "*"
    resp.headers.setdefault("Cache-Control", "no-cache")
    return resp


@bp.get("/credentials/<credential_id>/verify")
def verify_page(credential_id: str):
    credential = _credential_or_404(credential_id)
    result = issuer_service.verify(credential.credential_json)
    jwt_result = issuer_service.verify(credential.credential_jwt)
    resp = Response(render_template("credentials/verify.html", credential=credential, result=result,
                                    jwt_result=jwt_result, doc=credential.credential_json, pasted=None),
                    mimetype="text/html")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.route("/verify", methods=["GET", "POST"])
def verify_pasted():
    """A verifier pastes a credential (JSON or VC-JWT) and sees what was checked."""
    pasted = (request.form.get("credential") or "").strip() if request.method == "POST" else ""
    error = None
    result = None
    if request.method == "POST":
        if not pasted:
            error = "Paste a credential (its JSON, or the VC-JWT text) first."
        elif len(pasted.encode("utf-8")) > MAX_VERIFY_BYTES:
            error = "That is larger than 1 MB; no credential is that big."
        else:
            result = issuer_service.verify(pasted)
    doc = result.credential if result is not None and isinstance(result.credential, dict) else None
    return render_template("credentials/verify.html", credential=None, result=result, jwt_result=None, doc=doc,
                           pasted=pasted, error=error), 400 if error else 200


class CredentialField(fields.Field):
    """An OB 3.0 credential as a JSON object, or a VC-JWT (compact JWS) string."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dict):
            return value
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise ValidationError("Give the credential as a JSON object or a VC-JWT string.")


class VerifyRequestSchema(Schema):
    """``POST /api/v1/verify`` body."""

    credential = CredentialField(required=True)


@bp.route("/api/v1/verify", methods=["POST", "OPTIONS"])
def verify_api():
    if request.method == "OPTIONS":  # CORS preflight: any origin may verify, without credentials
        resp = Response(status=204)
        resp.headers.update({"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST",
                             "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "600"})
        return resp
    if (request.content_length or 0) > MAX_VERIFY_BYTES:
        return _error(413, "too_large", "The request is larger than 1 MB; no credential is that big.")
    body = request.get_json(silent=True)
    if body is None:
        return _error(400, "bad_request", 'Send JSON: {"credential": <the credential JSON, or the VC-JWT string>}.')
    try:
        data = VerifyRequestSchema().load(body if isinstance(body, dict) else {"_": body})
    except ValidationError as exc:
        return _error(400, "bad_request", "The request body is not valid; see errors.", errors=exc.messages)
    result = issuer_service.verify(data["credential"])
    answer = result.to_json()
    answer["summary"] = result.summary()
    credential = result.credential if isinstance(result.credential, dict) else {}
    answer["credentialId"] = credential.get("id")
    issuer = credential.get("issuer")
    answer["issuer"] = issuer.get("id") if isinstance(issuer, dict) else issuer
    resp = jsonify(answer)
    resp.headers["Access-Control-Allow-Origin"] = "*"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _error(status: int, error: str, message: str, **extra) -> Response:
    resp = jsonify({"error": error, "message": message, **extra})
    resp.status_code = status
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


# --------------------------------------------------------------------------- the learner's credential


def _learner_launch(token: str) -> LaunchSession:
    launch = load_launch_session(token)
    if launch is None or launch.user_pk is None:
        abort(404)
    return launch


def learner_completion(launch: LaunchSession) -> Completion | None:
    """The learner's completion of the course this launch opens (the latest version completed)."""
    from ..player.binding import BindingError, resolve

    try:
        binding = resolve(launch)
    except BindingError:
        return None
    if binding is None:
        return None
    return db.session.execute(db.select(Completion).filter_by(user_pk=launch.user_pk, course_id=binding.course.id)
                              .order_by(Completion.completed_at.desc(), Completion.id.desc()).limit(1)).scalar_one_or_none()


def credential_state(launch: LaunchSession) -> dict:
    """What the player's credential panel and the learner page show."""
    from flask import url_for

    completion = learner_completion(launch)
    page = url_for("credentials.learner_page", token=launch.token)
    if completion is None:
        return {"state": "none", "message": "Complete the course to earn its micro-credential.", "page": page}
    credential = completion.credential
    base = {"completion": f"urn:uuid:{completion.uuid}", "page": page, "course": completion.course_title,
            "eqfLevel": completion.eqf_level, "skills": completion.esco_skills}
    if credential is None:
        if "builtin" not in (completion.connectors or []):
            return {**base, "state": "recorded",
                    "message": f"Your completion was recorded and sent to {completion.issuer_profile.name}."}
        return {**base, "state": "pending", "message": "Your micro-credential is being issued; this takes a few seconds."}
    links = {fmt: url_for("credentials.download", credential_id=credential.uuid, fmt=fmt) for fmt in DOWNLOAD_FORMATS}
    state = "revoked" if credential.revoked_at else "issued"
    return {**base, "state": state, "credential": credential.urn, "links": links,
            "verifyUrl": issuer_service.external_url("credentials.verify_page", credential_id=credential.uuid),
            "message": ("This micro-credential was revoked by its issuer." if credential.revoked_at
                        else "Your micro-credential is ready.")}


@bp.get("/player/<token>/credential.json")
def learner_state(token: str):
    resp = jsonify(credential_state(_learner_launch(token)))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/player/<token>/credential")
def learner_page(token: str):
    launch = _learner_launch(token)
    state = credential_state(launch)
    completion = learner_completion(launch)
    edc = None
    if completion is not None:
        edc = db.session.execute(db.select(DeliveryReceipt.id).filter_by(
            completion_id=completion.id, connector="edc")).scalar_one_or_none()
    resp = Response(render_template("credentials/learner.html", launch=launch, d=launch.display, state=state,
                                    completion=completion, credential=completion.credential if completion else None,
                                    edc_available=edc is not None), mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/player/<token>/credential/edc.jsonld")
def learner_edc(token: str):
    completion = learner_completion(_learner_launch(token))
    receipt = None
    if completion is not None:
        receipt = db.session.execute(db.select(DeliveryReceipt).filter_by(
            completion_id=completion.id, connector="edc")).scalar_one_or_none()
    if receipt is None or not receipt.document:
        abort(404)
    resp = _json(receipt.document, JSON_LD, cache="no-store")
    resp.headers["Content-Disposition"] = 'attachment; filename="european-digital-credential.jsonld"'
    return resp
