"""SCORM 1.2 / 2004 importer: real packages and hand-written variants of the CAM."""

from __future__ import annotations

import pytest

from lms_bridge.packages.importers import ScormImporter, detect_and_load, load_directory
from lms_bridge.packages.importers.scorm import append_parameters
from lms_bridge.packages.safezip import PackageError

NS12 = 'xmlns="http://www.imsproject.org/xsd/imscp_rootv1p1p2" xmlns:adlcp="http://www.adlnet.org/xsd/adlcp_rootv1p2"'
NS2004 = (
    'xmlns="http://www.imsglobal.org/xsd/imscp_v1p1" xmlns:adlcp="http://www.adlnet.org/xsd/adlcp_v1p3" '
    'xmlns:imsss="http://www.imsglobal.org/xsd/imsss"'
)


def manifest(body: str, *, ns: str = NS12, version: str | None = "1.2", attrs: str = "") -> str:
    meta = f"<metadata><schema>ADL SCORM</schema><schemaversion>{version}</schemaversion></metadata>" if version else ""
    return f'<?xml version="1.0"?>\n<manifest identifier="m" {ns} {attrs}>{meta}{body}</manifest>'


def package(tmp_path, helpers, xml: str, files=("index.html",)):
    tree = {"imsmanifest.xml": xml, **{f: "<p>content</p>" for f in files}}
    return helpers.write_tree(tmp_path / "pkg", tree)


# --------------------------------------------------------------------------- real packages


def test_scorm12_single_sco_folder(fixtures):
    course = detect_and_load(fixtures / "scorm12" / "golf_runtime_basic_calls")
    assert (course.format, course.format_version) == ("scorm12", "1.2")
    assert course.identifier == "com.scorm.golfsamples.runtime.basicruntime.12"
    assert course.title == "Golf Explained - Run-time Basic Calls"
    [(path, sco)] = list(course.iter_activities())
    assert path == ("Golf Explained - Run-time Basic Calls",)
    assert (sco.identifier, sco.title, sco.kind) == ("item_1", "Golf Explained", "sco")
    assert (sco.href, sco.file, sco.external) == ("shared/launchpage.html", "shared/launchpage.html", False)
    assert course.completion.required_activities == ["item_1"]
    assert course.warnings == []


def test_scorm12_multi_sco_zip(fixtures):
    course = detect_and_load(
        fixtures / "scorm12" / "golf_cp_one_file_per_sco_zip" / "golf_cp_one_file_per_sco_scorm12.zip"
    )
    assert course.format == "scorm12"
    assert course.title == "Golf Explained - CP One File Per SCO"
    assert [m.title for m in course.modules] == ["Playing the Game", "Etiquette", "Handicapping", "Having Fun"]
    activities = course.activities()
    assert len(activities) == 18
    assert {a.kind for a in activities} == {"asset"}
    by_id = {a.identifier: a for a in activities}
    assert by_id["playing_quiz_item"].href == "shared/assessmenttemplate.html?questions=Playing"
    assert by_id["playing_quiz_item"].file == "shared/assessmenttemplate.html"
    assert by_id["handicapping_calchandi_item"].href == "Handicapping/CalculatingHandicap.html"
    assert [a.title for a in course.modules[1].activities] == [
        "Taking Care of the Course", "Avoiding Distraction", "Playing Politely", "Etiquette Quiz",
    ]  # fmt: skip
    assert len(course.completion.required_activities) == 18


def test_scorm2004_3rd_edition_folder(fixtures):
    course = detect_and_load(fixtures / "scorm2004" / "golf_runtime_basic_calls_3rd")
    assert (course.format, course.format_version) == ("scorm2004", "2004 3rd Edition")
    [sco] = course.activities()
    assert (sco.kind, sco.href, sco.mastery_score, sco.required) == ("sco", "shared/launchpage.html", None, True)


