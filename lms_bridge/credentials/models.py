"""Completion records, issuer profiles, issued credentials and status lists in the database.

* :class:`IssuerProfile`: who issues: one per source project (``ALBATTS``, ``DRIVES``,
  ``TRIREME``...) or institution. It is the OB 3.0 issuer ``Profile`` (Open Badges 3.0 §B.1.23:
  name, url, email, description), identified by ``did:web:<host>:issuers:<slug>`` (DID Web method
  §3.2, path-based DIDs) and holding the Ed25519 key it signs with, and it says which issuer
  connectors receive its completions (``connectors``) with their settings (webhook URL and
  secret, Open Badge Factory client, EDC export).
* :class:`CourseIssuing`: an optional per-course override: another issuer profile, other
  connectors, or connector settings for that course only (an Open Badge Factory badge id).
* :class:`Completion`: **the source of truth**, one row per (learner, course version), written once
  when the course's completion rule first holds (``UNIQUE (user_pk, version_id)``): who (LTI ``sub``
  and platform issuer, LTI Core §5.3.6; hashed e-mail; name), what (course and achievement with
  learning outcomes, ESCO skills, EQF level, ECTS / workload, assessment type, supervision and
  identity verification: the elements of the Council Recommendation on micro-credentials, Annex I),
  when, how well (score and pass mark) and the evidence URL. It is a snapshot: the record stays
  true when the course is re-imported or removed.
* :class:`Credential`: the OB 3.0 ``OpenBadgeCredential`` issued for a completion (at most one),
  kept in both formats: JSON with an ``eddsa-rdfc-2022`` Data Integrity proof and VC-JWT; its index
  in a status list, and revocation.
* :class:`StatusList`: a Bitstring Status List v1.0 of one issuer profile: which indexes are taken
  (the list itself is computed from revoked credentials when published).
* :class:`DeliveryReceipt`: what a connector left after delivering a completion (the Open Badge
  Factory event id, the receiver's answer, the validated EDC export).
"""
from __future__ import annotations

from datetime import UTC, datetime

