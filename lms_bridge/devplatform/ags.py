"""Assignment and Grade Services 2.0, platform side (1EdTech LTI AGS 2.0).

* Line item service (AGS §3.2): ``GET/POST .../contexts/<ctx>/lineitems`` (container,
  filters ``resource_link_id``, ``resource_id``, ``tag``, paging with ``limit`` and a
  ``Link: <...>; rel="next"`` header, §3.2.4/§3.2.5), ``GET/PUT/DELETE
  .../lineitems/<id>/lineitem`` (§3.2.6-3.2.8).
* Score publish service (AGS §3.4): ``POST .../lineitem/scores``.  Every score is stored in
  arrival order; the result is the score with the newest ``timestamp`` (ties: the later
  arrival), so a score older than the newest one on record is kept but ignored (§3.4.6:
  the platform must not update a result with an older score).  Like Moodle, ``scoreGiven``
  counts only when ``gradingProgress`` is ``FullyGraded``, the final grade is
  ``scoreGiven / scoreMaximum x`` the line item's maximum, ``scoreGiven`` above
  ``scoreMaximum`` is allowed (extra credit), scores are accepted only for learners of the
  course (400 otherwise), and the answer is 200 with the body ``null``.  (Moodle 4.5
  answers 409 to a score older than the stored grade; the spec says to ignore it.)
* Result service (AGS §3.3): ``GET .../lineitem/results`` (``user_id`` filter, paging).

URLs are Moodle-shaped: ``.../lineitems/5/lineitem?type_id=1``; the ``/scores`` and
``/results`` suffixes go into the path, before the query.  Line items belong to the client
whose token is used; other clients' items are invisible (404).

A score POST with an ``Idempotency-Key`` header that was already stored for the line item is
answered again (200 ``null``) without storing it twice: a tool retrying after a lost answer.

**Fault injection** (for tests; :func:`set_fault`, ``PUT /devplatform/faults``): the AGS endpoints
(``scores``, ``lineitems``, ``lineitem``, ``results``), the ``token`` endpoint and NRPS
``memberships`` can be made to behave like an LMS in trouble, for the next K calls and/or for T
seconds, in every worker (the fault lives in the shared store): ``down`` (503 from a proxy),
``reset`` (the connection is closed without an answer), ``slow`` (answer after N seconds), ``error``
(500), ``throttle`` (429 with ``Retry-After``), ``refuse`` (401, Moodle when "Accept grades from the
tool" is off) and ``incorrect_score`` (Moodle's 400 "Incorrect score received").
"""
from __future__ import annotations

import secrets
import socket
import time
from datetime import datetime
from urllib.parse import urlencode

from flask import Response, request
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..lti.registration import AGS_SCOPES
from ..shared_store import store
from . import platform
from .models import DevClient, DevLineItem, DevResourceLink, DevScore

SCOPE_LINEITEM, SCOPE_LINEITEM_RO, SCOPE_RESULT, SCOPE_SCORE = AGS_SCOPES
LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEMS_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
RESULTS_TYPE = "application/vnd.ims.lis.v2.resultcontainer+json"
ACTIVITY_PROGRESS = {"Initialized", "Started", "InProgress", "Submitted", "Completed"}
GRADING_PROGRESS = {"FullyGraded", "Pending", "PendingManual", "Failed", "NotReady"}
MAX_PAGE = 100


class ServiceError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def check_context(context_id: str) -> None:
    if context_id != platform.COURSE["id"]:
        raise ServiceError(404, f"Not Found: course {context_id} doesn't exist.")


def paging(args) -> tuple[int | None, int]:
    """``limit`` and ``from`` query parameters (Moodle's names), validated."""
    try:
        limit = int(args["limit"]) if args.get("limit") not in (None, "") else None
        start = int(args.get("from") or 0)
    except ValueError:
        raise ServiceError(400, "limit and from must be integers.")
    if limit is not None and limit < 1:
        raise ServiceError(400, "limit must be a positive integer.")
    if start < 0:
        raise ServiceError(400, "from must not be negative.")
    return (min(limit, MAX_PAGE) if limit else None), start


def next_link(base_url: str, args, limit: int | None, start: int, total: int) -> str | None:
    """The ``Link`` header value for the next page (AGS §3.2.5, NRPS §2.4.2), if any."""
    if limit is None or start + limit >= total:
        return None
    query = {k: v for k, v in args.items() if k not in ("limit", "from")}
    query.update({"limit": limit, "from": start + limit})
    return f'<{base_url}?{urlencode(query)}>; rel="next"'


# -- line items --------------------------------------------------------------------------