def test_scorm2004_metadata_zip(fixtures):
    course = detect_and_load(fixtures / "scorm2004" / "golf_cp_metadata_3rd_zip" / "golf_cp_metadata_2004_3rd.zip")
    assert (course.format, course.format_version) == ("scorm2004", "2004 3rd Edition")
    # Course-level LOM from adlcp:location metadata_course.xml.
    assert course.title == "Golf Explained"
    assert course.language == "en"
    assert course.version == "1.0"
    assert course.keywords == ["golf", "golf etiquette", "golf handicap"]
    assert course.description.startswith("A high level overview of the sport of golf.")
    assert [a.name for a in course.authors] == ["Mike Rustici"]
    [sco] = course.activities()
    assert (sco.title, sco.kind, sco.href) == ("Golf Explained", "sco", "shared/launchpage.html")
    assert course.modules[0].title == "Golf Explained - Metadata Example"


# --------------------------------------------------------------------------- variants


@pytest.mark.parametrize(
    "resource_attrs, kind",
    [
        ('adlcp:scormtype="sco"', "sco"),
        ('adlcp:scormType="sco"', "sco"),
        ('adlcp:SCORMTYPE="SCO"', "sco"),
        ('scormtype="sco"', "sco"),
        ('adlcp:scormtype="asset"', "asset"),
        ("", "asset"),
    ],
)
def test_scormtype_variants(tmp_path, helpers, resource_attrs, kind):
    xml = manifest(
        '<organizations default="o"><organization identifier="o"><title>T</title>'
        '<item identifier="i" identifierref="r"><title>I</title></item></organization></organizations>'
        f'<resources><resource identifier="r" type="webcontent" {resource_attrs} href="index.html"/></resources>'
    )
    [activity] = load_directory(package(tmp_path, helpers, xml)).activities()
    assert activity.kind == kind


@pytest.mark.parametrize(
    "ns, fmt, version",
    [
        (NS12, "scorm12", "1.2"),
        (NS2004, "scorm2004", "2004"),
        ('xmlns="http://www.imsglobal.org/xsd/imscp_v1p1"', "scorm2004", "2004"),
    ],
)
def test_missing_schemaversion_is_detected_from_namespaces(tmp_path, helpers, ns, fmt, version):
    xml = manifest(
        '<organizations><organization identifier="o"><title>T</title>'
        '<item identifier="i" identifierref="r"><title>I</title></item></organization></organizations>'
        '<resources><resource identifier="r" type="webcontent" href="index.html"/></resources>',
        ns=ns,
        version=None,
    )
    course = load_directory(package(tmp_path, helpers, xml))
    assert (course.format, course.format_version) == (fmt, version)
    assert any("no SCORM schemaversion" in w for w in course.warnings)


@pytest.mark.parametrize(
    "declared, fmt, version",
    [
        ("1.2", "scorm12", "1.2"),
        ("CAM 1.3", "scorm2004", "2004 2nd Edition"),
        ("2004 3rd Edition", "scorm2004", "2004 3rd Edition"),
        ("2004 4th Edition", "scorm2004", "2004 4th Edition"),
        ("2004", "scorm2004", "2004"),
    ],
)
def test_declared_versions(tmp_path, helpers, declared, fmt, version):
    xml = manifest(
        '<organizations><organization identifier="o"><item identifier="i" identifierref="r"><title>I</title></item>'
        '</organization></organizations><resources><resource identifier="r" href="index.html"/></resources>',
        ns=NS2004 if fmt == "scorm2004" else NS12,
        version=declared,
    )
    course = load_directory(package(tmp_path, helpers, xml))
    assert (course.format, course.format_version) == (fmt, version)


def test_xml_base_chain_resolves_launch_href(tmp_path, helpers):
    xml = manifest(
        '<organizations default="o"><organization identifier="o"><title>T</title>'
        '<item identifier="i1" identifierref="r1"><title>A</title></item>'
        '<item identifier="i2" identifierref="r2"><title>B</title></item></organization></organizations>'
        '<resources xml:base="content">'
        '<resource identifier="r1" adlcp:scormtype="sco" xml:base="unit1/" href="start page.html"/>'
        '<resource identifier="r2" adlcp:scormtype="sco" xml:base="../shared/" href="other.html"/>'
        "</resources>",
        attrs='xml:base="course/"',
    )
    root = package(tmp_path, helpers, xml, files=("course/content/unit1/start page.html", "course/shared/other.html"))
    a, b = load_directory(root).activities()
    assert (a.href, a.file) == ("course/content/unit1/start%20page.html", "course/content/unit1/start page.html")
    assert (b.href, b.file) == ("course/shared/other.html", "course/shared/other.html")


