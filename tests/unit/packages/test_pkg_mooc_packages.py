"""The open courses in mooc_packages/: each imports with detect_and_load, with the structure,
metadata and quizzes it is meant to have, and its pages are self-contained and accessible.

The ESCO URIs are pinned to the ones verified in mooc_packages/ESCO_SOURCES.md, so a typo or
an unverified addition fails here.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from lxml import html as lxml_html

from lms_bridge.packages import Course
from lms_bridge.packages.importers import detect_and_load

MOOC = Path(__file__).resolve().parents[3] / "mooc_packages"

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SKILL_URI = re.compile(rf"^http://data\.europa\.eu/esco/skill/{UUID}$")
OCCUPATION_URI = re.compile(rf"^http://data\.europa\.eu/esco/occupation/{UUID}$")


def skills(*ids: str) -> set[str]:
    return {f"http://data.europa.eu/esco/skill/{i}" for i in ids}


def occupations(*ids: str) -> set[str]:
    return {f"http://data.europa.eu/esco/occupation/{i}" for i in ids}


VEHICLE_TECHNICIAN = "4ad4024e-d1d3-4dea-b6d1-2c7948111dce"
AUTOMOTIVE_ELECTRICIAN = "6656337f-67eb-4f48-b1e4-ecccdfa44dd2"
IDENTIFY_HAZARDS = "5f97fac8-2001-4b81-ae8b-22f9062d921a"

COURSES = {
    "battery-safety-ev-scorm2004": {
        "format": "scorm2004",
        "format_version": "2004 4th Edition",
        "identifier": "org.lms-bridge.mooc.battery-safety-ev",
        "title": "Battery safety for electric-vehicle technicians",
        "source_project": "ALBATTS",
        "modules": ["M1-technology-hazards", "M2-working-safely", "M3-incidents", "M4-assessment"],
        "activities": 6,
        "eqf": 4,
        "workload": 8,
        "ects": 0.3,
        "skills": skills(
            "84cc8c9d-db57-42ec-8948-9b632bf06124",  # battery chemistry
            "8cf03262-b6b0-4fe8-9d66-91063bb32db3",  # battery components
            "7c8a86b2-b0ae-4969-901a-5949d9974755",  # operate battery test equipment
            "270de514-3206-4cf9-b122-0f148ab06fa1",  # measure electrical characteristics
            "6122d586-5978-431f-8e7a-96e61fc1f3fc",  # wear appropriate protective gear
            "66ea3249-a079-45ad-b4f2-e6a79b59f10f",  # personal protective equipment
            "970af2f2-9a19-41a0-b42b-b1f36b083d28",  # comply with electrical safety regulations
            IDENTIFY_HAZARDS,
            "e3b4b533-cc4d-4c70-adb6-128120f40c88",  # handling of dangerous goods
            "40fa39b5-0f69-432a-b5ea-b01b5d98649a",  # dispose of hazardous waste
        ),
        "occupations": occupations(
            "06bd6285-13ed-4ea7-90cc-e9638a0600a9",  # automotive battery technician
            AUTOMOTIVE_ELECTRICIAN,
            VEHICLE_TECHNICIAN,
            "43eb6228-8241-47d6-875e-7ccc214291d5",  # battery test technician
        ),
    },
    "digital-skills-workshop-cmi5": {
        "format": "cmi5",
        "format_version": "1.0",
        "identifier": "urn:lms-bridge:mooc:digital-skills-workshop",
        "title": "Digital skills for automotive workshops",
        "source_project": "DRIVES",
        "modules": [
            "urn:lms-bridge:mooc:digital-skills-workshop:block:diagnostics",
            "urn:lms-bridge:mooc:digital-skills-workshop:block:security-data",
            "urn:lms-bridge:mooc:digital-skills-workshop:block:assessment",
        ],
        "activities": 5,
        "eqf": 4,
        "workload": 10,
        "ects": 0.4,
        "skills": skills(
            "5b264a14-d4db-4352-9278-fbb63c5ebed4",  # use automotive diagnostic equipment
            "187f82c7-b165-4e6b-b327-704e38e85cdd",  # automotive diagnostic equipment
            "af851217-a577-401a-b7ed-887865e92951",  # perform vehicle diagnostic procedures
            "3a5275f4-67e5-4371-a31e-68291aa86691",  # vehicle electrical systems
            "cffc3e97-e942-4b13-a2f3-0bf4910c06d3",  # use technical documentation
            "4f5ccaad-0e4f-4e9f-8246-47765564387d",  # upgrade firmware
            "8088750d-8388-4170-a76f-48354c469c44",  # cyber security
            "df329d70-87b0-466b-a214-3431f36e2a5e",  # protect ICT devices
            "a4346013-a967-4a58-a533-6b32ad1364c5",  # data protection
            "33a82b83-c838-4889-ae62-fae1317481eb",  # protect personal data and privacy
        ),
        "occupations": occupations(
            VEHICLE_TECHNICIAN,
            AUTOMOTIVE_ELECTRICIAN,
            "ecdc43f5-3b32-4f94-abf8-cd46480c8cb8",  # vehicle electronics installer
        ),
    },
    "hydrogen-fcev-basics-native": {
        "format": "native",
        "format_version": "1",
        "identifier": "urn:lms-bridge:mooc:hydrogen-fcev-basics",
        "title": "Hydrogen fuel-cell vehicle basics",
        "source_project": "TRIREME",
        "modules": ["m1-hydrogen-fuel-cells", "m2-vehicle-workshop", "m3-mobility-assessment"],
        "activities": 6,
        "eqf": 4,
        "workload": 6,
        "ects": 0.2,
        "skills": skills(
            "5f1f365c-ad8c-4291-9ba5-79e2132a334d",  # fuel cell types
            "7c127140-3a91-4fe2-b33e-12567d78ef0f",  # fuel gas
            "60e7f136-49eb-4496-a54f-410a6e564de6",  # handle gas cylinders
            "a2b566b0-1070-47a4-adc8-88839942ce25",  # hybrid control systems
            "2e55bf22-45f2-43f6-8aa0-28894263313d",  # electric motors
            "b979d9ae-37c2-4d1f-b8b8-7539f913cb19",  # electric drives
            "1fea0bc2-a6fa-4fe8-b36f-7a3194f8ed1c",  # electricity principles
            IDENTIFY_HAZARDS,
        ),
        "occupations": occupations(
            VEHICLE_TECHNICIAN,
            "444c9aa9-578d-4a9a-9949-99ef1bacb20e",  # automotive engineering technician
            "8d410283-865d-4cbb-acae-ac7f69d9cf26",  # automotive engineer
        ),
    },
}

MANIFESTS = ("imsmanifest.xml", "cmi5.xml", "course.yaml", "course.yml", "course.json")


@pytest.fixture(scope="module")
def courses() -> dict[str, Course]:
    return {name: detect_and_load(MOOC / name) for name in COURSES}


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def words(markup: str) -> int:
    return len(lxml_html.fromstring(markup).text_content().split())


def quiz_key(path: Path) -> dict:
    """The answer key object of an answers.js file (``window.QUIZ_KEY = {...};``)."""
    body = text_of(path).split("window.QUIZ_KEY =", 1)[1].strip().rstrip(";")
    return json.loads(body)


# --------------------------------------------------------------------------- every course


def test_every_package_in_the_folder_is_covered():
    found = sorted(p.name for p in MOOC.iterdir() if p.is_dir() and any((p / m).is_file() for m in MANIFESTS))
    assert found == sorted(COURSES)
    assert len(found) >= 3


@pytest.mark.parametrize("name", sorted(COURSES))
def test_course_imports_with_its_metadata(courses, name):
    want = COURSES[name]
    course = courses[name]
    assert course.warnings == []
    assert course.format == want["format"]
    assert course.format_version == want["format_version"]
    assert course.identifier == want["identifier"]
    assert course.title == want["title"]
    assert course.language == "en"
    assert course.licence == "CC-BY-4.0"
    assert course.source_project == want["source_project"]
    assert [a.name for a in course.authors] == ["lms_bridge contributors"]
    assert course.version == "1.0.0"
    assert course.description and len(course.description.split()) >= 30
    assert len(course.learning_outcomes) >= 4
    assert all(len(o.split()) >= 6 for o in course.learning_outcomes)
    assert course.eqf_level == want["eqf"]
    assert course.workload_hours == pytest.approx(want["workload"])
    assert course.ects == pytest.approx(want["ects"])
    # ECTS follows the workload (one credit is 25 to 30 hours of learning).
    assert want["workload"] / 30 <= course.ects <= want["workload"] / 25
    assert course.prerequisites


@pytest.mark.parametrize("name", sorted(COURSES))
def test_esco_uris_are_well_formed_and_the_verified_ones(courses, name):
    course = courses[name]
    assert course.esco_skills and course.esco_occupations
    assert all(SKILL_URI.match(u) for u in course.esco_skills), course.esco_skills
    assert all(OCCUPATION_URI.match(u) for u in course.esco_occupations), course.esco_occupations
    assert len(set(course.esco_skills)) == len(course.esco_skills)
    assert set(course.esco_skills) == COURSES[name]["skills"]
    assert set(course.esco_occupations) == COURSES[name]["occupations"]


def test_every_esco_uri_is_listed_in_esco_sources(courses):
    sources = text_of(MOOC / "ESCO_SOURCES.md")
    for course in courses.values():
        for uri in [*course.esco_skills, *course.esco_occupations]:
            assert f"`{uri.rsplit('/', 1)[1]}`" in sources, uri


@pytest.mark.parametrize("name", sorted(COURSES))
def test_structure_and_completion(courses, name):
    want = COURSES[name]
    course = courses[name]
    assert [m.identifier for m in course.modules] == want["modules"]
    activities = course.activities()
    assert len(activities) == want["activities"]
    assert all(a.required and a.supported for a in activities)
    assert course.completion.required_activities == [a.identifier for a in activities]
    for activity in activities:
        if activity.file:
            assert (MOOC / name / activity.file).is_file(), activity.file


@pytest.mark.parametrize("name", sorted(COURSES))
def test_round_trip_through_json(courses, name):
    course = courses[name]
    again = Course.from_dict(json.loads(json.dumps(course.to_dict())))
    assert again == course


@pytest.mark.parametrize("name", sorted(COURSES))
def test_zipped_package_imports_the_same(courses, name, tmp_path):
    archive = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((MOOC / name).rglob("*")):
            if path.is_file():
                zf.write(path, f"{name}/{path.relative_to(MOOC / name).as_posix()}")
    zipped = detect_and_load(archive)
    assert zipped.content_root == name
    assert [a.fingerprint() for a in zipped.activities()] == [a.fingerprint() for a in courses[name].activities()]


@pytest.mark.parametrize("name", sorted(COURSES))
def test_licence_is_stated(name):
    licence = text_of(MOOC / name / "LICENCE.txt")
    assert "Creative Commons Attribution 4.0 International" in licence and "CC-BY-4.0" in licence
    assert text_of(MOOC / name / "LICENCE.txt") == text_of(MOOC / "LICENCE")


# --------------------------------------------------------------------------- pages

EXTERNAL = re.compile(
    r"""(?:src|href|action|poster)\s*=\s*["']\s*(?:https?:)?//"""  # an attribute pointing off-site
    r"""|url\(\s*["']?\s*(?:https?:)?//|@import""",  # CSS loading from elsewhere
    re.IGNORECASE,
)


