"""Imported course packages in the database.

Shapes follow the specifications the packages come from, and the European skills vocabulary:

* :class:`Course`: the stable identity of a course across re-imports: its source project plus the
  package's own identifier (SCORM/IMS CP ``manifest/@identifier``, cmi5 ``course/@id`` (cmi5 §13.1.2),
  Common Cartridge ``manifest/@identifier``, native ``identifier``), and a pointer to the current version.
* :class:`CourseVersion`: one imported package: version string, format, checksum of its content,
  where its files are stored, and the descriptive and skills metadata of that version: language,
  licence, authors, learning outcomes, ESCO skills and occupations, EQF level (European
  Qualifications Framework, levels 1 to 8), notional workload in hours, ECTS credits, prerequisites.
* :class:`Module`: the course tree (SCORM ``item`` aggregations, cmi5 ``block`` (cmi5 §13.1.3),
  Common Cartridge folders, native modules), ordered by ``position``.
* :class:`Activity`: a launchable unit: a SCORM SCO or asset (SCORM CAM §3.4.1.12 ``resource``),
  a cmi5 AU (cmi5 §13.1.4, with ``moveOn``, ``masteryScore``, ``launchParameters``), Common
  Cartridge web content, web links and QTI assessments, native lessons and quizzes.
* :class:`LearningOutcome` and :class:`Skill` (an ESCO skill or occupation concept URI with its
  preferred label, shared by every course version that names it).

Versioning: a re-import of the same course with different content creates a new
:class:`CourseVersion` and makes it current. Every activity carries an ``activity_key``: activities
whose identifier and :meth:`~lms_bridge.packages.course.Activity.fingerprint` are unchanged from the
previous current version keep its key, so learners' progress, which the player stores by
``activity_key``, carries over; changed or new activities get a new key. The same content imported
again (same checksum) changes nothing. See :mod:`lms_bridge.packages.service`.
"""
from __future__ import annotations

from datetime import UTC, datetime

from ..extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


SKILL_KINDS = ("skill", "occupation")

course_version_skill = db.Table(
    "pkg_course_version_skill",
    db.Column("version_id", db.Integer, db.ForeignKey("pkg_course_version.id", ondelete="CASCADE"), primary_key=True),
    db.Column("skill_id", db.Integer, db.ForeignKey("pkg_skill.id", ondelete="CASCADE"), primary_key=True, index=True),
    # Order in which the package lists its skills.
    db.Column("position", db.Integer, nullable=False, default=0),
)


class Course(db.Model):
    """A course as the catalogue knows it, whatever version is current.

    Identity is ``(source_project, package_identifier)``; ``source_project`` is "" when the package
    names none (SCORM and cmi5 packages without an ``lms_bridge.json`` sidecar).
    """

    __tablename__ = "pkg_course"
    __table_args__ = (
        db.UniqueConstraint("source_project", "package_identifier"),
        # Never reuse an id on SQLite: content URLs and storage folders are built from ids.
        {"sqlite_autoincrement": True},
    )

    id = db.Column(db.Integer, primary_key=True)
    source_project = db.Column(db.String(200), nullable=False, default="", index=True)
    package_identifier = db.Column(db.String(1000), nullable=False)
    current_version_id = db.Column(
        db.Integer,
        db.ForeignKey("pkg_course_version.id", ondelete="SET NULL", use_alter=True,
                      name="fk_pkg_course_current_version_id_pkg_course_version"),
        nullable=True,
    )
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    versions = db.relationship(
        "CourseVersion", back_populates="course", foreign_keys="CourseVersion.course_id",
        cascade="all, delete-orphan", passive_deletes=True, order_by="CourseVersion.sequence",
    )
    current_version = db.relationship("CourseVersion", foreign_keys=[current_version_id], post_update=True)

    def __repr__(self) -> str:
        return f"<Course {self.id} {self.source_project!r} {self.package_identifier!r}>"