def test_nested_items_and_visibility(tmp_path, helpers):
    xml = manifest(
        '<organizations default="o"><organization identifier="o"><title>Course</title>'
        '<item identifier="intro" identifierref="r"><title>Intro</title></item>'
        '<item identifier="part1"><title>Part 1</title>'
        '  <item identifier="ch1"><title>Chapter 1</title>'
        '    <item identifier="s1" identifierref="r"><title>Section 1</title></item>'
        '    <item identifier="s2" identifierref="r" isvisible="false"><title>Hidden</title></item>'
        "  </item>"
        '  <item identifier="quiz" identifierref="r" parameters="?mode=quiz"><title>Quiz</title></item>'
        "</item></organization></organizations>"
        '<resources><resource identifier="r" adlcp:scormtype="sco" href="index.html"/></resources>'
    )
    course = load_directory(package(tmp_path, helpers, xml))
    # A bare top-level item wraps everything in one module named after the organization.
    [root] = course.modules
    assert root.title == "Course"
    paths = [("/".join(p), a.identifier) for p, a in course.iter_activities()]
    assert paths == [
        ("Course", "intro"),
        ("Course/Part 1/Chapter 1", "s1"),
        ("Course/Part 1/Chapter 1", "s2"),
        ("Course/Part 1", "quiz"),
    ]
    assert course.activity("s2").visible is False
    assert course.activity("quiz").href == "index.html?mode=quiz"


@pytest.mark.parametrize(
    "organizations, expected_title, warned",
    [
        (
            '<organizations><organization identifier="a"><title>First</title>{items}</organization>'
            '<organization identifier="b"><title>Second</title>{items}</organization></organizations>',
            "First",
            False,
        ),
        (
            '<organizations default="nope"><organization identifier="a"><title>First</title>{items}</organization>'
            '<organization identifier="b"><title>Second</title>{items}</organization></organizations>',
            "First",
            True,
        ),
        (
            '<organizations default="b"><organization identifier="a"><title>First</title>{items}</organization>'
            '<organization identifier="b"><title>Second</title>{items}</organization></organizations>',
            "Second",
            False,
        ),
    ],
    ids=["no-default", "invalid-default", "valid-default"],
)
def test_default_organization(tmp_path, helpers, organizations, expected_title, warned):
    items = '<item identifier="i{n}" identifierref="r"><title>I</title></item>'
    orgs = organizations.replace("{items}", items)
    orgs = orgs.replace("i{n}", "ia", 1).replace("i{n}", "ib", 1)
    xml = manifest(orgs + '<resources><resource identifier="r" adlcp:scormtype="sco" href="index.html"/></resources>')
    course = load_directory(package(tmp_path, helpers, xml))
    assert course.title == expected_title
    assert any("default organization" in w for w in course.warnings) is warned


def test_scorm12_masteryscore_and_item_data(tmp_path, helpers):
    xml = manifest(
        '<organizations default="o"><organization identifier="o"><title>T</title>'
        '<item identifier="a" identifierref="r"><title>A</title><adlcp:masteryscore>80</adlcp:masteryscore>'
        "<adlcp:datafromlms>level=2</adlcp:datafromlms><adlcp:maxtimeallowed>00:30:00</adlcp:maxtimeallowed>"
        "<adlcp:timelimitaction>exit,message</adlcp:timelimitaction></item>"
        '<item identifier="b" identifierref="r"><title>B</title><adlcp:masteryScore>abc</adlcp:masteryScore></item>'
        "</organization></organizations>"
        '<resources><resource identifier="r" adlcp:scormtype="sco" href="index.html"/></resources>'
    )
    a, b = load_directory(package(tmp_path, helpers, xml)).activities()
    assert a.mastery_score == 0.8
    assert a.launch_parameters == "level=2"
    assert a.extra["max_time_allowed"] == "00:30:00" and a.extra["time_limit_action"] == "exit,message"
    assert b.mastery_score is None


