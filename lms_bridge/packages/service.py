"""The import service: a package file or folder in, one :class:`CourseVersion` out, all or nothing.

:func:`import_package` opens the upload with :func:`~lms_bridge.packages.importers.base.detect_and_load`
into a staging folder under the package storage folder (``instance/packages/.staging``), computes
the checksum of the checked content, then, in ONE database transaction, writes the course, version,
modules, activities, outcomes and skills, moves the content to ``<storage>/<course id>/<version id>/``
(a rename on the same file system) and commits. If anything fails (a bad package, a database
error, a crash of the import) the transaction is rolled back and the content removed: no rows and no
files are left behind. A folder moved into place just before a failed commit is moved back out and
deleted with the staging folder.

Versioning (see :mod:`lms_bridge.packages.models`):

* a course is identified by its source project and package identifier;
* importing content with the checksum of an already imported version of that course changes
  nothing (the outcome says ``unchanged``);
* other content becomes a new version and the course's current version; activities whose
  identifier and fingerprint are unchanged since the previous current version keep their
  ``activity_key`` (and so learners' progress);
* a package whose version number is older than the current one (both plain dotted numbers such as
  ``1.2.0``) is refused, so re-running an import of an old copy never replaces newer content.

The storage folder is ``PACKAGE_STORAGE_DIR`` when configured, else ``<instance>/packages``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from ..extensions import db
from . import esco
from .course import Activity as ActivityValue
from .course import Course as CourseValue
from .course import Module as ModuleValue
from .importers import detect_and_load
from .importers.native import MANIFEST_NAMES, SIDECAR_NAMES
from .models import (
    Activity,
    Course,
    CourseVersion,
    LearningOutcome,
    Module,
    Skill,
    course_version_skill,
    utcnow,
)
from .safezip import DEFAULT_LIMITS, Limits, PackageError

log = logging.getLogger("lms_bridge.packages")

STAGING = ".staging"
STALE_STAGING_SECONDS = 24 * 3600
_CHUNK = 1024 * 1024


@dataclass
class ImportOutcome:
    """What an import did: ``created`` is False when the same content was already imported."""

    version: CourseVersion
    created: bool
    course_created: bool = False
    kept_activity_keys: int = 0
    new_activity_keys: int = 0

    @property
    def status(self) -> str:
        return "imported" if self.created else "unchanged"


# --------------------------------------------------------------------------- storage


def storage_root() -> Path:
    """Where package content lives: ``PACKAGE_STORAGE_DIR`` or ``<instance>/packages``."""
    configured = current_app.config.get("PACKAGE_STORAGE_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "packages"


def version_dir(version: CourseVersion) -> Path:
    """The folder holding a version's files (the package root is ``content_root`` inside it)."""
    return storage_root() / version.storage_path


def tree_checksum(root: Path) -> tuple[str, int, int]:
    """``(sha256, total bytes, file count)`` over every file's relative path and bytes, in path order.

    The same content gives the same checksum whether it arrived as a ZIP (of any compression or
    timestamps) or as a folder.
    """
    digest = hashlib.sha256()
    files: list[tuple[str, Path]] = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_folder = os.path.relpath(folder, root)
        for name in filenames:
            rel = name if rel_folder == "." else f"{rel_folder}/{name}".replace(os.sep, "/")
            files.append((rel, Path(folder) / name))
    files.sort()
    total = 0
    for rel, path in files:
        size = path.stat().st_size
        total += size
        digest.update(f"{rel}\0{size}\0".encode())
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest(), total, len(files)


def _sweep_staging(folder: Path) -> None:
    """Remove staging folders left by imports that were killed (older than a day)."""
    cutoff = time.time() - STALE_STAGING_SECONDS
    for entry in folder.iterdir() if folder.exists() else []:
        try:
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
        except OSError:
            pass


def _new_staging() -> Path:
    parent = storage_root() / STAGING
    parent.mkdir(parents=True, exist_ok=True)
    _sweep_staging(parent)
    return Path(tempfile.mkdtemp(prefix="import-", dir=parent))


def _materialise_source(source: str | os.PathLike[str] | FileStorage, staging: Path) -> Path:
    """A path for detect_and_load: the given path, or an upload saved (streamed) under its own name."""
    if isinstance(source, FileStorage):
        name = secure_filename(source.filename or "") or "upload.zip"
        path = staging / "upload" / name
        path.parent.mkdir()
        source.save(path)
        return path
    return Path(source)


# --------------------------------------------------------------------------- import


