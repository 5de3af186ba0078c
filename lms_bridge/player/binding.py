"""Which course a launch opens: the resource link's custom parameters.

A platform placement names its course with LTI custom parameters (LTI Core §5.4.6), set by deep
linking (``custom`` of the ``ltiResourceLink`` content item, Deep Linking 2.0 §3.3) or by the
LMS administrator by hand:

* ``course``: the course's id in lms_bridge (``42``), or its package identifier
  (``urn:lms-bridge:mooc:hydrogen-fcev-basics``, SCORM/cmi5 manifest identifier), optionally
  prefixed with its source project and a slash-free ``|`` (``TRIREME|urn:...``);
* ``module`` (optional): the identifier of one module: the player then shows that module only;
* ``activity`` (optional): the identifier of the activity to open first.

``lms_bridge_course``/``lms_bridge_module`` are accepted too (some LMSs prefix custom names).
A link without ``course`` is "not set up yet": learners see a page that says so.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..extensions import db
from ..lti.launch import C
from ..lti.state import LaunchSession
from ..packages.models import Course, CourseVersion, Module


@dataclass
class Binding:
    course: Course
    version: CourseVersion
    module: Module | None = None
    activity_identifier: str | None = None


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


def resolve(launch: LaunchSession) -> Binding | None:
    """The course, version and module of this launch; None when the link names no course.

    Raises :class:`BindingError` when it names one that does not exist (any more).
    """
    custom = custom_params(launch)
    ref = _param(custom, "course")
    if ref is None:
        return None
    course = find_course(ref)
    if course is None or course.current_version_id is None:
        raise BindingError(f"The course {ref!r} this activity is linked to is not in lms_bridge (any more).")
    version = db.session.get(CourseVersion, course.current_version_id)
    module = None
    module_ref = _param(custom, "module")
    if module_ref:
        module = db.session.execute(
            db.select(Module).filter_by(version_id=version.id, identifier=module_ref)
        ).scalar_one_or_none()
        if module is None:
            raise BindingError(f"The module {module_ref!r} this activity is linked to is not in the course any more.")
    return Binding(course=course, version=version, module=module, activity_identifier=_param(custom, "activity"))