def package_files(name: str, *suffixes: str) -> list[Path]:
    return sorted(p for p in (MOOC / name).rglob("*") if p.suffix in suffixes)


@pytest.mark.parametrize("name", sorted(COURSES))
def test_pages_load_nothing_from_the_network(name):
    files = package_files(name, ".html", ".css", ".js", ".svg", ".md")
    assert files
    for path in files:
        assert not EXTERNAL.search(text_of(path)), path


@pytest.mark.parametrize("name", ["battery-safety-ev-scorm2004", "digital-skills-workshop-cmi5"])
def test_html_pages_are_accessible(name):
    pages = package_files(name, ".html")
    assert len(pages) >= 5
    for path in pages:
        source = text_of(path)
        doc = lxml_html.fromstring(source)
        assert doc.get("lang") == "en", path
        assert doc.findtext(".//title").strip(), path
        assert len(doc.findall(".//h1")) == 1, path
        assert doc.find(".//main") is not None and doc.find(".//a[@class='skip-link']") is not None, path
        assert doc.find(".//*[@id='lms-status'][@aria-live='polite']") is not None, path
        assert "<script>" not in source and " style=" not in source and "<style" not in source, path  # CSP-friendly
        for img in doc.iter("img"):
            assert len(img.get("alt", "")) > 20, path
        labels = {lab.get("for") for lab in doc.iter("label")}
        for control in doc.iter("input"):
            assert control.get("id") in labels, (path, control.get("id"))
        assert all(b.text_content().strip() for b in doc.iter("button")), path


