"""IMS Common Cartridge importer and the CC QTI 1.2 profile parser."""

from __future__ import annotations

import pytest

from lms_bridge.packages.importers import CommonCartridgeImporter, ScormImporter, detect_and_load, load_directory
from lms_bridge.packages.safezip import PackageError


@pytest.fixture
def cartridges(fixtures):
    return fixtures / "cc" / "instructure_ccviewer"


def test_canvas_course_cc13(cartridges):
    course = detect_and_load(cartridges / "course-1")
    assert (course.format, course.format_version) == ("cc", "1.3.0")
    assert course.title == "COURSE-for-modules-testing"
    assert course.licence.startswith("Private (Copyrighted)")
    [module] = course.modules
    assert module.title == "First Module"
    kinds = [(a.title, a.kind) for a in module.activities]
    assert kinds == [
        ("First Module Assignment 1", "webcontent"),  # assignment -> its cpx:variant HTML fallback
        ("First Module Quiz 1", "quiz"),
        ("First Module Wiki Page 1", "webcontent"),
        ("First Module Discussion 1", "unsupported"),
        ("First Module External URL 1", "weblink"),
        ("Sample Document", "webcontent"),
        ("First Module AnalyTics Beta External Tool", "unsupported"),  # its resource is missing
        ("photo.jpg", "webcontent"),
        ("Assignment with internal links", "webcontent"),
        ("The First Measured Century: 1930-1960 (60:00)", "webcontent"),
    ]
    by_title = {a.title: a for a in module.activities}
    assert by_title["First Module Assignment 1"].extra["variant_of"] == "i7aff7e807cbf2c3be5ca6fc0733ff0a8"
    assert by_title["First Module Wiki Page 1"].href == "wiki_content/first-module-wiki-page-1.html"
    link = by_title["First Module External URL 1"]
    assert (link.href, link.external) == ("http://google.com", True)
    discussion = by_title["First Module Discussion 1"]
    assert discussion.extra["reason"] == "discussion topics are not supported" and discussion.required is False
    quiz = by_title["First Module Quiz 1"].quiz
    [question] = quiz.questions
    assert (question.kind, question.correct_choice_ids()) == ("single", ["4935"])
    assert [c.text for c in question.choices] == ["A", "B", "C", "D"]
    assert "The correct answer is D" in question.prompt
    assert quiz.max_attempts == 1
    assert any("missing resource 'i2a43afb3f81390abba3db9c894444d1d'" in w for w in course.warnings)
    assert discussion.identifier not in course.completion.required_activities


def test_all_question_types(cartridges):
    course = detect_and_load(cartridges / "all-question-types")
    [activity] = course.activities()  # not in a module: listed from the resources
    quiz = activity.quiz
    assert quiz.title == "ALL QUESTION TYPES QUIZ"
    single, true_false, multiple, essay = quiz.questions
    assert (single.kind, single.correct_choice_ids()) == ("single", ["2798"])
    assert single.correct_feedback == "<p>nice job</p>"
    assert single.incorrect_feedback == "<p>too bad</p>"
    assert single.general_feedback == "<p>alright</p>"
    assert {c.identifier: c.feedback for c in single.choices}["5713"] == "<p>add 2</p>"
    assert (true_false.kind, [c.text for c in true_false.choices], true_false.correct_choice_ids()) == (
        "true_false", ["True", "False"], ["4614"],
    )  # fmt: skip
    assert (multiple.kind, sorted(multiple.correct_choice_ids())) == ("multiple", ["5073", "561", "5816"])
    assert essay.kind == "essay" and not essay.auto_scored
    # Grading with the parsed answers.
    result = quiz.grade(
        {single.identifier: "2798", true_false.identifier: False, multiple.identifier: ["561", "5073", "5816"]}
    )
    assert (result.points, result.max_points, result.scaled) == (3.0, 3.0, 1.0)
    assert quiz.grade({multiple.identifier: ["561"]}).points == 0.0


