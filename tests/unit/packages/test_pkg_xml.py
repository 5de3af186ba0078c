"""Hardened XML parsing and the tolerant lookup helpers."""

from __future__ import annotations

import pytest
from lxml import etree

from lms_bridge.packages.safezip import PackageError
from lms_bridge.packages.xml import (
    attr,
    child,
    children,
    descendants,
    find,
    join_base,
    parse_xml,
    parse_xml_file,
    text,
    xml_base_chain,
)

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE manifest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<manifest><title>&xxe;</title></manifest>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<lolz>&lol9;</lolz>"""


@pytest.mark.parametrize(
    "doc",
    [
        XXE,
        LAUGHS,
        b'<?xml version="1.0"?><!DOCTYPE manifest SYSTEM "http://evil.example/x.dtd"><manifest/>',
        b'<!-- comment first --><!DOCTYPE manifest PUBLIC "-//x//EN" "x.dtd"><manifest/>',
        b'\xef\xbb\xbf<?xml version="1.0"?>\n<!DOCTYPE manifest><manifest/>',
    ],
    ids=["xxe", "billion-laughs", "external-dtd", "after-comment", "bom"],
)
def test_doctype_is_refused(doc):
    with pytest.raises(PackageError, match="DOCTYPE") as err:
        parse_xml(doc, name="imsmanifest.xml")
    assert err.value.file == "imsmanifest.xml"


def test_doctype_in_utf16_is_refused_after_parsing():
    doc = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>'.encode("utf-16")
    with pytest.raises(PackageError, match="DOCTYPE"):
        parse_xml(doc, name="cmi5.xml")


def test_malformed_xml_names_file_and_line():
    with pytest.raises(PackageError, match=r"malformed XML at line 2") as err:
        parse_xml(b"<manifest>\n<item></manifest>", name="imsmanifest.xml")
    assert err.value.file == "imsmanifest.xml"


def test_undefined_entity_is_malformed():
    with pytest.raises(PackageError, match="malformed XML"):
        parse_xml(b"<r>&undefined;</r>", name="x.xml")


def test_doctype_text_inside_cdata_is_fine():
    root = parse_xml(b"<r><mattext><![CDATA[<!DOCTYPE html><p>hi</p>]]></mattext></r>", name="q.xml")
    assert text(child(root, "mattext")) == "<!DOCTYPE html><p>hi</p>"


def test_processing_instructions_and_declaration_are_fine():
    root = parse_xml(b'<?xml version="1.0" standalone="no" ?>\n<!-- c --><?pi x?><manifest a="1"/>', name="m.xml")
    assert root.get("a") == "1"


def test_parse_xml_file_errors(tmp_path):
    with pytest.raises(PackageError, match="file is missing") as err:
        parse_xml_file(tmp_path / "imsmanifest.xml")
    assert err.value.file == "imsmanifest.xml"


def test_namespace_and_case_insensitive_helpers():
    root = etree.fromstring(
        b"""<manifest xmlns="urn:cp" xmlns:adlcp="urn:adl" xmlns:other="urn:x">
              <resources>
                <resource identifier="a" adlcp:scormtype="sco"/>
                <resource identifier="b" adlcp:scormType="asset"/>
                <resource identifier="c" scormtype="SCO"/>
                <other:Resource identifier="d"/>
              </resources>
              <metadata><schemaversion> 1.2 </schemaversion></metadata>
            </manifest>"""
    )
    resources = list(children(child(root, "RESOURCES"), "resource"))
    assert [attr(r, "scormType") for r in resources] == ["sco", "asset", "SCO", None]
    assert [attr(r, "IDENTIFIER") for r in resources] == ["a", "b", "c", "d"]
    assert text(find(root, "metadata/schemaVersion")) == "1.2"
    assert len(list(descendants(root, "resource"))) == 4
    assert child(root, "missing") is None and text(None) is None and attr(None, "x", default="d") == "d"


def test_xml_base_chain():
    root = etree.fromstring(
        b"""<manifest xml:base="course/">
              <resources xml:base="content">
                <resource identifier="r" xml:base="unit1/"><file href="a.html"/></resource>
                <resource identifier="s" xml:base="http://cdn.example.org/pkg/"/>
                <resource identifier="t" xml:base="/abs/"/>
              </resources>
            </manifest>"""
    )
    r, s, t = descendants(root, "resource")
    assert xml_base_chain(r) == "course/content/unit1/"
    assert xml_base_chain(child(r, "file")) == "course/content/unit1/"
    assert xml_base_chain(s) == "http://cdn.example.org/pkg/"
    assert xml_base_chain(t) == "/abs/"


@pytest.mark.parametrize(
    "base, ref, expected",
    [
        ("", "a.html", "a.html"),
        ("content", "a.html", "content/a.html"),
        ("content/", "../b.html", "content/../b.html"),
        ("content/", "http://x.org/a", "http://x.org/a"),
        ("http://x.org/p", "a/b.html", "http://x.org/p/a/b.html"),
        ("http://x.org/p/", "../q.html", "http://x.org/q.html"),
    ],
)
def test_join_base(base, ref, expected):
    assert join_base(base, ref) == expected