def import_package(source: str | os.PathLike[str] | FileStorage, *, limits: Limits = DEFAULT_LIMITS) -> CourseVersion:
    """Import a package (ZIP of any extension, package folder, bare cmi5.xml, or an upload).

    Returns the new :class:`CourseVersion`, or the existing one when the same content was already
    imported. Raises :class:`~lms_bridge.packages.safezip.PackageError` (naming the file and the
    problem) when the package cannot be imported; nothing is then left behind.
    """
    return import_package_outcome(source, limits=limits).version


def import_package_outcome(source: str | os.PathLike[str] | FileStorage, *,
                           limits: Limits = DEFAULT_LIMITS) -> ImportOutcome:
    """:func:`import_package`, saying also whether anything changed and how many keys were kept."""
    staging = _new_staging()
    try:
        path = _materialise_source(source, staging)
        content = staging / "content"
        course = detect_and_load(path, target_dir=content, limits=limits)
        checksum, size, count = tree_checksum(content)
        label = path.name
        for attempt in (1, 2):
            try:
                return _record(course, content, checksum=checksum, size=size, count=count, label=label)
            except IntegrityError:
                # Another process imported the same course (or skill) at the same moment: read again.
                db.session.rollback()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _record(value: CourseValue, content: Path, *, checksum: str, size: int, count: int, label: str) -> ImportOutcome:
    """Write the rows and move the content into place, in one transaction."""
    identifier = value.identifier.strip()
    if not identifier:
        raise PackageError(label, "the package has no identifier")
    if len(identifier) > 1000:
        raise PackageError(label, f"package identifier longer than 1000 characters ({identifier[:60]}...)")
    source_project = (value.source_project or "").strip()[:200]
    moved_to: Path | None = None
    try:
        course = db.session.execute(
            db.select(Course).filter_by(source_project=source_project, package_identifier=identifier)
        ).scalar_one_or_none()
        course_created = course is None
        previous: CourseVersion | None = None
        warnings = list(value.warnings)
        if course is None:
            course = Course(source_project=source_project, package_identifier=identifier)
            db.session.add(course)
            sequence = 1
        else:
            same = db.session.execute(
                db.select(CourseVersion).filter_by(course_id=course.id, checksum=checksum)
            ).scalar_one_or_none()
            if same is not None:
                return ImportOutcome(version=same, created=False)
            previous = course.current_version
            _refuse_downgrade(previous, value, course, label, warnings)
            sequence = 1 + (db.session.execute(
                db.select(db.func.max(CourseVersion.sequence)).filter_by(course_id=course.id)
            ).scalar() or 0)

        version = _new_version(value, course, sequence, checksum, size, count, warnings, content)
        db.session.add(version)
        kept, new = _write_structure(value, version, previous, label)
        skills = _skills(value)
        _attach_outcomes(value, version)
        from .catalogue import search_document

        version.search_text = search_document(version, skills=skills)
        db.session.flush()  # ids for the storage path and the skill links
        if skills:
            db.session.execute(course_version_skill.insert(), [
                {"version_id": version.id, "skill_id": skill.id, "position": n} for n, skill in enumerate(skills)
            ])

        version.storage_path = f"{course.id}/{version.id}"
        final = storage_root() / version.storage_path
        if os.path.lexists(final):
            raise PackageError(label, f"storage folder {final} already exists (left by an interrupted import?); "
                                      "remove it and import again")
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(content, final)
        moved_to = final
        course.current_version = version
        course.updated_at = utcnow()
        db.session.commit()
    except BaseException:
        db.session.rollback()
        if moved_to is not None:
            # Back to staging (removed with it), so a retry after a lost race still has the content.
            try:
                os.rename(moved_to, content)
            except OSError:
                shutil.rmtree(moved_to, ignore_errors=True)
            _remove_if_empty(moved_to.parent)
        raise
    log.info("package imported: course %s version %s (%s, %s files, %s bytes) from %s",
             course.id, version.id, value.format, count, size, label)
    return ImportOutcome(version=version, created=True, course_created=course_created, kept_activity_keys=kept,
                         new_activity_keys=new)


_NUMERIC_VERSION = re.compile(r"^[vV]?(\d+(?:\.\d+)*)$")


