"""Assignment and Grade Services 2.0 client, tool side (1EdTech LTI AGS 2.0).

* Line item service (AGS §3.2): list a ``lineitems`` container following ``Link: <...>;
  rel="next"`` pages (§3.2.5), find the line item of a resource link by ``resourceLinkId`` and
  ``resourceId`` (never by ``tag`` alone: two activities with one tag would share a column), create
  (§3.2.4, Moodle answers 201), read, update (§3.2.7, PUT) and delete (§3.2.8) one.
* Score publish service (AGS §3.4): ``POST <lineitem>/scores`` (Moodle answers 200 with the body
  ``null``; 201, 202 and 204 are success too).
* Result service (AGS §3.3): ``GET <lineitem>/results``, paged.

Service URLs may carry a query string (Moodle: ``.../lineitems/17/lineitem?type_id=5``):
``/scores`` and ``/results`` go into the path, before the ``?`` (:func:`service_url`).

Every call asks :mod:`.tokens` for a token with only the scope it needs and has a timeout
(``HTTP_TIMEOUT``). Failures raise :class:`AgsError`, which says whether a retry can help
(``transient``: timeouts, connection errors, 408, 429, 5xx, with the platform's ``Retry-After``)
and, for the refusals an operator must act on, what to do (401 from Moodle when the tool may not
send grades, Moodle's 400 "Incorrect score received").
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests

from ..http_client import parse_retry_after, session, timeout
from . import tokens

AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
SCOPE_LINEITEM = AGS + "lineitem"
SCOPE_LINEITEM_READONLY = AGS + "lineitem.readonly"
SCOPE_RESULT_READONLY = AGS + "result.readonly"
SCOPE_SCORE = AGS + "score"
LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEMS_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
RESULTS_TYPE = "application/vnd.ims.lis.v2.resultcontainer+json"
ACTIVITY_PROGRESS = ("Initialized", "Started", "InProgress", "Submitted", "Completed")
GRADING_PROGRESS = ("FullyGraded", "Pending", "PendingManual", "Failed", "NotReady")
MAX_PAGES = 500  # a platform whose "next" links never end must not keep a worker forever
# A 401 with a token older than this may be an expired or revoked token: fetch one and try again.
# With a newer token, 401 means the platform refuses the call itself.
RETRY_401_AFTER = 30.0
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524}

ACCEPT_GRADES_HINT = (
    "The platform refused the score with HTTP 401: lms_bridge is not allowed to send grades. In Moodle, edit the "
    "tool (Site administration > Plugins > Activity modules > External tool > Manage tools > lms_bridge) and set "
    "Privacy > 'Accept grades from the tool' to 'Always' (or to 'Delegate to teacher' and allow it in the "
    "activity's settings), and check that Services > 'IMS LTI Assignment and Grade Services' is set to 'Use this "
    "service for grade sync and column management'. Then retry this delivery.")
SERVICE_REFUSED_HINT = (
    "The platform refused lms_bridge's access token for this service: check that the tool's registration offers "
    "'IMS LTI Assignment and Grade Services' (Moodle: Manage tools > lms_bridge > Services: 'Use this service for "
    "grade sync and column management'), then retry.")
INCORRECT_SCORE_HINT = (
    "The platform refused the score with HTTP 400 \"Incorrect score received\" (Moodle's answer to a score it cannot "
    "store: scoreGiven negative or without scoreMaximum, an unknown activityProgress/gradingProgress, or a userId "
    "that is not a learner of the course). Check the payload below and the learner's enrolment; retrying the same "
    "score will not help.")


class AgsError(Exception):
    """An AGS call failed. ``transient``: a later retry may succeed; ``status``: the HTTP status when
    there was an answer; ``retry_after``: seconds the platform asked us to wait."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.retry_after = retry_after

    @property
    def short(self) -> str:
        return f"HTTP {self.status}" if self.status else ("unreachable" if self.transient else "refused")


