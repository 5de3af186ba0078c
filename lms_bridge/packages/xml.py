"""The one hardened XML parser for package manifests, plus tolerant lookup helpers.

Parsing uses lxml with entity resolution, DTD loading and network access off and
``huge_tree`` off, and refuses outright any document that carries a DOCTYPE (internal
subset, entity declarations, external DTD): no course format we read needs one, and
refusing them closes XXE and entity-expansion ("billion laughs") attacks.

Real exports vary (``scormtype`` vs ``scormType``, prefixes bound to odd or missing
namespaces, ``adlcp:masteryScore`` vs ``masteryscore``), so the helpers match element
and attribute *local* names case-insensitively and ignore namespaces.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urljoin

from lxml import etree

from .safezip import PackageError

__all__ = [
    "MAX_XML_BYTES",
    "XML_NS",
    "attr",
    "child",
    "children",
    "descendants",
    "find",
    "join_base",
    "local_name",
    "parse_xml",
    "parse_xml_file",
    "text",
    "xml_base",
    "xml_base_chain",
]

XML_NS = "http://www.w3.org/XML/1998/namespace"
MAX_XML_BYTES = 32 * 1024 * 1024
"""Largest XML document we parse (manifests and QTI files are far smaller)."""

_PROLOG_SKIP = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*\?>)?(?:\s+|<!--.*?-->|<\?(?!xml)[^>]*\?>)*",
    re.DOTALL,
)


def _parser() -> etree.XMLParser:
    # A fresh parser per document: lxml parsers are not thread-safe.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
        collect_ids=False,
    )


def parse_xml(data: bytes, *, name: str) -> etree._Element:
    """Parse ``data`` safely and return the root element; ``name`` labels errors."""
    if len(data) > MAX_XML_BYTES:
        raise PackageError(name, f"XML document too large ({len(data)} bytes, limit {MAX_XML_BYTES})")
    # Cheap early refusal for ASCII-compatible encodings; the docinfo check below covers the rest.
    prolog_end = _PROLOG_SKIP.match(data).end()
    if data[prolog_end : prolog_end + 9].upper() == b"<!DOCTYPE":
        raise PackageError(name, "XML with a DOCTYPE/DTD is not allowed (entity declarations, XXE)")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line = f" at line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        raise PackageError(name, f"malformed XML{line}: {exc.msg}") from exc
    except ValueError as exc:  # e.g. unsupported encoding declarations
        raise PackageError(name, f"malformed XML: {exc}") from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise PackageError(name, "XML with a DOCTYPE/DTD is not allowed (entity declarations, XXE)")
    for node in root.iter(etree.Entity):
        raise PackageError(name, f"XML entity reference &{node.name}; is not allowed")
    return root


def parse_xml_file(path: str | os.PathLike[str], *, name: str | None = None) -> etree._Element:
    """Read and parse a file (size-limited); errors name ``name`` or the file name."""
    path = Path(path)
    label = name or path.name
    try:
        size = path.stat().st_size
        if size > MAX_XML_BYTES:
            raise PackageError(label, f"XML document too large ({size} bytes, limit {MAX_XML_BYTES})")
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise PackageError(label, "file is missing") from exc
    except IsADirectoryError as exc:
        raise PackageError(label, "expected a file, found a folder") from exc
    except OSError as exc:
        raise PackageError(label, f"cannot read file ({exc.strerror or exc})") from exc
    return parse_xml(data, name=label)


def local_name(el: etree._Element) -> str:
    """Local part of an element's tag ('' for comments and processing instructions)."""
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].split(":")[-1]


def _names(names: Iterable[str]) -> set[str]:
    return {n.lower() for n in names}


def children(el: etree._Element | None, *names: str) -> Iterator[etree._Element]:
    """Direct child elements whose local name matches any of ``names`` (all elements if none)."""
    if el is None:
        return
    wanted = _names(names)
    for c in el:
        ln = local_name(c)
        if ln and (not wanted or ln.lower() in wanted):
            yield c


def child(el: etree._Element | None, *names: str) -> etree._Element | None:
    """First direct child matching any of ``names``, or None."""
    return next(children(el, *names), None)


def descendants(el: etree._Element | None, *names: str) -> Iterator[etree._Element]:
    """All descendant elements (document order) whose local name matches ``names``."""
    if el is None:
        return
    wanted = _names(names)
    for d in el.iterdescendants():
        ln = local_name(d)
        if ln and ln.lower() in wanted:
            yield d


def find(el: etree._Element | None, path: str) -> etree._Element | None:
    """Follow a ``/``-separated path of local names (``metadata/schemaversion``)."""
    for step in path.split("/"):
        el = child(el, step)
        if el is None:
            return None
    return el


def attr(el: etree._Element | None, *names: str, default: str | None = None) -> str | None:
    """Attribute value by local name, case-insensitively, in any namespace.

    ``attr(res, "scormType")`` finds ``adlcp:scormtype``, ``adlcp:scormType`` or an
    unqualified ``scormtype``. An exact unqualified match wins over the others.
    """
    if el is None:
        return default
    for n in names:
        if n in el.attrib:
            return el.attrib[n]
    wanted = _names(names)
    for key, value in el.attrib.items():
        ln = key.rsplit("}", 1)[-1].split(":")[-1]
        if ln.lower() in wanted:
            return value
    return default


def text(el: etree._Element | None) -> str | None:
    """Whitespace-trimmed text content of ``el`` (including descendants), or None if empty."""
    if el is None:
        return None
    value = "".join(el.itertext()).strip()
    return value or None


def xml_base(el: etree._Element) -> str | None:
    """The ``xml:base`` attribute of ``el`` itself (not inherited)."""
    value = el.get(f"{{{XML_NS}}}base")
    return value.strip() if value and value.strip() else None


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def join_base(base: str, ref: str) -> str:
    """Resolve ``ref`` against ``base`` where both are IMS CP style xml:base values.

    An ``xml:base`` in a content package always names a folder, so a base without a
    trailing slash is treated as a folder too (``xml:base="content"`` + ``a.html`` gives
    ``content/a.html``). Absolute references (with a scheme, or starting with ``/``)
    replace the base.
    """
    ref = ref.strip()
    if not base or _SCHEME.match(ref) or ref.startswith("/"):
        return ref
    if _SCHEME.match(base):
        return urljoin(base if base.endswith("/") else base + "/", ref)
    if not base.endswith("/"):
        base += "/"
    return base + ref


def xml_base_chain(el: etree._Element) -> str:
    """Combined ``xml:base`` in effect at ``el`` (its ancestors' values, outermost first).

    For a SCORM/CC ``<resource>`` this is manifest + resources + resource bases, the chain
    against which its ``href`` and ``<file href>`` values are resolved (IMS CP 1.1.4, SCORM
    CAM 3.4.1).
    """
    chain = [xml_base(a) for a in reversed(list(el.iterancestors()))] + [xml_base(el)]
    base = ""
    for value in chain:
        if value:
            base = join_base(base, value) if base else value
    if base and not base.endswith("/"):
        base += "/"
    return base
