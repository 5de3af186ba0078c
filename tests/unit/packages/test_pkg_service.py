"""The import service against a real database (SQLite or PostgreSQL): rows, files, versions, failures."""
from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from werkzeug.datastructures import FileStorage

from lms_bridge.extensions import db
from lms_bridge.packages import service
from lms_bridge.packages.models import (
    Activity,
    Course,
    CourseVersion,
    LearningOutcome,
    Module,
    Skill,
)
from lms_bridge.packages.safezip import PackageError
from tests.support.db_app import database_app

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "packages"
HV = FIXTURES / "native" / "hv_safety_basics"

SAMPLES = [
    ("scorm12/golf_runtime_basic_calls", "scorm12"),
    ("scorm12/golf_cp_one_file_per_sco_zip/golf_cp_one_file_per_sco_scorm12.zip", "scorm12"),
    ("scorm2004/golf_runtime_basic_calls_3rd", "scorm2004"),
    ("scorm2004/golf_cp_metadata_3rd_zip/golf_cp_metadata_2004_3rd.zip", "scorm2004"),
    ("cmi5/catapult_pre_post_test_framed_zip/pre_post_test_framed.zip", "cmi5"),
    ("cc/instructure_ccviewer/course-1", "cc"),
    ("cc/instructure_ccviewer/grouptest.zip", "cc"),
    ("native/hv_safety_basics", "native"),
]


@pytest.fixture(scope="module")
def app():
    with database_app() as app:
        yield app


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app
        db.session.rollback()


def counts() -> dict[str, int]:
    return {m.__name__: db.session.query(m).count()
            for m in (Course, CourseVersion, Module, Activity, LearningOutcome, Skill)}


def stored(app) -> list[str]:
    """Everything under the storage folder except empty staging."""
    root = Path(app.instance_path) / "packages"
    if not root.exists():
        return []
    out = []
    for folder, dirs, files in os.walk(root):
        for name in files:
            out.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(out)


def native_copy(tmp_path: Path, name: str, *, identifier: str, version: str = "1.0.0") -> Path:
    """A copy of the native test course with its own identifier and version."""
    target = tmp_path / name
    shutil.copytree(HV, target)
    manifest = target / "course.yaml"
    text = manifest.read_text()
    text = text.replace("identifier: urn:lms-bridge:test:hv-safety-basics", f"identifier: {identifier}")
    text = text.replace('version: "1.0.0"', f'version: "{version}"')
    manifest.write_text(text)
    return target


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return archive


@pytest.mark.parametrize("sample, fmt", SAMPLES)
def test_every_vendored_sample_imports_with_rows_and_files(ctx, sample, fmt):
    outcome = service.import_package_outcome(FIXTURES / sample)
    version = outcome.version
    assert version.format == fmt and version.is_current
    assert version.storage_path == f"{version.course_id}/{version.id}"
    folder = service.version_dir(version)
    for activity in version.activities:
        assert len(activity.activity_key) == 32 and len(activity.fingerprint) == 64
        if activity.file and not activity.external:
            path = folder / version.content_root / activity.file
            assert path.is_file() or any(activity.file in w for w in version.warnings), activity.file
    keys = [a.activity_key for a in version.activities]
    assert len(keys) == len(set(keys))
    assert version.file_count > 0 and version.size_bytes > 0 and len(version.checksum) == 64
    # Module tree: every activity hangs in a module of this version.
    assert {a.module.version_id for a in version.activities} == {version.id}
    assert version.modules and all(m.parent_id is None for m in version.modules)