class CourseVersion(db.Model):
    """One imported package of a course (its content lives under ``storage_path``)."""

    __tablename__ = "pkg_course_version"
    __table_args__ = (
        db.UniqueConstraint("course_id", "checksum"),
        db.UniqueConstraint("course_id", "sequence"),
        {"sqlite_autoincrement": True},
    )

    id = db.Column(db.Integer, primary_key=True)
    course_id = db.Column(db.Integer, db.ForeignKey("pkg_course.id", ondelete="CASCADE"), nullable=False, index=True)
    # 1, 2, 3... in import order within the course.
    sequence = db.Column(db.Integer, nullable=False)
    # The package's own version string (LOM lifeCycle.version, manifest @version, native version).
    version = db.Column(db.String(100), nullable=True)
    # scorm12, scorm2004, cmi5, cc, native; and the declared edition ("2004 3rd Edition", "1.3.0").
    format = db.Column(db.String(20), nullable=False)
    format_version = db.Column(db.String(50), nullable=True)
    imported_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    # SHA-256 over the package's files (paths and bytes), the same whether it came zipped or as a folder.
    checksum = db.Column(db.String(64), nullable=False)
    # "<course id>/<version id>" under the package storage folder (instance/packages by default).
    storage_path = db.Column(db.String(200), nullable=False, default="")
    # Package root inside the stored folder ("" or the one folder an archive wrapped everything in).
    content_root = db.Column(db.String(1000), nullable=False, default="")
    size_bytes = db.Column(db.BigInteger, nullable=False, default=0)
    file_count = db.Column(db.Integer, nullable=False, default=0)

    title = db.Column(db.String(500), nullable=False)
    description = db.Column(db.Text, nullable=True)
    language = db.Column(db.String(35), nullable=True, index=True)
    licence = db.Column(db.String(500), nullable=True)
    authors = db.Column(db.JSON, nullable=False, default=list)
    keywords = db.Column(db.JSON, nullable=False, default=list)
    prerequisites = db.Column(db.JSON, nullable=False, default=list)
    eqf_level = db.Column(db.SmallInteger, nullable=True, index=True)
    workload_hours = db.Column(db.Float, nullable=True)
    ects = db.Column(db.Float, nullable=True)
    # Completion rule of the package (lms_bridge.packages.course.CompletionRule as a dict).
    completion = db.Column(db.JSON, nullable=False, default=dict)
    # Everything the importer said about the course except its structure (Course.to_dict()).
    package_metadata = db.Column("metadata", db.JSON, nullable=False, default=dict)
    warnings = db.Column(db.JSON, nullable=False, default=list)
    # Files never served as content (quiz sources with their answers, manifests); see content.py.
    private_paths = db.Column(db.JSON, nullable=False, default=list)
    # Case- and accent-folded text searched by the catalogue (title, description, keywords,
    # outcomes, skill labels, authors).
    search_text = db.Column(db.Text, nullable=False, default="")

    course = db.relationship("Course", back_populates="versions", foreign_keys=[course_id])
    modules = db.relationship(
        "Module", primaryjoin="and_(Module.version_id == CourseVersion.id, Module.parent_id.is_(None))",
        order_by="Module.position", viewonly=True,
    )
    activities = db.relationship(
        "Activity", back_populates="version", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Activity.id",
    )
    learning_outcomes = db.relationship(
        "LearningOutcome", back_populates="version", cascade="all, delete-orphan", passive_deletes=True,
        order_by="LearningOutcome.position",
    )
    skills = db.relationship(
        "Skill", secondary=course_version_skill, back_populates="versions", passive_deletes=True,
        order_by=course_version_skill.c.position,
    )
    all_modules = db.relationship(
        "Module", back_populates="version", foreign_keys="Module.version_id", cascade="all, delete-orphan",
        passive_deletes=True, overlaps="modules",
    )

    @property
    def is_current(self) -> bool:
        return self.course is not None and self.course.current_version_id == self.id

    @property
    def esco_skills(self) -> list[Skill]:
        return [s for s in self.skills if s.kind == "skill"]

    @property
    def esco_occupations(self) -> list[Skill]:
        return [s for s in self.skills if s.kind == "occupation"]

    def activity(self, identifier: str) -> Activity | None:
        return next((a for a in self.activities if a.identifier == identifier), None)

    def __repr__(self) -> str:
        return f"<CourseVersion {self.id} of course {self.course_id} v{self.version!r} #{self.sequence}>"


class Module(db.Model):
    """A node of the course tree; children are sub-modules and activities, ordered by ``position``."""

    __tablename__ = "pkg_module"
    __table_args__ = (db.UniqueConstraint("version_id", "identifier"),)

    id = db.Column(db.Integer, primary_key=True)
    version_id = db.Column(db.Integer, db.ForeignKey("pkg_course_version.id", ondelete="CASCADE"), nullable=False,
                           index=True)
    parent_id = db.Column(db.Integer, db.ForeignKey("pkg_module.id", ondelete="CASCADE"), nullable=True, index=True)
    identifier = db.Column(db.String(1000), nullable=False)
    title = db.Column(db.String(500), nullable=False, default="")
    description = db.Column(db.Text, nullable=True)
    position = db.Column(db.Integer, nullable=False, default=0)
    visible = db.Column(db.Boolean, nullable=False, default=True)

    version = db.relationship("CourseVersion", back_populates="all_modules", overlaps="modules")
    parent = db.relationship("Module", remote_side=[id], back_populates="modules")
    modules = db.relationship("Module", back_populates="parent", order_by="Module.position",
                              cascade="all, delete-orphan", passive_deletes=True)
    activities = db.relationship("Activity", back_populates="module", order_by="Activity.position",
                                 passive_deletes=True)

    def children(self) -> list[Module | Activity]:
        return sorted([*self.modules, *self.activities], key=lambda c: c.position)


