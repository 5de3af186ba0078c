"""cmi5 course structures (``cmi5.xml``), zipped or bare.

Follows the cmi5 specification (Quartz), section 13 "Course Structure Data Requirements"
and section 14 "Course Package":

* ``courseStructure/course`` (id, title, description: 13.1.1), top-level ``objectives``
  (13.1.3, imported as learning outcomes), nested ``block`` elements (13.1.2) and ``au``
  elements (13.1.4) in document order;
* AU attributes ``launchMethod`` (default ``AnyWindow``), ``moveOn`` (default
  ``NotApplicable``), ``masteryScore`` (decimal 0..1), ``activityType``, and children
  ``url``, ``launchParameters``, ``entitlementKey``, ``objectives``;
* ``url``: relative URLs resolve inside the package (14.1) and must not leave it; fully
  qualified http(s) URLs are kept as external AUs. A bare ``cmi5.xml`` (14.2) should only
  hold fully qualified URLs: relative ones are reported as missing files.

Course completion is the cmi5 rule: every AU whose ``moveOn`` is not ``NotApplicable``
must be satisfied (13.1.4, moveOn "Usage").
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from lxml import etree

from ..course import MOVE_ON_VALUES, Activity, CompletionRule, Course, Module
from ..safezip import PackageError
from ..xml import attr, child, children, local_name, text
from .base import Importer, PackageFiles, group_top_level, pick_langstring, resolve_href

STRUCTURE = "cmi5.xml"
NAMESPACE = "https://w3id.org/xapi/profiles/cmi5/v1/CourseStructure.xsd"
LAUNCH_METHODS = ("AnyWindow", "OwnWindow")
LAUNCH_QUERY_PARAMETERS = ("endpoint", "fetch", "actor", "registration", "activityId")
"""Added by the LMS at launch (cmi5 8.1); an AU url that already carries them is suspect."""


def find_structure(root: str | os.PathLike[str]) -> Path | None:
    root = Path(root)
    exact = root / STRUCTURE
    if exact.is_file() and not exact.is_symlink():
        return exact
    try:
        for entry in os.scandir(root):
            if entry.name.lower() == STRUCTURE and entry.is_file(follow_symlinks=False):
                return Path(entry.path)
    except OSError:
        return None
    return None


def _canonical(value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    wanted = value.strip().lower()
    return next((a for a in allowed if a.lower() == wanted), None)


def _first_lang(el: etree._Element | None) -> str | None:
    for s in children(el, "langstring"):
        lang = (s.get("lang") or "").strip()
        if lang:
            return lang
    return None


class Cmi5Importer(Importer):
    """cmi5 course packages: a ZIP with ``cmi5.xml`` at its root, or the bare XML file."""

    format = "cmi5"

    def detect(self, root_dir: str | os.PathLike[str]) -> bool:
        return find_structure(root_dir) is not None

    def parse(self, root: Path, files: PackageFiles) -> Course:
        path = find_structure(root)
        if path is None:
            raise PackageError(STRUCTURE, "course structure is missing")
        return _Cmi5Parser(files, path.name).run()


class _Cmi5Parser:
    def __init__(self, files: PackageFiles, name: str):
        self.files = files
        self.name = name
        self.warnings: list[str] = []
        self.doc = files.parse_xml(name)
        if local_name(self.doc) != "courseStructure":
            raise PackageError(name, f"root element is <{local_name(self.doc)}>, expected <courseStructure>")
        self.language: str | None = None

    def run(self) -> Course:
        course_el = child(self.doc, "course")
        if course_el is None:
            raise PackageError(self.name, "missing <course> element (cmi5 13.1.1)")
        course_id = (attr(course_el, "id") or "").strip()
        if not course_id:
            raise PackageError(self.name, "<course> has no id (cmi5 13.1.1)")
        title_el = child(course_el, "title")
        self.language = _first_lang(title_el)
        title = " ".join((pick_langstring(title_el) or "").split()) or course_id
        description = self.langstring(child(course_el, "description"))
        outcomes = []
        for objective in children(child(self.doc, "objectives"), "objective"):
            label = self.langstring(child(objective, "title"))
            if label:
                outcomes.append(label)
        items = [self.node(el) for el in children(self.doc, "block", "au")]
        modules = group_top_level(items, course_id, title)
        course = Course(
            identifier=course_id,
            title=title,
            format="cmi5",
            format_version="1.0",
            description=description,
            language=self.language,
            learning_outcomes=outcomes,
            modules=modules,
            warnings=self.warnings,
        )
        aus = course.activities()
        if not aus:
            raise PackageError(self.name, "the course structure has no AU (cmi5 13.1.4)")
        course.completion = CompletionRule(
            rule="cmi5_moveon", required_activities=[a.identifier for a in aus if a.move_on != "NotApplicable"]
        )
        return course

    def langstring(self, el: etree._Element | None) -> str | None:
        value = pick_langstring(el, self.language)
        return " ".join(value.split()) if value else None

    def node(self, el: etree._Element, depth: int = 0) -> Activity | Module:
        if depth > 50:
            raise PackageError(self.name, "blocks nested too deeply")
        if local_name(el) == "au":
            return self.au(el)
        block_id = (attr(el, "id") or "").strip()
        if not block_id:
            raise PackageError(self.name, "a <block> has no id (cmi5 13.1.2)")
        module = Module(
            identifier=block_id,
            title=self.langstring(child(el, "title")) or block_id,
            description=self.langstring(child(el, "description")),
        )
        for sub in children(el, "block", "au"):
            module.add(self.node(sub, depth + 1))
        return module

    def au(self, el: etree._Element) -> Activity:
        au_id = (attr(el, "id") or "").strip()
        if not au_id:
            raise PackageError(self.name, "an <au> has no id (cmi5 13.1.4)")
        where = f"AU {au_id!r}"
        raw_url = "".join((text(child(el, "url")) or "").split())
        if not raw_url:
            raise PackageError(self.name, f"{where} has no <url> (cmi5 13.1.4)")
        url, file, external = resolve_href(self.files, raw_url, source=self.name, what=where, warnings=self.warnings)
        clashing = [
            k for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True) if k in LAUNCH_QUERY_PARAMETERS
        ]
        if clashing:
            self.warnings.append(
                f"{self.name}: {where} url already has launch parameter(s) {', '.join(clashing)} (cmi5 8.1)"
            )

        raw_move_on = attr(el, "moveOn")
        move_on = _canonical(raw_move_on, MOVE_ON_VALUES) if raw_move_on is not None else "NotApplicable"
        if move_on is None:
            raise PackageError(self.name, f"{where}: moveOn {raw_move_on!r} is not one of {', '.join(MOVE_ON_VALUES)}")

        raw_method = attr(el, "launchMethod")
        method = _canonical(raw_method, LAUNCH_METHODS) if raw_method is not None else "AnyWindow"
        if method is None:
            self.warnings.append(f"{self.name}: {where}: unknown launchMethod {raw_method!r}; using AnyWindow")
            method = "AnyWindow"

        mastery = None
        raw_mastery = attr(el, "masteryScore")
        if raw_mastery is not None and raw_mastery.strip():
            try:
                mastery = float(raw_mastery)
            except ValueError:
                mastery = None
            if mastery is None or not 0.0 <= mastery <= 1.0:
                raise PackageError(self.name, f"{where}: masteryScore {raw_mastery!r} is not a decimal in 0..1")

        extra: dict = {}
        key = text(child(el, "entitlementKey"))
        if key:
            extra["entitlement_key"] = key
        refs = [attr(o, "idref") for o in children(child(el, "objectives"), "objective") if attr(o, "idref")]
        if refs:
            extra["objectives"] = refs
        return Activity(
            identifier=au_id,
            title=self.langstring(child(el, "title")) or au_id,
            kind="au",
            href=url,
            file=file,
            external=external,
            launch_parameters=text(child(el, "launchParameters")),
            mastery_score=mastery,
            required=move_on != "NotApplicable",
            move_on=move_on,
            launch_method=method,
            activity_type=(attr(el, "activityType") or "").strip() or None,
            description=self.langstring(child(el, "description")),
            extra=extra,
        )