def test_grouped_quizzes_zip_with_fill_in(cartridges):
    course = detect_and_load(cartridges / "grouptest.zip")
    assert [a.title for a in course.activities()] == ["Grouped questions", "Mixed Quiz", "Ungrouped Quiz"]
    fib = course.activities()[2].quiz.questions[0]
    assert (fib.kind, fib.answers, fib.case_sensitive) == ("fill_in", ["C", "D"], False)
    assert fib.is_correct(" c ") and fib.is_correct("D") and not fib.is_correct("E")


def test_cc11_cartridge(cartridges):
    course = detect_and_load(cartridges / "course-with-associated-content-assignments")
    assert (course.format, course.format_version, course.title) == ("cc", "1.1.0", "DocViewer")
    kinds = [a.kind for a in course.activities()]
    assert kinds == ["webcontent", "webcontent", "quiz", "unsupported"]
    assert any("has no QTI file" in w for w in course.warnings)


@pytest.mark.parametrize("name", ["latex.imscc", "single-page.imscc"])
def test_zipped_imscc(cartridges, name):
    course = detect_and_load(cartridges / name)
    assert course.format == "cc" and all(a.kind == "webcontent" for a in course.activities())


@pytest.mark.parametrize(
    "name", ["canvas_cc_gem_course.imscc", "course-with-no-showable-resources", "single-discussion"]
)
def test_cartridges_without_playable_content_are_refused(cartridges, name):
    with pytest.raises(PackageError, match="no content we can play") as err:
        detect_and_load(cartridges / name)
    assert err.value.file == "imsmanifest.xml"


def test_cc_is_told_apart_from_scorm(cartridges, fixtures):
    assert CommonCartridgeImporter().detect(cartridges / "course-1")
    assert not CommonCartridgeImporter().detect(fixtures / "scorm12" / "golf_runtime_basic_calls")
    assert ScormImporter().detect(cartridges / "course-1")  # SCORM would claim any manifest: CC is asked first


# --------------------------------------------------------------------------- hand-written cartridge

MANIFEST = """\
<?xml version="1.0" encoding="UTF-8"?>
<manifest identifier="cc-test" xmlns="http://www.imsglobal.org/xsd/imsccv1p2/imscp_v1p1"
    xmlns:lomimscc="http://ltsc.ieee.org/xsd/imsccv1p2/LOM/manifest" xmlns:lom="http://ltsc.ieee.org/xsd/imsccv1p2/LOM/resource">
  <metadata>
    <schema>IMS Common Cartridge</schema>
    <lomimscc:lom><lomimscc:general>
      <lomimscc:title><lomimscc:string language="en">Hand-made cartridge</lomimscc:string></lomimscc:title>
      <lomimscc:language>en</lomimscc:language>
      <lomimscc:description><lomimscc:string>About it</lomimscc:string></lomimscc:description>
      <lomimscc:keyword><lomimscc:string>cc</lomimscc:string><lomimscc:string>test</lomimscc:string></lomimscc:keyword>
    </lomimscc:general></lomimscc:lom>
  </metadata>
  <organizations>
    <organization identifier="org" structure="rooted-hierarchy">
      <item identifier="root">
        <item identifier="week1"><title>Week 1</title>
          <item identifier="page" identifierref="r-page"><title>Reading</title></item>
          <item identifier="link" identifierref="r-link"/>
          <item identifier="quiz" identifierref="r-quiz"><title>Check</title></item>
          <item identifier="lti" identifierref="r-lti"><title>Tool</title></item>
          <item identifier="teacher" identifierref="r-teacher"><title>Answer key</title></item>
          <item identifier="ftp" identifierref="r-ftp"><title>FTP</title></item>
        </item>
        <item identifier="empty"><title>Nothing here</title></item>
      </item>
    </organization>
  </organizations>
  <resources xml:base="content/">
    <resource identifier="r-page" type="webcontent" href="week1/read.html"><file href="week1/read.html"/></resource>
    <resource identifier="r-link" type="imswl_xmlv1p2"><file href="links/link.xml"/></resource>
    <resource identifier="r-quiz" type="imsqti_xmlv1p2/imscc_xmlv1p2/assessment"><file href="quiz/assessment.xml"/></resource>
    <resource identifier="r-lti" type="imsbasiclti_xmlv1p0"><file href="lti.xml"/></resource>
    <resource identifier="r-teacher" type="webcontent" href="key.html">
      <metadata><lom:lom><lom:educational><lom:intendedEndUserRole><lom:source>IMSGLC_CC_Rolesv1p2</lom:source>
        <lom:value>Instructor</lom:value></lom:intendedEndUserRole></lom:educational></lom:lom></metadata>
      <file href="key.html"/>
    </resource>
    <resource identifier="r-ftp" type="imswl_xmlv1p2"><file href="links/ftp.xml"/></resource>
  </resources>
</manifest>
"""

