"""cmi5 importer: the CATAPULT package, the specification examples and hand-written variants."""

from __future__ import annotations

import shutil

import pytest

from lms_bridge.packages.importers import Cmi5Importer, detect_and_load, load_directory
from lms_bridge.packages.safezip import PackageError

NS = "https://w3id.org/xapi/profiles/cmi5/v1/CourseStructure.xsd"


def structure(body: str, course_id: str = "https://example.org/course/1") -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<courseStructure xmlns="{NS}">'
        f'<course id="{course_id}"><title><langstring lang="de-DE">Kurs</langstring></title>'
        f'<description><langstring lang="de-DE">Beschreibung</langstring></description></course>{body}</courseStructure>'
    )


def au(au_id: str, url: str = "index.html", attrs: str = "", extra: str = "") -> str:
    return (
        f'<au id="{au_id}" {attrs}><title><langstring lang="de-DE">AU {au_id}</langstring></title>'
        f'<description><langstring lang="de-DE">d</langstring></description><url>{url}</url>{extra}</au>'
    )


def package(tmp_path, helpers, xml: str, files=("index.html",)):
    return helpers.write_tree(tmp_path / "pkg", {"cmi5.xml": xml, **{f: "<p>x</p>" for f in files}})


def test_catapult_pre_post_test_zip(fixtures):
    course = detect_and_load(fixtures / "cmi5" / "catapult_pre_post_test_framed_zip" / "pre_post_test_framed.zip")
    assert (course.format, course.identifier) == (
        "cmi5",
        "https://w3id.org/xapi/cmi5/catapult/lts/course/geology-intro-preposttest",
    )
    assert course.title == "Introduction to Geology - Pre/Post Test"
    assert course.language == "en-US"
    assert course.description.startswith("This course will introduce you into the basics of geology.")
    assert [m.title for m in course.modules] == ["Introduction to Geology", "Geological Materials"]
    aus = course.activities()
    assert len(aus) == 6
    assert [(a.title, a.href, a.move_on) for a in aus[:3]] == [
        ("Pre-test", "pre1.html", "Passed"),
        ("Content", "index.html?pages=1", "CompletedOrPassed"),
        ("Post-test", "post1.html", "Passed"),
    ]
    assert all(a.kind == "au" and not a.external and a.launch_method == "AnyWindow" for a in aus)
    assert aus[1].file == "index.html"
    assert course.completion.rule == "cmi5_moveon"
    assert course.completion.required_activities == [a.identifier for a in aus]
    assert course.warnings == []


def test_spec_complex_example_as_bare_xml(fixtures, tmp_path):
    """cmi5 14.2: a course structure without a ZIP; nested blocks, objectives, all moveOn values."""
    course = detect_and_load(fixtures / "cmi5" / "aicc_spec_examples" / "complex-cmi5.xml")
    assert course.title == "Geology"
    assert course.learning_outcomes[:2] == ["Geology - Basic knowledge", "Identification of common Earth materials."]
    aus = course.activities()
    assert len(aus) == 14
    assert all(a.external and a.href.startswith("http") for a in aus)
    rock = aus[0]
    assert (rock.mastery_score, rock.move_on, rock.launch_method) == (1.0, "CompletedOrPassed", "AnyWindow")
    assert rock.launch_parameters == "{'initialSpeed':3.0,'mode':1}"
    assert rock.extra["entitlement_key"] == "833d0c7c-a3f8-4f9b-a51f-cbd8a9dac9fb"
    assert rock.activity_type == "http://adlnet.gov/expapi/activities/lesson"
    # Whitespace around <url> is dropped.
    assert rock.href == "http://courses.example.edu/identifiers/courses/d07e186b/blocks/001/aus/64f6/launch"
    quiz = aus[-1]
    assert (quiz.title, quiz.mastery_score, quiz.launch_method) == ("Quiz", 0.7, "OwnWindow")
    # Top-level AU next to blocks: everything sits in one root module named after the course.
    [root] = course.modules
    assert [m.title for m in root.modules] == ["Geologic materials", "Whole-Earth structure", "Geologic time scale"]
    deep = [p for p, a in course.iter_activities() if a.title == "Cenozoic"][0]
    assert deep == ("Geology", "Geologic time scale", "Current official geologic time scale", "Phanerozoic")
    not_applicable = {a.identifier for a in aus if a.move_on == "NotApplicable"}
    assert len(not_applicable) == 5
    assert set(course.completion.required_activities) == {a.identifier for a in aus} - not_applicable


