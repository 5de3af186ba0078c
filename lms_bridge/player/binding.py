"""Which course a launch opens: the resource link's custom parameters, else the instructor's choice.

A platform placement names its course with LTI custom parameters (LTI Core §5.4.6), set by deep
linking (``custom`` of the ``ltiResourceLink`` content item, Deep Linking 2.0 §3.3) or by the
LMS administrator by hand:

* ``course``: the course's id in lms_bridge (``42``), or its package identifier
  (``urn:lms-bridge:mooc:hydrogen-fcev-basics``, SCORM/cmi5 manifest identifier), optionally
  prefixed with its source project and a slash-free ``|`` (``TRIREME|urn:...``);
* ``module`` (optional): the identifier of one module: the player then shows that module only;
* ``activity`` (optional): the identifier of the activity to open first.

``lms_bridge_course``/``lms_bridge_module`` are accepted too (some LMSs prefix custom names).

A link an LMS created without Deep Linking (a teacher adding "External tool" by hand) has no
``course``: its first instructor launch shows a chooser, and the choice is stored per resource
link (:class:`LinkBinding`). :func:`resolve` reads the custom parameters first, then that stored
choice. A link with neither is "not set up yet": learners see a page that says so.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..lti.launch import C
from ..lti.state import LaunchSession
from ..packages.models import Course, CourseVersion, Module


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class LinkBinding(db.Model):
    """The course (or module) an instructor chose for a resource link (LTI Core §5.3.5) that
    carries no ``course`` custom parameter: one row per link, written on its first instructor
    launch. Removing the course removes the choice (the link is "not set up" again)."""

    __tablename__ = "pl_link_binding"

    id = db.Column(db.Integer, primary_key=True)
    resource_link_pk = db.Column(db.Integer, db.ForeignKey("lti_resource_link.id", ondelete="CASCADE"),
                                 nullable=False, unique=True)
    course_id = db.Column(db.Integer, db.ForeignKey("pkg_course.id", ondelete="CASCADE"), nullable=False, index=True)
    # Module identifiers are the package's own, stable across versions of the course.
    module_identifier = db.Column(db.String(1000), nullable=True)
    chosen_by = db.Column(db.Integer, db.ForeignKey("lti_user.id", ondelete="SET NULL"), nullable=True)
    chosen_at = db.Column(db.DateTime, nullable=False, default=_utcnow)


@dataclass
class Binding:
    course: Course
    version: CourseVersion
    module: Module | None = None
    activity_identifier: str | None = None
    origin: str = "custom"  # "custom" (the link's custom parameters) or "stored" (LinkBinding)


class BindingError(Exception):
    """The link names a course (or module) that is not there."""


def custom_params(launch: LaunchSession) -> dict:
    custom = launch.claims.get(C + "custom")
    return custom if isinstance(custom, dict) else {}


def _param(custom: dict, name: str) -> str | None:
    for key in (name, "lms_bridge_" + name):
        value = custom.get(key)
        if isinstance(value, (str, int)) and str(value).strip() and not str(value).startswith("$"):
            return str(value).strip()
    return None


def named_course(launch: LaunchSession) -> str | None:
    """The ``course`` custom parameter of the launch, if it has one."""
    return _param(custom_params(launch), "course")


def find_course(ref: str) -> Course | None:
    if ref.isdigit():
        return db.session.get(Course, int(ref))
    project = None
    identifier = ref
    if "|" in ref:
        project, identifier = ref.split("|", 1)
    q = db.select(Course).filter_by(package_identifier=identifier)
    if project is not None:
        q = q.filter_by(source_project=project)
    found = list(db.session.execute(q.limit(2)).scalars())
    return found[0] if len(found) == 1 else None


def course_ref(course: Course) -> str:
    """The ``course`` custom parameter naming ``course``: portable between lms_bridge instances
    (``PROJECT|package identifier``, or the identifier alone) whenever :func:`find_course` finds
    exactly this course with it, else the instance's numeric id."""
    identifier = course.package_identifier or ""
    if identifier and "|" not in identifier and not identifier.isdigit() and not identifier.startswith("$"):
        ref = f"{course.source_project}|{identifier}" if course.source_project and "|" not in course.source_project \
            else identifier
        found = find_course(ref)
        if found is not None and found.id == course.id:
            return ref
    return str(course.id)


def resource_id(course: Course, module: Module | None = None) -> str:
    """The tool's identifier of a course or module as a gradebook resource (AGS §3.2 ``resourceId``):
    stable, and short enough for every LMS column (long identifiers are hashed)."""
    value = course_ref(course) + (f"#{module.identifier}" if module is not None else "")
    if len(value) > 200:
        value = "lms_bridge:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def _binding(ref: str, module_ref: str | None, activity: str | None, *, origin: str) -> Binding:
    course = find_course(ref)
    if course is None or course.current_version_id is None:
        raise BindingError(f"The course {ref!r} this activity is linked to is not in lms_bridge (any more).")
    version = db.session.get(CourseVersion, course.current_version_id)
    module = None
    if module_ref:
        module = db.session.execute(
            db.select(Module).filter_by(version_id=version.id, identifier=module_ref)
        ).scalar_one_or_none()
        if module is None:
            raise BindingError(f"The module {module_ref!r} this activity is linked to is not in the course any more.")
    return Binding(course=course, version=version, module=module, activity_identifier=activity, origin=origin)


def stored_binding(resource_link_pk: int | None) -> LinkBinding | None:
    if resource_link_pk is None:
        return None
    return db.session.execute(
        db.select(LinkBinding).filter_by(resource_link_pk=resource_link_pk)
    ).scalar_one_or_none()


def resolve(launch: LaunchSession) -> Binding | None:
    """The course, version and module of this launch; None when the link names no course.

    The link's custom parameters win; without them, the instructor's stored choice
    (:class:`LinkBinding`). Raises :class:`BindingError` when the link names a course (or
    module) that does not exist (any more).
    """
    ref = named_course(launch)
    if ref is not None:
        custom = custom_params(launch)
        return _binding(ref, _param(custom, "module"), _param(custom, "activity"), origin="custom")
    # Callers outside a launch (grade passback) may pass just the claims of the link's last launch.
    stored = stored_binding(getattr(launch, "resource_link_pk", None))
    if stored is None:
        return None
    return _binding(str(stored.course_id), stored.module_identifier, None, origin="stored")


class AlreadyBound(Exception):
    """Another instructor chose a course for this link first."""


def bind(launch: LaunchSession, course: Course, module: Module | None = None) -> LinkBinding:
    """Store an instructor's choice for the launch's resource link (first choice wins) and commit."""
    if launch.resource_link_pk is None:
        raise BindingError("This launch has no resource link to set up.")
    row = LinkBinding(resource_link_pk=launch.resource_link_pk, course_id=course.id,
                      module_identifier=module.identifier if module is not None else None,
                      chosen_by=launch.user_pk)
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:  # two instructors chose at the same moment: the first one stays
        db.session.rollback()
        raise AlreadyBound("A course was already chosen for this activity.")
    db.session.commit()
    return row