LINK = """\
<webLink xmlns="http://www.imsglobal.org/xsd/imsccv1p2/imswl_v1p2">
  <title>EU skills portal</title><url href="https://esco.ec.europa.eu/" target="_blank"/>
</webLink>
"""

QTI = """\
<?xml version="1.0" encoding="UTF-8"?>
<questestinterop xmlns="http://www.imsglobal.org/xsd/ims_qtiasiv1p2">
  <assessment ident="A1" title="Week 1 check">
    <qtimetadata><qtimetadatafield><fieldlabel>cc_maxattempts</fieldlabel><fieldentry>unlimited</fieldentry></qtimetadatafield></qtimetadata>
    <section ident="root_section">
      <item ident="fib" title="Capital">
        <itemmetadata><qtimetadata>
          <qtimetadatafield><fieldlabel>cc_profile</fieldlabel><fieldentry>cc.fib.v0p1</fieldentry></qtimetadatafield>
          <qtimetadatafield><fieldlabel>cc_weighting</fieldlabel><fieldentry>3</fieldentry></qtimetadatafield>
        </qtimetadata></itemmetadata>
        <presentation><material><mattext texttype="text/plain">The capital of Austria is</mattext></material>
          <response_str ident="r" rcardinality="Single"><render_fib/></response_str></presentation>
        <resprocessing><outcomes><decvar/></outcomes>
          <respcondition><conditionvar><varequal respident="r" case="Yes">Vienna</varequal>
            <varequal respident="r" case="Yes">Wien</varequal></conditionvar>
            <setvar action="Set">100</setvar></respcondition>
        </resprocessing>
      </item>
      <section ident="nested">
        <item ident="pattern">
          <itemmetadata><qtimetadata><qtimetadatafield><fieldlabel>cc_profile</fieldlabel>
            <fieldentry>cc.pattern_match.v0p1</fieldentry></qtimetadatafield></qtimetadata></itemmetadata>
          <presentation><material><mattext texttype="text/html">&lt;p&gt;Name a &lt;b&gt;renewable&lt;/b&gt; source&lt;script&gt;alert(1)&lt;/script&gt;&lt;/p&gt;</mattext></material>
            <response_str ident="r"><render_fib/></response_str></presentation>
          <resprocessing><respcondition><conditionvar><varsubstring respident="r">solar</varsubstring></conditionvar>
            <setvar action="Add">1</setvar></respcondition></resprocessing>
        </item>
        <item ident="noprofile">
          <presentation><material><mattext>Pick two</mattext></material>
            <response_lid ident="r" rcardinality="Multiple"><render_choice shuffle="Yes">
              <response_label ident="x"><material><mattext>X</mattext></material></response_label>
              <response_label ident="y"><flow_mat><material><mattext>Y</mattext></material></flow_mat></response_label>
              <response_label ident="z"><material><mattext>Z</mattext></material></response_label>
            </render_choice></response_lid></presentation>
          <resprocessing><respcondition><conditionvar><and><varequal respident="r">x</varequal>
            <varequal respident="r">z</varequal><not><varequal respident="r">y</varequal></not></and></conditionvar>
            <setvar action="Set">100</setvar></respcondition></resprocessing>
        </item>
        <item ident="broken">
          <itemmetadata><qtimetadata><qtimetadatafield><fieldlabel>cc_profile</fieldlabel>
            <fieldentry>cc.multiple_choice.v0p1</fieldentry></qtimetadatafield></qtimetadata></itemmetadata>
          <presentation><response_lid ident="r"><render_choice>
            <response_label ident="a"><material><mattext>A</mattext></material></response_label>
          </render_choice></response_lid></presentation>
        </item>
      </section>
    </section>
  </assessment>
</questestinterop>
"""


