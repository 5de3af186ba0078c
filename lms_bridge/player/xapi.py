"""cmi5 launches and the subset of an xAPI Learning Record Store that cmi5 needs.

Launch (cmi5 §8): the player opens an AU at its URL plus the query parameters of §8.1:
``endpoint`` (this LRS, ``/player/xapi/``), ``fetch`` (a one-time URL, §8.2), ``registration``
(the attempt's UUID), ``activityId`` (the AU's id from ``cmi5.xml``), and ``actor`` (an xAPI Agent
with an ``account``: the platform's issuer and the learner's ``sub``; no name or e-mail).

Fetch (§8.2): ``POST /player/cmi5/fetch/<code>`` answers ``{"auth-token": ...}`` once; a second
call answers ``{"error-code": "1", ...}``. The token is an HTTP Basic credential for this
session's statements and state only (it names the attempt, the AU, the session id and the actor).

Statements (xAPI 1.0.3 §2, cmi5 §9): ``POST /player/xapi/statements`` (one statement or an array)
and ``PUT /player/xapi/statements?statementId=...``. Every request needs
``X-Experience-API-Version: 1.0.x``; every answer carries ``X-Experience-API-Version: 1.0.3``.
Each statement must be about this session: actor equal to the launch actor, object id equal to the
AU's activity id, ``context.registration`` equal to the registration. cmi5 defined statements
(those with the cmi5 category, §9.6.2.1) must also carry the session id extension (§9.6.3.1) and
follow the session order (``initialized`` first, nothing after ``terminated``, §9.3), and
``completed``/``passed``/``failed`` only in ``Normal`` launch mode (§10.2.2). ``passed`` needs a
success of ``true`` and, with a mastery score, a scaled score at least that score; ``failed`` the
opposite (§9.3.4, §9.3.5). Statements become progress:

* ``completed`` -> completion ``completed``;
* ``passed``/``failed`` -> success and score (a ``failed`` never undoes an earlier ``passed``);
* ``terminated`` -> the session's duration added to the time spent;
* other ("cmi5 allowed") statements are accepted and stored nowhere.

A statement id seen before is not applied again (PUT and POST are idempotent).

State (xAPI §2.3.1 Activity State): ``GET /player/xapi/activities/state`` serves the
``LMS.LaunchData`` document (cmi5 §10: contextTemplate with the session id, launchMode,
launchParameters, masteryScore, moveOn, returnURL, entitlementKey) which the AU may not write;
other state documents (bookmarks) are stored with the activity's progress.

The endpoints answer CORS requests from the content origin (AUs served from it, see
:mod:`lms_bridge.packages.content`, whose CSP lets cmi5 packages connect to the tool) and from the
origins of externally hosted AUs launched recently (remembered in the shared store for the launch
token's lifetime), never with ``Access-Control-Allow-Credentials``: the Basic token is the only
credential. Other origins get no ``Access-Control-Allow-Origin``.
"""
from __future__ import annotations

import base64
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, current_app, request

from ..extensions import db
from ..shared_store import store
from ..web import public_url
from . import progress as progress_service
from .models import ActivityProgress

bp = Blueprint("xapi", __name__)

XAPI_VERSION = "1.0.3"
CMI5_CATEGORY = "https://w3id.org/xapi/cmi5/context/categories/cmi5"
MOVEON_CATEGORY = "https://w3id.org/xapi/cmi5/context/categories/moveon"
SESSION_EXT = "https://w3id.org/xapi/cmi5/context/extensions/sessionid"
MASTERY_EXT = "https://w3id.org/xapi/cmi5/context/extensions/masteryscore"
VERBS = {
    "http://adlnet.gov/expapi/verbs/launched": "launched",
    "http://adlnet.gov/expapi/verbs/initialized": "initialized",
    "http://adlnet.gov/expapi/verbs/completed": "completed",
    "http://adlnet.gov/expapi/verbs/passed": "passed",
    "http://adlnet.gov/expapi/verbs/failed": "failed",
    "http://adlnet.gov/expapi/verbs/abandoned": "abandoned",
    "http://adlnet.gov/expapi/verbs/waived": "waived",
    "http://adlnet.gov/expapi/verbs/terminated": "terminated",
    "https://w3id.org/xapi/adl/verbs/satisfied": "satisfied",
}
AU_VERBS = ("initialized", "completed", "passed", "failed", "terminated")
FETCH_PREFIX = "cmi5-fetch:"
AUTH_PREFIX = "cmi5-auth:"
SEEN_PREFIX = "cmi5-stmt:"
LAUNCH_DATA = "LMS.LaunchData"
MAX_STATE_BYTES = 64_000
MAX_BODY = 1_000_000


