"""The built-in issuer as a connector: the completion becomes a signed Open Badges 3.0 credential.

Issuing is idempotent (:func:`lms_bridge.credentials.issuer.issue`): the credential's id is derived
from the completion and ``cred_credential.completion_id`` is unique, so a retried or replayed
delivery returns the credential issued the first time.
"""
from __future__ import annotations

from collections.abc import Mapping

from ...outbox import Permanent
from ..models import IssuerProfile
from . import DeliveryContext, IssuerConnector, register


@register
class BuiltinConnector(IssuerConnector):
    name = "builtin"
    label = "Built-in Open Badges 3.0 issuer"
    setting_help = {}

    def target(self, settings: Mapping, profile: IssuerProfile) -> str:
        return f"built-in issuer ({profile.slug})"

    def deliver(self, ctx: DeliveryContext) -> str:
        from ..issuer import IssuingError, issue

        try:
            credential = issue(ctx.completion)
        except IssuingError as exc:
            raise Permanent(f"The credential cannot be issued: {exc}", status="not issued") from exc
        return f"issued {credential.urn}"
