"""Open Badge Factory (OBF, https://openbadgefactory.com): issue the course's badge to the learner.

OBF REST API v1 (``https://openbadgefactory.com/v1``, "Open Badge Factory API" documentation):

* ``POST /v1/client/oauth2/token`` with ``grant_type=client_credentials``, ``client_id``,
  ``client_secret`` (JSON) -> ``{"access_token", "token_type": "bearer", "expires_in"}``; the token
  is cached per client until shortly before it expires, and fetched again once on a 401/403;
* ``GET /v1/event/<client_id>?badge_id=<badge>&recipient=<e-mail>`` lists issuing events (JSON
  lines): an event whose ``log_entry`` carries this delivery's idempotency key means an earlier
  attempt already issued it (its answer was lost), so nothing is issued twice;
* ``POST /v1/badge/<client_id>/<badge_id>`` with ``recipient`` (e-mail addresses), ``issued_on``
  (Unix time), ``log_entry`` (our completion and idempotency key), ``api_consumer_id`` and
  ``send_email`` -> ``201 Created`` with ``Location: /v1/event/<client_id>/<event_id>``.

OBF issues to e-mail addresses: a completion whose LMS sent no e-mail cannot go to OBF (parked
with that explanation). The badge to issue is ``badge_id`` (per course through the course's
override) or ``badges[<package identifier>]``.
"""
from __future__ import annotations

import calendar
import json
import threading
import time
from collections.abc import Mapping

import requests

from ... import http_client
from ...outbox import Permanent, RetryLater
from ..models import IssuerProfile
from . import DeliveryContext, IssuerConnector, receiver_message, record_receipt, register, retry_after

