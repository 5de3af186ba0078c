"""flask import-packages / list-packages / remove-package / label-skills."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from tests.support.db_app import database_app

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "packages"


@pytest.fixture(scope="module")
def app():
    with database_app() as app:
        yield app


@pytest.fixture
def run(app):
    runner = app.test_cli_runner()

    def invoke(*args):
        return runner.invoke(args=[str(a) for a in args], catch_exceptions=False)

    return invoke


def test_folder_of_packages(run, tmp_path):
    shutil.copytree(FIXTURES / "native" / "hv_safety_basics", tmp_path / "hv")
    shutil.copy(FIXTURES / "scorm12/golf_cp_one_file_per_sco_zip/golf_cp_one_file_per_sco_scorm12.zip",
                tmp_path / "golf.zip")
    (tmp_path / "README.md").write_text("not a package")
    (tmp_path / ".hidden").mkdir()
    with zipfile.ZipFile(tmp_path / "broken.zip", "w") as zf:
        zf.writestr("imsmanifest.xml", "<manifest><oops>")
    result = run("import-packages", tmp_path)
    lines = result.output.splitlines()
    assert result.exit_code == 1, result.output
    assert lines[0].startswith(f"FAILED     {tmp_path}/broken.zip: imsmanifest.xml: malformed XML")
    assert lines[1].startswith(f"imported   {tmp_path}/golf.zip: 'Golf Explained - CP One File Per SCO' 1 (scorm12)")
    assert lines[2].startswith(f"imported   {tmp_path}/hv: 'High-voltage safety basics for EV workshops' 1.0.0 (native)")
    assert lines[-1] == "3 packages: 2 imported, 0 unchanged, 1 failed"
    (tmp_path / "broken.zip").unlink()
    again = run("import-packages", tmp_path)
    assert again.exit_code == 0 and again.output.count("unchanged  ") == 2, again.output


def test_single_paths_and_missing_ones(run, tmp_path):
    result = run("import-packages", FIXTURES / "scorm12" / "golf_runtime_basic_calls", tmp_path / "nope.zip")
    assert result.exit_code == 1
    assert "nope.zip: no such file or directory" in result.output
    assert "golf_runtime_basic_calls: 'Golf Explained - Run-time Basic Calls'" in result.output


def test_empty_folder_is_fine(run, tmp_path):
    result = run("import-packages", tmp_path)
    assert result.exit_code == 0 and "no packages found" in result.output


def test_mooc_packages_import_cleanly(run):
    """What `make run` does: every shipped course imports (whatever mooc_packages/ holds)."""
    result = run("import-packages", ROOT / "mooc_packages")
    assert result.exit_code == 0, result.output
    assert "FAILED" not in result.output


def test_list_and_remove(run, tmp_path):
    shutil.copytree(FIXTURES / "native" / "hv_safety_basics", tmp_path / "hv")
    run("import-packages", tmp_path / "hv")
    table = run("list-packages").output
    assert "High-voltage safety basics for EV workshops [lms_bridge test fixtures]" in table
    courses = json.loads(run("list-packages", "--json").output)
    course = next(c for c in courses if c["identifier"] == "urn:lms-bridge:test:hv-safety-basics")
    assert course["current"]["format"] == "native" and len(course["versions"]) == 1
    removed = run("remove-package", course["id"])
    assert removed.exit_code == 0 and f"removed course {course['id']}" in removed.output
    again = run("remove-package", course["id"])
    assert again.exit_code == 1 and f"no course {course['id']}" in again.output


def test_label_skills(run, tmp_path):
    shutil.copytree(FIXTURES / "native" / "hv_safety_basics", tmp_path / "hv")
    run("import-packages", tmp_path / "hv")
    good = tmp_path / "labels.csv"
    good.write_text("uri,label\nhttp://data.europa.eu/esco/skill/00000000-0000-4000-8000-000000000001,test label\n")
    assert "labels changed for 1 skills" in run("label-skills", good).output
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    result = run("label-skills", bad)
    assert result.exit_code == 1 and "expected columns conceptUri and preferredLabel" in result.output