@pytest.mark.parametrize("name", ["battery-safety-ev-scorm2004", "digital-skills-workshop-cmi5"])
def test_lessons_have_outcomes_and_real_length(courses, name):
    lessons = [a for a in courses[name].activities() if "quiz" not in a.file]
    assert len(lessons) >= 4
    for lesson in lessons:
        doc = lxml_html.fromstring(text_of(MOOC / name / lesson.file))
        main = doc.find(".//main")
        outcomes = main.find(".//section[@class='outcomes']")
        assert outcomes is not None and len(outcomes.findall(".//li")) >= 3, lesson.file
        assert 300 <= len(main.text_content().split()) <= 900, lesson.file
        assert len(main.findall(".//section[@data-track]")) >= 3, lesson.file


def check_html_quiz(quiz_page: Path, key_file: Path, minimum: int) -> None:
    doc = lxml_html.fromstring(text_of(quiz_page))
    questions = doc.findall(".//form[@id='quiz']/fieldset[@class='question']")
    assert len(questions) >= minimum
    key = quiz_key(key_file)
    assert [q.get("id") for q in questions] == list(key)
    kinds = set()
    for q in questions:
        assert q.find("legend") is not None and q.find("legend").text_content().strip()
        inputs = q.findall(".//input")
        kinds.add(inputs[0].get("type"))
        assert {i.get("type") for i in inputs} <= {"radio", "checkbox"} and len(inputs) >= 2
        assert {i.get("name") for i in inputs} == {q.get("id")}
        values = {i.get("value") for i in inputs}
        want = key[q.get("id")]
        assert want["correct"] and set(want["correct"]) <= values
        if inputs[0].get("type") == "radio":
            assert len(want["correct"]) == 1
        assert len(want["feedback"]) > 20
        assert q.find(f".//*[@id='{q.get('id')}-feedback']") is not None
    assert kinds == {"radio", "checkbox"}
    assert doc.find(".//form[@id='quiz']").get("data-passing") == "0.8"
    assert doc.find(".//*[@id='result'][@role='status']") is not None