def to_json(client: DevClient, item: DevLineItem) -> dict:
    data = {"id": platform.lineitem_url(client.id, item), "label": item.label, "scoreMaximum": item.score_maximum}
    for key, attr in (("resourceId", "resource_id"), ("resourceLinkId", "resource_link_id"), ("tag", "tag"),
                      ("startDateTime", "start_date_time"), ("endDateTime", "end_date_time")):
        value = getattr(item, attr)
        if value not in (None, ""):
            data[key] = value
    return data


def list_items(client: DevClient, context_id: str, args) -> tuple[list[dict], str | None]:
    check_context(context_id)
    q = db.select(DevLineItem).filter_by(context_id=context_id, client_id=client.client_id).order_by(DevLineItem.id)
    if args.get("resource_link_id"):
        q = q.filter_by(resource_link_id=args["resource_link_id"])
    if args.get("resource_id"):
        q = q.filter_by(resource_id=args["resource_id"])
    if args.get("tag"):
        q = q.filter_by(tag=args["tag"])
    limit, start = paging(args)
    items = list(db.session.execute(q).scalars())
    page = items[start:start + limit] if limit else items[start:]
    link = next_link(platform.platform_url("devplatform.lineitems", context_id=context_id), args, limit, start, len(items))
    return [to_json(client, i) for i in page], link


def get_item(client: DevClient, context_id: str, item_id: int) -> DevLineItem:
    check_context(context_id)
    item = db.session.get(DevLineItem, item_id)
    if item is None or item.context_id != context_id or item.client_id != client.client_id:
        raise ServiceError(404, f"Not Found: line item {item_id} doesn't exist for this tool.")
    return item


def _date(body: dict, key: str) -> str | None:
    value = body.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str) or _parse_time(value) is None:
        raise ServiceError(400, f"{key} must be an ISO 8601 date-time with a time zone.")
    return value


def _apply(client: DevClient, context_id: str, item: DevLineItem, body) -> DevLineItem:
    """Validate a line item representation (AGS §3.2.7) and copy it onto ``item``."""
    if not isinstance(body, dict):
        raise ServiceError(400, "The body must be a JSON line item object.")
    label = body.get("label")
    if not isinstance(label, str) or not label.strip():
        raise ServiceError(400, "label is required and must be a non-empty string.")
    maximum = body.get("scoreMaximum")
    if isinstance(maximum, bool) or not isinstance(maximum, (int, float)) or maximum <= 0:
        raise ServiceError(400, "scoreMaximum is required and must be a number greater than 0.")
    for key in ("resourceId", "resourceLinkId", "tag"):
        if body.get(key) is not None and not isinstance(body.get(key), str):
            raise ServiceError(400, f"{key} must be a string.")
    link_id = body.get("resourceLinkId") or None
    if link_id is not None:
        link = db.session.get(DevResourceLink, int(link_id)) if link_id.isdigit() else None
        if link is None or link.client_id != client.client_id or link.context_id != context_id:
            raise ServiceError(400, f"resourceLinkId {link_id!r} is not an activity of this tool in this course.")
    item.label = label.strip()
    item.score_maximum = float(maximum)
    item.resource_id = body.get("resourceId") or None
    item.resource_link_id = link_id
    item.tag = body.get("tag") or None
    item.start_date_time = _date(body, "startDateTime")
    item.end_date_time = _date(body, "endDateTime")
    return item


def create_item(client: DevClient, context_id: str, body) -> dict:
    check_context(context_id)
    item = _apply(client, context_id, DevLineItem(context_id=context_id, client_id=client.client_id), body)
    db.session.add(item)
    db.session.commit()
    return to_json(client, item)


def update_item(client: DevClient, context_id: str, item_id: int, body) -> dict:
    item = get_item(client, context_id, item_id)
    _apply(client, context_id, item, body)
    db.session.commit()
    return to_json(client, item)


def delete_item(client: DevClient, context_id: str, item_id: int) -> None:
    item = get_item(client, context_id, item_id)
    owner = db.session.execute(db.select(DevResourceLink).filter_by(line_item_id=item.id)).scalar_one_or_none()
    if owner is not None:
        raise ServiceError(403, "This line item is the gradebook column of an activity; delete the activity instead.")
    db.session.execute(db.delete(DevScore).where(DevScore.line_item_id == item.id))
    db.session.delete(item)
    db.session.commit()


# -- scores ---------------------------------------------------------------------------------


def _parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else None


