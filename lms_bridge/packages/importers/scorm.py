"""SCORM 1.2 and SCORM 2004 (2nd, 3rd, 4th edition) content packages.

Reads ``imsmanifest.xml`` (IMS Content Packaging 1.1.x as profiled by the SCORM CAM):

* version from ``metadata/schemaversion`` (``1.2``, ``CAM 1.3`` = 2004 2nd edition,
  ``2004 3rd Edition``, ``2004 4th Edition``) or, when missing, from the namespaces;
* the default organization (``organizations/@default``), or the first one when the
  default is absent or names no organization (CAM 3.4.1.6);
* nested ``item`` trees (aggregations become modules; an ``identifierref`` naming a
  sub-manifest pulls in that manifest's default organization), ``isvisible``;
* resources with ``xml:base`` chains (manifest, resources, resource; CAM 3.4.1.16),
  ``adlcp:scormType``/``scormtype`` (any case) and item ``parameters`` appended to the
  launch URL with the CAM algorithm (leading ``?``/``&`` stripped, ``#`` fragments);
* mastery: SCORM 1.2 ``adlcp:masteryscore`` (0-100, CAM 1.2 section 2.3.5.2);
  SCORM 2004 ``imsss:primaryObjective/@satisfiedByMeasure`` + ``imsss:minNormalizedMeasure``
  (what initialises ``cmi.scaled_passing_score``, RTE 4.2.19), including shared
  ``imsss:sequencingCollection`` entries, and ``adlcp:completionThreshold`` (element
  value in the 2nd/3rd edition, ``minProgressMeasure`` attributes in the 4th);
* ``adlcp:dataFromLMS``/``datafromlms`` as launch data, time limits, ``tracked``;
* LOM metadata inline or through ``adlcp:location`` (title, description, language,
  keywords, version, rights, authors).
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

from lxml import etree

from ..course import Activity, CompletionRule, Course, Module
from ..safezip import PackageError
from ..xml import attr, child, children, descendants, find, local_name, text, xml_base_chain
from .base import Importer, PackageFiles, group_top_level, read_lom, resolve_href

MANIFEST = "imsmanifest.xml"


def find_manifest(root: str | os.PathLike[str]) -> Path | None:
    """``imsmanifest.xml`` at the package root, in any letter case."""
    root = Path(root)
    exact = root / MANIFEST
    if exact.is_file() and not exact.is_symlink():
        return exact
    try:
        for entry in os.scandir(root):
            if entry.name.lower() == MANIFEST and entry.is_file(follow_symlinks=False):
                return Path(entry.path)
    except OSError:
        return None
    return None


def append_parameters(url: str, parameters: str | None) -> str:
    """Append an item's ``parameters`` to a launch URL (SCORM 2004 CAM 3.4.1.12).

    Leading ``?`` and ``&`` are dropped; a parameter string starting with ``#`` is a
    fragment, used only when the URL has none; otherwise it joins the query with ``?``
    or ``&`` (before any fragment the URL already has).
    """
    if not parameters:
        return url
    params = parameters.strip().lstrip("?&")
    if not params:
        return url
    head, has_fragment, fragment = url.partition("#")
    if params.startswith("#"):
        return url if has_fragment else url + params
    query, has_param_fragment, param_fragment = params.partition("#")
    sep = "" if head.endswith(("?", "&")) else "&" if "?" in head else "?"
    result = head + sep + query
    if has_fragment:
        result += "#" + fragment
    elif has_param_fragment:
        result += "#" + param_fragment
    return result


def _namespaces(root: etree._Element) -> set[str]:
    found: set[str] = set()
    for el in root.iter():
        if isinstance(el.tag, str):
            found.update(v for v in el.nsmap.values() if v)
    return found


def detect_version(manifest: etree._Element) -> tuple[str, str | None, str | None]:
    """Return ``(format, format_version, warning)`` for a SCORM manifest."""
    declared = text(find(manifest, "metadata/schemaversion"))
    if declared:
        s = declared.lower()
        if s.startswith("1.2") or s in ("1.1", "1.0"):
            return "scorm12", declared, None
        if "cam 1.3" in s or s in ("1.3", "cam1.3"):
            return "scorm2004", "2004 2nd Edition", None
        if "2004" in s:
            m = re.search(r"(\d)\s*(st|nd|rd|th)", s)
            return "scorm2004", f"2004 {m.group(1)}{m.group(2)} Edition" if m else "2004", None
    namespaces = " ".join(_namespaces(manifest)).lower()
    note = "no SCORM schemaversion declared; version taken from the manifest namespaces"
    if "adlcp_rootv1p2" in namespaces or "imscp_rootv1p1p2" in namespaces:
        return "scorm12", "1.2", note
    if any(ns in namespaces for ns in ("adlcp_v1p3", "imsss", "adlseq_v1p3", "adlnav_v1p3", "imscp_v1p1")):
        fourth = any(
            attr(ct, "minProgressMeasure", "completedByMeasure") for ct in descendants(manifest, "completionThreshold")
        )
        return "scorm2004", "2004 4th Edition" if fourth else "2004", note
    return "scorm12", None, "SCORM version not declared and not recognisable from namespaces; assuming SCORM 1.2"


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def _clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))


class ScormImporter(Importer):
    """SCORM 1.2 / 2004 content packages (any manifest that is not a Common Cartridge)."""

    format = "scorm"

    def detect(self, root_dir: str | os.PathLike[str]) -> bool:
        return find_manifest(root_dir) is not None

    def parse(self, root: Path, files: PackageFiles) -> Course:
        manifest_path = find_manifest(root)
        if manifest_path is None:
            raise PackageError(MANIFEST, "manifest is missing")
        return _ScormParser(files, manifest_path.name).run()


class _ScormParser:
    def __init__(self, files: PackageFiles, manifest_name: str):
        self.files = files
        self.name = manifest_name
        self.warnings: list[str] = []
        self.manifest = files.parse_xml(manifest_name)
        if local_name(self.manifest).lower() != "manifest":
            raise PackageError(manifest_name, f"root element is <{local_name(self.manifest)}>, expected <manifest>")
        self.format, self.version, note = detect_version(self.manifest)
        if note:
            self.warnings.append(note)
        self.resources: dict[str, etree._Element] = {}
        for res in descendants(self.manifest, "resource"):
            ident = attr(res, "identifier")
            if not ident:
                continue
            if ident in self.resources:
                self.warnings.append(f"{manifest_name}: duplicate resource identifier {ident!r}; the first one is used")
                continue
            self.resources[ident] = res
        self.submanifests = {
            attr(m, "identifier"): m for m in descendants(self.manifest, "manifest") if attr(m, "identifier")
        }
        self.sequencing = {
            attr(s, "ID"): s
            for coll in children(self.manifest, "sequencingCollection")
            for s in children(coll, "sequencing")
            if attr(s, "ID")
        }
        self._anon = itertools.count(1)

    # -- organizations -------------------------------------------------------------

    def choose_organization(self, manifest: etree._Element) -> etree._Element | None:
        orgs = child(manifest, "organizations")
        candidates = list(children(orgs, "organization"))
        if not candidates:
            return None
        default = (attr(orgs, "default") or "").strip()
        if default:
            for org in candidates:
                if attr(org, "identifier") == default:
                    return org
            self.warnings.append(
                f"{self.name}: default organization {default!r} does not exist; using the first organization"
            )
        return candidates[0]

    def run(self) -> Course:
        m = self.manifest
        org = self.choose_organization(m)
        meta = self.metadata(org)
        manifest_id = attr(m, "identifier") or "scorm-package"
        if org is not None:
            org_id = attr(org, "identifier") or manifest_id
            org_title = " ".join((text(child(org, "title")) or "").split())
            items = [self.item(i) for i in children(org, "item")]
        else:
            org_id, org_title = manifest_id, ""
            items = self.resources_as_items()
        title = meta.pop("title", None) or org_title or manifest_id
        course = Course(
            identifier=manifest_id,
            title=title,
            format=self.format,
            format_version=self.version,
            modules=group_top_level(items, org_id, org_title or title),
            completion=CompletionRule(rule="all_required"),
            warnings=self.warnings,
        )
        if not meta.get("version") and attr(m, "version"):
            meta["version"] = attr(m, "version")
        course.apply_metadata(meta)
        if not any(a.supported for a in course.activities()):
            raise PackageError(self.name, "the manifest defines no launchable content")
        return course

    def resources_as_items(self) -> list[Activity | Module]:
        """No organization (a resource package): offer its SCOs, or else its launchable assets."""
        self.warnings.append(f"{self.name}: no organization; resources with a launch file are listed instead")
        launchable = [r for r in self.resources.values() if attr(r, "href")]
        scos = [r for r in launchable if (attr(r, "scormType") or "").strip().lower() == "sco"]
        out: list[Activity | Module] = []
        for res in scos or launchable:
            ident = attr(res, "identifier")
            out.append(self.leaf(None, ident, ident, ident))
        return out

    # -- items ---------------------------------------------------------------------

    def item(self, el: etree._Element, depth: int = 0) -> Activity | Module:
        if depth > 50:
            raise PackageError(self.name, "items nested too deeply")
        ident = attr(el, "identifier") or f"item-{next(self._anon)}"
        title = " ".join((text(child(el, "title")) or "").split()) or ident
        visible = (attr(el, "isvisible") or "true").strip().lower() != "false"
        ref = (attr(el, "identifierref") or "").strip()
        subitems = list(children(el, "item"))
        if not subitems and ref and ref not in self.resources and ref in self.submanifests:
            return self.submanifest_module(el, ident, title, ref, depth)
        if not subitems:
            if not ref:
                return Module(identifier=ident, title=title, visible=visible)
            activity = self.leaf(el, ident, title, ref)
            activity.visible = visible
            return activity
        module = Module(identifier=ident, title=title, visible=visible)
        if ref:  # SCORM 1.2 lets an aggregation reference content of its own
            own = self.leaf(el, ident, title, ref)
            own.visible = visible
            module.add(own)
        for sub in subitems:
            module.add(self.item(sub, depth + 1))
        return module

    def submanifest_module(self, el: etree._Element, ident: str, title: str, ref: str, depth: int) -> Module:
        module = Module(identifier=ident, title=title)
        org = self.choose_organization(self.submanifests[ref])
        for sub in children(org, "item"):
            module.add(self.item(sub, depth + 1))
        return module

    def leaf(self, item: etree._Element | None, ident: str, title: str, ref: str) -> Activity:
        res = self.resources.get(ref)
        if res is None:
            self.warnings.append(f"{self.name}: item {ident!r} references missing resource {ref!r}")
            return Activity(ident, title, "unsupported", required=False, extra={"reason": f"missing resource {ref!r}"})
        href = attr(res, "href")
        if not href:
            self.warnings.append(f"{self.name}: resource {ref!r} used by item {ident!r} has no href")
            return Activity(
                ident, title, "unsupported", required=False, extra={"reason": f"resource {ref!r} has no href"}
            )
        scorm_type = (attr(res, "scormType") or "asset").strip().lower()
        url, file, external = resolve_href(
            self.files,
            href,
            base=xml_base_chain(res),
            source=self.name,
            what=f"resource {ref!r}",
            warnings=self.warnings,
        )
        url = append_parameters(url, attr(item, "parameters"))
        activity = Activity(
            identifier=ident,
            title=title,
            kind="sco" if scorm_type == "sco" else "asset",
            href=url,
            file=file,
            external=external,
            extra={"resource": ref, "scorm_type": scorm_type},
        )
        if item is not None:
            self.item_details(item, activity)
        return activity

    def item_details(self, item: etree._Element, activity: Activity) -> None:
        launch_data = text(child(item, "dataFromLMS"))
        if launch_data:
            activity.launch_parameters = launch_data
        limit_action = text(child(item, "timeLimitAction"))
        if limit_action:
            activity.extra["time_limit_action"] = limit_action
        if self.format == "scorm12":
            raw = text(child(item, "masteryscore"))
            if raw is not None:
                value = _float(raw)
                if value is None or not 0 <= value <= 100:
                    self.warnings.append(f"{self.name}: item {activity.identifier!r} has invalid masteryscore {raw!r}")
                else:
                    activity.mastery_score = round(value / 100.0, 6)
            max_time = text(child(item, "maxtimeallowed"))
            if max_time:
                activity.extra["max_time_allowed"] = max_time
            prerequisites = text(child(item, "prerequisites"))
            if prerequisites:
                activity.extra["prerequisites"] = prerequisites
            return
        self.sequencing_details(item, activity)
        threshold = child(item, "completionThreshold")
        if threshold is not None:
            value: float | None = None
            if text(threshold):  # 2nd/3rd edition: the element value
                value = _float(text(threshold))
            elif (attr(threshold, "completedByMeasure") or "false").strip().lower() == "true":  # 4th edition
                value = _float(attr(threshold, "minProgressMeasure") or "1.0")
            if value is not None:
                activity.completion_threshold = _clamp01(value)

    def _sequencing_children(self, item: etree._Element, name: str) -> etree._Element | None:
        seq = child(item, "sequencing")
        if seq is None:
            return None
        found = child(seq, name)
        if found is None and attr(seq, "IDRef"):
            found = child(self.sequencing.get(attr(seq, "IDRef")), name)
        return found

    def sequencing_details(self, item: etree._Element, activity: Activity) -> None:
        objectives = self._sequencing_children(item, "objectives")
        primary = child(objectives, "primaryObjective")
        if primary is not None:
            measure = _float(text(child(primary, "minNormalizedMeasure")))
            if measure is not None:
                activity.extra["min_normalized_measure"] = measure
            if (attr(primary, "satisfiedByMeasure") or "false").strip().lower() == "true":
                activity.mastery_score = _clamp01(measure if measure is not None else 1.0)
        delivery = self._sequencing_children(item, "deliveryControls")
        if (attr(delivery, "tracked") or "true").strip().lower() == "false":
            activity.required = False
            activity.extra["tracked"] = False
        limits = self._sequencing_children(item, "limitConditions")
        duration = attr(limits, "attemptAbsoluteDurationLimit")
        if duration:
            activity.extra["max_time_allowed"] = duration

    # -- metadata --------------------------------------------------------------------

    def metadata(self, org: etree._Element | None) -> dict:
        md = child(self.manifest, "metadata")
        lom = child(md, "lom", "record")
        location = text(child(md, "location"))
        if lom is None and location:
            try:
                lom = self.files.parse_xml(location)
            except PackageError as exc:
                if self.files.exists(location):
                    raise
                self.warnings.append(f"{self.name}: metadata file {location!r}: {exc.problem}")
        if lom is None:
            lom = child(child(org, "metadata"), "lom") if org is not None else None
            meta = read_lom(lom)
            meta.pop("title", None)  # organization metadata describes the organization
            return meta
        return read_lom(lom)
