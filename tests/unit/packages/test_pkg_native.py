"""Native lms_bridge packages (course.yaml / course.json) and the metadata sidecar."""

from __future__ import annotations

import json

import pytest

from lms_bridge.packages.importers import NativeImporter, detect_and_load, load_directory
from lms_bridge.packages.safezip import PackageError

SKILL = "http://data.europa.eu/esco/skill/00000000-0000-4000-8000-000000000001"


def test_fixture_course(fixtures):
    course = detect_and_load(fixtures / "native" / "hv_safety_basics")
    assert (course.format, course.format_version) == ("native", "1")
    assert course.identifier == "urn:lms-bridge:test:hv-safety-basics"
    assert course.title == "High-voltage safety basics for EV workshops"
    assert course.description.endswith("before work.")
    assert (course.language, course.licence, course.version, course.eqf_level) == ("en", "CC-BY-4.0", "1.0.0", 4)
    assert (course.workload_hours, course.ects) == (1.5, 0.0)
    assert course.esco_skills == [SKILL]
    assert len(course.learning_outcomes) == 3 and course.prerequisites
    assert [a.name for a in course.authors] == ["lms_bridge contributors"]
    assert [m.identifier for m in course.modules] == ["m1", "m2"]

    intro, ppe, check, reading = course.activities()
    assert (intro.kind, intro.file, intro.href) == ("lesson", "lessons/01-hazards.md", None)
    assert "<strong>400 V to 800 V DC</strong>" in intro.html
    # Relative links and images are rewritten relative to the package root.
    assert 'src="media/hv-warning.svg"' in intro.html and 'href="lessons/02-ppe.html"' in intro.html
    assert intro.extra["duration_minutes"] == 15
    assert ppe.html.startswith("<h1>Personal protective equipment</h1>") and "<title>" not in ppe.html
    assert '<th scope="col">Class</th>' in ppe.html

    assert (check.kind, check.mastery_score, check.file) == ("quiz", 0.8, "quizzes/safety-check.yaml")
    quiz = check.quiz
    assert (quiz.title, quiz.pass_mark, quiz.max_attempts, quiz.max_points) == (
        "High-voltage safety check",
        0.8,
        3,
        5.0,
    )
    assert [q.kind for q in quiz.questions] == ["single", "multiple", "true_false", "fill_in"]
    assert quiz.questions[0].prompt == "Above which DC voltage is a vehicle system classed as <em>high voltage</em>?"
    assert quiz.questions[0].choices[1].feedback == "Right: 60 V DC (30 V AC)."
    assert quiz.questions[1].incorrect_feedback.startswith("Jewellery conducts")
    result = quiz.grade({"q1": "b", "q2": ["gloves", "shield"], "q3": True, "q4": "Orange"})
    assert (result.points, result.scaled) == (5.0, 1.0) and quiz.passed(result.scaled)
    assert not quiz.passed(quiz.grade({"q1": "b", "q3": True}).scaled)

    assert (reading.kind, reading.href, reading.external, reading.required) == (
        "weblink",
        "https://osha.europa.eu/en",
        True,
        False,
    )
    assert course.completion.rule == "all_required"
    assert course.completion.required_activities == ["m1-intro", "m1-ppe", "m2-check"]
    assert course.completion.pass_mark == 0.8
    assert course.warnings == []


def native(tmp_path, helpers, manifest: dict | str, files: dict | None = None, name: str = "course.json"):
    content = json.dumps(manifest) if isinstance(manifest, dict) else manifest
    return helpers.write_tree(tmp_path / "pkg", {name: content, **(files or {})})


def minimal(**overrides) -> dict:
    data = {
        "identifier": "c1",
        "title": "Course",
        "modules": [
            {
                "id": "m",
                "title": "Module",
                "activities": [
                    {"id": "l1", "type": "lesson", "title": "Lesson", "file": "l1.md"},
                    {
                        "id": "q1",
                        "type": "quiz",
                        "title": "Quiz",
                        "pass_mark": 0.5,
                        "questions": [
                            {"id": "a", "type": "true_false", "prompt": "Sky is blue", "answer": True},
                            {
                                "id": "b",
                                "type": "single",
                                "prompt": "2+2?",
                                "choices": [{"text": "3"}, {"text": "4", "correct": True}],
                            },
                        ],
                    },
                ],
            }
        ],
    }
    data.update(overrides)
    return data


def test_json_manifest_with_inline_quiz_and_explicit_completion(tmp_path, helpers):
    manifest = minimal(completion={"required": ["q1"], "pass_mark": 0.6}, license="CC-BY-4.0", version=2)
    course = load_directory(native(tmp_path, helpers, manifest, {"l1.md": "# Hi"}))
    lesson, quiz = course.activities()
    assert lesson.required is False and quiz.required is True
    assert course.completion.required_activities == ["q1"] and course.completion.pass_mark == 0.6
    assert (course.licence, course.version) == ("CC-BY-4.0", "2")
    single = quiz.quiz.questions[1]
    assert [c.identifier for c in single.choices] == ["c1", "c2"] and single.correct_choice_ids() == ["c2"]
    assert [c.identifier for c in quiz.quiz.questions[0].choices] == ["true", "false"]