# --------------------------------------------------------------------------- URLs and headers


def service_url(lineitem_url: str, suffix: str) -> str:
    """``<lineitem>/scores`` or ``/results`` with the suffix in the path, before any query string
    (Moodle answers 400 "No handler found" when it comes after the ``?``)."""
    parts = urlsplit(lineitem_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/" + suffix, parts.query, ""))


def with_query(url: str, params: dict) -> str:
    """``url`` with ``params`` added to the query it already has (Moodle's ``type_id`` stays)."""
    if not params:
        return url
    parts = urlsplit(url)
    names = set(params)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    query += [(k, str(v)) for k, v in params.items() if v is not None]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


_LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]+)*)')
_PARAM = re.compile(r';\s*([A-Za-z*-]+)\s*=\s*("[^"]*"|[^;,\s]*)')


def parse_link_header(value: str | None, base_url: str = "") -> dict[str, str]:
    """``Link`` header (RFC 8288) to ``{rel: absolute URL}``; a ``rel`` may name several relations
    (``rel="next last"``), and relative references resolve against ``base_url``."""
    links: dict[str, str] = {}
    for match in _LINK.finditer(value or ""):
        target, params = match.group(1).strip(), match.group(2)
        for name, raw in _PARAM.findall(params):
            if name.lower() != "rel":
                continue
            for rel in raw.strip('"').split():
                links.setdefault(rel.lower(), urljoin(base_url, target))
    return links


def _excerpt(resp: requests.Response) -> str:
    text = re.sub(r"<[^>]+>", " ", resp.text or "")
    return " ".join(text.split())[:300]


# --------------------------------------------------------------------------- calls


def _call(registration, method: str, url: str, scopes: list[str], *, body=None, content_type: str | None = None,
          accept: str | None = None, extra_headers: dict | None = None) -> requests.Response:
    """One authorised call: a cached token with ``scopes``; once more with a new token when a 401
    may mean the token itself expired. Raises :class:`AgsError` on a failed answer."""
    for attempt in (1, 2):
        try:
            token = tokens.access_token(registration, scopes)
        except tokens.TokenError as exc:
            raise AgsError(f"no access token: {exc}", transient=exc.transient, status=exc.status,
                           retry_after=exc.retry_after) from exc
        headers = {"Authorization": f"Bearer {token.value}", **(extra_headers or {})}
        if accept:
            headers["Accept"] = accept
        if content_type:
            headers["Content-Type"] = content_type
        data = None if body is None else json.dumps(body)
        try:
            resp = _send(method, url, data, headers)
        except requests.Timeout as exc:
            raise AgsError(f"{method} {url}: no answer within {timeout():g} s", transient=True) from exc
        except requests.RequestException as exc:
            raise AgsError(f"{method} {url}: could not connect ({exc.__class__.__name__})", transient=True) from exc
        if resp.status_code == 401 and attempt == 1 and token.age(time.time()) > RETRY_401_AFTER:
            tokens.discard(registration, token)
            continue
        if resp.status_code < 300:
            return resp
        raise _failure(method, url, resp)
    raise AssertionError("unreachable")


_environment: dict[str, dict] = {}


def _send(method: str, url: str, data: str | None, headers: dict) -> requests.Response:
    """The request on the pooled session, prepared without cookies or ``.netrc`` look-ups, and with the
    proxy and CA settings of the environment read once per origin (the service calls' hot path:
    ``Session.request`` re-reads them on every call)."""
    http = session()
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    settings = _environment.get(origin)
    if settings is None:
        settings = _environment[origin] = http.merge_environment_settings(origin, {}, None, None, None)
    prepared = requests.PreparedRequest()
    prepared.prepare(method=method, url=url, headers={**http.headers, **headers}, data=data)
    return http.send(prepared, timeout=timeout(), allow_redirects=False, **settings)


