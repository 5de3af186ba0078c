"""The one way a course package is opened: safe ZIP extraction and directory checks.

Every archive entry (and every file of an already unzipped directory) is checked before
anything is written:

* names: no ``..`` components (zip slip), no absolute paths, drive letters or UNC
  prefixes, no control characters; backslashes are read as separators (old Windows
  zippers write them) and the result is checked like any other name;
* entries: no symlinks or other special files (Unix mode in ``external_attr``), no
  encrypted entries, no duplicate names, no file/directory clashes;
* limits (:class:`Limits`, all configurable): file count, per-file and total uncompressed
  size, per-entry and whole-archive compression ratio (zip bombs), path length and depth.

Extraction streams each entry in ``chunk_size`` pieces into a fresh temporary directory
beside the target and renames it into place at the end, so peak memory does not grow
with the package and a failure leaves nothing behind. Sizes are counted while writing
as well, so a header that understates an entry's size cannot smuggle more data in.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "PackageError",
    "check_member_name",
    "extract_zip",
    "is_zip",
    "open_package",
    "opened_package",
    "scan_directory",
]

MiB = 1024 * 1024


class PackageError(Exception):
    """A package (or one file inside it) cannot be imported.

    ``file`` names the offending file (an archive member, a manifest, or the upload
    itself) and ``problem`` says what is wrong with it; ``str()`` joins both.
    """

    def __init__(self, file: str | os.PathLike[str] | None, problem: str):
        self.file = os.fspath(file) if file is not None else "<package>"
        self.problem = problem
        super().__init__(f"{self.file}: {problem}")


@dataclass(frozen=True)
class Limits:
    """Bounds applied to every package; the defaults suit courses of a few hundred MB."""

    max_total_size: int = 2048 * MiB
    max_file_size: int = 1024 * MiB
    max_files: int = 20_000
    max_ratio: float = 200.0
    """Largest accepted uncompressed/compressed ratio, per entry and for the whole archive."""
    ratio_min_size: int = 1 * MiB
    """Entries (and archives) smaller than this uncompressed are not ratio-checked:
    small, very repetitive text files compress far better than 200:1 legitimately."""
    max_path_length: int = 1024
    max_depth: int = 40
    chunk_size: int = 1 * MiB


DEFAULT_LIMITS = Limits()

_DRIVE = re.compile(r"^[A-Za-z]:")
_S_IFMT_OK = {0, stat.S_IFREG, stat.S_IFDIR}


def check_member_name(name: str, *, limits: Limits = DEFAULT_LIMITS) -> str:
    """Return the normalised relative POSIX path for an entry name, or raise PackageError."""
    if not name:
        raise PackageError("<unnamed entry>", "entry has an empty name")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise PackageError(repr(name), "entry name contains control characters")
    path = name.replace("\\", "/")
    if path.startswith("/"):
        raise PackageError(name, "absolute path (entries must be relative to the package root)")
    if _DRIVE.match(path):
        raise PackageError(name, "path with a drive letter (entries must be relative to the package root)")
    parts = path.split("/")
    if ".." in parts:
        raise PackageError(name, "path escapes the package root ('..' component: zip slip)")
    clean = [p for p in parts if p not in ("", ".")]
    if not clean:
        raise PackageError(name, "entry name has no file name")
    result = "/".join(clean)
    if len(result.encode("utf-8")) > limits.max_path_length:
        raise PackageError(name, f"path longer than {limits.max_path_length} bytes")
    if len(clean) > limits.max_depth:
        raise PackageError(name, f"path nested deeper than {limits.max_depth} folders")
    if any(len(p.encode("utf-8")) > 255 for p in clean):
        raise PackageError(name, "a path component is longer than 255 bytes")
    return result


@dataclass(frozen=True)
class _Entry:
    path: str
    is_dir: bool
    size: int
    info: zipfile.ZipInfo | None = None
    source: Path | None = None


class _Tally:
    """Tracks names, counts and sizes across entries; shared by ZIP and directory checks."""

    def __init__(self, limits: Limits, origin: str):
        self.limits = limits
        self.origin = origin
        self.files: set[str] = set()
        self.dirs: set[str] = set()
        self.count = 0
        self.total = 0

    def add(self, name: str, path: str, *, is_dir: bool, size: int) -> None:
        if path in self.files or (is_dir is False and path in self.dirs):
            raise PackageError(name, "duplicate entry name (or a file and a folder with the same name)")
        parents = [str(p) for p in PurePosixPath(path).parents if str(p) != "."]
        for parent in parents:
            if parent in self.files:
                raise PackageError(name, f"{parent!r} is both a file and a folder")
        if is_dir:
            self.dirs.add(path)
            self.dirs.update(parents)
            return
        self.dirs.update(parents)
        self.files.add(path)
        self.count += 1
        if self.count > self.limits.max_files:
            raise PackageError(self.origin, f"too many files (more than {self.limits.max_files})")
        if size > self.limits.max_file_size:
            raise PackageError(name, f"file too large ({size} bytes, limit {self.limits.max_file_size})")
        self.total += size
        if self.total > self.limits.max_total_size:
            raise PackageError(
                self.origin, f"package too large uncompressed (more than {self.limits.max_total_size} bytes)"
            )


def is_zip(path: str | os.PathLike[str]) -> bool:
    """True for a regular file that starts like a ZIP archive (any extension: .zip, .imscc...)."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")