# --------------------------------------------------------------------------- SCORM 2004


def test_scorm_course_has_five_lessons_and_a_graded_quiz(courses):
    name = "battery-safety-ev-scorm2004"
    course = courses[name]
    activities = course.activities()
    assert [a.kind for a in activities] == ["sco"] * 6
    assert {m.identifier: len(m.activities) for m in course.modules} == {
        "M1-technology-hazards": 2,
        "M2-working-safely": 2,
        "M3-incidents": 1,
        "M4-assessment": 1,
    }
    quiz = course.activity("Q1-final-quiz")
    assert quiz.mastery_score == pytest.approx(0.8)
    assert quiz.extra["min_normalized_measure"] == pytest.approx(0.8)
    assert [a.mastery_score for a in activities[:5]] == [None] * 5
    manifest = text_of(MOOC / name / "imsmanifest.xml")
    assert "<schemaversion>2004 4th Edition</schemaversion>" in manifest
    assert 'satisfiedByMeasure="true"' in manifest and 'rollupObjectiveSatisfied="false"' in manifest
    check_html_quiz(MOOC / name / quiz.file, MOOC / name / "sco06-quiz" / "answers.js", 8)


def test_scos_use_the_scorm_2004_runtime():
    name = "battery-safety-ev-scorm2004"
    runtime = text_of(MOOC / name / "shared" / "scorm2004.js")
    for call in ("Initialize(", "GetValue(", "SetValue(", "Commit(", "Terminate(", "API_1484_11", ".opener", ".parent"):
        assert call in runtime, call
    lesson = text_of(MOOC / name / "shared" / "lesson.js")
    quiz = text_of(MOOC / name / "shared" / "quiz.js")
    for element in ("cmi.location", "cmi.completion_status", "cmi.entry", "cmi.progress_measure"):
        assert element in lesson, element
    for element in (
        "cmi.completion_status", "cmi.success_status", "cmi.score.scaled", "cmi.score.raw", "cmi.score.min",
        "cmi.score.max", "cmi.location", "cmi.scaled_passing_score", "cmi.suspend_data", "cmi.interactions",
    ):
        assert element in quiz, element
    for page in package_files(name, ".html"):
        assert '<script src="../shared/scorm2004.js" defer></script>' in text_of(page), page