def _failure(method: str, url: str, resp: requests.Response) -> AgsError:
    status = resp.status_code
    what = f"{method} {url} answered HTTP {status}"
    excerpt = _excerpt(resp)
    if status in TRANSIENT_STATUSES:
        return AgsError(f"{what}" + (f": {excerpt}" if excerpt else ""), transient=True, status=status,
                        retry_after=parse_retry_after(resp.headers.get("Retry-After")))
    if status == 401:
        hint = ACCEPT_GRADES_HINT if urlsplit(url).path.endswith("/scores") else SERVICE_REFUSED_HINT
        return AgsError(f"{what}. {hint}" + (f" (platform said: {excerpt})" if excerpt else ""),
                        transient=False, status=status)
    if status == 400 and "incorrect score" in excerpt.lower():
        return AgsError(f"{what}: {excerpt}. {INCORRECT_SCORE_HINT}", transient=False, status=status)
    if status == 403:
        return AgsError(f"{what}: the access token lacks the scope this call needs or the line item belongs to "
                        f"another tool ({excerpt})", transient=False, status=status)
    if status == 404:
        return AgsError(f"{what}: the line item is not there (the activity or its gradebook column was deleted?)"
                        + (f" ({excerpt})" if excerpt else ""), transient=False, status=status)
    return AgsError(f"{what}" + (f": {excerpt}" if excerpt else ""), transient=False, status=status)


def _json(resp: requests.Response, what: str):
    try:
        return resp.json()
    except ValueError as exc:
        raise AgsError(f"{what}: the answer is not JSON ({resp.headers.get('Content-Type', '')})", transient=False,
                       status=resp.status_code) from exc


def _pages(registration, url: str, scopes: list[str], accept: str) -> list:
    """Every element of a paged container, following ``rel="next"`` links (AGS §3.2.5)."""
    items: list = []
    seen: set[str] = set()
    while url and url not in seen and len(seen) < MAX_PAGES:
        seen.add(url)
        resp = _call(registration, "GET", url, scopes, accept=accept)
        page = _json(resp, f"GET {url}")
        if not isinstance(page, list):
            raise AgsError(f"GET {url}: expected a JSON array, got {type(page).__name__}", transient=False,
                           status=resp.status_code)
        items.extend(page)
        url = parse_link_header(resp.headers.get("Link"), url).get("next")
    return items


# --------------------------------------------------------------------------- line items (AGS §3.2)


@dataclass(frozen=True)
class LineItemRef:
    """A line item as the platform shows it (AGS §3.2.1)."""

    id: str
    label: str
    score_maximum: float
    resource_link_id: str | None = None
    resource_id: str | None = None
    tag: str | None = None

    @classmethod
    def of(cls, data: dict) -> LineItemRef:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise AgsError("the platform returned a line item without an id", transient=False)
        return cls(id=data["id"], label=str(data.get("label") or ""), score_maximum=float(data.get("scoreMaximum") or 0),
                   resource_link_id=data.get("resourceLinkId"), resource_id=data.get("resourceId"), tag=data.get("tag"))


def list_line_items(registration, lineitems_url: str, *, resource_link_id: str | None = None,
                    resource_id: str | None = None, tag: str | None = None, limit: int | None = None,
                    scope: str = SCOPE_LINEITEM_READONLY) -> list[LineItemRef]:
    """Line items of a context, filtered by the platform (§3.2.4 query parameters) and again here:
    platforms may ignore filters they do not support. ``scope``: ``lineitem.readonly``, or
    ``lineitem`` (which allows reading too) for a caller that will write next with one token."""
    url = with_query(lineitems_url, {"resource_link_id": resource_link_id, "resource_id": resource_id, "tag": tag,
                                     "limit": limit})
    found = [LineItemRef.of(i) for i in _pages(registration, url, [scope], LINEITEMS_TYPE)]
    return [i for i in found
            if (resource_link_id is None or i.resource_link_id == resource_link_id)
            and (resource_id is None or i.resource_id == resource_id)
            and (tag is None or i.tag == tag)]


