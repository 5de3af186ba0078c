"""Issuer connectors: one interface, one file per way a completion reaches a credential issuer.

A completion record (:class:`~lms_bridge.credentials.models.Completion`) is delivered to each
connector its issuer profile (or the course's override) names, through the durable outbox: one
message per (completion, connector), kind ``credential.<connector>``, dedupe key
``<completion id>:<connector>`` and an idempotency key that is the same for that pair on every
attempt and every retry (:func:`idempotency_key`), so a receiver that got it once never acts twice.

Connectors (:func:`names`):

* ``builtin`` (:mod:`.builtin`): the built-in Open Badges 3.0 issuer signs the credential once;
* ``webhook`` (:mod:`.webhook`): a signed JSON completion record POSTed to a receiver (a skills hub);
* ``open_badge_factory`` (:mod:`.open_badge_factory`): Open Badge Factory's REST API v1;
* ``edc`` (:mod:`.edc`): the European Digital Credential export (ELM 3 JSON-LD) for the EDC Issuer.

A connector's :meth:`IssuerConnector.deliver` runs in a worker, outside any transaction: it
returns a short note on success, raises :class:`~lms_bridge.outbox.RetryLater` for what may pass
(the receiver down, 5xx, timeouts) and :class:`~lms_bridge.outbox.Permanent` for what needs an
operator (bad settings, a receiver that refuses the record), with a message that says what to do.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import requests

from ... import http_client
from ...http_client import parse_retry_after
from ...extensions import db
from ...outbox import Delivery, Permanent, RetryLater, handler
from ..models import Completion, CourseIssuing, DeliveryReceipt, IssuerProfile, utcnow

KIND_PREFIX = "credential."
# uuid5 namespace of idempotency keys (a fixed random UUID: keys are stable across installs' restarts).
_IDEMPOTENCY_NAMESPACE = uuid.UUID("6c1f3a52-2f0e-4f7b-9d55-0d5e3c1b8a41")


@dataclass(frozen=True)
class DeliveryContext:
    """What a connector gets for one delivery attempt."""

    completion: Completion
    profile: IssuerProfile
    settings: dict
    idempotency_key: str
    attempt: int


class IssuerConnector:
    """The interface every connector implements (one instance per process, stateless)."""

    name: ClassVar[str]
    label: ClassVar[str]
    # Settings keys (in the profile's settings[name]) and what they mean, for operators.
    setting_help: ClassVar[dict[str, str]] = {}

    def check_settings(self, settings: Mapping) -> list[str]:
        """Problems with ``settings`` in plain language (empty when they can work)."""
        return []

    def target(self, settings: Mapping, profile: IssuerProfile) -> str:
        """Where deliveries go, for operators (a URL, an account)."""
        return self.label

    def deliver(self, ctx: DeliveryContext) -> str:
        raise NotImplementedError


_registry: dict[str, IssuerConnector] = {}


def register(cls: type[IssuerConnector]) -> type[IssuerConnector]:
    """Class decorator: make the connector known and give its outbox kind a handler."""
    _registry[cls.name] = cls()
    handler(KIND_PREFIX + cls.name)(deliver)
    return cls


def names() -> list[str]:
    return list(_registry)


def get(name: str) -> IssuerConnector:
    try:
        return _registry[name]
    except KeyError:
        raise ValueError(f"unknown issuer connector {name!r}; known: {', '.join(_registry)}") from None


def kind(name: str) -> str:
    return KIND_PREFIX + name


def dedupe_key(completion_id: int, name: str) -> str:
    return f"{completion_id}:{name}"


def idempotency_key(completion_uuid: str, name: str) -> str:
    """The same key for a (completion, connector) pair forever: what receivers deduplicate on."""
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{completion_uuid}:{name}"))


def course_issuing(course_id: int | None) -> CourseIssuing | None:
    return db.session.get(CourseIssuing, course_id) if course_id is not None else None


def settings_for(profile: IssuerProfile, override: CourseIssuing | None, name: str) -> dict:
    """A connector's settings: the profile's, with the course's override merged over them."""
    merged = dict((profile.settings or {}).get(name) or {})
    if override is not None:
        merged.update((override.settings or {}).get(name) or {})
    return merged


def check_all(connectors: list[str], profile: IssuerProfile, override: CourseIssuing | None = None) -> list[str]:
    """Problems of a set of connectors with their settings (for the CLI and the admin page)."""
    problems = []
    for name in connectors:
        try:
            connector = get(name)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        problems += [f"{name}: {p}" for p in connector.check_settings(settings_for(profile, override, name))]
    return problems


