"""IMS Common Cartridge 1.0 to 1.3 (what Moodle, Canvas and others export).

Reads ``imsmanifest.xml`` in a CC namespace (``.../imsccv1p1/...`` to ``imsccv1p3``):

* the organization's single root item (CC 1.3 profile of IMS CP: "rooted-hierarchy") and
  below it folders (modules) and items referencing resources, in document order;
* resource types: ``webcontent`` (launch file), ``imswl_xmlv1pN`` web links (the linked
  XML's ``url/@href``), ``imsqti_xmlv1p2/imscc_xmlv1pN/assessment`` parsed by
  :mod:`.qti` into quizzes; discussions (``imsdt_xmlv1pN``), LTI links
  (``imsbasiclti_xmlv1pN``), assignments and anything else become ``unsupported``
  activities, kept in the structure but not fatal;
* CC 1.3 ``cpx:variant`` fallbacks: when an item's resource is unsupported, a supported
  variant (typically the HTML rendering of an assignment) is used instead;
* resources whose LOM ``intendedEndUserRole`` is only ``Instructor`` are hidden and not
  required (CC 1.1+ role-based access);
* ``xml:base`` chains, LOM metadata (title, description, language, keywords, rights).

When the organization holds nothing playable (Canvas exports quizzes outside modules),
the cartridge's learner-facing resources are listed in one module instead.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

from lxml import etree

from ..course import Activity, CompletionRule, Course, Module
from ..safezip import PackageError
from ..xml import attr, child, children, descendants, find, local_name, parse_xml_file, text, xml_base_chain
from .base import Importer, PackageFiles, group_top_level, read_lom, resolve_href
from .qti import parse_qti
from .scorm import find_manifest

_LEARNER_TYPES = ("webcontent", "imswl_xml", "imsqti_xmlv1p2")


def _namespace(el: etree._Element) -> str:
    tag = el.tag if isinstance(el.tag, str) else ""
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def is_common_cartridge(manifest: etree._Element) -> bool:
    """CC manifests use an ``imscc`` namespace, say so in ``metadata/schema``, or use CC resource types."""
    if "imscc" in _namespace(manifest).lower():
        return True
    schema = (text(find(manifest, "metadata/schema")) or "").lower()
    if "common cartridge" in schema:
        return True
    for res in descendants(manifest, "resource"):
        rtype = (attr(res, "type") or "").lower()
        if rtype.startswith(("imsdt_xml", "imswl_xml", "imsbasiclti_xml", "associatedcontent/imscc")) or (
            rtype.startswith("imsqti_xmlv1p2/imscc")
        ):
            return True
    return False


def cc_version(manifest: etree._Element) -> str | None:
    declared = text(find(manifest, "metadata/schemaversion"))
    if declared:
        return declared
    m = re.search(r"imsccv(\d)p(\d)", _namespace(manifest).lower())
    if m:
        return f"{m.group(1)}.{m.group(2)}.0"
    if "/imscc/" in _namespace(manifest).lower():
        return "1.0.0"
    return None


def _instructor_only(res: etree._Element) -> bool:
    roles = {
        (text(child(r, "value")) or text(r) or "").strip().lower() for r in descendants(res, "intendedEndUserRole")
    }
    roles.discard("")
    return bool(roles) and "learner" not in roles


class CommonCartridgeImporter(Importer):
    """IMS Common Cartridge 1.0-1.3 (``.imscc`` or ``.zip``)."""

    format = "cc"

    def detect(self, root_dir: str | os.PathLike[str]) -> bool:
        manifest = find_manifest(root_dir)
        if manifest is None:
            return False
        return is_common_cartridge(parse_xml_file(manifest))

    def parse(self, root: Path, files: PackageFiles) -> Course:
        manifest = find_manifest(root)
        if manifest is None:
            raise PackageError("imsmanifest.xml", "manifest is missing")
        return _CartridgeParser(files, manifest.name).run()


class _CartridgeParser:
    def __init__(self, files: PackageFiles, name: str):
        self.files = files
        self.name = name
        self.warnings: list[str] = []
        self.manifest = files.parse_xml(name)
        if local_name(self.manifest).lower() != "manifest":
            raise PackageError(name, f"root element is <{local_name(self.manifest)}>, expected <manifest>")
        self.resources: dict[str, etree._Element] = {}
        self.order: list[str] = []
        for res in descendants(self.manifest, "resource"):
            ident = attr(res, "identifier")
            if not ident:
                continue
            if ident in self.resources:
                self.warnings.append(f"{name}: duplicate resource identifier {ident!r}; the first one is used")
                continue
            self.resources[ident] = res
            self.order.append(ident)
        self._anon = itertools.count(1)
        self.preferred: dict[str, str] = {}
        self.fallback: dict[str, str] = {}
        for ident, res in self.resources.items():
            for variant in descendants(res, "variant"):
                target = attr(variant, "identifierref")
                if target:
                    self.preferred.setdefault(ident, target)
                    self.fallback.setdefault(target, ident)

    def run(self) -> Course:
        m = self.manifest
        manifest_id = attr(m, "identifier") or "cartridge"
        meta = read_lom(child(child(m, "metadata"), "lom"))
        org = child(child(m, "organizations"), "organization")
        tops = list(children(org, "item"))
        root_title = None
        if len(tops) == 1 and not attr(tops[0], "identifierref"):
            root_title = text(child(tops[0], "title"))
            tops = list(children(tops[0], "item"))
        items = [self.item(i) for i in tops]
        title = meta.pop("title", None) or root_title or manifest_id
        org_id = attr(org, "identifier") if org is not None else manifest_id
        modules = group_top_level(items, org_id or manifest_id, title)
        course = Course(
            identifier=manifest_id,
            title=title,
            format="cc",
            format_version=cc_version(m),
            modules=modules,
            completion=CompletionRule(rule="all_required"),
            warnings=self.warnings,
        )
        course.apply_metadata(meta)
        if not any(a.supported for a in course.activities()):
            listed = self.learner_resources()
            if listed:
                self.warnings.append(
                    f"{self.name}: the organization lists no playable item; listing the cartridge's resources"
                )
                course.modules = group_top_level(listed, f"{manifest_id}-resources", title)
        if not any(a.supported for a in course.activities()):
            raise PackageError(
                self.name, "the cartridge has no content we can play (web content, web links or QTI quizzes)"
            )
        return course

    def learner_resources(self) -> list[Activity | Module]:
        used_as_dependency = {
            attr(d, "identifierref") for res in self.resources.values() for d in children(res, "dependency")
        }
        out: list[Activity | Module] = []
        for ident in self.order:
            res = self.resources[ident]
            rtype = (attr(res, "type") or "").lower()
            if ident in used_as_dependency or not rtype.startswith(_LEARNER_TYPES) or ident in self.preferred:
                continue
            if "question-bank" in rtype or _instructor_only(res):
                continue
            if rtype == "webcontent":
                href = attr(res, "href") or ""
                if not href.lower().endswith((".html", ".htm", ".xhtml")):
                    continue
            title = self.resource_title(res) or ident
            activity = self.leaf(ident, title, ident)
            if activity.supported:
                out.append(activity)
        return out

    def resource_title(self, res: etree._Element) -> str | None:
        rtype = (attr(res, "type") or "").lower()
        path = self.first_file(res)
        if path and rtype.startswith(("imsqti", "imswl")) and self.files.exists(path):
            doc = self.files.parse_xml(path)
            if rtype.startswith("imsqti"):
                assessment = child(doc, "assessment")
                return attr(assessment, "title")
            return text(child(doc, "title"))
        return None

    # -- items -------------------------------------------------------------------------

    def item(self, el: etree._Element, depth: int = 0) -> Activity | Module:
        if depth > 50:
            raise PackageError(self.name, "items nested too deeply")
        ident = attr(el, "identifier") or f"item-{next(self._anon)}"
        title = " ".join((text(child(el, "title")) or "").split())
        ref = (attr(el, "identifierref") or "").strip()
        subitems = list(children(el, "item"))
        if not subitems and ref:
            return self.leaf(ident, title, ref)
        module = Module(identifier=ident, title=title or ident)
        if ref:
            module.add(self.leaf(ident, title, ref))
        for sub in subitems:
            module.add(self.item(sub, depth + 1))
        return module

    def leaf(self, ident: str, title: str, ref: str) -> Activity:
        res = self.resources.get(ref)
        if res is None:
            self.warnings.append(f"{self.name}: item {ident!r} references missing resource {ref!r}")
            return Activity(
                ident, title or ident, "unsupported", required=False, extra={"reason": f"missing resource {ref!r}"}
            )
        activity = self.resource_activity(res, ident, title)
        if not activity.supported:
            alternative = self.preferred.get(ref) or self.fallback.get(ref)
            if alternative and alternative in self.resources:
                alt = self.resource_activity(self.resources[alternative], ident, title)
                if alt.supported:
                    alt.extra["variant_of"] = ref
                    activity = alt
        if _instructor_only(res):
            activity.visible = False
            activity.required = False
        return activity

    def first_file(self, res: etree._Element) -> str | None:
        href = attr(child(res, "file"), "href") or attr(res, "href")
        if not href:
            return None
        try:
            _, path, external = resolve_href(
                self.files, href, base=xml_base_chain(res), source=self.name, what="file", warnings=[]
            )
        except PackageError:
            return None
        return None if external else path

    def resource_activity(self, res: etree._Element, ident: str, title: str) -> Activity:
        ref = attr(res, "identifier")
        rtype = (attr(res, "type") or "").strip()
        kind = rtype.lower()
        base = xml_base_chain(res)
        extra = {"resource": ref, "resource_type": rtype}

        def unsupported(reason: str) -> Activity:
            return Activity(ident, title or ident, "unsupported", required=False, extra={**extra, "reason": reason})

        if kind == "webcontent" or kind.startswith("associatedcontent"):
            href = attr(res, "href") or attr(child(res, "file"), "href")
            if not href:
                return unsupported("web content without a file")
            url, path, external = resolve_href(
                self.files, href, base=base, source=self.name, what=f"resource {ref!r}", warnings=self.warnings
            )
            return Activity(
                ident,
                title or Path(path or url).name,
                "webcontent",
                href=url,
                file=path,
                external=external,
                extra=extra,
            )

        if kind.startswith("imswl_xml"):
            path = self.first_file(res)
            if not path or not self.files.exists(path):
                self.warnings.append(f"{self.name}: web link resource {ref!r} has no link file")
                return unsupported("web link file missing")
            link = self.files.parse_xml(path)
            url_el = child(link, "url")
            href = (attr(url_el, "href") or "").strip()
            if not re.match(r"^https?://", href, re.IGNORECASE):
                self.warnings.append(f"{path}: web link {href!r} is not an http(s) URL")
                return unsupported(f"web link {href!r} is not an http(s) URL")
            if attr(url_el, "target"):
                extra["target"] = attr(url_el, "target")
            return Activity(
                ident, title or text(child(link, "title")) or href, "weblink", href=href, external=True, extra=extra
            )

        if kind.startswith("imsqti_xml") and "assessment" in kind:
            path = self.first_file(res)
            if not path or not self.files.exists(path):
                self.warnings.append(f"{self.name}: assessment resource {ref!r} has no QTI file")
                return unsupported("QTI file missing")
            quiz = parse_qti(self.files.parse_xml(path), source=path, identifier=ref or ident, warnings=self.warnings)
            if not quiz.questions:
                return unsupported("assessment without questions")
            return Activity(ident, title or quiz.title, "quiz", file=path, quiz=quiz, extra=extra)

        if kind.startswith("imsdt_xml"):
            return unsupported("discussion topics are not supported")
        if kind.startswith("imsbasiclti_xml"):
            return unsupported("LTI links are not supported")
        if "question-bank" in kind:
            return unsupported("question banks are not supported")
        return unsupported(f"resource type {rtype!r} is not supported")