def test_lesson_html_is_sanitised(tmp_path, helpers):
    html = """<html><head><script>steal()</script><style>body{}</style></head><body>
      <h2 onclick="steal()">Title</h2><script>alert(document.cookie)</script>
      <a href="javascript:alert(1)">js</a> <a href="../other.html">ok</a>
      <img src="../../../etc/passwd"><img src="data:image/png;base64,AAAA" alt="d">
      <iframe src="https://evil.example/"></iframe><form action="/x"><input name="p"></form>
      <p style="position:fixed">text</p></body></html>"""
    manifest = minimal(
        modules=[
            {
                "id": "m",
                "title": "M",
                "activities": [{"id": "l", "type": "lesson", "title": "L", "file": "lessons/deep/l1.html"}],
            }
        ]  # fmt: skip
    )
    course = load_directory(native(tmp_path, helpers, manifest, {"lessons/deep/l1.html": html}))
    body = course.activities()[0].html
    for bad in (
        "<script",
        "steal",
        "onclick",
        "javascript:",
        "<iframe",
        "<form",
        "<input",
        "style=",
        "data:",
        "/etc/passwd",
    ):
        assert bad not in body, bad
    assert "<h2>Title</h2>" in body and 'href="lessons/other.html"' in body and "<p>text</p>" in body


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"esco_skills": ["http://example.org/skill/1"]}, "esco_skills.0: not an ESCO skill URI"),
        ({"esco_occupations": ["http://data.europa.eu/esco/skill/x"]}, "not an ESCO occupation URI"),
        ({"eqf_level": 9}, "eqf_level"),
        ({"eqf_level": "4"}, "eqf_level"),
        ({"workload_hours": -1}, "workload_hours"),
        ({"language": "English!"}, "language"),
        ({"colour": "red"}, "colour: Unknown field"),
        ({"modules": []}, "modules"),
        ({"format_version": 2}, "format_version"),
        ({"completion": {"required": ["nope"]}}, "unknown activities: nope"),
        ({"completion": {"required": "some"}}, 'must be "all"'),
    ],
)
def test_manifest_validation_errors(tmp_path, helpers, change, problem):
    with pytest.raises(PackageError, match=problem) as err:
        load_directory(native(tmp_path, helpers, minimal(**change), {"l1.md": "x"}))
    assert err.value.file == "course.json"


@pytest.mark.parametrize(
    "activity, problem",
    [
        ({"id": "x", "type": "lesson", "title": "T"}, "a lesson needs file"),
        ({"id": "x", "type": "lesson", "title": "T", "file": "notes.pdf"}, "lesson files must end in"),
        ({"id": "x", "type": "lesson", "title": "T", "file": "missing.md"}, "'missing.md' is not in the package"),
        ({"id": "x", "type": "lesson", "title": "T", "file": "../outside.md"}, "relative path inside the package"),
        ({"id": "x", "type": "lesson", "title": "T", "file": "/etc/passwd.md"}, "relative path inside the package"),
        ({"id": "x", "type": "quiz", "title": "T"}, "either questions: or file:"),
        ({"id": "x", "type": "weblink", "title": "T", "url": "javascript:alert(1)"}, "url"),
        ({"id": "x y", "type": "lesson", "title": "T", "file": "l1.md"}, "id"),
        ({"id": "l1", "type": "lesson", "title": "Again", "file": "l1.md"}, "duplicate activity id 'l1'"),
        (
            {
                "id": "x",
                "type": "quiz",
                "title": "T",
                "questions": [
                    {
                        "id": "q",
                        "type": "single",
                        "prompt": "p",
                        "choices": [{"text": "a", "correct": True}, {"text": "b", "correct": True}],
                    }
                ],
            },
            "exactly one correct choice",
        ),
        (
            {"id": "x", "type": "quiz", "title": "T", "questions": [{"id": "q", "type": "true_false", "prompt": "p"}]},
            "needs answer",
        ),
        (
            {"id": "x", "type": "quiz", "title": "T", "questions": [{"id": "q", "type": "fill_in", "prompt": "p"}]},
            "at least one accepted answer",
        ),
        (
            {
                "id": "x",
                "type": "quiz",
                "title": "T",
                "questions": [
                    {"id": "q", "type": "multiple", "prompt": "p", "choices": [{"text": "a"}, {"text": "b"}]}
                ],
            },
            "at least one correct choice",
        ),
        (
            {
                "id": "x",
                "type": "quiz",
                "title": "T",
                "questions": [
                    {"id": "q", "type": "true_false", "prompt": "p", "answer": True},
                    {"id": "q", "type": "true_false", "prompt": "p", "answer": False},
                ],
            },
            "question ids must be unique",
        ),
    ],
)
def test_activity_validation_errors(tmp_path, helpers, activity, problem):
    manifest = minimal()
    manifest["modules"][0]["activities"].append(activity)
    with pytest.raises(PackageError, match=problem):
        load_directory(native(tmp_path, helpers, manifest, {"l1.md": "x"}))