# --------------------------------------------------------------------------- launch


@dataclass
class Cmi5Launch:
    url: str
    session_id: str


def actor_for(issuer: str, sub: str) -> dict:
    return {"objectType": "Agent", "account": {"homePage": issuer, "name": str(sub)}}


def launch(*, attempt_id: int, activity, registration: str, actor: dict, content_url: str, return_url: str,
           ttl: int) -> Cmi5Launch:
    """A cmi5 launch URL (§8.1) with a one-time fetch URL, and the session behind it."""
    session_id = str(uuid.uuid4())
    code = secrets.token_urlsafe(24)
    record = {
        "attempt_id": attempt_id, "activity_key": activity.activity_key, "activity_id": activity.identifier,
        "registration": registration, "actor": actor, "session_id": session_id, "launch_mode": "Normal",
        "mastery_score": activity.mastery_score, "move_on": activity.move_on or "NotApplicable",
        "launch_parameters": activity.launch_parameters, "return_url": return_url,
        "entitlement_key": (activity.extra or {}).get("entitlement_key"), "state": "launched",
    }
    store().put(FETCH_PREFIX + code, record, ttl)
    params = urlencode({
        "endpoint": public_url("player.xapi.about").rsplit("/about", 1)[0] + "/",
        "fetch": public_url("player.xapi.fetch", code=code),
        "registration": registration,
        "activityId": activity.identifier,
        "actor": json.dumps(actor, separators=(",", ":")),
    })
    head, hash_, fragment = content_url.partition("#")
    url = head + ("&" if "?" in head else "?") + params + (hash_ + fragment if hash_ else "")
    _allow_au_origin(content_url, ttl)
    return Cmi5Launch(url=url, session_id=session_id)


# --------------------------------------------------------------------------- CORS

ORIGIN_PREFIX = "cmi5-origin:"


def _url_origin(url: str) -> str | None:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme in ("http", "https") and parts.netloc else None


def _allow_au_origin(au_url: str, ttl: int) -> None:
    """Remember the origin of an AU hosted elsewhere than the content origin (cmi5 lets AUs live
    anywhere), so its browser calls get CORS answers."""
    from ..packages.content import content_origin, tool_origin

    origin = _url_origin(au_url)
    if origin and origin not in (content_origin(), tool_origin()):
        store().put(ORIGIN_PREFIX + origin, 1, ttl)


def _cors_allowed(origin: str | None) -> bool:
    from ..packages.content import content_origin, tool_origin

    if not origin or len(origin) > 300:
        return False
    origin = origin.lower()
    allowed = content_origin()
    if allowed and origin == allowed:
        return True
    if origin == tool_origin():
        return False  # same-origin: nothing to grant
    return store().get(ORIGIN_PREFIX + origin) is not None


# --------------------------------------------------------------------------- HTTP helpers


def _answer(body: Any = None, status: int = 200) -> Response:
    if body is None:
        resp = Response(status=status)
    else:
        resp = Response(json.dumps(body), status=status, mimetype="application/json")
    return resp


def _error(status: int, message: str) -> Response:
    return _answer({"error": message}, status)


@bp.after_request
def _headers(resp: Response) -> Response:
    resp.headers["X-Experience-API-Version"] = XAPI_VERSION
    resp.headers["Cache-Control"] = "no-store"
    resp.headers.add("Vary", "Origin")
    origin = request.headers.get("Origin")
    if _cors_allowed(origin):
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, X-Experience-API-Version, If-Match, If-None-Match"
        resp.headers["Access-Control-Allow-Methods"] = "GET, PUT, POST, DELETE, OPTIONS"
        resp.headers["Access-Control-Expose-Headers"] = "X-Experience-API-Version, ETag, Last-Modified"
        resp.headers["Access-Control-Max-Age"] = "600"
    return resp


def _preflight() -> Response | None:
    if request.method == "OPTIONS":
        return _answer(None, 204)
    return None