def _number(body: dict, key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ServiceError(400, f"{key} must be a number.")
    return float(value)


def post_score(client: DevClient, context_id: str, item_id: int, body, idempotency_key: str | None = None) -> DevScore:
    """Store a score (AGS §3.4.5 score fields, §3.4.6 timestamp rule), once per ``idempotency_key``."""
    item = get_item(client, context_id, item_id)
    if idempotency_key:
        idempotency_key = idempotency_key[:255]
        stored = _stored_score(item.id, idempotency_key)
        if stored is not None:
            return stored
    if not isinstance(body, dict):
        raise ServiceError(400, "The body must be a JSON score object.")
    user_id = body.get("userId")
    found = platform.user_by_sub(user_id) if isinstance(user_id, (str, int)) and not isinstance(user_id, bool) else None
    if found is None:
        raise ServiceError(400, f"userId {user_id!r} is not a user of this course.")
    if not platform.is_gradable(found[1]):
        raise ServiceError(400, f"userId {user_id!r} is not graded in this course (only learners are).")
    if body.get("activityProgress") not in ACTIVITY_PROGRESS:
        raise ServiceError(400, f"activityProgress must be one of {sorted(ACTIVITY_PROGRESS)}.")
    if body.get("gradingProgress") not in GRADING_PROGRESS:
        raise ServiceError(400, f"gradingProgress must be one of {sorted(GRADING_PROGRESS)}.")
    timestamp = body.get("timestamp")
    if not isinstance(timestamp, str) or _parse_time(timestamp) is None:
        raise ServiceError(400, "timestamp is required: an ISO 8601 date-time with a time zone.")
    given = _number(body, "scoreGiven")
    maximum = _number(body, "scoreMaximum")
    if given is not None:
        if given < 0:
            raise ServiceError(400, "scoreGiven must not be negative.")
        if maximum is None:
            raise ServiceError(400, "scoreMaximum is required when scoreGiven is given.")
    if maximum is not None and maximum <= 0:
        raise ServiceError(400, "scoreMaximum must be greater than 0.")
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise ServiceError(400, "comment must be a string.")
    score = DevScore(line_item_id=item.id, user_id=str(user_id), score_given=given, score_maximum=maximum,
                     activity_progress=body["activityProgress"], grading_progress=body["gradingProgress"],
                     timestamp=timestamp, comment=comment, idempotency_key=idempotency_key or None)
    db.session.add(score)
    try:
        db.session.commit()
    except IntegrityError:  # the same retried POST, in another worker at the same moment
        db.session.rollback()
        stored = _stored_score(item.id, idempotency_key) if idempotency_key else None
        if stored is None:
            raise
        return stored
    return score


def _stored_score(item_id: int, idempotency_key: str) -> DevScore | None:
    return db.session.execute(db.select(DevScore).filter_by(line_item_id=item_id, idempotency_key=idempotency_key)
                              ).scalar_one_or_none()


def effective_scores(scores: list[DevScore]) -> tuple[dict[tuple[int, str], DevScore], set[int]]:
    """The score that counts per (line item, user), and the ids of scores ignored because an
    earlier arrival had a newer timestamp (AGS §3.4.6)."""
    current: dict[tuple[int, str], DevScore] = {}
    ignored: set[int] = set()
    for score in sorted(scores, key=lambda s: s.id):
        key = (score.line_item_id, score.user_id)
        best = current.get(key)
        if best is not None and _parse_time(score.timestamp) < _parse_time(best.timestamp):
            ignored.add(score.id)
            continue
        current[key] = score
    return current, ignored


def grade(item: DevLineItem, score: DevScore) -> float | None:
    """Moodle's final grade: scoreGiven / scoreMaximum x item maximum, only when FullyGraded."""
    if score.score_given is None or score.grading_progress != "FullyGraded":
        return None
    return score.score_given / (score.score_maximum or 1.0) * item.score_maximum


# -- results ----------------------------------------------------------------------------------


def results(client: DevClient, context_id: str, item_id: int, args) -> tuple[list[dict], str | None]:
    item = get_item(client, context_id, item_id)
    scores = list(db.session.execute(db.select(DevScore).filter_by(line_item_id=item.id)).scalars())
    current, _ = effective_scores(scores)
    rows = sorted(current.values(), key=lambda s: int(s.user_id) if s.user_id.isdigit() else 0)
    if args.get("user_id"):
        rows = [s for s in rows if s.user_id == str(args["user_id"])]
    limit, start = paging(args)
    page = rows[start:start + limit] if limit else rows[start:]
    base = platform.platform_url("devplatform.results", context_id=context_id, item_id=item.id)
    lineitem = platform.lineitem_url(client.id, item)
    out = []
    for score in page:
        result = {"id": f"{base}?type_id={client.id}&user_id={score.user_id}", "scoreOf": lineitem,
                  "userId": score.user_id, "resultMaximum": item.score_maximum}
        value = grade(item, score)
        if value is not None:
            result["resultScore"] = value
        if score.comment:
            result["comment"] = score.comment
        out.append(result)
    return out, next_link(base, args, limit, start, len(rows))


# -- fault injection (tests) --------------------------------------------------------------------

FAULT_KEY = "devplatform:ags-fault"
FAULT_MODES = ("down", "reset", "slow", "error", "throttle", "refuse", "incorrect_score")
FAULT_ENDPOINTS = ("scores", "lineitems", "lineitem", "results", "token", "memberships")
FAULT_FOREVER = 7 * 24 * 3600
MAX_SLOW = 120.0


class FaultSchema(Schema):
    """A fault to inject (``PUT /devplatform/faults``)."""

    mode = fields.String(required=True, validate=validate.OneOf(FAULT_MODES))
    endpoints = fields.List(fields.String(validate=validate.OneOf(FAULT_ENDPOINTS)), validate=validate.Length(min=1),
                            load_default=lambda: ["scores"])
    calls = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=0))
    seconds = fields.Float(allow_none=True, load_default=None, validate=validate.Range(min=0))
    delay = fields.Float(load_default=1.0, validate=validate.Range(min=0, max=MAX_SLOW))
    retry_after = fields.Integer(load_default=1, validate=validate.Range(min=0))