def find_line_item(registration, lineitems_url: str, *, resource_link_id: str, resource_id: str | None = None,
                   scope: str = SCOPE_LINEITEM_READONLY) -> LineItemRef | None:
    """The line item coupled to a resource link (and naming ``resource_id``), if the platform has one."""
    if not resource_link_id:
        raise ValueError("line items are matched by resourceLinkId (and resourceId), never by tag alone")
    found = list_line_items(registration, lineitems_url, resource_link_id=resource_link_id, resource_id=resource_id,
                            scope=scope)
    return found[0] if found else None


def _line_item_body(label: str, score_maximum: float, resource_link_id: str | None, resource_id: str | None,
                    tag: str | None) -> dict:
    body = {"label": label, "scoreMaximum": score_maximum}
    for key, value in (("resourceLinkId", resource_link_id), ("resourceId", resource_id), ("tag", tag)):
        if value:
            body[key] = value
    return body


def create_line_item(registration, lineitems_url: str, *, label: str, score_maximum: float,
                     resource_link_id: str | None = None, resource_id: str | None = None,
                     tag: str | None = None) -> LineItemRef:
    """POST a new line item to the container (§3.2.4; Moodle answers 201 with the item)."""
    body = _line_item_body(label, score_maximum, resource_link_id, resource_id, tag)
    resp = _call(registration, "POST", lineitems_url, [SCOPE_LINEITEM], body=body, content_type=LINEITEM_TYPE,
                 accept=LINEITEM_TYPE)
    return LineItemRef.of(_json(resp, f"POST {lineitems_url}"))


def get_line_item(registration, lineitem_url: str) -> LineItemRef:
    resp = _call(registration, "GET", lineitem_url, [SCOPE_LINEITEM_READONLY], accept=LINEITEM_TYPE)
    return LineItemRef.of(_json(resp, f"GET {lineitem_url}"))


def update_line_item(registration, lineitem_url: str, *, label: str, score_maximum: float,
                     resource_link_id: str | None = None, resource_id: str | None = None,
                     tag: str | None = None) -> LineItemRef:
    """PUT the full representation (§3.2.7: a PUT replaces the line item)."""
    body = {"id": lineitem_url, **_line_item_body(label, score_maximum, resource_link_id, resource_id, tag)}
    resp = _call(registration, "PUT", lineitem_url, [SCOPE_LINEITEM], body=body, content_type=LINEITEM_TYPE,
                 accept=LINEITEM_TYPE)
    return LineItemRef.of(_json(resp, f"PUT {lineitem_url}"))


def delete_line_item(registration, lineitem_url: str) -> None:
    """DELETE a line item the tool created (§3.2.8); one already gone counts as deleted."""
    try:
        _call(registration, "DELETE", lineitem_url, [SCOPE_LINEITEM])
    except AgsError as exc:
        if exc.status != 404:
            raise


# --------------------------------------------------------------------------- scores (§3.4) and results (§3.3)


def post_score(registration, lineitem_url: str, score: dict, *, idempotency_key: str | None = None) -> int:
    """POST one score (§3.4.5) to ``<lineitem>/scores``; returns the HTTP status (Moodle: 200, body ``null``).

    ``idempotency_key`` goes in an ``Idempotency-Key`` header: receivers that honour it store a
    retried score once; others (Moodle) store the same score again, which changes nothing.
    """
    url = service_url(lineitem_url, "scores")
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    resp = _call(registration, "POST", url, [SCOPE_SCORE], body=score, content_type=SCORE_TYPE, extra_headers=headers)
    return resp.status_code


def get_results(registration, lineitem_url: str, *, user_id: str | None = None,
                limit: int | None = None) -> list[dict]:
    """Results of a line item (§3.3), every page; ``user_id`` narrows to one learner."""
    url = with_query(service_url(lineitem_url, "results"), {"user_id": user_id, "limit": limit})
    return _pages(registration, url, [SCOPE_RESULT_READONLY], RESULTS_TYPE)