def _session() -> tuple[str, dict] | Response:
    """The cmi5 session of the request's Basic token, or an error response."""
    version = request.headers.get("X-Experience-API-Version", "")
    if not version.startswith("1.0"):
        return _error(400, "X-Experience-API-Version 1.0.x is required")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token or len(token) > 200:
        return _error(401, "an Authorization: Basic token from the cmi5 fetch URL is required")
    record = store().get(AUTH_PREFIX + token.strip())
    if record is None:
        return _error(401, "the authorization token is unknown or expired")
    return token.strip(), record


def _save_session(token: str, record: dict) -> None:
    store().put(AUTH_PREFIX + token, record, current_app.config["LAUNCH_TOKEN_TTL"])


def _json_body() -> Any:
    raw = request.get_data(cache=False)
    if len(raw) > MAX_BODY:
        raise ValueError("the request body is too large")
    return json.loads(raw or b"null")


# --------------------------------------------------------------------------- fetch (§8.2)


@bp.route("/player/cmi5/fetch/<code>", methods=["POST", "OPTIONS"])
def fetch(code: str):
    if (pre := _preflight()) is not None:
        return pre
    record = store().take(FETCH_PREFIX + code) if len(code) < 100 else None
    if record is None:
        # §8.2.3: error-code 1, "already in use" (or unknown).
        return _answer({"error-code": "1", "error-text": "This fetch URL was already used or has expired."}, 400)
    secret = base64.b64encode(f"cmi5:{secrets.token_urlsafe(24)}".encode()).decode()
    _save_session(secret, record)
    return _answer({"auth-token": secret})


# --------------------------------------------------------------------------- about


@bp.route("/player/xapi/about", methods=["GET", "OPTIONS"])
def about():
    if (pre := _preflight()) is not None:
        return pre
    return _answer({"version": [XAPI_VERSION]})


# --------------------------------------------------------------------------- statements


