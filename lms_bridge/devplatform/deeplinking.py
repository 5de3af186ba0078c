"""Deep Linking 2.0, platform side: receiving the tool's ``LtiDeepLinkingResponse``.

The tool's page POSTs a form field ``JWT`` to the ``deep_link_return_url`` of the request
(DL §4.5 "Deep linking response message").  Like Moodle, the JWT is verified with the
tool's JWK Set fetched over HTTP; ``iss`` must be the tool's client_id, ``aud`` this
platform's issuer, ``exp``/``iat`` must be valid, and the LTI claims must be those of a
response: version 1.3.0, message_type ``LtiDeepLinkingResponse``, the deployment_id of the
request and the request's ``data`` echoed back (§4.5.1, §4.4.1).  A nonce is not required
(the one-time ``sesskey`` of the return URL binds the response to its request), but when
present it is accepted only once.

``ltiResourceLink`` content items (§3.2) become activities of the course with their own
gradebook column; a ``lineItem`` (§3.2.2, like Moodle: ``scoreMaximum`` becomes the
column's maximum) sets its label, maximum, ``resourceId`` and ``tag``.  Custom parameters
are kept on the activity and sent with its launches.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import jwt
from flask import current_app

from ..extensions import db
from ..shared_store import store
from . import platform
from .models import DevResourceLink
from .oauth import KeySetError, verify_tool_jwt

C = platform.C
DL = platform.DL


# What a teacher may change in a deep linking request from the launch page (DL 2.0 §4.4.1), as
# ``dl_<name>`` query parameters; everything else stays as Moodle sends it.
CONTENT_ITEM_TYPES = ("ltiResourceLink", "link", "file", "html", "image")


def request_options(values) -> dict:
    """``accept_types``, ``accept_multiple`` and ``accept_lineitem`` for the deep linking settings,
    from ``dl_accept_types`` (comma-separated), ``dl_accept_multiple`` and ``dl_accept_lineitem``
    (``1``/``0``), or a dict of them as carried in the message hint. Raises ValueError."""
    if not values:
        return {}
    options: dict = {}
    types = values.get("dl_accept_types", values.get("accept_types"))
    if types not in (None, ""):
        names = [t.strip() for t in types.split(",")] if isinstance(types, str) else types
        if not isinstance(names, list) or not names or any(t not in CONTENT_ITEM_TYPES for t in names):
            raise ValueError(f"accept_types must be a comma-separated list of {', '.join(CONTENT_ITEM_TYPES)}")
        options["accept_types"] = list(dict.fromkeys(names))
    for name in ("accept_multiple", "accept_lineitem"):
        value = values.get("dl_" + name, values.get(name))
        if value in (None, ""):
            continue
        if value not in ("0", "1", True, False):
            raise ValueError(f"{name} must be 1 or 0")
        options[name] = value in ("1", True)
    return options


class DeepLinkError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class DeepLinkResult:
    client_id: str
    links: list[DevResourceLink] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    msg: str | None = None
    errormsg: str | None = None


def _sesskey_record(sesskey: str) -> dict:
    record = store().get("devplatform:sesskey:" + sesskey) if sesskey else None
    if record is None:
        raise DeepLinkError(400, "The deep linking session (sesskey) is unknown, expired or already used. "
                                 "Start 'Deep link (add content)' again.")
    return record


def receive(token: str, sesskey: str) -> DeepLinkResult:
    if not token:
        raise DeepLinkError(400, "The deep linking response has no JWT form field.")
    record = _sesskey_record(sesskey)
    client = platform.client_by_id(record["client_id"])
    if client is None:
        raise DeepLinkError(400, "The tool that was asked for content is no longer registered.")
    client_id, deployment_id = client.client_id, client.deployment_id
    jwks_uri = (client.tool_configuration or {}).get("jwks_uri")
    tool_host = urlsplit((client.tool_configuration or {}).get("target_link_uri", "")).hostname
    default_target = platform.deep_linking_target(client)
    audience = platform.issuer()
    db.session.rollback()  # no transaction open across the HTTP fetch of the tool's keys
    try:
        claims = verify_tool_jwt(token, client_id=client_id, jwks_uri=jwks_uri or "", audience=audience)
    except KeySetError as exc:
        raise DeepLinkError(401, f"The response's signature could not be checked: {exc}.")
    except jwt.InvalidAudienceError:
        raise DeepLinkError(401, f"The response's aud must be this platform's issuer {audience}.")
    except jwt.InvalidIssuerError:
        raise DeepLinkError(401, f"The response's iss must be the tool's client_id {client_id}.")
    except jwt.ExpiredSignatureError:
        raise DeepLinkError(401, "The response has expired (exp is in the past).")
    except jwt.ImmatureSignatureError:
        raise DeepLinkError(401, "The response is not valid yet (iat is in the future).")
    except jwt.MissingRequiredClaimError as exc:
        raise DeepLinkError(400, f"The response has no {exc.claim!r} claim.")
    except (jwt.InvalidTokenError, jwt.PyJWKError, ValueError, TypeError) as exc:
        raise DeepLinkError(401, f"The response JWT was refused: {exc}.")
    if claims.get(C + "message_type") != "LtiDeepLinkingResponse":
        raise DeepLinkError(400, "message_type must be LtiDeepLinkingResponse.")
    if claims.get(C + "version") != "1.3.0":
        raise DeepLinkError(400, "version must be 1.3.0.")
    if str(claims.get(C + "deployment_id")) != deployment_id:
        raise DeepLinkError(400, f"deployment_id must be {deployment_id!r}, the deployment of the request.")
    if claims.get(DL + "data") != record["data"]:
        raise DeepLinkError(400, "The response does not echo the request's data claim.")
    nonce = claims.get("nonce")
    if nonce:
        ttl = int(claims["exp"] - time.time()) + 60 + current_app.config.get("LTI_LEEWAY_SECONDS", 10)
        if not store().add(f"devplatform:dl-nonce:{client_id}:{nonce}", 1, max(ttl, 60)):
            raise DeepLinkError(401, "This deep linking response was already received (nonce replay).")
    items = claims.get(DL + "content_items") or []
    if not isinstance(items, list):
        raise DeepLinkError(400, "content_items must be a list.")
    if store().take("devplatform:sesskey:" + sesskey) is None:
        raise DeepLinkError(400, "This deep linking session was already used.")
    client = platform.client_by_id(client_id)
    result = DeepLinkResult(client_id, msg=_text(claims.get(DL + "msg")), errormsg=_text(claims.get(DL + "errormsg")))
    for index, item in enumerate(items):
        if not isinstance(item, dict) or item.get("type") != "ltiResourceLink":
            kind = item.get("type") if isinstance(item, dict) else type(item).__name__
            result.ignored.append(f"item {index + 1}: type {kind!r} is not accepted (only ltiResourceLink)")
            continue
        problem = _place(client, item, tool_host, default_target, result)
        if problem:
            result.ignored.append(f"item {index + 1}: {problem}")
    db.session.commit()
    return result


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _place(client, item: dict, tool_host: str | None, default_target: str, result: DeepLinkResult) -> str | None:
    url = item.get("url") or default_target
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        return f"url {url!r} is not an absolute http(s) URL"
    if tool_host and parts.hostname != tool_host:
        return f"url {url!r} is not on the tool's domain {tool_host}"
    custom = item.get("custom") or {}
    if not isinstance(custom, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in custom.items()):
        return "custom must be an object of strings"
    line_item = item.get("lineItem")
    maximum, label, resource_id, tag = 100.0, None, None, None
    if line_item is not None:
        if not isinstance(line_item, dict):
            return "lineItem must be an object"
        raw = line_item.get("scoreMaximum")
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw <= 0:
            return "lineItem.scoreMaximum must be a number greater than 0"
        maximum = float(raw)
        label = line_item.get("label") if isinstance(line_item.get("label"), str) else None
        resource_id = line_item.get("resourceId") if isinstance(line_item.get("resourceId"), str) else None
        tag = line_item.get("tag") if isinstance(line_item.get("tag"), str) else None
    title = item.get("title") if isinstance(item.get("title"), str) and item.get("title") else "Untitled activity"
    text = item.get("text") if isinstance(item.get("text"), str) else None
    link = platform.place_link(client, title=title[:500], target_link_uri=url, text=text, custom=custom,
                               score_maximum=maximum, line_item_label=label, resource_id=resource_id, tag=tag)
    result.links.append(link)
    return None