def cartridge(tmp_path, helpers, manifest=MANIFEST, qti=QTI):
    return helpers.write_tree(
        tmp_path / "cc",
        {
            "imsmanifest.xml": manifest,
            "content/week1/read.html": "<p>read</p>",
            "content/links/link.xml": LINK,
            "content/links/ftp.xml": '<webLink><title>f</title><url href="ftp://files.example.org/x"/></webLink>',
            "content/quiz/assessment.xml": qti,
            "content/lti.xml": "<cartridge_basiclti_link/>",
            "content/key.html": "<p>answers</p>",
        },
    )


def test_hand_made_cartridge(tmp_path, helpers):
    course = load_directory(cartridge(tmp_path, helpers))
    assert (course.title, course.language, course.description) == ("Hand-made cartridge", "en", "About it")
    assert course.keywords == ["cc", "test"]
    assert course.format_version == "1.2.0"
    assert [m.title for m in course.modules] == ["Week 1"]  # the empty folder is dropped
    page, link, quiz, lti, teacher, ftp = course.activities()
    assert page.href == "content/week1/read.html"
    assert (link.title, link.href, link.extra["target"]) == ("EU skills portal", "https://esco.ec.europa.eu/", "_blank")
    assert lti.kind == "unsupported" and lti.extra["reason"] == "LTI links are not supported"
    assert (teacher.visible, teacher.required) == (False, False)
    assert ftp.kind == "unsupported"
    assert set(course.completion.required_activities) == {"page", "link", "quiz"}

    q = quiz.quiz
    assert (q.title, q.max_attempts) == ("Week 1 check", None)
    fib, pattern, multiple, broken = q.questions
    assert (fib.kind, fib.points, fib.answers, fib.case_sensitive) == ("fill_in", 3.0, ["Vienna", "Wien"], True)
    assert fib.prompt == "The capital of Austria is"
    assert fib.is_correct("Wien") and not fib.is_correct("wien")
    assert (pattern.kind, pattern.match, pattern.answers) == ("fill_in", "contains", ["solar"])
    assert (
        pattern.is_correct("Solar power") and "<script>" not in pattern.prompt and "<b>renewable</b>" in pattern.prompt
    )
    assert (multiple.kind, multiple.correct_choice_ids(), multiple.shuffle) == ("multiple", ["x", "z"], True)
    assert [c.text for c in multiple.choices] == ["X", "Y", "Z"]
    assert broken.kind == "unsupported"
    assert any("'broken'" in w and "no correct choice" in w for w in course.warnings)
    assert q.max_points == 5.0


def test_malformed_qti_is_fatal_and_named(tmp_path, helpers):
    root = cartridge(tmp_path, helpers, qti="<questestinterop><assessment>")
    with pytest.raises(PackageError, match="malformed XML") as err:
        load_directory(root)
    assert err.value.file == "content/quiz/assessment.xml"


def test_qti_with_doctype_is_refused(tmp_path, helpers):
    root = cartridge(tmp_path, helpers, qti='<!DOCTYPE q [<!ENTITY x SYSTEM "file:///etc/passwd">]><questestinterop/>')
    with pytest.raises(PackageError, match="DOCTYPE") as err:
        load_directory(root)
    assert err.value.file == "content/quiz/assessment.xml"
