"""Catalogue search and filters over imported courses (real database, both backends)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lms_bridge.extensions import db
from lms_bridge.packages import catalogue, service
from lms_bridge.packages.catalogue import CourseQuery, normalise_text, search_terms
from tests.support.db_app import database_app

SKILL_A = "http://data.europa.eu/esco/skill/aaaaaaaa-0000-4000-8000-000000000001"
SKILL_B = "http://data.europa.eu/esco/skill/bbbbbbbb-0000-4000-8000-000000000002"
OCCUPATION = "http://data.europa.eu/esco/occupation/cccccccc-0000-4000-8000-000000000003"

COURSES = [
    {"identifier": "urn:cat:battery", "title": "Batteriesicherheit für Kfz-Techniker", "language": "de-AT",
     "source_project": "ALBATTS", "eqf_level": 4, "workload_hours": 2, "esco_skills": [SKILL_A],
     "esco_occupations": [OCCUPATION], "learning_outcomes": ["Hochvoltsysteme spannungsfrei schalten"],
     "description": "Sécurité des batteries."},
    {"identifier": "urn:cat:diag", "title": "Digital diagnostics", "language": "en-GB", "source_project": "DRIVES",
     "eqf_level": 5, "workload_hours": 6, "esco_skills": [SKILL_A, SKILL_B], "keywords": ["OBD", "50% off_peak"],
     "learning_outcomes": ["Read fault codes with a scan tool"]},
    {"identifier": "urn:cat:hydrogen", "title": "Hydrogen basics", "language": "en", "source_project": "TRIREME",
     "eqf_level": 3, "esco_skills": [SKILL_B], "learning_outcomes": ["Explain how a fuel cell works"]},
    {"identifier": "urn:cat:bare", "title": "A course without metadata"},
]


def write_native(root: Path, meta: dict) -> Path:
    folder = root / meta["identifier"].rsplit(":", 1)[1]
    (folder / "lessons").mkdir(parents=True)
    (folder / "lessons" / "one.md").write_text(f"# {meta['title']}\n\nBody.\n")
    manifest = {**meta, "version": "1.0", "modules": [{"id": "m1", "title": "Module", "activities": [
        {"id": "a1", "type": "lesson", "title": "Lesson", "file": "lessons/one.md"}]}]}
    (folder / "course.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalogue")
    with database_app() as app:
        with app.app_context():
            for meta in COURSES:
                service.import_package(write_native(root, meta))
        yield app


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.rollback()


def ids(query: CourseQuery) -> list[str]:
    return [v.course.package_identifier.rsplit(":", 1)[1] for v in catalogue.search_courses(query).items]


def test_search_terms_and_normalisation():
    assert normalise_text("  Sécurité  des BATTERIES ") == "securite des batteries"
    assert normalise_text("Straße") == "strasse"
    assert search_terms('fuel "fault codes"  FUEL') == ["fuel", "fault codes"]
    assert search_terms("") == [] and len(search_terms(" ".join(f"w{i}" for i in range(30)))) == catalogue.MAX_TERMS


@pytest.mark.parametrize("q, expected", [
    ("hydrogen", ["hydrogen"]),
    ("HYDROGEN BASICS", ["hydrogen"]),
    ("securite", ["battery"]),                 # accent-insensitive, description
    ("batteriesicherheit fur", ["battery"]),   # ü folded
    ("spannungsfrei", ["battery"]),            # learning outcome
    ('"fault codes"', ["diag"]),
    ('"codes fault"', []),
    ("obd", ["diag"]),                         # keyword
    ("50%", ["diag"]), ("off_peak", ["diag"]), ("%", ["diag"]), ("5_%", []), ("o%k", []),  # literal % and _
    ("drives", ["diag"]),                      # source project
    ("nothing-like-this", []),
])
def test_full_text(ctx, q, expected):
    assert ids(CourseQuery(q=q)) == expected


def test_skill_labels_are_searched(ctx):
    assert ids(CourseQuery(q="torque wrench")) == []
    service.set_skill_labels([(SKILL_B, "use a torque wrench")])
    assert ids(CourseQuery(q="torque wrench")) == ["diag", "hydrogen"]


def test_filters(ctx):
    assert ids(CourseQuery(skills=[SKILL_A])) == ["battery", "diag"]
    assert ids(CourseQuery(skills=[SKILL_A, SKILL_B])) == ["diag"]
    assert ids(CourseQuery(skills=[SKILL_A.replace("http:", "https:")])) == ["battery", "diag"]
    assert ids(CourseQuery(skills=[OCCUPATION])) == ["battery"]
    assert ids(CourseQuery(eqf_levels=[3, 5])) == ["diag", "hydrogen"]
    assert ids(CourseQuery(languages=["en"])) == ["diag", "hydrogen"]
    assert ids(CourseQuery(languages=["EN-gb"])) == ["diag"]
    assert ids(CourseQuery(languages=["de", "en-gb"])) == ["battery", "diag"]
    assert ids(CourseQuery(languages=["e"])) == []
    assert ids(CourseQuery(source_projects=["drives", "TRIREME"])) == ["diag", "hydrogen"]
    assert ids(CourseQuery(workload_min=2)) == ["battery", "diag"]
    assert ids(CourseQuery(workload_min=2.5, workload_max=10)) == ["diag"]
    assert ids(CourseQuery(workload_max=2)) == ["battery"]
    assert ids(CourseQuery(q="basics", eqf_levels=[3], languages=["en"], skills=[SKILL_B])) == ["hydrogen"]


def test_sorting_and_pagination(ctx):
    assert ids(CourseQuery()) == ["bare", "battery", "diag", "hydrogen"]
    assert ids(CourseQuery(sort="-title")) == ["hydrogen", "diag", "battery", "bare"]
    assert ids(CourseQuery(sort="eqf_level")) == ["hydrogen", "battery", "diag", "bare"]
    assert ids(CourseQuery(sort="-workload_hours"))[:2] == ["diag", "battery"]  # then those without, by id
    page = catalogue.search_courses(CourseQuery(per_page=3, page=2))
    assert page.total == 4 and page.pages == 2 and len(page.items) == 1
    assert catalogue.search_courses(CourseQuery(page=9)).items == []


def test_facets_count_every_match(ctx):
    page = catalogue.search_courses(CourseQuery(per_page=1))
    facets = {name: {f.value: f.count for f in values} for name, values in page.facets.items()}
    assert facets["eqf_level"] == {3: 1, 4: 1, 5: 1}
    assert facets["language"] == {"de-AT": 1, "en": 1, "en-GB": 1}
    assert facets["source_project"] == {"ALBATTS": 1, "DRIVES": 1, "TRIREME": 1}
    assert facets["skill"] == {SKILL_A: 2, SKILL_B: 2, OCCUPATION: 1}
    narrowed = catalogue.search_courses(CourseQuery(languages=["en"]))
    assert {f.value for f in narrowed.facets["source_project"]} == {"DRIVES", "TRIREME"}


def test_only_current_versions_are_listed(ctx, tmp_path):
    meta = {**COURSES[2], "title": "Hydrogen basics, second edition"}
    folder = write_native(tmp_path, meta)
    manifest = json.loads((folder / "course.json").read_text())
    (folder / "course.json").write_text(json.dumps({**manifest, "version": "2.0"}))
    service.import_package(folder)
    assert [v.title for v in catalogue.search_courses(CourseQuery(q="hydrogen")).items] == [
        "Hydrogen basics, second edition"]
    detail = catalogue.course_detail(catalogue.search_courses(CourseQuery(q="hydrogen")).items[0].course_id)
    assert [v.version for v in detail.course.versions] == ["1.0", "2.0"] and detail.is_current


def test_skill_facets(ctx):
    facets = catalogue.skill_facets()
    assert [(f.uri, f.course_count) for f in facets][:2] in (
        [(SKILL_A, 2), (SKILL_B, 2)], [(SKILL_B, 2), (SKILL_A, 2)])
    assert [f.uri for f in catalogue.skill_facets(kind="occupation")] == [OCCUPATION]
    assert [f.uri for f in catalogue.skill_facets(q="aaaaaaaa")] == [SKILL_A]


def test_detail_of_unknown_course(ctx):
    assert catalogue.course_detail(999999) is None