def test_scorm2004_sequencing_mastery_and_thresholds(tmp_path, helpers):
    xml = manifest(
        '<organizations default="o"><organization identifier="o"><title>T</title>'
        '<item identifier="measured" identifierref="r"><title>A</title>'
        "  <adlcp:completionThreshold>0.75</adlcp:completionThreshold>"
        "  <adlcp:dataFromLMS>start=3</adlcp:dataFromLMS>"
        '  <imsss:sequencing><imsss:objectives><imsss:primaryObjective objectiveID="p" satisfiedByMeasure="true">'
        "    <imsss:minNormalizedMeasure>0.6</imsss:minNormalizedMeasure>"
        "  </imsss:primaryObjective></imsss:objectives></imsss:sequencing></item>"
        '<item identifier="not-by-measure" identifierref="r"><title>B</title>'
        '  <imsss:sequencing><imsss:objectives><imsss:primaryObjective objectiveID="p">'
        "    <imsss:minNormalizedMeasure>0.9</imsss:minNormalizedMeasure>"
        "  </imsss:primaryObjective></imsss:objectives></imsss:sequencing></item>"
        '<item identifier="shared" identifierref="r"><title>C</title>'
        '  <adlcp:completionThreshold completedByMeasure="true" minProgressMeasure="0.5"/>'
        '  <imsss:sequencing IDRef="common"/></item>'
        '<item identifier="untracked" identifierref="r"><title>D</title>'
        '  <imsss:sequencing><imsss:deliveryControls tracked="false"/></imsss:sequencing></item>'
        "</organization></organizations>"
        '<resources><resource identifier="r" adlcp:scormType="sco" href="index.html"/></resources>'
        '<imsss:sequencingCollection><imsss:sequencing ID="common"><imsss:objectives>'
        '<imsss:primaryObjective objectiveID="q" satisfiedByMeasure="true"/>'
        "</imsss:objectives></imsss:sequencing></imsss:sequencingCollection>",
        ns=NS2004,
        version="2004 4th Edition",
    )
    course = load_directory(package(tmp_path, helpers, xml))
    measured, not_by_measure, shared, untracked = course.activities()
    assert (measured.mastery_score, measured.completion_threshold) == (0.6, 0.75)
    assert measured.launch_parameters == "start=3"
    assert not_by_measure.mastery_score is None and not_by_measure.extra["min_normalized_measure"] == 0.9
    assert (shared.mastery_score, shared.completion_threshold) == (1.0, 0.5)
    assert untracked.required is False
    assert course.completion.required_activities == ["measured", "not-by-measure", "shared"]


@pytest.mark.parametrize(
    "url, parameters, expected",
    [
        ("a.html", "?x=1", "a.html?x=1"),
        ("a.html", "x=1&y=2", "a.html?x=1&y=2"),
        ("a.html?p=0", "?x=1", "a.html?p=0&x=1"),
        ("a.html?p=0", "&x=1", "a.html?p=0&x=1"),
        ("a.html", "#chapter2", "a.html#chapter2"),
        ("a.html#top", "#chapter2", "a.html#top"),
        ("a.html#top", "?x=1", "a.html?x=1#top"),
        ("a.html", "?x=1#c", "a.html?x=1#c"),
        ("a.html?", "x=1", "a.html?x=1"),
        ("a.html", "", "a.html"),
        ("a.html", None, "a.html"),
    ],
)
def test_append_parameters(url, parameters, expected):
    assert append_parameters(url, parameters) == expected


def test_missing_resource_and_case_mismatch_are_warnings(tmp_path, helpers):
    xml = manifest(
        '<organizations><organization identifier="o"><title>T</title>'
        '<item identifier="a" identifierref="r"><title>A</title></item>'
        '<item identifier="b" identifierref="gone"><title>B</title></item>'
        '<item identifier="c" identifierref="r2"><title>C</title></item></organization></organizations>'
        '<resources><resource identifier="r" adlcp:scormtype="sco" href="Index.HTML"/>'
        '<resource identifier="r2" adlcp:scormtype="sco" href="missing.html"/></resources>'
    )
    course = load_directory(package(tmp_path, helpers, xml))
    a, b, c = course.activities()
    assert (a.href, a.file) == ("index.html", "index.html")
    assert b.kind == "unsupported" and b.required is False
    assert c.href == "missing.html"
    text = "\n".join(course.warnings)
    assert (
        "letter case differs" in text
        and "missing resource 'gone'" in text
        and "'missing.html' is not in the package" in text
    )
    assert course.completion.required_activities == ["a", "c"]


