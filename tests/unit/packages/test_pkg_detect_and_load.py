"""detect_and_load end to end: format detection, content left in place, hostile uploads, Course round trips."""

from __future__ import annotations

import json
import os

import pytest

from lms_bridge.packages import Course, Module
from lms_bridge.packages.course import Activity, dedupe_identifiers
from lms_bridge.packages.importers import detect_and_load, find_importer, importers, load_directory
from lms_bridge.packages.safezip import Limits, PackageError

XXE_MANIFEST = """<?xml version="1.0"?>
<!DOCTYPE manifest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<manifest identifier="x"><organizations><organization identifier="o"><title>&xxe;</title></organization></organizations></manifest>
"""
LAUGHS_MANIFEST = """<?xml version="1.0"?>
<!DOCTYPE manifest [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<manifest identifier="x"><metadata><schemaversion>&c;</schemaversion></metadata></manifest>
"""


@pytest.mark.parametrize(
    "fixture, fmt",
    [
        ("scorm12/golf_runtime_basic_calls", "scorm12"),
        ("scorm12/golf_cp_one_file_per_sco_zip/golf_cp_one_file_per_sco_scorm12.zip", "scorm12"),
        ("scorm2004/golf_runtime_basic_calls_3rd", "scorm2004"),
        ("scorm2004/golf_cp_metadata_3rd_zip/golf_cp_metadata_2004_3rd.zip", "scorm2004"),
        ("cmi5/catapult_pre_post_test_framed_zip/pre_post_test_framed.zip", "cmi5"),
        ("cc/instructure_ccviewer/course-1", "cc"),
        ("cc/instructure_ccviewer/grouptest.zip", "cc"),
        ("native/hv_safety_basics", "native"),
    ],
)
def test_every_vendored_sample_imports_and_round_trips(fixtures, fixture, fmt):
    course = detect_and_load(fixtures / fixture)
    assert course.format == fmt and course.activities()
    data = json.loads(json.dumps(course.to_dict()))
    again = Course.from_dict(data)
    assert again == course
    assert [a.fingerprint() for a in again.activities()] == [a.fingerprint() for a in course.activities()]


def test_target_dir_keeps_the_checked_content(fixtures, tmp_path):
    target = tmp_path / "content" / "pkg-1"
    course = detect_and_load(
        fixtures / "scorm12" / "golf_cp_one_file_per_sco_zip" / "golf_cp_one_file_per_sco_scorm12.zip",
        target_dir=target,
    )
    for activity in course.activities():
        assert (target / activity.file).is_file()
    assert sorted(os.listdir(tmp_path / "content")) == ["pkg-1"]


def test_folder_upload_is_copied_to_target(fixtures, tmp_path):
    target = tmp_path / "content" / "native"
    course = detect_and_load(fixtures / "native" / "hv_safety_basics", target_dir=target)
    assert (target / "course.yaml").is_file() and course.format == "native"


def test_archive_wrapping_everything_in_one_folder(tmp_path, helpers):
    archive = helpers.make_zip(
        tmp_path / "wrapped.zip",
        {"My Course/imsmanifest.xml": helpers.SCORM12_MANIFEST, "My Course/index.html": "x", "__MACOSX/._x": b"\0"},
    )
    target = tmp_path / "out" / "pkg"
    course = detect_and_load(archive, target_dir=target)
    assert course.content_root == "My Course"
    [activity] = course.activities()
    assert (target / course.content_root / activity.file).is_file()


@pytest.mark.parametrize(
    "entries, file, problem",
    [
        ({"imsmanifest.xml": XXE_MANIFEST}, "imsmanifest.xml", "DOCTYPE"),
        ({"imsmanifest.xml": LAUGHS_MANIFEST}, "imsmanifest.xml", "DOCTYPE"),
        ({"imsmanifest.xml": "<manifest><organizations></manifest>"}, "imsmanifest.xml", "malformed XML"),
        ({"cmi5.xml": "<courseStructure"}, "cmi5.xml", "malformed XML"),
        ({"index.html": "<p>no manifest</p>", "readme.txt": "x"}, "upload.zip", "no course manifest found"),
        ({"imsmanifest.xml": "x", "../../evil.sh": "rm -rf /"}, "../../evil.sh", "zip slip"),
        ({"imsmanifest.xml": "x", "/etc/cron.d/evil": "x"}, "/etc/cron.d/evil", "absolute path"),
    ],
    ids=["xxe", "billion-laughs", "malformed-manifest", "malformed-cmi5", "missing-manifest", "zip-slip", "absolute"],
)
def test_hostile_uploads_fail_cleanly(tmp_path, helpers, entries, file, problem):
    archive = helpers.make_zip(tmp_path / "upload.zip", entries)
    content = tmp_path / "content"
    with pytest.raises(PackageError, match=problem) as err:
        detect_and_load(archive, target_dir=content / "pkg")
    assert err.value.file == file
    assert file in str(err.value) and problem.split()[0].lower() in str(err.value).lower()
    assert helpers.leftovers(content) == [], "nothing half-imported may be left behind"
    assert not (tmp_path / "evil.sh").exists()


