"""The importer interface, format detection and helpers shared by the importers.

An :class:`Importer` answers two questions about an opened package directory:
``detect(root_dir)`` (is this my format?) and ``load(root_dir)`` (the :class:`Course`).
:func:`detect_and_load` is the entry point for uploads: it opens the archive or folder
through :mod:`lms_bridge.packages.safezip`, finds the package root, picks the importer
and, for formats without skills metadata, overlays an ``lms_bridge.json`` /
``lms_bridge.yaml`` sidecar.
"""

from __future__ import annotations

import html
import os
import posixpath
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

import nh3
from lxml import etree

from ..course import Activity, Author, CompletionRule, Course, Module, dedupe_identifiers
from ..safezip import DEFAULT_LIMITS, Limits, PackageError, is_zip, open_package, opened_package
from ..xml import child, children, join_base, parse_xml_file, text

__all__ = [
    "Importer",
    "PackageFiles",
    "detect_and_load",
    "find_importer",
    "group_top_level",
    "load_directory",
    "read_lom",
    "resolve_href",
    "sanitize_html",
    "text_to_html",
]

# --------------------------------------------------------------------------- HTML

ALLOWED_TAGS = {
    "a", "abbr", "audio", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup",
    "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p",
    "pre", "q", "s", "samp", "small", "source", "span", "strong", "sub", "summary", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "track", "u", "ul", "video",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "*": {"lang", "dir", "title"},
    "a": {"href", "hreflang"},
    "abbr": {"title"},
    "audio": {"src", "controls", "preload"},
    "code": {"class"},
    "col": {"span"},
    "colgroup": {"span"},
    "img": {"src", "alt", "width", "height"},
    "ol": {"start", "type", "reversed"},
    "source": {"src", "type"},
    "td": {"colspan", "rowspan", "headers"},
    "th": {"colspan", "rowspan", "headers", "scope", "abbr"},
    "track": {"src", "kind", "srclang", "label", "default"},
    "video": {"src", "controls", "poster", "width", "height", "preload", "playsinline"},
}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


_URL_ATTRIBUTES = {"href", "src", "poster", "cite"}


def sanitize_html(fragment: str | None, *, base_dir: str | None = None) -> str:
    """Clean untrusted HTML to a safe allow-list (nh3/ammonia).

    Scripts, styles, event handlers, iframes, forms and ``javascript:``/``data:`` URLs are
    removed. With ``base_dir`` (the folder of the source file, relative to the package
    root) relative links and images are rewritten to be relative to the package root, and
    any that would leave the package are dropped.
    """
    if not fragment:
        return ""

    def rebase(tag: str, attribute: str, value: str) -> str | None:
        if attribute not in _URL_ATTRIBUTES or base_dir is None:
            return value
        stripped = value.strip()
        if not stripped or stripped.startswith("#") or _SCHEME.match(stripped) or stripped.startswith("//"):
            return value
        if stripped.startswith("/"):
            return None
        parts = urlsplit(stripped)
        joined = posixpath.normpath(posixpath.join(base_dir, unquote(parts.path))) if parts.path else base_dir
        if joined == ".." or joined.startswith("../"):
            return None
        url = "" if joined in ("", ".") else quote(joined, safe=_URL_SAFE)
        if parts.query:
            url += "?" + parts.query
        if parts.fragment:
            url += "#" + parts.fragment
        return url or None

    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
        attribute_filter=rebase,
    ).strip()


def text_to_html(value: str | None) -> str:
    """Escape plain text for HTML, keeping line breaks."""
    if not value:
        return ""
    return html.escape(value.strip()).replace("\n", "<br>")


# --------------------------------------------------------------------------- files


