"""Line items the tool created in a platform's gradebook (AGS 2.0 §3.2, "tool-created line items").

A resource link whose launch carries a ``lineitem`` (the activity's own gradebook column, AGS §3.1)
needs no row here: scores go to that URL. When the platform offers only the ``lineitems`` container,
the tool creates one line item for the link on purpose, coupled to it by ``resourceLinkId`` and
naming the bound course or module in ``resourceId``, and remembers its URL here so that it is found
again (never by ``tag``), updated when the link is bound to another course or module, and deleted
when the link stops being graded.
"""
from __future__ import annotations

from ..extensions import db
from ..lti.models import utcnow


class LineItem(db.Model):
    """A line item (AGS §3.2.1 ``id``, ``label``, ``scoreMaximum``, ``resourceLinkId``, ``resourceId``,
    ``tag``) the tool created for one resource link; at most one per link."""

    __tablename__ = "grading_line_item"
    __table_args__ = (db.UniqueConstraint("resource_link_pk"),)

    id = db.Column(db.Integer, primary_key=True)
    registration_id = db.Column(db.Integer, db.ForeignKey("lti_registration.id", ondelete="CASCADE"),
                                nullable=False, index=True)
    resource_link_pk = db.Column(db.Integer, db.ForeignKey("lti_resource_link.id", ondelete="CASCADE"),
                                 nullable=False)
    # The line item's URL (its ``id`` in the platform, AGS §3.2.1).
    url = db.Column(db.String(1000), nullable=False)
    # The line items container it was created in (the link's ``lineitems`` claim).
    container_url = db.Column(db.String(1000), nullable=False)
    resource_id = db.Column(db.String(255), nullable=False)
    label = db.Column(db.String(500), nullable=False)
    score_maximum = db.Column(db.Float, nullable=False)
    tag = db.Column(db.String(255), nullable=True)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    def representation(self, resource_link_id: str) -> dict:
        """The AGS line item JSON (§3.2.7) the platform should hold for it."""
        data = {"label": self.label, "scoreMaximum": self.score_maximum, "resourceId": self.resource_id,
                "resourceLinkId": resource_link_id}
        if self.tag:
            data["tag"] = self.tag
        return data

    def __repr__(self) -> str:
        return f"<LineItem {self.id} link={self.resource_link_pk} {self.url}>"