class Activity(db.Model):
    """One launchable (or listed) unit of a course version.

    ``href`` is the launch URL relative to the package root (percent-encoded, query and
    fragment kept, e.g. SCORM ``parameters``), or an absolute URL when ``external``;
    ``file`` the plain path of the launched file. ``mastery_score`` and
    ``completion_threshold`` are normalised to 0..1 (SCORM 1.2 ``adlcp:masteryscore`` is
    0..100 in the manifest; cmi5 ``masteryScore`` §13.1.4 is already 0..1). ``move_on``
    is cmi5's ``moveOn`` (§13.1.4). ``quiz`` holds native and QTI quizzes, answers
    included: never hand it to a browser as it is.
    """

    __tablename__ = "pkg_activity"
    __table_args__ = (
        db.UniqueConstraint("version_id", "identifier"),
        db.UniqueConstraint("version_id", "activity_key"),
    )

    id = db.Column(db.Integer, primary_key=True)
    version_id = db.Column(db.Integer, db.ForeignKey("pkg_course_version.id", ondelete="CASCADE"), nullable=False,
                           index=True)
    module_id = db.Column(db.Integer, db.ForeignKey("pkg_module.id", ondelete="CASCADE"), nullable=False, index=True)
    identifier = db.Column(db.String(1000), nullable=False)
    # Stable across versions while the activity is unchanged; progress is keyed by it.
    activity_key = db.Column(db.String(32), nullable=False, index=True)
    fingerprint = db.Column(db.String(64), nullable=False)
    # sco, asset, au, webcontent, weblink, quiz, lesson, unsupported (course.ACTIVITY_KINDS).
    kind = db.Column(db.String(20), nullable=False)
    title = db.Column(db.String(500), nullable=False, default="")
    description = db.Column(db.Text, nullable=True)
    href = db.Column(db.Text, nullable=True)
    file = db.Column(db.Text, nullable=True)
    external = db.Column(db.Boolean, nullable=False, default=False)
    launch_parameters = db.Column(db.Text, nullable=True)
    mastery_score = db.Column(db.Float, nullable=True)
    completion_threshold = db.Column(db.Float, nullable=True)
    required = db.Column(db.Boolean, nullable=False, default=True)
    visible = db.Column(db.Boolean, nullable=False, default=True)
    move_on = db.Column(db.String(30), nullable=True)
    launch_method = db.Column(db.String(30), nullable=True)
    activity_type = db.Column(db.String(500), nullable=True)
    quiz = db.Column(db.JSON, nullable=True)
    # Sanitised lesson body of native lessons, ready for the player.
    html = db.Column(db.Text, nullable=True)
    extra = db.Column(db.JSON, nullable=False, default=dict)
    position = db.Column(db.Integer, nullable=False, default=0)

    version = db.relationship("CourseVersion", back_populates="activities")
    module = db.relationship("Module", back_populates="activities")

    @property
    def supported(self) -> bool:
        return self.kind != "unsupported"

    def to_course_activity(self):
        """The importer's value object again (for the quiz engine and completion rules)."""
        from .course import Activity as ActivityValue

        return ActivityValue.from_dict({
            "identifier": self.identifier, "title": self.title, "kind": self.kind, "href": self.href,
            "file": self.file, "external": self.external, "launch_parameters": self.launch_parameters,
            "mastery_score": self.mastery_score, "completion_threshold": self.completion_threshold,
            "required": self.required, "visible": self.visible, "move_on": self.move_on,
            "launch_method": self.launch_method, "activity_type": self.activity_type,
            "description": self.description, "quiz": self.quiz, "html": self.html,
            "extra": dict(self.extra or {}), "position": self.position,
        })

    def __repr__(self) -> str:
        return f"<Activity {self.id} {self.identifier!r} key={self.activity_key}>"


class LearningOutcome(db.Model):
    """A learning outcome statement of a course version (what a learner can do afterwards)."""

    __tablename__ = "pkg_learning_outcome"

    id = db.Column(db.Integer, primary_key=True)
    version_id = db.Column(db.Integer, db.ForeignKey("pkg_course_version.id", ondelete="CASCADE"), nullable=False,
                           index=True)
    position = db.Column(db.Integer, nullable=False, default=0)
    text = db.Column(db.Text, nullable=False)

    version = db.relationship("CourseVersion", back_populates="learning_outcomes")


class Skill(db.Model):
    """An ESCO concept a course teaches (``kind="skill"``) or prepares for (``"occupation"``).

    ``uri`` is the ESCO concept URI in its canonical ``http://data.europa.eu/esco/...`` form;
    ``label`` its preferred label when known (built-in list for the shipped courses, or loaded
    from ESCO's CSV export with ``flask label-skills``).
    """

    __tablename__ = "pkg_skill"

    id = db.Column(db.Integer, primary_key=True)
    uri = db.Column(db.String(300), nullable=False, unique=True)
    kind = db.Column(db.String(20), nullable=False, default="skill", index=True)
    label = db.Column(db.String(500), nullable=True)

    versions = db.relationship("CourseVersion", secondary=course_version_skill, back_populates="skills",
                               passive_deletes=True)

    def __repr__(self) -> str:
        return f"<Skill {self.kind} {self.uri}>"