class StatementRejected(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _same_actor(given: Any, expected: dict) -> bool:
    if not isinstance(given, dict):
        return False
    account = given.get("account")
    return isinstance(account, dict) and account.get("homePage") == expected["account"]["homePage"] \
        and str(account.get("name")) == expected["account"]["name"]


def _categories(statement: dict) -> list[str]:
    ctx = statement.get("context") if isinstance(statement.get("context"), dict) else {}
    acts = ctx.get("contextActivities") if isinstance(ctx.get("contextActivities"), dict) else {}
    cats = acts.get("category") or []
    if isinstance(cats, dict):
        cats = [cats]
    return [c.get("id") for c in cats if isinstance(c, dict)]


def check_statement(statement: Any, session: dict) -> str | None:
    """Validate a statement against the session (see the module docstring); returns the cmi5 verb
    of a cmi5 defined statement, or None for a cmi5 allowed one. Raises StatementRejected."""
    if not isinstance(statement, dict):
        raise StatementRejected(400, "a statement must be a JSON object")
    for name in ("actor", "verb", "object"):
        if name not in statement:
            raise StatementRejected(400, f"the statement has no {name}")
    if not _same_actor(statement["actor"], session["actor"]):
        raise StatementRejected(403, "the statement's actor is not the launched learner")
    verb_id = statement["verb"].get("id") if isinstance(statement["verb"], dict) else None
    if not isinstance(verb_id, str) or not verb_id:
        raise StatementRejected(400, "the statement's verb has no id")
    obj = statement["object"]
    ctx = statement.get("context") if isinstance(statement.get("context"), dict) else {}
    if ctx.get("registration") != session["registration"]:
        raise StatementRejected(403, "the statement's context.registration is not this launch's registration")
    cmi5_defined = CMI5_CATEGORY in _categories(statement)
    if not cmi5_defined:
        if session.get("state") == "terminated":
            raise StatementRejected(403, "the session has ended (terminated)")
        return None
    if not isinstance(obj, dict) or obj.get("id") != session["activity_id"]:
        raise StatementRejected(403, "a cmi5 defined statement must be about the launched AU (object.id = activityId)")
    verb = VERBS.get(verb_id)
    if verb not in AU_VERBS:
        raise StatementRejected(403, f"an AU may not send the cmi5 verb {verb_id}")
    extensions = ctx.get("extensions") if isinstance(ctx.get("extensions"), dict) else {}
    if extensions.get(SESSION_EXT) != session["session_id"]:
        raise StatementRejected(403, "the statement does not carry this session's id (cmi5 §9.6.3.1)")
    state = session.get("state", "launched")
    if state == "terminated":
        raise StatementRejected(403, "the session has ended (terminated)")
    if verb == "initialized" and state != "launched":
        raise StatementRejected(403, "initialized was already sent in this session")
    if verb != "initialized" and state == "launched":
        raise StatementRejected(403, "the first cmi5 statement of a session must be initialized (cmi5 §9.3.1)")
    result = statement.get("result") if isinstance(statement.get("result"), dict) else {}
    if verb in ("completed", "passed", "failed"):
        if session.get("launch_mode", "Normal") != "Normal":
            raise StatementRejected(403, f"{verb} is only allowed in Normal launch mode (cmi5 §10.2.2)")
        if MOVEON_CATEGORY not in _categories(statement):
            raise StatementRejected(400, f"a {verb} statement needs the moveOn category (cmi5 §9.6.2.2)")
    if verb == "completed" and result.get("completion") is not True:
        raise StatementRejected(400, "a completed statement needs result.completion = true (cmi5 §9.5.3)")
    if verb in ("passed", "failed"):
        if result.get("success") is not (verb == "passed"):
            raise StatementRejected(400, f"a {verb} statement needs result.success = {str(verb == 'passed').lower()}")
        mastery = session.get("mastery_score")
        scaled = (result.get("score") or {}).get("scaled") if isinstance(result.get("score"), dict) else None
        if mastery is not None and isinstance(scaled, (int, float)):
            if verb == "passed" and scaled < mastery:
                raise StatementRejected(400, "passed with a score below the mastery score (cmi5 §9.3.4)")
            if verb == "failed" and scaled >= mastery:
                raise StatementRejected(400, "failed with a score at or above the mastery score (cmi5 §9.3.5)")
    return verb


def _progress_update(verb: str, statement: dict, current: ActivityProgress | None) -> progress_service.ProgressUpdate | None:
    from .scorm_api import iso_duration_seconds

    result = statement.get("result") if isinstance(statement.get("result"), dict) else {}
    score = result.get("score") if isinstance(result.get("score"), dict) else {}
    update = progress_service.ProgressUpdate()
    if verb == "completed":
        update.completion_status = "completed"
        return update
    if verb in ("passed", "failed"):
        if verb == "failed" and current is not None and current.success_status == "passed":
            return None  # a later failure never undoes a pass
        update.success_status = verb
        for name in ("scaled", "raw", "min", "max"):
            value = score.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                setattr(update, "score_" + name, float(value))
        return update
    if verb == "terminated":
        seconds = iso_duration_seconds(result.get("duration"))
        if seconds:
            update.add_time_seconds = seconds
            return update
    return None


def _apply(statement: dict, token: str, session: dict) -> str:
    verb = check_statement(statement, session)
    statement_id = statement.get("id") or str(uuid.uuid4())
    try:
        uuid.UUID(str(statement_id))
    except ValueError:
        raise StatementRejected(400, "the statement id is not a UUID")
    seen_key = SEEN_PREFIX + f"{session['registration']}:{statement_id}"
    if not store().add(seen_key, 1, current_app.config["LAUNCH_TOKEN_TTL"]):
        return statement_id  # seen before: idempotent
    try:
        if verb:
            current = db.session.execute(db.select(ActivityProgress).filter_by(
                attempt_id=session["attempt_id"], activity_key=session["activity_key"])).scalar_one_or_none()
            update = _progress_update(verb, statement, current)
            if update is not None:
                progress_service.record(session["attempt_id"], session["activity_key"], update)
    except BaseException:
        store().delete(seen_key)  # not applied: a retry must be able to apply it
        raise
    if verb in ("initialized", "terminated"):
        session["state"] = "initialized" if verb == "initialized" else "terminated"
        _save_session(token, session)
    return statement_id


@bp.route("/player/xapi/statements", methods=["POST", "PUT", "GET", "OPTIONS"])
def statements():
    if (pre := _preflight()) is not None:
        return pre
    found = _session()
    if isinstance(found, Response):
        return found
    token, session = found
    if request.method == "GET":
        return _error(403, "this LRS does not serve statements to AUs")
    try:
        body = _json_body()
    except ValueError as exc:
        return _error(400, f"the body is not JSON: {exc}")
    try:
        if request.method == "PUT":
            statement_id = request.args.get("statementId")
            if not statement_id or not isinstance(body, dict):
                return _error(400, "PUT needs ?statementId= and one statement")
            if body.get("id") not in (None, statement_id):
                return _error(400, "the statement id differs from statementId")
            body["id"] = statement_id
            _apply(body, token, session)
            return _answer(None, 204)
        items = body if isinstance(body, list) else [body]
        if not items or len(items) > 50:
            return _error(400, "send 1 to 50 statements")
        ids = [_apply(s if isinstance(s, dict) else None, token, session) for s in items]
    except StatementRejected as exc:
        return _error(exc.status, exc.message)
    except progress_service.ProgressError as exc:
        return _error(exc.status, exc.message)
    return _answer(ids)


# --------------------------------------------------------------------------- state (§10)


def launch_data(session: dict) -> dict:
    data: dict = {
        "contextTemplate": {
            "contextActivities": {"grouping": [{"objectType": "Activity", "id": session["activity_id"]}]},
            "extensions": {SESSION_EXT: session["session_id"]},
        },
        "launchMode": session.get("launch_mode", "Normal"),
        "moveOn": session.get("move_on") or "NotApplicable",
        "returnURL": session.get("return_url") or "",
    }
    if session.get("launch_parameters"):
        data["launchParameters"] = session["launch_parameters"]
    if session.get("mastery_score") is not None:
        data["masteryScore"] = session["mastery_score"]
    if session.get("entitlement_key"):
        data["entitlementKey"] = {"courseStructure": session["entitlement_key"]}
    return data


@bp.route("/player/xapi/activities/state", methods=["GET", "PUT", "POST", "DELETE", "OPTIONS"])
def state():
    if (pre := _preflight()) is not None:
        return pre
    found = _session()
    if isinstance(found, Response):
        return found
    _token, session = found
    args = request.args
    try:
        agent = json.loads(args.get("agent") or "null")
    except ValueError:
        return _error(400, "agent is not JSON")
    if args.get("activityId") != session["activity_id"] or not _same_actor(agent, session["actor"]):
        return _error(403, "this token is for another activity or agent")
    if args.get("registration") not in (None, session["registration"]):
        return _error(403, "this token is for another registration")
    state_id = args.get("stateId")
    if not state_id or len(state_id) > 200:
        return _error(400, "stateId is required (listing state ids is not supported)")
    if state_id == LAUNCH_DATA:
        if request.method != "GET":
            return _error(403, "LMS.LaunchData is written by the LMS only (cmi5 §10)")
        return _answer(launch_data(session))
    row = db.session.execute(db.select(ActivityProgress).filter_by(
        attempt_id=session["attempt_id"], activity_key=session["activity_key"])).scalar_one_or_none()
    documents = dict(((row.state or {}).get("xapi_state") or {}) if row is not None else {})
    if request.method == "GET":
        if state_id not in documents:
            return _error(404, "no such state document")
        doc = documents[state_id]
        return Response(doc["body"], mimetype=doc.get("type") or "application/json")
    if request.method == "DELETE":
        documents.pop(state_id, None)
    else:
        raw = request.get_data(cache=False)
        if len(raw) > MAX_STATE_BYTES:
            return _error(413, "state documents are limited to 64 kB")
        mimetype = request.mimetype or "application/octet-stream"
        text = raw.decode("utf-8", errors="replace")
        if request.method == "POST" and state_id in documents and mimetype == "application/json":
            try:  # xAPI §2.3.1: POST merges JSON objects
                merged = {**json.loads(documents[state_id]["body"]), **json.loads(text)}
                text = json.dumps(merged)
            except (ValueError, TypeError):
                return _error(400, "POST merges JSON objects only")
        documents[state_id] = {"body": text, "type": mimetype}
    update = progress_service.ProgressUpdate(state={"xapi_state": documents})
    if state_id and isinstance(documents.get(state_id), dict):
        try:
            location = json.loads(documents[state_id]["body"]).get("location")
            if isinstance(location, str):
                update.location = location[:1000]
        except (ValueError, AttributeError, TypeError):
            pass
    progress_service.record(session["attempt_id"], session["activity_key"], update)
    return _answer(None, 204)


@bp.route("/player/xapi/agents/profile", methods=["GET", "PUT", "POST", "OPTIONS"])
def agent_profile():
    """cmi5 §11 learner preferences: none are kept; AUs use their defaults."""
    if (pre := _preflight()) is not None:
        return pre
    found = _session()
    if isinstance(found, Response):
        return found
    if request.method == "GET":
        return _error(404, "no learner preferences are stored")
    return _answer(None, 204)