class PackageFiles:
    """Index of the regular files of an opened package, for lookups and safe reads.

    Paths are relative POSIX paths from the package root. ``resolve`` also finds a file
    whose name differs only in case (packages authored on Windows or macOS often
    reference ``Index.html`` as ``index.html``).
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.paths: set[str] = set()
        self._lower: dict[str, str] = {}
        for folder, dirs, names in os.walk(self.root, followlinks=False):
            rel_folder = os.path.relpath(folder, self.root)
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
            for name in names:
                full = os.path.join(folder, name)
                if os.path.islink(full) or not os.path.isfile(full):
                    continue
                rel = name if rel_folder == "." else f"{rel_folder}/{name}".replace(os.sep, "/")
                self.paths.add(rel)
                self._lower.setdefault(rel.lower(), rel)

    def resolve(self, relpath: str) -> str | None:
        if relpath in self.paths:
            return relpath
        return self._lower.get(relpath.lower())

    def exists(self, relpath: str) -> bool:
        return self.resolve(relpath) is not None

    def path(self, relpath: str) -> Path:
        norm = posixpath.normpath(relpath)
        if norm.startswith("../") or norm == ".." or norm.startswith("/"):
            raise PackageError(relpath, "path escapes the package root")
        return self.root.joinpath(*norm.split("/"))

    def read_bytes(self, relpath: str, *, max_bytes: int) -> bytes:
        actual = self.resolve(relpath)
        if actual is None:
            raise PackageError(relpath, "file is missing from the package")
        path = self.path(actual)
        size = path.stat().st_size
        if size > max_bytes:
            raise PackageError(actual, f"file too large ({size} bytes, limit {max_bytes})")
        return path.read_bytes()

    def parse_xml(self, relpath: str) -> etree._Element:
        actual = self.resolve(relpath)
        if actual is None:
            raise PackageError(relpath, "file is missing from the package")
        return parse_xml_file(self.path(actual), name=actual)


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_URL_SAFE = "/!$&'()*+,;=:@-._~"


def resolve_href(
    files: PackageFiles,
    href: str | None,
    *,
    base: str = "",
    source: str,
    what: str,
    warnings: list[str],
) -> tuple[str, str | None, bool]:
    """Resolve a manifest ``href`` against an xml:base chain.

    Returns ``(url, file, external)``: for content inside the package, ``url`` is the
    percent-encoded relative URL (query and fragment kept) and ``file`` the real file
    path (case-corrected when only the case differs); for http(s) URLs ``external`` is
    true and ``file`` is None. References that escape the package, absolute paths and
    other URL schemes raise :class:`PackageError` naming ``source``; a missing file is
    only a warning (the course may still be partly usable).
    """
    raw = (href or "").strip()
    if not raw:
        raise PackageError(source, f"{what}: empty href")
    full = join_base(base, raw) if base else raw
    m = _SCHEME.match(full)
    if m or full.startswith("//"):
        scheme = m.group(1).lower() if m else "https"
        if scheme in ("http", "https"):
            return (full if m else "https:" + full), None, True
        raise PackageError(source, f"{what}: URL scheme {scheme!r} is not allowed ({raw!r})")
    if full.startswith("/") or full.startswith("\\"):
        raise PackageError(source, f"{what}: absolute path {raw!r} (must be relative to the package)")
    parts = urlsplit(full)
    decoded = unquote(parts.path).replace("\\", "/")
    norm = posixpath.normpath(decoded) if decoded else ""
    if norm in ("", "."):
        raise PackageError(source, f"{what}: {raw!r} does not name a file")
    if norm == ".." or norm.startswith("../") or re.match(r"^[A-Za-z]:", norm):
        raise PackageError(source, f"{what}: {raw!r} points outside the package")
    actual = files.resolve(norm)
    if actual is None:
        warnings.append(f"{source}: {what}: {norm!r} is not in the package")
        actual = norm
    elif actual != norm:
        warnings.append(f"{source}: {what}: {norm!r} matched {actual!r} (letter case differs)")
    url = quote(actual, safe=_URL_SAFE)
    if parts.query:
        url += "?" + parts.query
    if parts.fragment:
        url += "#" + parts.fragment
    return url, actual, False


# --------------------------------------------------------------------------- metadata


def pick_langstring(el: etree._Element | None, prefer: str | None = None) -> str | None:
    """Text of a LOM/cmi5 langstring container: the ``prefer`` language if present, else the first."""
    if el is None:
        return None
    options = list(children(el, "string", "langstring"))
    if not options:
        return text(el)
    if prefer:
        prefix = prefer.lower().split("-")[0]
        for opt in options:
            lang = opt.get("language") or opt.get("lang") or opt.get("{http://www.w3.org/XML/1998/namespace}lang") or ""
            if lang.lower().split("-")[0] == prefix and text(opt):
                return text(opt)
    return next((text(o) for o in options if text(o)), None)


def _vcard_name(entity: str) -> str | None:
    value = entity.strip()
    if "BEGIN:VCARD" not in value.upper():
        return value or None
    fields: dict[str, str] = {}
    for line in value.splitlines():
        key, _, val = line.partition(":")
        key = key.split(";", 1)[0].strip().upper()
        if val.strip() and key not in fields:
            fields[key] = val.strip()
    if "FN" in fields:
        return fields["FN"]
    if "N" in fields:
        parts = [p for p in fields["N"].split(";") if p]
        return " ".join(reversed(parts[:2])) or None
    return fields.get("ORG", "").split(";")[0] or None


def read_lom(lom: etree._Element | None) -> dict[str, Any]:
    """Course-level fields from IEEE LOM (SCORM 2004 ``lom``, SCORM 1.2 ``imsmd``, CC ``lomimscc``).

    Returns title, description, language, keywords, version, licence and authors (LOM
    lifeCycle contributors with role ``author``; ``publisher``/``creator`` when none).
    """
    out: dict[str, Any] = {}
    if lom is None:
        return out
    general = child(lom, "general")
    language = text(child(general, "language"))
    if language:
        out["language"] = language
    for key in ("title", "description"):
        value = pick_langstring(child(general, key), language)
        if value:
            out[key] = " ".join(value.split()) if key == "title" else value
    keywords = []
    for kw in children(general, "keyword"):
        for value in [text(s) for s in children(kw, "string", "langstring")] or [text(kw)]:
            if value and value not in keywords:
                keywords.append(value)
    if keywords:
        out["keywords"] = keywords
    life = child(lom, "lifeCycle", "lifecycle")
    version = pick_langstring(child(life, "version"), language)
    if version:
        out["version"] = version
    by_role: dict[str, list[str]] = {}
    for contribute in children(life, "contribute"):
        role = text(child(child(contribute, "role"), "value")) or text(child(contribute, "role")) or ""
        for entity in children(contribute, "entity", "centity"):
            name = _vcard_name(text(child(entity, "vcard")) or text(entity) or "")
            if name:
                by_role.setdefault(role.strip().lower(), []).append(name)
    for role in ("author", "publisher", "creator"):
        if by_role.get(role):
            out["authors"] = [Author(name=n) for n in dict.fromkeys(by_role[role])]
            break
    rights = child(lom, "rights")
    licence = pick_langstring(child(rights, "description"), language)
    if licence:
        out["licence"] = licence
    return out


# --------------------------------------------------------------------------- structure


def group_top_level(items: list[Activity | Module], identifier: str, title: str) -> list[Module]:
    """Top-level children become the course's modules.

    When every top-level child is already a module they are used as they are; when some
    are bare activities, everything is wrapped in one module (``identifier``/``title``,
    usually the organization or course) so the original order is kept.
    """
    if items and all(isinstance(i, Module) for i in items):
        for n, module in enumerate(items):
            module.position = n
        return list(items)  # type: ignore[arg-type]
    root = Module(identifier=identifier, title=title)
    for item in items:
        root.add(item)
    return [root] if items else []


# --------------------------------------------------------------------------- importers


class Importer(ABC):
    """One course package format.

    Subclasses implement :meth:`detect` and :meth:`parse`; :meth:`load` wraps ``parse``
    with the common steps (sidecar metadata, unique identifiers, default completion rule).
    """

    format: ClassVar[str] = ""
    uses_sidecar: ClassVar[bool] = True
    """Formats without skills metadata read ``lms_bridge.json``/``.yaml`` at the root."""

    @abstractmethod
    def detect(self, root_dir: str | os.PathLike[str]) -> bool:
        """True when ``root_dir`` (an opened package) is in this importer's format."""

    @abstractmethod
    def parse(self, root: Path, files: PackageFiles) -> Course:
        """Build the course; raise PackageError for what cannot be imported."""

    def load(self, root_dir: str | os.PathLike[str]) -> Course:
        root = Path(root_dir)
        files = PackageFiles(root)
        course = self.parse(root, files)
        if self.uses_sidecar:
            from .native import load_sidecar

            sidecar = load_sidecar(files)
            if sidecar:
                course.apply_metadata(sidecar)
        finalise(course)
        return course