# --------------------------------------------------------------------------- cmi5


def test_cmi5_course_has_move_on_rules_and_a_mastery_score(courses):
    name = "digital-skills-workshop-cmi5"
    course = courses[name]
    activities = course.activities()
    assert [a.kind for a in activities] == ["au"] * 5
    assert [a.move_on for a in activities] == ["Completed"] * 4 + ["Passed"]
    assert [a.mastery_score for a in activities] == [None] * 4 + [pytest.approx(0.8)]
    assert {a.launch_method for a in activities} == {"AnyWindow"}
    assert course.completion.rule == "cmi5_moveon"
    assert [len(m.activities) for m in course.modules] == [2, 2, 1]
    check_html_quiz(MOOC / name / activities[-1].file, MOOC / name / "au05-quiz" / "answers.js", 8)


def test_aus_implement_the_cmi5_launch():
    name = "digital-skills-workshop-cmi5"
    au = text_of(MOOC / name / "shared" / "cmi5.js")
    for needle in (
        '"endpoint", "fetch", "actor", "registration", "activityId"',
        'method: "POST"',
        '"auth-token"',
        "LMS.LaunchData",
        "contextTemplate",
        "registration",
        "https://w3id.org/xapi/cmi5/context/categories/cmi5",
        "https://w3id.org/xapi/cmi5/context/categories/moveon",
        "https://w3id.org/xapi/cmi5/context/extensions/masteryscore",
        '"X-Experience-API-Version": XAPI_VERSION',
        "launchMode",
        "returnURL",
        "keepalive",
    ):
        assert needle in au, needle
    for verb in ("initialized", "completed", "passed", "failed", "terminated"):
        assert f"http://adlnet.gov/expapi/verbs/{verb}" in au, verb
    for page in package_files(name, ".html"):
        assert '<script src="../shared/cmi5.js" defer></script>' in text_of(page), page


# --------------------------------------------------------------------------- native


def test_native_course_lessons_and_quiz(courses):
    course = courses["hydrogen-fcev-basics-native"]
    activities = course.activities()
    assert [a.kind for a in activities] == ["lesson"] * 5 + ["quiz"]
    for lesson in activities[:5]:
        assert lesson.file.endswith(".md")
        assert 300 <= words(lesson.html) <= 700, lesson.identifier
        assert "<h2>" in lesson.html and "Learning outcomes" in lesson.html
        assert "<script" not in lesson.html
    assert '<img alt="Diagram of a PEM fuel cell' in course.activity("l2-pem-fuel-cell").html
    assert (MOOC / "hydrogen-fcev-basics-native" / "media" / "pem-fuel-cell.svg").is_file()

    activity = course.activity("q1-final-quiz")
    quiz = activity.quiz
    assert activity.mastery_score == pytest.approx(0.8) and quiz.pass_mark == pytest.approx(0.8)
    assert course.completion.pass_mark == pytest.approx(0.8)
    assert quiz.max_attempts == 5 and quiz.time_limit_seconds == 30 * 60
    assert len(quiz.questions) == 12
    assert {q.kind for q in quiz.questions} == {"single", "multiple", "true_false", "fill_in"}
    assert quiz.max_points == pytest.approx(13)
    assert all(q.correct_feedback or q.general_feedback for q in quiz.questions)

    right = {}
    for q in quiz.questions:
        if q.kind == "fill_in":
            right[q.identifier] = q.answers[0].upper()
        elif q.kind == "multiple":
            right[q.identifier] = q.correct_choice_ids()
        else:
            right[q.identifier] = q.correct_choice_ids()[0]
    result = quiz.grade(right)
    assert result.scaled == pytest.approx(1.0) and quiz.passed(result.scaled)

    two_wrong = {**right, "q1-carrier": "true", "q10-ventilation": "a"}
    result = quiz.grade(two_wrong)
    assert result.points == pytest.approx(10) and not quiz.passed(result.scaled)
