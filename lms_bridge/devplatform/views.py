"""Development platform endpoints: thin views over the platform's services.

People's pages (home, launch, gradebook, dynamic registration) always run on the
platform's own origin, so the tool is embedded cross-site; a visit on the tool's origin is
redirected there.  Service endpoints (auth, token, AGS, NRPS, keys, registration) answer
on whichever host they are called.
"""
from __future__ import annotations

import json
import logging
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for

from ..extensions import db
from ..web import check_csrf, error_page, log_event
from . import ags, nrps, oauth, oidc, platform
from . import registration as dynreg
from .deeplinking import DeepLinkError, receive as receive_deep_link
from .deeplinking import request_options as deep_linking_options
from .models import DevLineItem, DevScore

bp = Blueprint("devplatform", __name__, url_prefix="/devplatform")


def _no_store(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Pragma"] = "no-cache"
    return resp


def _json(data, status: int = 200, mimetype: str = "application/json", headers: dict | None = None) -> Response:
    resp = Response(json.dumps(data), status=status, mimetype=mimetype)
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def _to_platform_origin():
    """Redirect people's pages to the platform origin (None when already there)."""
    if platform.on_platform_origin():
        return None
    query = request.query_string.decode()
    return redirect(platform.platform_base() + request.path + (f"?{query}" if query else ""), 302)


# -- people's pages --------------------------------------------------------------------------


@bp.get("/")
def home():
    moved = _to_platform_origin()
    if moved:
        return moved
    platform.ensure_registered()
    all_clients = platform.clients()
    client = platform.client_by_id(request.args.get("client")) or platform.client_by_id(platform.DEV_CLIENT_ID)
    return render_template(
        "devplatform/home.html", course=platform.COURSE, users=platform.USERS, clients=all_clients, client=client,
        links=platform.links(client.client_id), deep_linking=platform.supports_deep_linking(client),
        issuer=platform.issuer(), tool_base=platform.tool_base(), platform_base=platform.platform_base(),
        current_kid=platform.current_key().kid, full_name=platform.full_name,
    )


@bp.get("/launch")
def launch():
    moved = _to_platform_origin()
    if moved:
        return moved
    args = request.args
    client = platform.client_by_id(args.get("client") or platform.DEV_CLIENT_ID)
    if client is None and (args.get("client") or platform.DEV_CLIENT_ID) == platform.DEV_CLIENT_ID:
        client = platform.ensure_registered()
    if client is None:
        return error_page(404, "Unknown tool", f"No tool is registered with client_id {args.get('client')!r}.",
                          code="unknown_client")
    user_key = args.get("user") or ("teacher" if args.get("message") == "deeplink" else "learner")
    user = platform.USERS.get(user_key)
    if user is None:
        return error_page(400, "Unknown user", f"There is no user {user_key!r} in the course.",
                          f"Choose one of: {', '.join(platform.USERS)}.", code="unknown_user")
    message = args.get("message") or "resource"
    if message not in ("resource", "deeplink"):
        return error_page(400, "Unknown message", "message must be 'resource' or 'deeplink'.", code="bad_message")
    target = args.get("target") or "iframe"
    if target not in ("iframe", "window"):
        return error_page(400, "Unknown presentation", "target must be 'iframe' or 'window'.", code="bad_target")
    storage = args.get("storage", "1") != "0"
    link = None
    if message == "resource":
        placed = platform.links(client.client_id)
        link = next((l for l in placed if l.resource_link_id == args.get("link")), None) if args.get("link") else \
            (placed[0] if placed else None)
        if link is None:
            return error_page(404, "Unknown activity", "That activity is not in the course for this tool.",
                              code="unknown_link")
    elif not platform.is_teacher(user):
        return error_page(403, "Not allowed", "Only teachers and administrators may add content.", code="not_teacher")
    if message == "deeplink" and not platform.supports_deep_linking(client):
        return error_page(400, "No deep linking", "This tool did not register for deep linking.", code="no_deep_linking")
    try:
        options = deep_linking_options(args) if message == "deeplink" else {}
    except ValueError as exc:
        return error_page(400, "Bad deep linking request", f"{exc}.", code="bad_deep_linking_options")
    login = oidc.login_initiation(client, user, message_type="LtiResourceLinkRequest" if message == "resource"
                                  else "LtiDeepLinkingRequest", link=link, target=target, storage=storage,
                                  deep_linking=options)
    config = {"toolOrigins": login.tool_origins, "window": login.window,
              "storage": "lti_storage_target" in login.fields}
    return _no_store(Response(render_template(
        "devplatform/launch.html", course=platform.COURSE, client=client, user=user, user_key=user_key, link=link,
        message=message, target=target, storage=storage, login=login, config=config,
        storage_frame_url=url_for("devplatform.storage_frame", client=client.client_id),
        full_name=platform.full_name,
    )))


def parse_custom(text: str) -> dict:
    """``key=value`` lines (or ``;``-separated pairs) into LTI custom parameters (LTI Core §5.4.6)."""
    custom: dict[str, str] = {}
    for part in (text or "").replace(";", "\n").splitlines():
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{part.strip()!r} is not key=value")
        custom[key.strip()] = value.strip()
    return custom


@bp.post("/links")
def place_link():
    """Place an activity in the course, with custom parameters (e.g. ``course=3`` for the tool's
    player), as an LMS teacher would when adding an external tool activity by hand."""
    check_csrf()
    client = platform.client_by_id(request.form.get("client") or platform.DEV_CLIENT_ID)
    if client is None:
        abort(404)
    title = (request.form.get("title") or "").strip()[:500]
    try:
        custom = parse_custom(request.form.get("custom", ""))
    except ValueError as exc:
        flash(f"Custom parameters: {exc}.", "error")
        return redirect(url_for("devplatform.home", client=client.client_id))
    if not title:
        flash("The activity needs a title.", "error")
        return redirect(url_for("devplatform.home", client=client.client_id))
    target = (client.tool_configuration or {}).get("target_link_uri") or platform.deep_linking_target(client)
    link = platform.place_link(client, title=title, target_link_uri=target, custom=custom)
    db.session.commit()
    log_event("devplatform.link.placed", client_id=client.client_id, link=link.id, custom=custom)
    flash(f"Activity \u201c{title}\u201d placed (resource link {link.resource_link_id}).", "ok")
    return redirect(url_for("devplatform.home", client=client.client_id))


@bp.get("/storage-frame")
def storage_frame():
    """The platform side of LTI Platform Storage (the ``post_message_forwarding`` frame)."""
    client = platform.client_by_id(request.args.get("client") or platform.DEV_CLIENT_ID)
    if client is None:
        abort(404)
    config = {"toolOrigins": platform.tool_origins(client), "frame": "post_message_forwarding"}
    return render_template("devplatform/storage_frame.html", config=config)


@bp.get("/gradebook")
def gradebook():
    moved = _to_platform_origin()
    if moved:
        return moved
    items = list(db.session.execute(db.select(DevLineItem).order_by(DevLineItem.id)).scalars())
    scores = list(db.session.execute(db.select(DevScore).order_by(DevScore.id)).scalars())
    current, ignored = ags.effective_scores(scores)
    learners = [u for u in platform.USERS.values() if platform.is_gradable(u)]
    names = {c.client_id: c.name for c in platform.clients()}
    cells = {}
    for (item_id, user_id), score in current.items():
        item = next((i for i in items if i.id == item_id), None)
        if item is not None:
            cells[(item_id, user_id)] = (ags.grade(item, score), score)
    return render_template("devplatform/gradebook.html", course=platform.COURSE, items=items, scores=scores,
                           ignored=ignored, learners=learners, cells=cells, names=names, counts=oauth.counts(),
                           full_name=platform.full_name)


@bp.get("/gradebook.json")
def gradebook_json():
    items = list(db.session.execute(db.select(DevLineItem).order_by(DevLineItem.id)).scalars())
    scores = list(db.session.execute(db.select(DevScore).order_by(DevScore.id)).scalars())
    current, ignored = ags.effective_scores(scores)
    by_id = {i.id: i for i in items}
    return _no_store(jsonify({
        "course": platform.COURSE,
        "line_items": [{"id": i.id, "client_id": i.client_id, "context_id": i.context_id, "label": i.label,
                        "score_maximum": i.score_maximum, "resource_id": i.resource_id,
                        "resource_link_id": i.resource_link_id, "tag": i.tag} for i in items],
        "scores": [{"id": s.id, "line_item_id": s.line_item_id, "user_id": s.user_id, "score_given": s.score_given,
                    "score_maximum": s.score_maximum, "activity_progress": s.activity_progress,
                    "grading_progress": s.grading_progress, "timestamp": s.timestamp, "comment": s.comment,
                    "received_at": s.received_at.isoformat() + "Z", "ignored": s.id in ignored} for s in scores],
        "grades": [{"line_item_id": item_id, "user_id": user_id, "grade": ags.grade(by_id[item_id], s),
                    "score_id": s.id} for (item_id, user_id), s in current.items() if item_id in by_id],
        "links": [{"id": l.id, "resource_link_id": l.resource_link_id, "client_id": l.client_id, "title": l.title,
                   "target_link_uri": l.target_link_uri, "custom": l.custom, "line_item_id": l.line_item_id}
                  for l in platform.links()],
        **oauth.counts(),
    }))


@bp.post("/keys/rotate")
def rotate_key():
    check_csrf()
    key = platform.rotate_key()
    log_event("devplatform.key.rotated", kid=key.kid)
    flash(f"The platform now signs with a new key ({key.kid}); the tool will meet an unknown kid on the next launch.", "ok")
    return redirect(url_for("devplatform.home"))


# -- OIDC and keys ---------------------------------------------------------------------------


@bp.route("/auth", methods=["GET", "POST"])
def auth():
    try:
        answer = oidc.authorize(request.values.to_dict())
    except oidc.AuthError as err:
        log_event("devplatform.auth.refused", logging.WARNING, error=err.error, description=err.description,
                  client_id=request.values.get("client_id"))
        if err.redirect_uri:
            return _no_store(Response(render_template("devplatform/form_post.html", action=err.redirect_uri,
                                                      fields=err.form, title="Returning an error to the tool")))
        return _no_store(error_page(400, "The LTI login could not be completed", err.description,
                                    "Check the tool's registration on the development platform.", code=err.error))
    return _no_store(Response(render_template("devplatform/form_post.html", action=answer.redirect_uri,
                                              fields=answer.form, title="Opening the tool")))


@bp.get("/jwks.json")
def jwks():
    resp = jsonify(platform.jwks())
    resp.headers["Cache-Control"] = "no-cache"
    return resp


# -- OAuth2 token endpoint ---------------------------------------------------------------------


@bp.post("/token")
def token():
    try:
        body = oauth.issue_token(request.form.to_dict())
    except oauth.OAuthError as err:
        log_event("devplatform.token.refused", logging.WARNING, error=err.error, description=err.description)
        headers = {"WWW-Authenticate": 'Bearer error="invalid_client"'} if err.status == 401 else {}
        return _no_store(_json(err.body(), err.status, headers=headers))
    return _no_store(_json(body))


# -- AGS and NRPS -------------------------------------------------------------------------------


def _service(scopes: list[str]):
    """The client behind the request's bearer token, or an error response."""
    try:
        grant = oauth.check_bearer(request.headers.get("Authorization"), scopes)
    except oauth.BearerError as err:
        resp = _json({"error": err.error, "error_description": err.description}, err.status)
        resp.headers["WWW-Authenticate"] = err.www_authenticate()
        return None, resp
    client = platform.client_by_id(grant["client_id"])
    if client is None:
        return None, _json({"error": "invalid_token", "error_description": "The tool is no longer registered."}, 401)
    type_id = request.args.get("type_id")
    if type_id is not None and type_id != str(client.id):
        # Moodle-shaped URLs name the tool type; another tool's URL is refused.
        return None, _json({"error": "request_failed",
                            "error_description": f"type_id {type_id} is not the tool of this access token."}, 403)
    return client, None


def _service_error(err: ags.ServiceError) -> Response:
    return _json({"error": "request_failed", "error_description": err.message}, err.status)


def _body(expected: str):
    """The JSON body; Moodle accepts the AGS media type or none, and refuses others with 400."""
    ctype = (request.mimetype or "").lower()
    if ctype and ctype != expected:
        raise ags.ServiceError(400, f"Content-Type must be {expected}, not {ctype}.")
    try:
        return json.loads(request.get_data(as_text=True) or "null")
    except ValueError:
        raise ags.ServiceError(400, "The body is not valid JSON.")


@bp.route("/contexts/<context_id>/lineitems", methods=["GET", "POST"])
def lineitems(context_id):
    read = request.method == "GET"
    client, failed = _service([ags.SCOPE_LINEITEM, ags.SCOPE_LINEITEM_RO] if read else [ags.SCOPE_LINEITEM])
    if failed:
        return failed
    try:
        if read:
            items, link = ags.list_items(client, context_id, request.args)
            return _json(items, mimetype=ags.LINEITEMS_TYPE, headers={"Link": link} if link else None)
        item = ags.create_item(client, context_id, _body(ags.LINEITEM_TYPE))
    except ags.ServiceError as err:
        return _service_error(err)
    log_event("devplatform.lineitem.created", client_id=client.client_id, label=item["label"])
    return _json(item, 201, mimetype=ags.LINEITEM_TYPE, headers={"Location": item["id"]})


@bp.route("/contexts/<context_id>/lineitems/<int:item_id>/lineitem", methods=["GET", "PUT", "DELETE", "POST"])
def lineitem(context_id, item_id):
    if request.method == "POST":
        # What Moodle answers when /scores was appended after the query string.
        return _json({"error": "request_failed", "error_description": "No handler found for " + request.full_path +
                      " (put /scores or /results in the path, before the '?')."}, 400)
    read = request.method == "GET"
    client, failed = _service([ags.SCOPE_LINEITEM, ags.SCOPE_LINEITEM_RO] if read else [ags.SCOPE_LINEITEM])
    if failed:
        return failed
    try:
        if read:
            item = ags.to_json(client, ags.get_item(client, context_id, item_id))
        elif request.method == "PUT":
            item = ags.update_item(client, context_id, item_id, _body(ags.LINEITEM_TYPE))
        else:
            ags.delete_item(client, context_id, item_id)
            return Response(status=204)
    except ags.ServiceError as err:
        return _service_error(err)
    return _json(item, mimetype=ags.LINEITEM_TYPE)


@bp.post("/contexts/<context_id>/lineitems/<int:item_id>/lineitem/scores")
def scores(context_id, item_id):
    client, failed = _service([ags.SCOPE_SCORE])
    if failed:
        return failed
    try:
        score = ags.post_score(client, context_id, item_id, _body(ags.SCORE_TYPE),
                               idempotency_key=request.headers.get("Idempotency-Key"))
    except ags.ServiceError as err:
        log_event("devplatform.score.refused", logging.WARNING, client_id=client.client_id, reason=err.message)
        return _service_error(err)
    log_event("devplatform.score.received", client_id=client.client_id, line_item=item_id, user=score.user_id,
              score_given=score.score_given, score_maximum=score.score_maximum)
    return Response("null", status=200, mimetype=ags.SCORE_TYPE)


@bp.get("/contexts/<context_id>/lineitems/<int:item_id>/lineitem/results")
def results(context_id, item_id):
    client, failed = _service([ags.SCOPE_RESULT])
    if failed:
        return failed
    try:
        rows, link = ags.results(client, context_id, item_id, request.args)
    except ags.ServiceError as err:
        return _service_error(err)
    return _json(rows, mimetype=ags.RESULTS_TYPE, headers={"Link": link} if link else None)


@bp.get("/contexts/<context_id>/memberships")
def memberships(context_id):
    client, failed = _service([platform.NRPS_SCOPE])
    if failed:
        return failed
    try:
        container, link = nrps.memberships(client, context_id, request.args)
    except ags.ServiceError as err:
        return _service_error(err)
    return _json(container, mimetype=nrps.MEMBERSHIPS_TYPE, headers={"Link": link} if link else None)


# -- fault injection for tests (devplatform/ags.py) ------------------------------------------------


@bp.before_request
def injected_fault():
    """Answer AGS and token calls as a failing LMS would, while a fault is injected."""
    return ags.fault_response(request.endpoint)


@bp.route("/faults", methods=["GET", "PUT", "DELETE"])
def faults():
    """GET the injected fault, PUT one (JSON, see ``ags.set_fault``), DELETE it."""
    if request.method == "PUT":
        if request.mimetype != "application/json":  # JSON only: no cross-site form can switch faults
            return _json({"error": "request_failed", "error_description": "Send the fault as application/json."}, 415)
        try:
            fault = ags.set_fault(request.get_json(silent=True))
        except ags.ServiceError as err:
            return _service_error(err)
        log_event("devplatform.fault.injected", logging.WARNING, **{k: fault[k] for k in ("mode", "endpoints")})
        return _no_store(_json(fault))
    if request.method == "DELETE":
        ags.clear_fault()
        return Response(status=204)
    return _no_store(_json(ags.describe_fault()))


# -- deep linking return ------------------------------------------------------------------------


@bp.post("/deep-link-return")
def deep_link_return():
    try:
        result = receive_deep_link(request.form.get("JWT", ""), request.args.get("sesskey", ""))
    except DeepLinkError as err:
        log_event("devplatform.deep_link.refused", logging.WARNING, reason=err.message)
        return error_page(err.status, "The content could not be added", err.message,
                          "Go back to the course and start 'Deep link (add content)' again.", code="deep_link_refused")
    log_event("devplatform.deep_link.received", client_id=result.client_id, links=[l.id for l in result.links],
              ignored=result.ignored)
    return render_template("devplatform/deep_link_return.html", result=result, course=platform.COURSE)


# -- Dynamic Registration --------------------------------------------------------------------------


@bp.get("/.well-known/openid-configuration")
def openid_configuration():
    resp = jsonify(dynreg.openid_configuration())
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


@bp.post("/register")
def register():
    try:
        body = request.get_json(force=True, silent=True)
        client, answer = dynreg.register(request.headers.get("Authorization"), body)
    except dynreg.RegistrationError as err:
        log_event("devplatform.register.refused", logging.WARNING, error=err.error, description=err.description)
        return _no_store(_json(err.body(), err.status))
    log_event("devplatform.register.done", client_id=client.client_id, deployment_id=client.deployment_id,
              name=client.name)
    return _no_store(_json(answer, 200))


@bp.get("/dynamic-registration")
def dynamic_registration():
    moved = _to_platform_origin()
    if moved:
        return moved
    default_url = platform.tool_url("lti.register")
    tool_registration_url = (request.args.get("tool_url") or "").strip()
    frame_url = None
    config = None
    if tool_registration_url:
        parts = urlsplit(tool_registration_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            flash("The registration URL must be an absolute http(s) URL.", "error")
        else:
            token, handle = dynreg.issue_registration_token()
            query = urlencode({"openid_configuration": platform.platform_url("devplatform.openid_configuration"),
                               "registration_token": token})
            frame_url = tool_registration_url + ("&" if parts.query else "?") + query
            config = {"toolOrigin": f"{parts.scheme}://{parts.netloc}",
                      "resultUrl": url_for("devplatform.dynamic_registration_result", handle=handle),
                      "homeUrl": url_for("devplatform.home")}
    return _no_store(Response(render_template(
        "devplatform/dynamic_registration.html", default_url=default_url,
        tool_registration_url=tool_registration_url or default_url, frame_url=frame_url, config=config,
        openid_configuration_url=platform.platform_url("devplatform.openid_configuration"),
        clients=platform.clients())))


@bp.get("/dynamic-registration/result/<handle>")
def dynamic_registration_result(handle):
    found = dynreg.result(handle)
    if found is None:
        return _no_store(_json({"finished": False}))
    return _no_store(_json({"finished": True, **found,
                            "home_url": url_for("devplatform.home", client=found["client_id"])}))