def _declared_entry_count(fh) -> int | None:
    """Entry count from the end-of-central-directory record, read before ZipFile parses it all."""
    end_rec = getattr(zipfile, "_EndRecData", None)
    if end_rec is None:  # pragma: no cover - private helper missing on some future Python
        return None
    try:
        rec = end_rec(fh)
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    if not rec:
        return None
    return rec[zipfile._ECD_ENTRIES_TOTAL]


def _plan_zip(zf: zipfile.ZipFile, origin: str, archive_size: int, limits: Limits) -> list[_Entry]:
    tally = _Tally(limits, origin)
    plan: list[_Entry] = []
    for info in zf.infolist():
        name = info.filename
        if info.flag_bits & 0x1:
            raise PackageError(name, "encrypted entries are not supported")
        mode = (info.external_attr >> 16) & 0xFFFF
        ftype = stat.S_IFMT(mode)
        if ftype == stat.S_IFLNK:
            raise PackageError(name, "symbolic links are not allowed in packages")
        if ftype not in _S_IFMT_OK:
            raise PackageError(name, "special files (devices, pipes, sockets) are not allowed in packages")
        path = check_member_name(name, limits=limits)
        is_dir = info.is_dir() or ftype == stat.S_IFDIR
        if is_dir and info.file_size:
            raise PackageError(name, "directory entry carries data")
        size = info.file_size
        if not is_dir and size >= limits.ratio_min_size and size > limits.max_ratio * max(info.compress_size, 1):
            ratio = size / max(info.compress_size, 1)
            raise PackageError(
                name, f"compression ratio {ratio:.0f}:1 exceeds {limits.max_ratio:.0f}:1 (possible zip bomb)"
            )
        tally.add(name, path, is_dir=is_dir, size=size)
        plan.append(_Entry(path=path, is_dir=is_dir, size=size, info=info))
    if tally.total >= limits.ratio_min_size and tally.total > limits.max_ratio * max(archive_size, 1):
        raise PackageError(
            origin,
            f"archive expands {tally.total / max(archive_size, 1):.0f}-fold, "
            f"more than {limits.max_ratio:.0f} (possible zip bomb)",
        )
    return plan


def _safe_join(root: Path, relpath: str) -> Path:
    dest = root.joinpath(*relpath.split("/"))
    # The tree is created by us and holds no symlinks, but keep the invariant explicit.
    if os.path.commonpath([os.path.abspath(dest), os.path.abspath(root)]) != os.path.abspath(root):
        raise PackageError(relpath, "path escapes the package root")
    return dest


def _open_new_file(path: Path):
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    return os.fdopen(os.open(path, flags, 0o644), "wb")


def _copy_stream(src, dest: Path, entry: _Entry, limits: Limits, written: list[int]) -> None:
    """Stream ``src`` into a new file, enforcing declared and configured sizes as we go."""
    n = 0
    with _open_new_file(dest) as out:
        while True:
            chunk = src.read(limits.chunk_size)
            if not chunk:
                break
            n += len(chunk)
            written[0] += len(chunk)
            if n > entry.size:
                raise PackageError(entry.path, "entry holds more data than its header declares")
            if written[0] > limits.max_total_size:
                raise PackageError(entry.path, f"package too large uncompressed (limit {limits.max_total_size} bytes)")
            out.write(chunk)
    if n != entry.size:
        raise PackageError(entry.path, f"entry is truncated ({n} of {entry.size} bytes)")