def deliver(delivery: Delivery) -> str | None:
    """The outbox handler of every ``credential.<connector>`` kind."""
    name = delivery.kind[len(KIND_PREFIX):]
    connector = get(name)
    completion = db.session.get(Completion, int(delivery.payload.get("completion_id") or 0))
    if completion is None:
        raise Permanent(f"completion {delivery.payload.get('completion_id')} no longer exists; nothing to deliver. "
                        "Nothing to do unless it was deleted by mistake.")
    override = course_issuing(completion.course_id)
    profile = completion.issuer_profile
    settings = settings_for(profile, override, name)
    problems = connector.check_settings(settings)
    if problems:
        raise Permanent(f"the {connector.label} connector of issuer profile {profile.slug!r} is not configured: "
                        + "; ".join(problems) + ". Fix it with `flask issuer-profile update`, then retry the delivery.",
                        status="not configured")
    ctx = DeliveryContext(completion=completion, profile=profile, settings=settings,
                          idempotency_key=delivery.idempotency_key, attempt=delivery.attempt)
    return connector.deliver(ctx)


def post_json(url: str, body: bytes, headers: dict, *, what: str) -> tuple[requests.Response, str]:
    """POST ``body`` to a receiver and sort the outcome the way every connector needs it.

    Returns (response, short status) for 2xx, and for 409 (the receiver already has this record:
    the idempotency key did its job). Raises :class:`RetryLater` for timeouts, connection errors,
    408, 425, 429 (honouring ``Retry-After``) and 5xx; :class:`Permanent` for other answers (4xx,
    redirects), quoting the receiver's own message.
    """
    limit = http_client.timeout()
    try:
        resp = http_client.session().post(url, data=body, headers=headers, timeout=limit, allow_redirects=False)
    except requests.Timeout as exc:
        raise RetryLater(f"{what} {url} did not answer within {limit:g} s", status="timeout") from exc
    except requests.RequestException as exc:
        raise RetryLater(f"{what} {url} could not be reached ({exc.__class__.__name__})", status="unreachable") from exc
    status = f"HTTP {resp.status_code}"
    if 200 <= resp.status_code < 300:
        return resp, status
    if resp.status_code == 409:
        return resp, f"{status}, already received"
    message = receiver_message(resp)
    if resp.status_code in (408, 425, 429) or resp.status_code >= 500:
        raise RetryLater(f"{what} {url} answered {status}" + (f": {message}" if message else ""),
                         retry_after=retry_after(resp), status=status)
    if 300 <= resp.status_code < 400:
        raise Permanent(f"{what} {url} answered {status}, a redirect to {resp.headers.get('Location')!r}: configure "
                        "the final URL in the connector settings, then retry the delivery.", status=status)
    raise Permanent(f"{what} {url} refused the record with {status}: {message or 'no explanation given'}. "
                    "Fix what it says (or the connector settings), then retry the delivery.", status=status)


def receiver_message(resp: requests.Response) -> str:
    """What a receiver said about a refusal: its JSON error message, else the start of its text."""
    try:
        data = resp.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "error_description", "detail", "error", "title"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:300]
        return json.dumps(data)[:300]
    return " ".join((resp.text or "").split())[:300]


def retry_after(resp: requests.Response) -> float | None:
    """Seconds of the answer's ``Retry-After`` header, if any."""
    return parse_retry_after(resp.headers.get("Retry-After"))


def record_receipt(completion_id: int, connector: str, *, external_id: str | None = None, note: str | None = None,
                   document: dict | None = None) -> DeliveryReceipt:
    """Keep what a delivery produced (one row per completion and connector; a retry updates it)."""
    receipt = db.session.execute(db.select(DeliveryReceipt).filter_by(
        completion_id=completion_id, connector=connector)).scalar_one_or_none()
    if receipt is None:
        receipt = DeliveryReceipt(completion_id=completion_id, connector=connector)
        db.session.add(receipt)
    receipt.external_id = external_id
    receipt.note = note
    receipt.document = document
    receipt.updated_at = utcnow()
    db.session.commit()
    return receipt


def receipt(completion_id: int, connector: str) -> DeliveryReceipt | None:
    return db.session.execute(db.select(DeliveryReceipt).filter_by(
        completion_id=completion_id, connector=connector)).scalar_one_or_none()


# The connectors register themselves on import.
from . import builtin, edc, open_badge_factory, webhook  # noqa: E402,F401
