"""Who is looking at the admin pages.

Either a local operator (signed in with a password; sees every registration) or an LMS
administrator who launched the tool (``?lt=<launch token>``; sees only the registration they
launched from).  Nothing of one registration is shown to another registration's admin.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import abort, request, session

from ..extensions import db
from ..lti.roles import RoleSet
from ..lti.state import load_launch_session
from .models import Operator


@dataclass
class Principal:
    name: str
    registration_id: int | None  # None: every registration
    launch_token: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.registration_id is None

    def may_see(self, registration_id: int) -> bool:
        return self.registration_id is None or self.registration_id == registration_id


def current_principal() -> Principal | None:
    operator_id = session.get("operator_id")
    if operator_id:
        op = db.session.get(Operator, operator_id)
        if op is not None:
            return Principal(op.username, None)
    token = request.values.get("lt")
    if token:
        launch = load_launch_session(token)
        if launch and RoleSet.of(launch.roles).is_admin:
            name = launch.claims.get("name") or "LMS administrator"
            return Principal(name, launch.registration_id, token)
    return None


def require_principal() -> Principal:
    principal = current_principal()
    if principal is None:
        abort(403, description="Sign in as an operator, or open the tool from your LMS as an administrator.")
    return principal


def require_operator() -> Principal:
    principal = require_principal()
    if not principal.is_operator:
        abort(403, description="Only lms_bridge operators may do this.")
    return principal