def test_symlink_and_bomb_uploads_fail_cleanly(tmp_path, helpers):
    content = tmp_path / "content"
    link = helpers.zip_with_infos(
        tmp_path / "link.zip",
        [
            (helpers.zip_info("imsmanifest.xml"), helpers.SCORM12_MANIFEST.encode()),
            helpers.symlink_entry("index.html", "/etc/passwd"),
        ],
    )
    with pytest.raises(PackageError, match="symbolic links"):
        detect_and_load(link, target_dir=content / "a")
    bomb = helpers.make_zip(
        tmp_path / "bomb.zip", {"imsmanifest.xml": helpers.SCORM12_MANIFEST, "index.html": bytes(32 << 20)}
    )
    with pytest.raises(PackageError, match="zip bomb"):
        detect_and_load(bomb, target_dir=content / "b")
    many = helpers.make_zip(tmp_path / "many.zip", {f"f{n}.html": "x" for n in range(30)})
    with pytest.raises(PackageError, match="too many files"):
        detect_and_load(many, target_dir=content / "c", limits=Limits(max_files=20))
    assert helpers.leftovers(content) == []


def test_folder_upload_with_symlink_is_refused(tmp_path, helpers):
    root = helpers.write_tree(tmp_path / "pkg", {"imsmanifest.xml": helpers.SCORM12_MANIFEST, "index.html": "x"})
    os.symlink("/etc/passwd", root / "secret.html")
    with pytest.raises(PackageError, match="symbolic links"):
        detect_and_load(root)


def test_load_error_after_extraction_removes_target(tmp_path, helpers):
    bad = helpers.SCORM12_MANIFEST.replace('href="index.html"', 'href="../../outside.html"')
    archive = helpers.make_zip(tmp_path / "upload.zip", {"imsmanifest.xml": bad, "index.html": "x"})
    with pytest.raises(PackageError, match="outside the package"):
        detect_and_load(archive, target_dir=tmp_path / "content" / "pkg")
    assert helpers.leftovers(tmp_path / "content") == []


def test_unreadable_upload(tmp_path):
    with pytest.raises(PackageError, match="no such file"):
        detect_and_load(tmp_path / "nothing.zip")
    blob = tmp_path / "course.bin"
    blob.write_bytes(b"\x00" * 10)
    with pytest.raises(PackageError, match="not a ZIP archive"):
        detect_and_load(blob)


def test_detection_order_and_errors(tmp_path, helpers, fixtures):
    assert [i.format for i in importers()] == ["native", "cmi5", "cc", "scorm"]
    assert find_importer(fixtures / "cc" / "instructure_ccviewer" / "course-1").format == "cc"
    # A cmi5.xml next to an imsmanifest.xml: cmi5 wins (multi-format exports).
    root = helpers.write_tree(tmp_path / "both", {"imsmanifest.xml": helpers.SCORM12_MANIFEST, "cmi5.xml": "<x/>"})
    assert find_importer(root).format == "cmi5"
    with pytest.raises(PackageError, match="no course manifest found"):
        load_directory(helpers.write_tree(tmp_path / "empty", {"a/b.txt": "x", "c.txt": "y"}))


# --------------------------------------------------------------------------- Course model


def test_fingerprint_ignores_titles_but_not_content():
    a = Activity("x", "Title", "sco", href="a.html", mastery_score=0.8)
    b = Activity("x", "Another title", "sco", href="a.html", mastery_score=0.8, position=4)
    c = Activity("x", "Title", "sco", href="b.html", mastery_score=0.8)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_dedupe_identifiers():
    module = Module("m", "M")
    module.add(Activity("a", "A", "sco"))
    module.add(Activity("a", "A again", "sco"))
    inner = module.add(Module("m", "Inner"))
    inner.add(Activity("a", "third", "sco"))
    warnings: list[str] = []
    dedupe_identifiers([module], warnings)
    assert [a.identifier for _, a in module.iter_activities()] == ["a", "a~2", "a~3"]
    assert inner.identifier == "m~2" and len(warnings) == 3


def test_module_children_keep_document_order():
    module = Module("m", "M")
    module.add(Activity("a1", "first", "asset"))
    module.add(Module("sub", "Sub"))
    module.add(Activity("a2", "last", "asset"))
    assert [c.identifier for c in module.children()] == ["a1", "sub", "a2"]