def finalise(course: Course) -> None:
    """Common post-processing: drop empty modules, unique ids, default completion rule."""
    course.modules = [m for m in course.modules if not m.is_empty()]
    for module in course.iter_modules():
        module.modules = [m for m in module.modules if not m.is_empty()]
    dedupe_identifiers(course.modules, course.warnings)
    if not course.completion.required_activities:
        course.completion = CompletionRule(
            rule=course.completion.rule,
            required_activities=[a.identifier for a in course.activities() if a.required and a.supported],
            pass_mark=course.completion.pass_mark,
        )


def _registry() -> list[Importer]:
    from .cmi5 import Cmi5Importer
    from .common_cartridge import CommonCartridgeImporter
    from .native import NativeImporter
    from .scorm import ScormImporter

    # Order matters: a native manifest or cmi5.xml wins over an imsmanifest.xml shipped
    # alongside, and Common Cartridge is told apart from SCORM before SCORM claims it.
    return [NativeImporter(), Cmi5Importer(), CommonCartridgeImporter(), ScormImporter()]


def importers() -> list[Importer]:
    """Available importers in detection order."""
    return _registry()


_NOT_FOUND = (
    "no course manifest found: expected imsmanifest.xml (SCORM, Common Cartridge), cmi5.xml (cmi5) "
    "or course.json / course.yaml (lms_bridge native) at the package root"
)


