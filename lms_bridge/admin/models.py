"""Local operator accounts (created with ``flask create-operator``)."""
from __future__ import annotations

from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from ..lti.models import utcnow


class Operator(db.Model):
    __tablename__ = "admin_operator"

    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(120), nullable=False, unique=True)
    password_hash = db.Column(db.String(255), nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    def set_password(self, password: str) -> None:
        if len(password) < 10:
            raise ValueError("passwords need at least 10 characters")
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)
