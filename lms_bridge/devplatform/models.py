"""Tables of the development platform (its keys, the tools registered with it, its gradebook)."""
from __future__ import annotations

from ..extensions import db
from ..lti.models import utcnow


class DevKey(db.Model):
    __tablename__ = "dev_key"

    id = db.Column(db.Integer, primary_key=True)
    kid = db.Column(db.String(64), nullable=False, unique=True)
    private_pem = db.Column(db.Text, nullable=False)
    public_jwk = db.Column(db.JSON, nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)


class DevClient(db.Model):
    """A tool registered with the development platform (by itself at start-up or by Dynamic Registration)."""

    __tablename__ = "dev_client"

    id = db.Column(db.Integer, primary_key=True)
    client_id = db.Column(db.String(255), nullable=False, unique=True)
    deployment_id = db.Column(db.String(255), nullable=False)
    name = db.Column(db.String(200), nullable=False, default="")
    # The tool's registration: initiate_login_uri, redirect_uris, jwks_uri, scope, tool configuration.
    tool_configuration = db.Column(db.JSON, nullable=False, default=dict)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)


class DevLineItem(db.Model):
    """A gradebook column (AGS §3.2 line item)."""

    __tablename__ = "dev_line_item"

    id = db.Column(db.Integer, primary_key=True)
    context_id = db.Column(db.String(255), nullable=False, index=True)
    client_id = db.Column(db.String(255), nullable=False)
    label = db.Column(db.String(500), nullable=False)
    score_maximum = db.Column(db.Float, nullable=False)
    resource_id = db.Column(db.String(255), nullable=True)
    resource_link_id = db.Column(db.String(255), nullable=True)
    tag = db.Column(db.String(255), nullable=True)
    start_date_time = db.Column(db.String(40), nullable=True)
    end_date_time = db.Column(db.String(40), nullable=True)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)


class DevScore(db.Model):
    """Every score the platform received (AGS §3.4), kept in order of arrival.

    ``idempotency_key`` is the tool's ``Idempotency-Key`` header, when it sends one: a retried POST
    whose first answer was lost (a timeout) is answered again without storing the score twice.
    """

    __tablename__ = "dev_score"
    __table_args__ = (db.UniqueConstraint("line_item_id", "idempotency_key"),)

    id = db.Column(db.Integer, primary_key=True)
    line_item_id = db.Column(db.Integer, db.ForeignKey("dev_line_item.id", ondelete="CASCADE"), nullable=False, index=True)
    user_id = db.Column(db.String(255), nullable=False)
    score_given = db.Column(db.Float, nullable=True)
    score_maximum = db.Column(db.Float, nullable=True)
    activity_progress = db.Column(db.String(20), nullable=False)
    grading_progress = db.Column(db.String(20), nullable=False)
    timestamp = db.Column(db.String(40), nullable=False)
    comment = db.Column(db.Text, nullable=True)
    idempotency_key = db.Column(db.String(255), nullable=True)
    received_at = db.Column(db.DateTime, nullable=False, default=utcnow)


class DevResourceLink(db.Model):
    """An activity placed in the course: the platform's resource link (LTI Core §5.3.5).

    ``resource_link_id`` sent in launches is the row id as a string (Moodle sends the
    activity's instance id).  Each link has its own gradebook column (``line_item_id``),
    which is the ``lineitem`` of its launches (AGS §3.1).
    """

    __tablename__ = "dev_resource_link"

    id = db.Column(db.Integer, primary_key=True)
    client_id = db.Column(db.String(255), nullable=False, index=True)
    context_id = db.Column(db.String(255), nullable=False)
    title = db.Column(db.String(500), nullable=False)
    text = db.Column(db.Text, nullable=True)
    target_link_uri = db.Column(db.String(1000), nullable=False)
    custom = db.Column(db.JSON, nullable=False, default=dict)
    line_item_id = db.Column(db.Integer, db.ForeignKey("dev_line_item.id", ondelete="SET NULL"), nullable=True)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    @property
    def resource_link_id(self) -> str:
        return str(self.id)