def _numeric_version(value: str | None) -> tuple[int, ...] | None:
    match = _NUMERIC_VERSION.match((value or "").strip())
    if not match:
        return None
    parts = [int(p) for p in match.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _refuse_downgrade(previous: CourseVersion | None, value: CourseValue, course: Course, label: str,
                      warnings: list[str]) -> None:
    if previous is None:
        return
    old, new = _numeric_version(previous.version), _numeric_version(value.version)
    if old is not None and new is not None and new < old:
        raise PackageError(label, f"version {value.version} is older than version {previous.version} of this course "
                                  f"(course {course.id}), which stays current; import a newer version, "
                                  "or remove the course first")
    if previous.version and previous.version == value.version:
        warnings.append(f"content differs from the imported version {previous.version} although the version "
                        "number is the same; consider raising it")


def _clip(value: str | None, length: int) -> str | None:
    return value if value is None or len(value) <= length else value[: length - 1] + "…"


def _new_version(value: CourseValue, course: Course, sequence: int, checksum: str, size: int, count: int,
                 warnings: list[str], content: Path) -> CourseVersion:
    metadata = value.to_dict()
    metadata.pop("modules", None)
    metadata.pop("warnings", None)
    return CourseVersion(
        course=course,
        sequence=sequence,
        version=_clip(value.version, 100),
        format=value.format,
        format_version=_clip(value.format_version, 50),
        imported_at=utcnow(),
        checksum=checksum,
        storage_path="",
        content_root=value.content_root or "",
        size_bytes=size,
        file_count=count,
        title=_clip(value.title or value.identifier, 500),
        description=value.description,
        language=_clip(value.language, 35),
        licence=_clip(value.licence, 500),
        authors=[asdict(a) for a in value.authors],
        keywords=list(value.keywords),
        prerequisites=list(value.prerequisites),
        eqf_level=value.eqf_level,
        workload_hours=value.workload_hours,
        ects=value.ects,
        completion=asdict(value.completion),
        package_metadata=metadata,
        warnings=warnings,
        private_paths=_private_paths(value, content),
    )


def _private_paths(value: CourseValue, content: Path) -> list[str]:
    """Files of the package that are never served: manifests that embed quizzes, quiz sources
    (their answers are scored on the server), metadata sidecars."""
    root = value.content_root or ""

    def rel(path: str) -> str:
        return f"{root}/{path}" if root else path

    private = {rel(name) for name in (*MANIFEST_NAMES, *SIDECAR_NAMES) if (content / rel(name)).is_file()}
    for activity in value.activities():
        if activity.kind == "quiz" and activity.file and not activity.external:
            private.add(rel(activity.file))
    return sorted(private)


def _write_structure(value: CourseValue, version: CourseVersion, previous: CourseVersion | None,
                     label: str) -> tuple[int, int]:
    """Modules and activities, reusing activity keys of unchanged activities. Returns (kept, new)."""
    keys: dict[str, tuple[str, str]] = {}
    if previous is not None:
        rows = db.session.execute(
            db.select(Activity.identifier, Activity.fingerprint, Activity.activity_key).filter_by(version_id=previous.id)
        )
        keys = {identifier: (fingerprint, key) for identifier, fingerprint, key in rows}
    counts = [0, 0]

    def add_activity(item: ActivityValue, module: Module) -> None:
        _check_identifier(item.identifier, label, "activity")
        fingerprint = item.fingerprint()
        old = keys.get(item.identifier)
        if old is not None and old[0] == fingerprint:
            key = old[1]
            counts[0] += 1
        else:
            key = secrets.token_hex(16)
            counts[1] += 1
        data = item.to_dict()
        module.activities.append(Activity(
            version=version, identifier=item.identifier, activity_key=key, fingerprint=fingerprint,
            kind=item.kind, title=_clip(item.title, 500) or "", description=item.description, href=item.href,
            file=item.file, external=item.external, launch_parameters=item.launch_parameters,
            mastery_score=item.mastery_score, completion_threshold=item.completion_threshold,
            required=item.required, visible=item.visible, move_on=item.move_on, launch_method=_clip(item.launch_method, 30),
            activity_type=_clip(item.activity_type, 500), quiz=data.get("quiz"), html=item.html,
            extra=data.get("extra") or {}, position=item.position,
        ))

    def add_module(item: ModuleValue, parent: Module | None) -> Module:
        _check_identifier(item.identifier, label, "module")
        module = Module(version=version, identifier=item.identifier, title=_clip(item.title, 500) or "",
                        description=item.description, position=item.position, visible=item.visible)
        if parent is not None:
            parent.modules.append(module)
        db.session.add(module)
        for child in item.children():
            if isinstance(child, ModuleValue):
                add_module(child, module)
            else:
                add_activity(child, module)
        return module

    for module in sorted(value.modules, key=lambda m: m.position):
        add_module(module, None)
    return counts[0], counts[1]


def _check_identifier(identifier: str, label: str, what: str) -> None:
    if len(identifier) > 1000:
        raise PackageError(label, f"{what} identifier longer than 1000 characters ({identifier[:60]}...)")


def _skills(value: CourseValue) -> list[Skill]:
    """The Skill rows (found or new) for the package's ESCO skills then occupations, in its order."""
    uris: list[str] = []
    for uri in [*value.esco_skills, *value.esco_occupations]:
        uri = esco.canonical_uri(uri)
        if uri and uri not in uris and len(uri) <= 300:
            uris.append(uri)
    if not uris:
        return []
    existing = {s.uri: s for s in db.session.execute(db.select(Skill).where(Skill.uri.in_(uris))).scalars()}
    skills = []
    for uri in uris:
        skill = existing.get(uri)
        if skill is None:
            skill = Skill(uri=uri, kind=esco.concept_kind(uri), label=esco.known_label(uri))
            db.session.add(skill)
        elif skill.label is None and esco.known_label(uri):
            skill.label = esco.known_label(uri)
        skills.append(skill)
    return skills


def _attach_outcomes(value: CourseValue, version: CourseVersion) -> None:
    for position, text in enumerate(value.learning_outcomes):
        version.learning_outcomes.append(LearningOutcome(position=position, text=text))


# --------------------------------------------------------------------------- listing and removal


def list_courses() -> list[Course]:
    """Every course with its versions, oldest first."""
    return list(db.session.execute(
        db.select(Course).options(selectinload(Course.versions), selectinload(Course.current_version))
        .order_by(Course.id)
    ).scalars())


def get_course(course_id: int) -> Course | None:
    return db.session.get(Course, course_id)


def get_version(version_id: int) -> CourseVersion | None:
    return db.session.get(CourseVersion, version_id)


def remove_course(course_id: int) -> Course:
    """Delete a course, every version's rows and files. Raises LookupError for an unknown id.

    The course's folder is first renamed into staging, so a failed commit can put it back; it is
    deleted once the rows are gone. Skills stay (with their labels) for other courses to use.
    """
    course = db.session.get(Course, course_id)
    if course is None:
        raise LookupError(f"no course {course_id}")
    folder = storage_root() / str(course.id)
    trash: Path | None = None
    if folder.exists():
        trash = _new_staging() / "removed"
        os.rename(folder, trash)
    try:
        course.current_version = None
        db.session.flush()
        version_ids = [v.id for v in course.versions]
        if version_ids:
            db.session.execute(course_version_skill.delete().where(course_version_skill.c.version_id.in_(version_ids)))
            for model in (Activity, LearningOutcome):
                db.session.execute(db.delete(model).where(model.version_id.in_(version_ids)))
            # Children before parents (self-referencing modules).
            db.session.execute(db.update(Module).where(Module.version_id.in_(version_ids)).values(parent_id=None))
            db.session.execute(db.delete(Module).where(Module.version_id.in_(version_ids)))
        db.session.delete(course)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        if trash is not None:
            os.rename(trash, folder)
        raise
    if trash is not None:
        shutil.rmtree(trash.parent, ignore_errors=True)
    log.info("course %s removed", course_id)
    return course


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def set_skill_labels(pairs: Iterable[tuple[str, str]]) -> int:
    """Set the label of every known skill named in ``(uri, label)`` pairs; returns how many changed.

    Search documents of the course versions naming those skills are rebuilt in the same transaction.
    """
    wanted: dict[str, str] = {}
    for uri, label in pairs:
        wanted[esco.canonical_uri(uri)] = label[:500]
    changed: list[Skill] = []
    uris = list(wanted)
    for start in range(0, len(uris), 500):
        batch = uris[start:start + 500]
        for skill in db.session.execute(db.select(Skill).where(Skill.uri.in_(batch))).scalars():
            if skill.label != wanted[skill.uri]:
                skill.label = wanted[skill.uri]
                changed.append(skill)
    if changed:
        from .catalogue import search_document

        versions = {v.id: v for s in changed for v in s.versions}
        for version in versions.values():
            version.search_text = search_document(version)
    db.session.commit()
    return len(changed)


def describe_version(version: CourseVersion) -> dict[str, Any]:
    """A short JSON-able summary (CLI output and logs)."""
    return {
        "course_id": version.course_id, "version_id": version.id, "title": version.title,
        "identifier": version.course.package_identifier, "source_project": version.course.source_project,
        "version": version.version, "format": version.format, "sequence": version.sequence,
        "checksum": version.checksum, "imported_at": version.imported_at.isoformat() + "Z",
        "activities": len(version.activities), "warnings": len(version.warnings or []),
    }