def find_importer(root_dir: str | os.PathLike[str], *, label: str | None = None) -> Importer:
    root = Path(root_dir)
    for importer in importers():
        if importer.detect(root):
            return importer
    raise PackageError(label or root.name, _NOT_FOUND)


def _package_root(root: Path, label: str) -> tuple[Path, str]:
    """The folder holding the manifest: ``root`` itself, or its only sub-folder.

    Archives made by zipping a folder (rather than its contents) put everything under
    one top-level directory; ``__MACOSX`` and dot-files are ignored when deciding.
    """
    regs = importers()
    if any(i.detect(root) for i in regs):
        return root, ""
    entries = [e for e in root.iterdir() if not e.name.startswith(".") and e.name != "__MACOSX"]
    only = entries[0] if len(entries) == 1 else None
    if only is not None and only.is_dir() and not only.is_symlink() and any(i.detect(only) for i in regs):
        return only, only.name
    raise PackageError(label, _NOT_FOUND)


def load_directory(root_dir: str | os.PathLike[str], *, label: str | None = None) -> Course:
    """Load an already opened (checked) package directory."""
    root = Path(root_dir)
    package_root, content_root = _package_root(root, label or root.name)
    course = find_importer(package_root, label=label).load(package_root)
    course.content_root = content_root
    return course


def _stage_course_structure(xml_file: Path, target: Path, limits: Limits) -> Path:
    """cmi5 section 14.2: a bare course structure XML is a package of one file."""
    size = xml_file.stat().st_size
    if size > min(limits.max_file_size, limits.max_total_size):
        raise PackageError(xml_file.name, "file too large")
    if os.path.lexists(target):
        raise PackageError(str(target), "target directory already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        shutil.copyfile(xml_file, staging / "cmi5.xml", follow_symlinks=False)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def detect_and_load(
    path: str | os.PathLike[str],
    *,
    target_dir: str | os.PathLike[str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Course:
    """Open an upload (ZIP of any extension, package folder, or bare ``cmi5.xml``) and import it.

    With ``target_dir`` the checked content is left there for serving (the directory
    must not exist yet; it is removed again if the import fails). Without it the content
    is read from a temporary copy (or in place, for a folder) and only the
    :class:`Course` is returned.
    """
    path = Path(path)
    label = path.name
    bare_xml = path.is_file() and not is_zip(path) and path.suffix.lower() == ".xml"
    if target_dir is None:
        if bare_xml:
            with tempfile.TemporaryDirectory(prefix="lms_bridge-pkg-") as tmp:
                root = _stage_course_structure(path, Path(tmp) / "package", limits)
                return load_directory(root, label=label)
        with opened_package(path, limits=limits) as root:
            return load_directory(root, label=label)
    target = Path(target_dir)
    if bare_xml:
        _stage_course_structure(path, target, limits)
    else:
        open_package(path, target, limits=limits)
    try:
        return load_directory(target, label=label)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def first_text(elements: Iterable[etree._Element | None]) -> str | None:
    for el in elements:
        value = text(el)
        if value:
            return value
    return None