def test_quiz_file_errors_name_the_quiz_file(tmp_path, helpers):
    manifest = minimal()
    manifest["modules"][0]["activities"][1] = {"id": "q1", "type": "quiz", "title": "Q", "file": "quiz.yaml"}
    root = native(tmp_path, helpers, manifest, {"l1.md": "x", "quiz.yaml": "- id: a\n  type: essay\n  prompt: p\n"})
    with pytest.raises(PackageError, match="questions.0.type: Must be one of") as err:
        load_directory(root)
    assert err.value.file == "quiz.yaml"


def test_quiz_file_as_bare_list(tmp_path, helpers):
    manifest = minimal()
    manifest["modules"][0]["activities"][1] = {
        "id": "q1",
        "type": "quiz",
        "title": "Q",
        "file": "quiz.json",
        "pass_mark": 0.7,
    }
    questions = [{"id": "a", "type": "fill_in", "prompt": "Unit of voltage?", "answers": ["volt", "V"], "points": 2}]
    course = load_directory(native(tmp_path, helpers, manifest, {"l1.md": "x", "quiz.json": json.dumps(questions)}))
    quiz = course.activity("q1").quiz
    assert quiz.pass_mark == 0.7 and quiz.questions[0].answers == ["volt", "V"] and quiz.max_points == 2


def test_yaml_aliases_are_refused(tmp_path, helpers):
    bomb = "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\nidentifier: c\ntitle: t\n"
    with pytest.raises(PackageError, match="aliases") as err:
        load_directory(native(tmp_path, helpers, bomb, name="course.yaml"))
    assert err.value.file == "course.yaml"


@pytest.mark.parametrize(
    "content, name, problem",
    [
        ("identifier: [unclosed", "course.yaml", "invalid YAML at line"),
        ('{"identifier": }', "course.json", "invalid JSON at line 1"),
        ("- just\n- a list\n", "course.yaml", "expected a mapping"),
        (b"\xff\xfe\x00bad", "course.yaml", "not UTF-8"),
        ("!!python/object:os.system {}\n", "course.yaml", "invalid YAML"),
    ],
)
def test_unreadable_manifests(tmp_path, helpers, content, name, problem):
    root = helpers.write_tree(tmp_path / "pkg", {name: content})
    with pytest.raises(PackageError, match=problem) as err:
        load_directory(root)
    assert err.value.file == name


def test_two_manifests_are_ambiguous(tmp_path, helpers):
    root = native(tmp_path, helpers, minimal(), {"l1.md": "x", "course.yaml": "identifier: x\n"})
    with pytest.raises(PackageError, match="more than one course manifest"):
        NativeImporter().load(root)


# --------------------------------------------------------------------------- sidecar


SIDECAR = f"""\
source_project: DRIVES
licence: CC-BY-4.0
language: en
esco_skills:
  - {SKILL.replace("http://", "https://")}
esco_occupations:
  - http://data.europa.eu/esco/isco/C7231
eqf_level: 4
workload_hours: 2
ects: 0.1
learning_outcomes: [Explain the hazards of high-voltage systems.]
authors: [Jane Doe, {{name: John Roe, affiliation: Example Academy}}]
"""


def test_sidecar_adds_skills_metadata_to_scorm(tmp_path, helpers):
    root = helpers.write_tree(
        tmp_path / "pkg",
        {"imsmanifest.xml": helpers.SCORM12_MANIFEST, "index.html": "x", "lms_bridge.yaml": SIDECAR},
    )
    course = load_directory(root)
    assert course.format == "scorm12" and course.title == "Test course"
    assert (course.source_project, course.eqf_level, course.workload_hours, course.ects) == ("DRIVES", 4, 2.0, 0.1)
    assert course.esco_skills == [SKILL]  # https normalised to the canonical http URI
    assert course.esco_occupations == ["http://data.europa.eu/esco/isco/C7231"]
    assert [(a.name, a.affiliation) for a in course.authors] == [("Jane Doe", None), ("John Roe", "Example Academy")]


def test_sidecar_for_cmi5_zip(tmp_path, helpers, fixtures):
    import shutil
    import zipfile

    archive = tmp_path / "course.zip"
    shutil.copy(fixtures / "cmi5" / "catapult_pre_post_test_framed_zip" / "pre_post_test_framed.zip", archive)
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("lms_bridge.json", json.dumps({"eqf_level": 3, "source_project": "ALBATTS"}))
    course = detect_and_load(archive)
    assert (course.format, course.eqf_level, course.source_project) == ("cmi5", 3, "ALBATTS")


def test_invalid_sidecar_is_an_error(tmp_path, helpers):
    root = helpers.write_tree(
        tmp_path / "pkg",
        {"imsmanifest.xml": helpers.SCORM12_MANIFEST, "index.html": "x", "lms_bridge.json": '{"eqf_level": 12}'},
    )
    with pytest.raises(PackageError, match="eqf_level") as err:
        load_directory(root)
    assert err.value.file == "lms_bridge.json"
