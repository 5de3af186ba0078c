"""Deep Linking 2.0, tool side: what the platform asked for, and the signed answer.

A teacher's ``LtiDeepLinkingRequest`` (DL 2.0 §4.4) carries ``deep_linking_settings``
(§4.4.1): where to return (``deep_link_return_url``), which content item types the platform
takes (``accept_types``), whether it takes several (``accept_multiple``), whether it turns a
``lineItem`` into a gradebook column (``accept_lineitem``) and an opaque ``data`` value.
The picker (:mod:`.views`) lets the teacher choose a course or modules of it; this module turns
the choice into ``ltiResourceLink`` content items (§3.2) and the ``LtiDeepLinkingResponse`` JWT
(§4.5), signed with the tool's active key (:mod:`lms_bridge.lti.keys`):

* ``iss`` the tool's client_id, ``aud`` the platform's issuer, ``iat``/``exp``, a fresh ``nonce``;
* ``deployment_id`` of the request, ``message_type`` ``LtiDeepLinkingResponse``, ``version``
  ``1.3.0``, the request's ``data`` echoed unchanged (§4.5.1) whenever it had one;
* ``content_items``: ``ltiResourceLink`` items with ``title``, ``text``, ``url`` (the tool's
  one launch URL), ``custom`` naming the course (and module) for
  :mod:`lms_bridge.player.binding`, and a ``lineItem`` (§3.2.2: ``scoreMaximum``, ``label``,
  ``resourceId``, ``tag``) unless the platform said it ignores line items.

The JWT travels to the return URL in a form POSTed by the teacher's browser (§4.5), which works
inside an LMS iframe without any cookie. One request gets one response: :func:`claim` refuses a
second submission of the same request on every worker.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from ..lti import directory
from ..lti.keys import sign_jwt
from ..lti.launch import DL, C
from ..lti.state import LaunchSession
from ..packages.models import Course, Module
from ..player.binding import course_ref, resource_id
from ..shared_store import store
from ..web import public_url

RESOURCE_LINK = "ltiResourceLink"
RESPONSE_LIFETIME = 600  # seconds: the teacher's browser posts it at once, or at a click without JavaScript
TAG = "lms_bridge"
SCORE_MAXIMUM_DEFAULT = 100.0
CLAIMED_PREFIX = "dl-response:"


class DeepLinkingError(Exception):
    """A selection that cannot be returned; the message says why and what to do."""

    def __init__(self, message: str, status: int = 400, code: str = "deep_linking_refused"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


@dataclass(frozen=True)
class DeepLinkingSettings:
    """The ``deep_linking_settings`` claim (DL 2.0 §4.4.1) of a request."""

    return_url: str
    accept_types: tuple[str, ...]
    accept_multiple: bool
    accept_lineitem: bool | None
    accept_presentation_document_targets: tuple[str, ...]
    auto_create: bool
    title: str | None
    text: str | None
    data: Any = None
    has_data: bool = False

    @classmethod
    def of(cls, launch: LaunchSession) -> DeepLinkingSettings:
        raw = launch.claims.get(DL + "deep_linking_settings")
        if launch.message_type != "LtiDeepLinkingRequest" or not isinstance(raw, dict):
            raise DeepLinkingError("This launch is not a deep linking request: open \"Add content\" (or \"Select "
                                   "content\") in your LMS again.", 403, "not_deep_linking")
        types = raw.get("accept_types")
        targets = raw.get("accept_presentation_document_targets")
        return cls(
            return_url=str(raw.get("deep_link_return_url") or ""),
            accept_types=tuple(t for t in types if isinstance(t, str)) if isinstance(types, list) else (),
            # DL §4.4.1: accept_multiple is optional; absent means one item only.
            accept_multiple=raw.get("accept_multiple") is True or raw.get("accept_multiple") == "true",
            accept_lineitem=raw.get("accept_lineitem") if isinstance(raw.get("accept_lineitem"), bool) else None,
            accept_presentation_document_targets=tuple(t for t in targets if isinstance(t, str))
            if isinstance(targets, list) else (),
            auto_create=raw.get("auto_create") is True,
            title=raw.get("title") if isinstance(raw.get("title"), str) else None,
            text=raw.get("text") if isinstance(raw.get("text"), str) else None,
            data=raw.get("data"), has_data="data" in raw,
        )

    @property
    def accepts_resource_links(self) -> bool:
        return RESOURCE_LINK in self.accept_types

    @property
    def line_items(self) -> bool:
        """Whether a ``lineItem`` is worth sending (absent ``accept_lineitem``: it may be used)."""
        return self.accept_lineitem is not False


@dataclass
class ResourceLinkItem:
    """One ``ltiResourceLink`` content item (DL 2.0 §3.2) for a course or one of its modules."""

    course: Course
    module: Module | None
    title: str
    text: str | None = None
    score_maximum: float | None = SCORE_MAXIMUM_DEFAULT
    custom: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.custom:
            self.custom = {"course": course_ref(self.course)}
            if self.module is not None:
                self.custom["module"] = self.module.identifier

    def to_json(self, *, url: str, line_item: bool) -> dict:
        item: dict = {"type": RESOURCE_LINK, "title": self.title, "url": url, "custom": dict(self.custom)}
        if self.text:
            item["text"] = self.text
        if line_item and self.score_maximum is not None:
            # §3.2.2: the platform makes the link's gradebook column from this (Moodle: its maximum grade).
            item["lineItem"] = {"scoreMaximum": self.score_maximum, "label": self.title,
                                "resourceId": resource_id(self.course, self.module), "tag": TAG}
        return item


def check_selection(settings: DeepLinkingSettings, items: list[ResourceLinkItem]) -> None:
    """Refuse what the platform said it will not take (DL 2.0 §4.4.1)."""
    if items and not settings.accepts_resource_links:
        raise DeepLinkingError("Your LMS does not accept LTI resource links here, so lms_bridge cannot add a course. "
                               "Return to the LMS and add lms_bridge as an external tool activity instead.",
                               400, "types_not_accepted")
    if len(items) > 1 and not settings.accept_multiple:
        raise DeepLinkingError("Your LMS accepts one item only here: choose the whole course or one module.",
                               400, "one_item_only")


def response_claims(launch: LaunchSession, items: list[ResourceLinkItem], *, msg: str | None = None,
                    errormsg: str | None = None) -> dict:
    """The ``LtiDeepLinkingResponse`` claims (DL 2.0 §4.5) for ``items`` (none: nothing chosen)."""
    settings = DeepLinkingSettings.of(launch)
    check_selection(settings, items)
    reg = directory.registration(launch.registration_id)
    if reg is None:
        raise DeepLinkingError("The platform's registration is no longer in lms_bridge.", 403, "unknown_registration")
    now = int(time.time())
    url = public_url("lti.launch")
    claims: dict = {
        "iss": reg.client_id, "aud": reg.issuer, "iat": now, "exp": now + RESPONSE_LIFETIME,
        "nonce": uuid.uuid4().hex,
        C + "message_type": "LtiDeepLinkingResponse", C + "version": "1.3.0",
        C + "deployment_id": launch.claims.get(C + "deployment_id"),
        DL + "content_items": [item.to_json(url=url, line_item=settings.line_items) for item in items],
    }
    if settings.has_data:
        claims[DL + "data"] = settings.data
    if msg:
        claims[DL + "msg"] = msg
    if errormsg:
        claims[DL + "errormsg"] = errormsg
    return claims


def claim(launch: LaunchSession) -> bool:
    """Take the one response of this request (True the first time, on any worker)."""
    nonce = launch.claims.get("nonce") or launch.token
    ttl = int(current_app.config["LAUNCH_TOKEN_TTL"]) + 60
    return store().add(f"{CLAIMED_PREFIX}{launch.registration_id}:{nonce}", 1, ttl)


def was_claimed(launch: LaunchSession) -> bool:
    nonce = launch.claims.get("nonce") or launch.token
    return store().get(f"{CLAIMED_PREFIX}{launch.registration_id}:{nonce}") is not None


@dataclass
class SignedResponse:
    return_url: str
    jwt: str
    claims: dict


def respond(launch: LaunchSession, items: list[ResourceLinkItem], *, msg: str | None = None,
            errormsg: str | None = None) -> SignedResponse:
    """Check, take the request's one response, and sign it. Raises DeepLinkingError."""
    settings = DeepLinkingSettings.of(launch)
    claims = response_claims(launch, items, msg=msg, errormsg=errormsg)
    if not claim(launch):
        raise DeepLinkingError("This content selection was already sent to your LMS. To add more, start \"Add "
                               "content\" in your LMS again.", 409, "already_returned")
    return SignedResponse(settings.return_url, sign_jwt(claims), claims)
