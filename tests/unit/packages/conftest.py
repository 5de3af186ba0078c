"""Helpers for the package tests: fixture paths and builders for (hostile) packages."""

from __future__ import annotations

import io
import stat
import textwrap
import zipfile
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "packages"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create ``files`` (relative path -> text or bytes) under ``root``; text is dedented."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(textwrap.dedent(content).lstrip(), encoding="utf-8")
        else:
            path.write_bytes(content)
    return root


def make_zip(path: Path, entries: dict[str, str | bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A plain ZIP of ``entries`` (names used verbatim, so hostile names are possible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, content in entries.items():
            data = textwrap.dedent(content).lstrip().encode("utf-8") if isinstance(content, str) else content
            zf.writestr(name, data)
    return path


def zip_info(name: str, *, mode: int | None = None, flag_bits: int = 0) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    if mode is not None:
        info.create_system = 3
        info.external_attr = (mode & 0xFFFF) << 16
    info.flag_bits |= flag_bits
    return info


def zip_with_infos(path: Path, entries: list[tuple[zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


def symlink_entry(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    return zip_info(name, mode=stat.S_IFLNK | 0o777), target.encode()


def leftovers(folder: Path) -> list[str]:
    """Anything left in ``folder`` (partial extraction directories included)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


SCORM12_MANIFEST = """\
<?xml version="1.0" encoding="UTF-8"?>
<manifest identifier="test.scorm12" version="1"
    xmlns="http://www.imsproject.org/xsd/imscp_rootv1p1p2"
    xmlns:adlcp="http://www.adlnet.org/xsd/adlcp_rootv1p2">
  <metadata><schema>ADL SCORM</schema><schemaversion>1.2</schemaversion></metadata>
  <organizations default="org1">
    <organization identifier="org1"><title>Test course</title>
      <item identifier="i1" identifierref="r1"><title>Lesson one</title></item>
    </organization>
  </organizations>
  <resources>
    <resource identifier="r1" type="webcontent" adlcp:scormtype="sco" href="index.html">
      <file href="index.html"/>
    </resource>
  </resources>
</manifest>
"""


def in_memory_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def helpers():
    """The builders above, as a fixture (works whatever pytest import mode is configured)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        write_tree=write_tree,
        make_zip=make_zip,
        zip_info=zip_info,
        zip_with_infos=zip_with_infos,
        symlink_entry=symlink_entry,
        leftovers=leftovers,
        in_memory_zip=in_memory_zip,
        SCORM12_MANIFEST=SCORM12_MANIFEST,
    )