DEFAULT_API = "https://openbadgefactory.com"
API_CONSUMER_ID = "lms_bridge"
_tokens: dict[tuple[str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def _api(settings: Mapping) -> str:
    return str(settings.get("api_base") or DEFAULT_API).rstrip("/")


def _call(method: str, url: str, **kwargs) -> requests.Response:
    limit = http_client.timeout()
    try:
        return http_client.session().request(method, url, timeout=limit, allow_redirects=False, **kwargs)
    except requests.Timeout as exc:
        raise RetryLater(f"Open Badge Factory ({url}) did not answer within {limit:g} s", status="timeout") from exc
    except requests.RequestException as exc:
        raise RetryLater(f"Open Badge Factory ({url}) could not be reached ({exc.__class__.__name__})",
                         status="unreachable") from exc


def _fail(resp: requests.Response, doing: str) -> None:
    """Raise the right outbox exception for an OBF error answer."""
    status = f"HTTP {resp.status_code}"
    message = receiver_message(resp) or "no explanation given"
    if resp.status_code in (408, 425, 429) or resp.status_code >= 500:
        raise RetryLater(f"Open Badge Factory answered {status} when {doing}: {message}",
                         retry_after=retry_after(resp), status=status)
    raise Permanent(f"Open Badge Factory refused {doing} with {status}: {message}. Check the open_badge_factory "
                    "settings (client id, secret, badge id), then retry the delivery.", status=status)


def access_token(settings: Mapping, *, refresh: bool = False) -> str:
    """An OAuth2 client-credentials access token for the OBF client (cached until near expiry)."""
    cache_key = (_api(settings), str(settings["client_id"]))
    cached = _tokens.get(cache_key)
    if cached and not refresh and cached[1] > time.time():
        return cached[0]
    resp = _call("POST", f"{_api(settings)}/v1/client/oauth2/token", json={
        "grant_type": "client_credentials", "client_id": settings["client_id"],
        "client_secret": settings["client_secret"]})
    if resp.status_code != 200:
        _fail(resp, "the access token request")
    try:
        data = resp.json()
        token = data["access_token"]
    except (ValueError, KeyError, TypeError):
        raise RetryLater("Open Badge Factory answered the token request without an access_token", status="bad token")
    lifetime = float(data.get("expires_in") or 3600)
    with _tokens_lock:
        _tokens[cache_key] = (token, time.time() + max(30.0, lifetime - 60))
    return token


def _authorised(method: str, url: str, settings: Mapping, **kwargs) -> requests.Response:
    """A call with the bearer token, fetched again once when OBF says it is no longer valid."""
    for refresh in (False, True):
        headers = {"Authorization": f"Bearer {access_token(settings, refresh=refresh)}", "Accept": "application/json"}
        resp = _call(method, url, headers=headers, **kwargs)
        if resp.status_code not in (401, 403):
            return resp
    return resp


def _events(resp: requests.Response) -> list[dict]:
    """OBF lists objects as JSON lines (one object per line), sometimes as a JSON array."""
    text = resp.text.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
        return [d for d in (data if isinstance(data, list) else [data]) if isinstance(d, dict)]
    except ValueError:
        events = []
        for line in text.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                events.append(item)
        return events


def _log_entry(event: dict) -> dict:
    entry = event.get("log_entry")
    if isinstance(entry, str):
        try:
            entry = json.loads(entry)
        except ValueError:
            return {}
    return entry if isinstance(entry, dict) else {}


def badge_for(settings: Mapping, course_identifier: str) -> str | None:
    badges = settings.get("badges") if isinstance(settings.get("badges"), Mapping) else {}
    return settings.get("badge_id") or badges.get(course_identifier)


@register
class OpenBadgeFactoryConnector(IssuerConnector):
    name = "open_badge_factory"
    label = "Open Badge Factory"
    setting_help = {
        "client_id": "the OBF API client id",
        "client_secret": "the OBF API client secret",
        "badge_id": "the OBF badge to issue (set it per course in the course override)",
        "badges": "or a map of course package identifier -> OBF badge id",
        "api_base": f"OBF address (default {DEFAULT_API})",
        "send_email": "false to let OBF skip its e-mail to the learner (default true)",
    }

    def check_settings(self, settings: Mapping) -> list[str]:
        problems = [f"{key} is missing" for key in ("client_id", "client_secret") if not settings.get(key)]
        if not settings.get("badge_id") and not settings.get("badges"):
            problems.append("badge_id (or a badges map per course) is missing")
        return problems

    def target(self, settings: Mapping, profile: IssuerProfile) -> str:
        return f"{_api(settings)} client {settings.get('client_id') or '(not configured)'}"

    def deliver(self, ctx: DeliveryContext) -> str:
        from ...extensions import db
        from ...lti.models import User

        completion, settings = ctx.completion, ctx.settings
        badge = badge_for(settings, completion.course_identifier)
        if not badge:
            raise Permanent(f"No Open Badge Factory badge is configured for course {completion.course_identifier!r}: "
                            "set badge_id in the course override (or badges in the issuer profile), then retry.",
                            status="no badge")
        user = db.session.get(User, completion.user_pk) if completion.user_pk is not None else None
        email = user.email if user is not None else None
        if not email:
            raise Permanent("Open Badge Factory issues badges to e-mail addresses, and the LMS sent none for this "
                            "learner: let the LMS share e-mail addresses with the tool, then retry.", status="no e-mail")
        client = settings["client_id"]
        api = _api(settings)
        # An earlier attempt may have issued it and lost the answer: look before issuing again.
        found = _authorised("GET", f"{api}/v1/event/{client}", settings,
                            params={"badge_id": badge, "recipient": email, "api_consumer_id": API_CONSUMER_ID})
        if found.status_code == 200:
            for event in _events(found):
                if _log_entry(event).get("idempotency_key") == ctx.idempotency_key:
                    record_receipt(completion.id, self.name, external_id=str(event.get("id")),
                                   note=f"already issued as event {event.get('id')}")
                    return f"already issued (event {event.get('id')})"
        elif found.status_code not in (404,):
            _fail(found, "the event lookup")
        body = {
            "recipient": [email],
            "issued_on": calendar.timegm(completion.completed_at.utctimetuple()),  # stored as naive UTC
            "api_consumer_id": API_CONSUMER_ID,
            "send_email": 0 if str(settings.get("send_email", True)).lower() in ("0", "false", "no") else 1,
            "log_entry": {"idempotency_key": ctx.idempotency_key, "completion": f"urn:uuid:{completion.uuid}",
                          "course": completion.course_identifier},
        }
        resp = _authorised("POST", f"{api}/v1/badge/{client}/{badge}", settings, json=body)
        if resp.status_code != 201:
            _fail(resp, "issuing the badge")
        location = resp.headers.get("Location", "")
        event_id = location.rstrip("/").rsplit("/", 1)[-1] if location else None
        record_receipt(completion.id, self.name, external_id=event_id, note=f"issued badge {badge} as event {event_id}")
        return f"HTTP 201, event {event_id}"