def test_external_resource_is_kept_external(tmp_path, helpers):
    xml = manifest(
        '<organizations><organization identifier="o"><title>T</title>'
        '<item identifier="a" identifierref="r"><title>A</title></item></organization></organizations>'
        '<resources><resource identifier="r" adlcp:scormtype="sco" href="https://content.example.org/sco/start.html"/>'
        "</resources>"
    )
    [a] = load_directory(package(tmp_path, helpers, xml)).activities()
    assert (a.href, a.external, a.file) == ("https://content.example.org/sco/start.html", True, None)


@pytest.mark.parametrize(
    "href, base, problem",
    [
        ("../../etc/passwd", "", "outside the package"),
        ("index.html", "../../", "outside the package"),
        ("/etc/passwd", "", "absolute path"),
        ("javascript:alert(1)", "", "scheme 'javascript'"),
        ("file:///etc/passwd", "", "scheme 'file'"),
    ],
)
def test_hostile_hrefs_are_refused(tmp_path, helpers, href, base, problem):
    base_attr = f'xml:base="{base}"' if base else ""
    xml = manifest(
        '<organizations><organization identifier="o"><item identifier="a" identifierref="r"><title>A</title></item>'
        f'</organization></organizations><resources><resource identifier="r" {base_attr} href="{href}"/></resources>'
    )
    with pytest.raises(PackageError, match=problem) as err:
        load_directory(package(tmp_path, helpers, xml))
    assert err.value.file == "imsmanifest.xml"


def test_submanifest_reference(tmp_path, helpers):
    xml = manifest(
        '<organizations default="o"><organization identifier="o"><title>T</title>'
        '<item identifier="top" identifierref="r"><title>Top</title></item>'
        '<item identifier="unit" identifierref="sub"><title>Unit</title></item></organization></organizations>'
        '<resources><resource identifier="r" adlcp:scormtype="sco" href="index.html"/></resources>'
        '<manifest identifier="sub"><organizations default="so"><organization identifier="so">'
        '<item identifier="inner" identifierref="sr"><title>Inner</title></item></organization></organizations>'
        '<resources xml:base="unit/"><resource identifier="sr" adlcp:scormtype="sco" href="page.html"/></resources>'
        "</manifest>"
    )
    course = load_directory(package(tmp_path, helpers, xml, files=("index.html", "unit/page.html")))
    assert [("/".join(p), a.identifier, a.href) for p, a in course.iter_activities()] == [
        ("T", "top", "index.html"),
        ("T/Unit", "inner", "unit/page.html"),
    ]


def test_resource_package_without_organization(tmp_path, helpers):
    xml = manifest(
        "<organizations/><resources>"
        '<resource identifier="sco1" adlcp:scormtype="sco" href="index.html"/>'
        '<resource identifier="lib" adlcp:scormtype="asset"><file href="lib.js"/></resource></resources>'
    )
    course = load_directory(package(tmp_path, helpers, xml))
    assert [a.identifier for a in course.activities()] == ["sco1"]
    assert any("no organization" in w for w in course.warnings)


def test_nothing_launchable_is_an_error(tmp_path, helpers):
    xml = manifest('<organizations><organization identifier="o"><item identifier="a"><title>A</title></item>'
                   "</organization></organizations><resources/>")  # fmt: skip
    with pytest.raises(PackageError, match="no launchable content"):
        load_directory(package(tmp_path, helpers, xml))


def test_wrong_root_element(tmp_path, helpers):
    root = helpers.write_tree(tmp_path / "pkg", {"imsmanifest.xml": "<html><body/></html>"})
    with pytest.raises(PackageError, match="expected <manifest>"):
        ScormImporter().load(root)


def test_uppercase_manifest_name_is_found(tmp_path, helpers):
    root = helpers.write_tree(tmp_path / "pkg", {"IMSManifest.XML": helpers.SCORM12_MANIFEST, "index.html": "x"})
    course = load_directory(root)
    assert course.format == "scorm12" and course.activities()[0].href == "index.html"