def set_fault(spec) -> dict:
    """Inject a fault (see the module docstring). ``spec``: ``mode``; ``endpoints`` (default
    ``["scores"]``); ``calls`` (the next K calls) and/or ``seconds`` (for T seconds), neither: until
    cleared; ``delay`` (``slow``, seconds); ``retry_after`` (``throttle``, seconds, default 1)."""
    if not isinstance(spec, dict):
        raise ServiceError(400, "The body must be a JSON object with at least a mode.")
    try:
        fault = FaultSchema().load(spec)
    except ValidationError as err:
        raise ServiceError(400, "; ".join(f"{name}: {' '.join(map(str, msgs if isinstance(msgs, list) else [msgs]))}"
                                          for name, msgs in sorted(err.messages.items())))
    now = time.time()
    fault.update(id=secrets.token_hex(6), since=now, until=now + fault["seconds"] if fault["seconds"] is not None else None)
    store().put(FAULT_KEY, fault, max(1, int(fault["seconds"])) if fault["seconds"] else FAULT_FOREVER)
    return describe_fault(fault)


def clear_fault() -> None:
    store().delete(FAULT_KEY)


def _served_key(fault: dict) -> str:
    return f"{FAULT_KEY}:{fault['id']}:served"


def describe_fault(fault: dict | None = None) -> dict:
    """The fault in force (``active``) and how many calls it answered (``served``)."""
    fault = fault if fault is not None else store().get(FAULT_KEY)
    if fault is None:
        return {"active": False}
    served = int(store().get(_served_key(fault)) or 0)
    left = None if fault.get("calls") is None else max(0, int(fault["calls"]) - served)
    active = left != 0 and (fault.get("until") is None or time.time() < fault["until"])
    return {**fault, "active": active, "served": min(served, fault["calls"]) if fault.get("calls") is not None
            else served, "calls_left": left}


def fault_for(endpoint: str) -> dict | None:
    """The fault that answers this call of ``endpoint`` (counting it), or None."""
    fault = store().get(FAULT_KEY)
    if fault is None or endpoint not in fault["endpoints"]:
        return None
    if fault.get("until") is not None and time.time() >= fault["until"]:
        return None
    served = store().incr(_served_key(fault), FAULT_FOREVER)
    if fault.get("calls") is not None and served > fault["calls"]:
        return None
    return fault


_FAULT_ENDPOINTS = {"devplatform.scores": "scores", "devplatform.lineitems": "lineitems",
                    "devplatform.lineitem": "lineitem", "devplatform.results": "results", "devplatform.token": "token",
                    "devplatform.memberships": "memberships"}  # NRPS too (the roster dashboard's tests)


def fault_response(endpoint: str | None) -> Response | None:
    """What a failing LMS answers to this request, or None to answer normally (``slow`` sleeps first)."""
    name = _FAULT_ENDPOINTS.get(endpoint or "")
    fault = fault_for(name) if name else None
    if fault is None:
        return None
    mode = fault["mode"]
    if mode == "slow":
        time.sleep(fault["delay"])
        return None
    if mode == "reset":
        sock = request.environ.get("gunicorn.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the tool sees the connection drop, no answer
            except OSError:
                pass
        return Response("", status=503)
    if mode == "down":
        return Response("<html><body><h1>503 Service Unavailable</h1>No server is available to handle this request."
                        "</body></html>", status=503, mimetype="text/html")
    if mode == "error":
        return Response("<html><body><h1>Internal Server Error</h1></body></html>", status=500, mimetype="text/html")
    if mode == "throttle":
        return Response('{"error": "too_many_requests"}', status=429, mimetype="application/json",
                        headers={"Retry-After": str(fault["retry_after"])})
    if mode == "refuse":
        # Moodle's answer when the tool type does not accept grades (mod/lti/services: check_tool fails).
        return Response("Unauthorized", status=401, mimetype="text/plain")
    return Response("Incorrect score received", status=400, mimetype="text/plain")