def _new_staging_dir(target: Path) -> Path:
    if os.path.lexists(target):
        raise PackageError(str(target), "target directory already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))


def _materialise(entries: list[_Entry], target: Path, limits: Limits, open_entry) -> Path:
    staging = _new_staging_dir(target)
    try:
        written = [0]
        for entry in entries:
            dest = _safe_join(staging, entry.path)
            if entry.is_dir:
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open_entry(entry) as src:
                _copy_stream(src, dest, entry, limits, written)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


@contextmanager
def _zip(archive: Path, limits: Limits) -> Iterator[tuple[zipfile.ZipFile, int]]:
    try:
        size = archive.stat().st_size
        fh = open(archive, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise PackageError(archive.name, f"cannot read the upload ({exc.strerror or exc})") from exc
    try:
        declared = _declared_entry_count(fh)
        if declared is not None and declared > limits.max_files * 2 + 1000:
            raise PackageError(archive.name, f"too many entries ({declared}; limit {limits.max_files} files)")
        fh.seek(0)
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
            raise PackageError(archive.name, f"not a valid ZIP archive ({exc})") from exc
        with zf:
            yield zf, size
    finally:
        fh.close()


def extract_zip(
    archive: str | os.PathLike[str], target: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS
) -> Path:
    """Check every entry of ``archive`` then extract it to ``target`` (which must not exist).

    Returns ``target``. On any problem raises :class:`PackageError` and leaves neither
    ``target`` nor a partial directory behind.
    """
    archive, target = Path(archive), Path(target)
    with _zip(archive, limits) as (zf, size):
        plan = _plan_zip(zf, archive.name, size, limits)

        def open_entry(entry: _Entry):
            return zf.open(entry.info)

        try:
            return _materialise(plan, target, limits, open_entry)
        except PackageError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise PackageError(archive.name, f"corrupt ZIP archive ({exc})") from exc
        except NotImplementedError as exc:
            raise PackageError(archive.name, f"unsupported ZIP feature ({exc})") from exc
        except OSError as exc:
            raise PackageError(archive.name, f"cannot extract ({exc.strerror or exc})") from exc


def scan_directory(root: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    """Check an unzipped package with the same rules as an archive; return its file paths.

    Symlinks (to files or folders) and special files are refused, never followed.
    """
    return [e.path for e in _plan_directory(Path(root), limits) if not e.is_dir]


def _plan_directory(root: Path, limits: Limits) -> list[_Entry]:
    if root.is_symlink():
        raise PackageError(root.name, "the package folder is a symbolic link")
    if not root.is_dir():
        raise PackageError(root.name, "not a directory")
    tally = _Tally(limits, root.name)
    plan: list[_Entry] = []
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise PackageError(prefix or root.name, f"cannot list folder ({exc.strerror or exc})") from exc
        subdirs = []
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if entry.is_symlink():
                raise PackageError(rel, "symbolic links are not allowed in packages")
            path = check_member_name(rel, limits=limits)
            if entry.is_dir(follow_symlinks=False):
                tally.add(rel, path, is_dir=True, size=0)
                plan.append(_Entry(path=path, is_dir=True, size=0, source=Path(entry.path)))
                subdirs.append((Path(entry.path), rel + "/"))
            elif entry.is_file(follow_symlinks=False):
                size = entry.stat(follow_symlinks=False).st_size
                tally.add(rel, path, is_dir=False, size=size)
                plan.append(_Entry(path=path, is_dir=False, size=size, source=Path(entry.path)))
            else:
                raise PackageError(rel, "special files (devices, pipes, sockets) are not allowed in packages")
        stack.extend(reversed(subdirs))
    return plan


def copy_directory(
    source: str | os.PathLike[str], target: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS
) -> Path:
    """Check an unzipped package and copy it to ``target`` (fresh, atomic, streamed)."""
    source, target = Path(source), Path(target)
    plan = _plan_directory(source, limits)

    def open_entry(entry: _Entry):
        fd = os.open(entry.source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
        return os.fdopen(fd, "rb")

    try:
        return _materialise(plan, target, limits, open_entry)
    except PackageError:
        raise
    except OSError as exc:
        raise PackageError(source.name, f"cannot copy ({exc.strerror or exc})") from exc


def open_package(
    source: str | os.PathLike[str], target: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS
) -> Path:
    """Materialise ``source`` (a ZIP file of any extension, or a directory) at ``target``."""
    source = Path(source)
    if source.is_dir() and not source.is_symlink():
        return copy_directory(source, target, limits=limits)
    if is_zip(source):
        return extract_zip(source, target, limits=limits)
    if not source.exists():
        raise PackageError(source.name, "no such file or directory")
    raise PackageError(source.name, "not a ZIP archive or a package folder")


@contextmanager
def opened_package(source: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS) -> Iterator[Path]:
    """Yield a checked package directory for reading.

    A directory is checked and used in place; an archive is extracted to a temporary
    directory that is removed when the block ends.
    """
    source = Path(source)
    if source.is_dir() and not source.is_symlink():
        _plan_directory(source, limits)
        yield source
        return
    with tempfile.TemporaryDirectory(prefix="lms_bridge-pkg-") as tmp:
        yield open_package(source, Path(tmp) / "package", limits=limits)