from ..extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def insert_unless_exists(model, values: dict, conflict: tuple[str, ...] | None = None) -> int | None:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` in the caller's transaction: the new row's
    id, or None when a row with the same unique key exists (or is being inserted by a transaction
    that then commits: PostgreSQL makes this statement wait for it). No savepoint: on SQLite a
    savepoint opened outside a transaction would commit the caller's work when released."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(model).values(**values).on_conflict_do_nothing(index_elements=list(conflict) if conflict else None)
    return db.session.execute(statement.returning(model.__table__.c.id)).scalar()


class IssuerProfile(db.Model):
    __tablename__ = "cred_issuer_profile"

    id = db.Column(db.Integer, primary_key=True)
    # URL segment of the profile (/issuers/<slug>) and of its did:web identifier.
    slug = db.Column(db.String(64), nullable=False, unique=True)
    name = db.Column(db.String(300), nullable=False)
    url = db.Column(db.String(1000), nullable=True)
    email = db.Column(db.String(320), nullable=True)
    description = db.Column(db.Text, nullable=True)
    # The course packages' source project this profile issues for (None: an institution profile
    # chosen per course, or the default one).
    source_project = db.Column(db.String(200), nullable=True, unique=True)
    # Used for courses whose source project has no profile of its own.
    is_default = db.Column(db.Boolean, nullable=False, default=False)
    # Ed25519 signing key (PKCS#8 PEM) and its key id; previous public keys stay published.
    kid = db.Column(db.String(100), nullable=False)
    private_pem = db.Column(db.Text, nullable=False)
    previous_keys = db.Column(db.JSON, nullable=False, default=list)
    # Connector names (lms_bridge.credentials.connectors) and their settings, by connector name.
    connectors = db.Column(db.JSON, nullable=False, default=lambda: ["builtin"])
    settings = db.Column(db.JSON, nullable=False, default=dict)
    # Credentials expire this many days after issue (None: they do not expire).
    validity_days = db.Column(db.Integer, nullable=True)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<IssuerProfile {self.slug} {self.source_project or ''}>"


class CourseIssuing(db.Model):
    """Per-course override of who issues and through which connectors (all optional)."""

    __tablename__ = "cred_course_issuing"

    course_id = db.Column(db.Integer, db.ForeignKey("pkg_course.id", ondelete="CASCADE"), primary_key=True)
    issuer_profile_id = db.Column(db.Integer, db.ForeignKey("cred_issuer_profile.id", ondelete="SET NULL"),
                                  nullable=True)
    # None: the profile's connectors.
    connectors = db.Column(db.JSON, nullable=True)
    # Merged over the profile's settings, per connector name.
    settings = db.Column(db.JSON, nullable=False, default=dict)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    issuer_profile = db.relationship("IssuerProfile")


class Completion(db.Model):
    __tablename__ = "cred_completion"
    __table_args__ = (
        # The guarantee: one record per learner and course version, whatever fires how often.
        db.UniqueConstraint("user_pk", "version_id"),
        {"sqlite_autoincrement": True},
    )

    id = db.Column(db.Integer, primary_key=True)
    uuid = db.Column(db.String(36), nullable=False, unique=True)
    # Nullable so the record outlives the user, course or attempt it came from.
    user_pk = db.Column(db.Integer, db.ForeignKey("lti_user.id", ondelete="SET NULL"), nullable=True)
    version_id = db.Column(db.Integer, db.ForeignKey("pkg_course_version.id", ondelete="SET NULL"), nullable=True)
    course_id = db.Column(db.Integer, db.ForeignKey("pkg_course.id", ondelete="SET NULL"), nullable=True, index=True)
    attempt_id = db.Column(db.Integer, db.ForeignKey("pl_attempt.id", ondelete="SET NULL"), nullable=True)
    registration_id = db.Column(db.Integer, db.ForeignKey("lti_registration.id", ondelete="SET NULL"), nullable=True,
                                index=True)
    issuer_profile_id = db.Column(db.Integer, db.ForeignKey("cred_issuer_profile.id"), nullable=False)

    # The learner (LTI Core §5.3.6 sub; the platform's issuer) and what the LMS shared.
    learner_sub = db.Column(db.String(255), nullable=False)
    platform_issuer = db.Column(db.String(500), nullable=False)
    # keys.identity_hash(normalised e-mail, identity_salt): "sha256$<hex>", or None without an e-mail.
    email_hash = db.Column(db.String(80), nullable=True)
    identity_salt = db.Column(db.String(64), nullable=False)
    learner_name = db.Column(db.String(255), nullable=True)

    # The course and the achievement, as they were when completed.
    course_identifier = db.Column(db.String(1000), nullable=False)
    source_project = db.Column(db.String(200), nullable=False, default="")
    course_title = db.Column(db.String(500), nullable=False)
    course_version = db.Column(db.String(100), nullable=True)
    language = db.Column(db.String(35), nullable=True)
    # description, criteria narrative, achievement type, image... (issuer.build_achievement input).
    achievement = db.Column(db.JSON, nullable=False, default=dict)
    learning_outcomes = db.Column(db.JSON, nullable=False, default=list)
    # [{"uri": ESCO concept URI, "label": preferred label or None}]
    esco_skills = db.Column(db.JSON, nullable=False, default=list)
    esco_occupations = db.Column(db.JSON, nullable=False, default=list)
    eqf_level = db.Column(db.SmallInteger, nullable=True)
    ects = db.Column(db.Float, nullable=True)
    workload_hours = db.Column(db.Float, nullable=True)

    completed_at = db.Column(db.DateTime, nullable=False)
    # Course score (0..1, mean of the scored required activities) and the pass mark it had to reach.
    score_scaled = db.Column(db.Float, nullable=True)
    pass_mark = db.Column(db.Float, nullable=True)
    # How it was assessed, supervised, and how the learner's identity was known.
    assessment_type = db.Column(db.String(200), nullable=True)
    supervision = db.Column(db.String(200), nullable=True)
    identity_verification = db.Column(db.String(200), nullable=True)
    evidence_url = db.Column(db.String(1000), nullable=True)

    # Connectors a delivery was queued for when the record was written.
    connectors = db.Column(db.JSON, nullable=False, default=list)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    issuer_profile = db.relationship("IssuerProfile")
    credential = db.relationship("Credential", back_populates="completion", uselist=False)

    def __repr__(self) -> str:
        return f"<Completion {self.id} user={self.user_pk} version={self.version_id}>"


class StatusList(db.Model):
    __tablename__ = "cred_status_list"

    id = db.Column(db.Integer, primary_key=True)
    issuer_profile_id = db.Column(db.Integer, db.ForeignKey("cred_issuer_profile.id", ondelete="CASCADE"),
                                  nullable=False, index=True)
    # Bitstring Status List v1.0 §2.1 statusPurpose.
    purpose = db.Column(db.String(20), nullable=False, default="revocation")
    # Number of entries (bits); at least 131,072 (§3.1, herd privacy).
    size = db.Column(db.Integer, nullable=False)
    # Indexes handed out so far (chosen at random, so a list fills to half before the next one opens).
    allocated = db.Column(db.Integer, nullable=False, default=0)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    issuer_profile = db.relationship("IssuerProfile")


class Credential(db.Model):
    __tablename__ = "cred_credential"
    __table_args__ = (db.UniqueConstraint("status_list_id", "status_index"),)

    id = db.Column(db.Integer, primary_key=True)
    # The credential's id is "urn:uuid:<uuid>"; public URLs use the uuid.
    uuid = db.Column(db.String(36), nullable=False, unique=True)
    completion_id = db.Column(db.Integer, db.ForeignKey("cred_completion.id", ondelete="CASCADE"), nullable=False,
                              unique=True)
    issuer_profile_id = db.Column(db.Integer, db.ForeignKey("cred_issuer_profile.id"), nullable=False)
    kid = db.Column(db.String(100), nullable=False)
    verification_method = db.Column(db.String(1000), nullable=False)
    # OB 3.0 §8.3 (Data Integrity, eddsa-rdfc-2022) and §8.2 (VC-JWT), the same credential.
    credential_json = db.Column(db.JSON, nullable=False)
    credential_jwt = db.Column(db.Text, nullable=False)
    status_list_id = db.Column(db.Integer, db.ForeignKey("cred_status_list.id"), nullable=False)
    status_index = db.Column(db.Integer, nullable=False)
    issued_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    valid_from = db.Column(db.DateTime, nullable=False)
    valid_until = db.Column(db.DateTime, nullable=True)
    revoked_at = db.Column(db.DateTime, nullable=True)
    revocation_reason = db.Column(db.Text, nullable=True)

    completion = db.relationship("Completion", back_populates="credential")
    issuer_profile = db.relationship("IssuerProfile")
    status_list = db.relationship("StatusList")

    @property
    def urn(self) -> str:
        return f"urn:uuid:{self.uuid}"

    def __repr__(self) -> str:
        return f"<Credential {self.uuid} completion={self.completion_id}{' revoked' if self.revoked_at else ''}>"


class DeliveryReceipt(db.Model):
    __tablename__ = "cred_delivery_receipt"
    __table_args__ = (db.UniqueConstraint("completion_id", "connector"),)

    id = db.Column(db.Integer, primary_key=True)
    completion_id = db.Column(db.Integer, db.ForeignKey("cred_completion.id", ondelete="CASCADE"), nullable=False)
    connector = db.Column(db.String(40), nullable=False)
    # The receiver's id for what it made of it (an Open Badge Factory event id, a URL...).
    external_id = db.Column(db.String(500), nullable=True)
    note = db.Column(db.Text, nullable=True)
    # A document the connector produced (the EDC export) or received.
    document = db.Column(db.JSON, nullable=True)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    completion = db.relationship("Completion")