@pytest.mark.parametrize(
    "folder, mastery, move_on",
    [("masteryscore_framed", 0.3, "CompletedOrPassed"), ("single_au_basic_framed", None, None)],
)
def test_catapult_structures(fixtures, tmp_path, folder, mastery, move_on):
    root = tmp_path / "pkg"
    root.mkdir()
    shutil.copy(fixtures / "cmi5" / "catapult_course_structures" / folder / "cmi5.xml", root / "cmi5.xml")
    course = load_directory(root)
    [a] = course.activities()
    assert a.mastery_score == mastery
    if move_on:
        assert a.move_on == move_on
    assert a.href == "index.html" and any("'index.html' is not in the package" in w for w in course.warnings)


def test_multi_au_structure(fixtures, tmp_path):
    root = tmp_path / "pkg"
    root.mkdir()
    shutil.copy(fixtures / "cmi5" / "catapult_course_structures" / "multi_au_framed" / "cmi5.xml", root / "cmi5.xml")
    assert len(load_directory(root).activities()) == 8


def test_defaults_and_language_preference(tmp_path, helpers):
    xml = structure(
        au("https://example.org/au/1", extra="<launchParameters> mode=1 </launchParameters>")
        + '<block id="https://example.org/b/1"><title><langstring lang="en">Block</langstring>'
        '<langstring lang="de-DE">Block DE</langstring></title><description/>'
        + au(
            "https://example.org/au/2",
            url="sub/page.html?x=1#p",
            attrs='moveOn="completedandpassed" masteryScore="0.85"',
        )
        + "</block>"
    )
    course = load_directory(package(tmp_path, helpers, xml, files=("index.html", "sub/page.html")))
    first, second = course.activities()
    assert (first.move_on, first.launch_method, first.required) == ("NotApplicable", "AnyWindow", False)
    assert first.launch_parameters == "mode=1"
    assert (second.move_on, second.mastery_score, second.href) == ("CompletedAndPassed", 0.85, "sub/page.html?x=1#p")
    assert course.language == "de-DE"
    assert course.modules[0].modules[0].title == "Block DE"
    assert course.completion.required_activities == ["https://example.org/au/2"]


@pytest.mark.parametrize(
    "au_xml, problem",
    [
        (au("https://e.org/a", attrs='moveOn="Sometimes"'), "moveOn 'Sometimes'"),
        (au("https://e.org/a", attrs='masteryScore="85"'), "masteryScore '85'"),
        (au("https://e.org/a", attrs='masteryScore="high"'), "masteryScore 'high'"),
        (au("https://e.org/a", url=""), "has no <url>"),
        (au("https://e.org/a", url="../../etc/passwd"), "outside the package"),
        (au("https://e.org/a", url="javascript:alert(1)"), "not allowed"),
        (au(""), "has no id"),
        ("", "has no AU"),
    ],
)
def test_invalid_structures(tmp_path, helpers, au_xml, problem):
    with pytest.raises(PackageError, match=problem) as err:
        load_directory(package(tmp_path, helpers, structure(au_xml)))
    assert err.value.file == "cmi5.xml"


def test_missing_course_element(tmp_path, helpers):
    xml = f'<courseStructure xmlns="{NS}">{au("https://e.org/a")}</courseStructure>'
    with pytest.raises(PackageError, match="missing <course>"):
        load_directory(package(tmp_path, helpers, xml))


def test_launch_parameters_in_url_and_unknown_launch_method_warn(tmp_path, helpers):
    xml = structure(au("https://e.org/a", url="index.html?endpoint=x&amp;a=1", attrs='launchMethod="Popup"'))
    course = load_directory(package(tmp_path, helpers, xml))
    [a] = course.activities()
    assert a.launch_method == "AnyWindow"
    assert any("launch parameter(s) endpoint" in w for w in course.warnings)
    assert any("unknown launchMethod" in w for w in course.warnings)


def test_detect(tmp_path, helpers):
    assert Cmi5Importer().detect(package(tmp_path, helpers, structure(au("https://e.org/a"))))
    assert not Cmi5Importer().detect(tmp_path)