def test_every_mooc_package_imports(ctx):
    packages = [p for p in sorted((ROOT / "mooc_packages").iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if not packages:
        pytest.skip("mooc_packages/ is empty")
    for package in packages:
        version = service.import_package(package)
        assert version.activities and version.title and version.language
        assert version.eqf_level and version.skills, package.name
        # The concepts the shipped courses name have their ESCO labels.
        assert all(s.label for s in version.skills), [s.uri for s in version.skills if not s.label]
        course = service.detect_and_load(package)
        assert [s.uri for s in version.skills] == [*course.esco_skills, *course.esco_occupations]
        assert normalised_label_in_search(version)


def normalised_label_in_search(version: CourseVersion) -> bool:
    from lms_bridge.packages.catalogue import normalise_text

    return all(normalise_text(s.label) in version.search_text for s in version.skills if s.label)


def test_metadata_outcomes_skills_and_private_files(ctx, tmp_path):
    version = service.import_package(native_copy(tmp_path, "meta", identifier="urn:test:meta"))
    assert version.course.source_project == "lms_bridge test fixtures"
    assert version.language == "en" and version.eqf_level == 4 and version.workload_hours == 1.5
    assert version.ects == 0 and version.licence == "CC-BY-4.0" and version.version == "1.0.0"
    assert version.authors == [{"name": "lms_bridge contributors", "affiliation": None, "url": None}]
    assert next(o.text for o in version.learning_outcomes).startswith("Explain why voltages above 60 V")
    assert [(s.kind, s.uri) for s in version.skills] == [
        ("skill", "http://data.europa.eu/esco/skill/00000000-0000-4000-8000-000000000001"),
        ("occupation", "http://data.europa.eu/esco/occupation/00000000-0000-4000-8000-000000000002"),
    ]
    assert version.prerequisites == ["Basic electrical knowledge (voltage, current, resistance)"]
    assert version.completion["pass_mark"] == 0.8
    # The quiz source holds the answers: never served. The manifest neither.
    assert version.private_paths == ["course.yaml", "quizzes/safety-check.yaml"]
    quiz = version.activity("m2-check")
    assert quiz.kind == "quiz" and quiz.quiz["questions"] and quiz.to_course_activity().quiz.questions
    lesson = version.activity("m1-intro")
    assert "<strong>400 V to 800 V DC</strong>" in lesson.html
    tree = [(m.identifier, [c.identifier for c in m.children()]) for m in version.modules]
    assert tree == [("m1", ["m1-intro", "m1-ppe"]), ("m2", ["m2-check", "m2-reading"])]


def test_same_content_again_is_a_no_op_zipped_or_not(ctx, tmp_path):
    folder = native_copy(tmp_path, "same", identifier="urn:test:same")
    first = service.import_package_outcome(folder)
    before, files = counts(), stored(ctx)
    again = service.import_package_outcome(folder)
    zipped = service.import_package_outcome(zip_folder(folder, tmp_path / "same.zip"))
    assert first.created and not again.created and not zipped.created
    assert again.status == "unchanged" and again.version.id == zipped.version.id == first.version.id
    assert counts() == before and stored(ctx) == files


def test_new_version_keeps_keys_of_unchanged_activities(ctx, tmp_path):
    v1 = service.import_package(native_copy(tmp_path, "v1", identifier="urn:test:versions"))
    keys1 = {a.identifier: a.activity_key for a in v1.activities}
    folder = native_copy(tmp_path, "v2", identifier="urn:test:versions", version="1.1.0")
    # Change one lesson's body and one title; add an activity.
    lesson = folder / "lessons" / "01-hazards.md"
    lesson.write_text(lesson.read_text() + "\nA new paragraph.\n")
    manifest = folder / "course.yaml"
    manifest.write_text(manifest.read_text()
                        .replace("title: Personal protective equipment", "title: Protective equipment (PPE)")
                        .replace("        url: https://osha.europa.eu/en\n        required: false",
                                 "        url: https://osha.europa.eu/en\n        required: false\n"
                                 "      - id: m2-more\n        type: weblink\n        title: More\n"
                                 "        url: https://example.org/more"))
    outcome = service.import_package_outcome(folder)
    v2 = outcome.version
    keys2 = {a.identifier: a.activity_key for a in v2.activities}
    assert outcome.created and v2.id != v1.id and v2.sequence == 2 and v2.course_id == v1.course_id
    assert keys2["m1-ppe"] == keys1["m1-ppe"], "a new title does not reset progress"
    assert keys2["m2-check"] == keys1["m2-check"] and keys2["m2-reading"] == keys1["m2-reading"]
    assert keys2["m1-intro"] != keys1["m1-intro"], "changed content gets a new key"
    assert "m2-more" in keys2 and keys2["m2-more"] not in keys1.values()
    assert (outcome.kept_activity_keys, outcome.new_activity_keys) == (3, 2)
    course = db.session.get(Course, v1.course_id)
    assert course.current_version_id == v2.id and [v.sequence for v in course.versions] == [1, 2]
    assert service.version_dir(v1).is_dir() and service.version_dir(v2).is_dir()
    assert v2.activity("m1-ppe").title == "Protective equipment (PPE)"


def test_same_version_number_with_new_content_warns(ctx, tmp_path):
    service.import_package(native_copy(tmp_path, "a", identifier="urn:test:relabel"))
    folder = native_copy(tmp_path, "b", identifier="urn:test:relabel")
    (folder / "media" / "extra.txt").write_text("new file")
    version = service.import_package(folder)
    assert version.sequence == 2 and any("version number is the same" in w for w in version.warnings)


def test_older_version_is_refused_and_leaves_nothing(ctx, tmp_path):
    service.import_package(native_copy(tmp_path, "new", identifier="urn:test:older", version="2.0"))
    before, files = counts(), stored(ctx)
    with pytest.raises(PackageError, match=r"version 1\.9\.1 is older than version 2\.0"):
        service.import_package(native_copy(tmp_path, "old", identifier="urn:test:older", version="1.9.1"))
    assert counts() == before and stored(ctx) == files


HOSTILE = {
    "zip_slip.zip": {"../evil.txt": b"x", "imsmanifest.xml": b"<manifest/>"},
    "bad_manifest.zip": {"imsmanifest.xml": b"<manifest><organizations>"},
    "xxe.zip": {"imsmanifest.xml": b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                                   b"<manifest>&x;</manifest>"},
    "no_manifest.zip": {"index.html": b"<p>hi</p>"},
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_failing_import_leaves_no_rows_and_no_files(ctx, tmp_path, name):
    archive = tmp_path / name
    with zipfile.ZipFile(archive, "w") as zf:
        for member, data in HOSTILE[name].items():
            zf.writestr(member, data)
    before, files = counts(), stored(ctx)
    with pytest.raises(PackageError) as err:
        service.import_package(archive)
    assert err.value.file  # names the file
    assert counts() == before and stored(ctx) == files


def test_database_failure_after_the_move_leaves_no_rows_and_no_files(ctx, tmp_path, monkeypatch):
    before, files = counts(), stored(ctx)

    def broken_commit():
        raise RuntimeError("database went away")

    monkeypatch.setattr(db.session, "commit", broken_commit)
    with pytest.raises(RuntimeError, match="went away"):
        service.import_package(native_copy(tmp_path, "dbfail", identifier="urn:test:dbfail"))
    monkeypatch.undo()
    db.session.rollback()
    assert counts() == before and stored(ctx) == files


def test_upload_is_imported_under_its_own_name(ctx, tmp_path):
    archive = zip_folder(native_copy(tmp_path, "up", identifier="urn:test:upload"), tmp_path / "up.zip")
    upload = FileStorage(stream=io.BytesIO(archive.read_bytes()), filename="../../My Course.zip")
    version = service.import_package(upload)
    assert version.course.package_identifier == "urn:test:upload"
    bad = FileStorage(stream=io.BytesIO(b"not a zip"), filename="broken.zip")
    with pytest.raises(PackageError, match="broken.zip"):
        service.import_package(bad)


def test_remove_course_deletes_rows_and_files(ctx, tmp_path):
    v1 = service.import_package(native_copy(tmp_path, "r1", identifier="urn:test:remove"))
    service.import_package(native_copy(tmp_path, "r2", identifier="urn:test:remove", version="1.1"))
    course_id, folder = v1.course_id, service.storage_root() / str(v1.course_id)
    assert folder.is_dir()
    service.remove_course(course_id)
    assert db.session.get(Course, course_id) is None and not folder.exists()
    assert db.session.query(CourseVersion).filter_by(course_id=course_id).count() == 0
    assert not [p for p in stored(ctx) if p.startswith(f"{course_id}/")]
    # Skills stay for other courses, with their labels.
    assert db.session.query(Skill).filter(Skill.uri.like("%00000000-0000-4000-8000-000000000001")).count() == 1
    with pytest.raises(LookupError):
        service.remove_course(course_id)


def test_skill_labels_can_be_set_and_are_searchable(ctx, tmp_path):
    version = service.import_package(native_copy(tmp_path, "lbl", identifier="urn:test:labels"))
    csv = ("conceptType,conceptUri,preferredLabel\n"
           "KnowledgeSkillCompetence,https://data.europa.eu/esco/skill/00000000-0000-4000-8000-000000000001,"
           "Überspannungsschutz prüfen\n")
    from lms_bridge.packages.esco import read_label_file

    assert service.set_skill_labels(read_label_file(csv.encode())) == 1
    db.session.refresh(version)
    assert "uberspannungsschutz prufen" in version.search_text


def test_tree_checksum_ignores_how_content_arrived(tmp_path):
    a = tmp_path / "a"
    (a / "sub").mkdir(parents=True)
    (a / "sub" / "x.txt").write_text("x")
    (a / "y.txt").write_text("y")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert service.tree_checksum(a) == service.tree_checksum(b)
    (b / "y.txt").write_text("z")
    assert service.tree_checksum(a)[0] != service.tree_checksum(b)[0]
