"""LTI domain, named after the concepts of the 1EdTech LTI 1.3 Core specification.

A platform is known to the tool through a :class:`Registration` (issuer + client_id, LTI Core
§3.1.3), under which it may have many :class:`Deployment`s (§3.1.3, ``deployment_id``).  A
launch happens in a :class:`Context` (§5.4.1) from a :class:`ResourceLink` (§5.3.5) by a
:class:`User` (``sub``, §5.3.6) who holds roles there (:class:`Membership`, §5.3.7).
"""
from __future__ import annotations

from datetime import datetime, timezone

from ..extensions import db


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Registration(db.Model):
    """A platform's registration of this tool (LTI Core §3.1.3; Security Framework §5.1).

    Unique per (issuer, client_id), never per issuer alone: every Canvas cloud tenant shares
    the issuer ``https://canvas.instructure.com``.
    """

    __tablename__ = "lti_registration"
    __table_args__ = (db.UniqueConstraint("issuer", "client_id"),)

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(200), nullable=False, default="")
    issuer = db.Column(db.String(500), nullable=False, index=True)
    client_id = db.Column(db.String(255), nullable=False)
    auth_login_url = db.Column(db.String(1000), nullable=False)
    auth_token_url = db.Column(db.String(1000), nullable=False, default="")
    # Audience of client assertions at the token endpoint when it differs from the token URL.
    auth_audience = db.Column(db.String(1000), nullable=True)
    key_set_url = db.Column(db.String(1000), nullable=True)
    # A pasted public key set ({"keys": [...]}) for platforms registered without a JWKS URL.
    key_set = db.Column(db.JSON, nullable=True)
    auto_activate_deployments = db.Column(db.Boolean, nullable=False, default=False)
    active = db.Column(db.Boolean, nullable=False, default=True)
    # How it came: "manual", "dynamic", "devplatform".
    source = db.Column(db.String(20), nullable=False, default="manual")
    product_family_code = db.Column(db.String(100), nullable=True)
    # The platform's OpenID configuration as fetched during Dynamic Registration.
    platform_configuration = db.Column(db.JSON, nullable=True)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    deployments = db.relationship("Deployment", back_populates="registration", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"<Registration {self.id} {self.issuer} {self.client_id}>"


class Deployment(db.Model):
    """One deployment of the tool on a platform (LTI Core §3.1.3, claim ``deployment_id`` §5.3.3).

    A deployment id the tool has never seen is recorded inactive, unless its registration
    auto-activates deployments, so an operator decides who may launch.
    """

    __tablename__ = "lti_deployment"
    __table_args__ = (db.UniqueConstraint("registration_id", "deployment_id"),)

    id = db.Column(db.Integer, primary_key=True)
    registration_id = db.Column(db.Integer, db.ForeignKey("lti_registration.id", ondelete="CASCADE"), nullable=False)
    deployment_id = db.Column(db.String(255), nullable=False)
    name = db.Column(db.String(200), nullable=False, default="")
    active = db.Column(db.Boolean, nullable=False, default=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    registration = db.relationship("Registration", back_populates="deployments")


class Context(db.Model):
    """A course or section in the platform (LTI Core §5.4.1, context claim)."""

    __tablename__ = "lti_context"
    __table_args__ = (db.UniqueConstraint("deployment_id", "context_id"),)

    id = db.Column(db.Integer, primary_key=True)
    deployment_id = db.Column(db.Integer, db.ForeignKey("lti_deployment.id", ondelete="CASCADE"), nullable=False)
    context_id = db.Column(db.String(255), nullable=False)
    label = db.Column(db.String(255), nullable=True)
    title = db.Column(db.String(500), nullable=True)
    types = db.Column(db.JSON, nullable=False, default=list)
    # Names and Role Provisioning Services endpoint, when the platform offers it (NRPS §3.6.1.1).
    memberships_url = db.Column(db.String(1000), nullable=True)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    deployment = db.relationship("Deployment")


class ResourceLink(db.Model):
    """A placement of the tool in a context (LTI Core §5.3.5, resource_link claim)."""

    __tablename__ = "lti_resource_link"
    __table_args__ = (db.UniqueConstraint("deployment_id", "resource_link_id"),)

    id = db.Column(db.Integer, primary_key=True)
    deployment_id = db.Column(db.Integer, db.ForeignKey("lti_deployment.id", ondelete="CASCADE"), nullable=False)
    context_pk = db.Column(db.Integer, db.ForeignKey("lti_context.id", ondelete="SET NULL"), nullable=True)
    resource_link_id = db.Column(db.String(255), nullable=False)
    title = db.Column(db.String(500), nullable=True)
    description = db.Column(db.Text, nullable=True)
    custom = db.Column(db.JSON, nullable=False, default=dict)
    # AGS endpoint claim of the last launch (lineitem, lineitems, scope), AGS §3.1.
    ags_endpoint = db.Column(db.JSON, nullable=True)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    context = db.relationship("Context")


class User(db.Model):
    """A platform user, identified by ``sub`` within one registration (LTI Core §5.3.6).

    Personal data is optional: platforms may withhold it (anonymous launches).
    """

    __tablename__ = "lti_user"
    __table_args__ = (db.UniqueConstraint("registration_id", "sub"),)

    id = db.Column(db.Integer, primary_key=True)
    registration_id = db.Column(db.Integer, db.ForeignKey("lti_registration.id", ondelete="CASCADE"), nullable=False)
    sub = db.Column(db.String(255), nullable=False)
    name = db.Column(db.String(255), nullable=True)
    given_name = db.Column(db.String(255), nullable=True)
    family_name = db.Column(db.String(255), nullable=True)
    email = db.Column(db.String(320), nullable=True)
    locale = db.Column(db.String(35), nullable=True)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    @property
    def display_name(self) -> str:
        full = " ".join(p for p in (self.given_name, self.family_name) if p)
        return self.name or full or "Anonymous user"


class Membership(db.Model):
    """A user's roles in a context (LTI Core §5.3.7 roles claim; NRPS membership)."""

    __tablename__ = "lti_membership"
    __table_args__ = (db.UniqueConstraint("context_pk", "user_id"),)

    id = db.Column(db.Integer, primary_key=True)
    context_pk = db.Column(db.Integer, db.ForeignKey("lti_context.id", ondelete="CASCADE"), nullable=False)
    user_id = db.Column(db.Integer, db.ForeignKey("lti_user.id", ondelete="CASCADE"), nullable=False)
    roles = db.Column(db.JSON, nullable=False, default=list)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    context = db.relationship("Context")
    user = db.relationship("User")


class ToolKey(db.Model):
    """The tool's RSA signing keys (Security Framework §6: key sets and rotation).

    Exactly one key is ``active`` and signs; ``retiring`` keys stay published in the JWKS
    until ``retire_after`` so platforms holding cached key sets keep verifying; ``retired``
    keys are kept for the record but no longer published.
    """

    __tablename__ = "lti_tool_key"

    id = db.Column(db.Integer, primary_key=True)
    kid = db.Column(db.String(64), nullable=False, unique=True)
    private_pem = db.Column(db.Text, nullable=False)
    public_jwk = db.Column(db.JSON, nullable=False)
    state = db.Column(db.String(10), nullable=False, default="active", index=True)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    retire_after = db.Column(db.DateTime, nullable=True)
