"""safezip: hostile archives and folders are refused, naming the file, leaving nothing behind."""

from __future__ import annotations

import os
import stat
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from lms_bridge.packages.safezip import (
    DEFAULT_LIMITS,
    Limits,
    PackageError,
    check_member_name,
    copy_directory,
    extract_zip,
    open_package,
    opened_package,
    scan_directory,
)


def _refused(
    archive: Path, out: Path, match: str, *, limits: Limits = DEFAULT_LIMITS, file: str | None = None
) -> PackageError:
    target = out / "pkg"
    with pytest.raises(PackageError, match=match) as err:
        extract_zip(archive, target, limits=limits)
    assert not target.exists()
    assert list(out.iterdir()) == [], "no partial extraction may be left behind"
    if file is not None:
        assert err.value.file == file
        assert file in str(err.value)
    return err.value


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def test_extracts_a_normal_archive(tmp_path, out, helpers):
    archive = helpers.make_zip(
        tmp_path / "ok.zip",
        {"imsmanifest.xml": "<manifest/>", "dir/": b"", "dir/a b.html": "<p>x</p>", "win\\style.css": "p{}"},
    )
    target = extract_zip(archive, out / "pkg")
    assert (target / "dir" / "a b.html").read_text() == "<p>x</p>"
    # Backslash separators (old Windows zippers) become folders.
    assert (target / "win" / "style.css").is_file()
    assert sorted(os.listdir(out)) == ["pkg"]


@pytest.mark.parametrize(
    "name, problem",
    [
        ("../evil.txt", "zip slip"),
        ("a/../../evil.txt", "zip slip"),
        ("..\\..\\evil.txt", "zip slip"),
        ("a\\..\\..\\evil.txt", "zip slip"),
        ("/etc/passwd", "absolute path"),
        ("\\\\server\\share\\x", "absolute path"),
        ("C:\\Windows\\evil.dll", "drive letter"),
        ("c:/evil.txt", "drive letter"),
        ("ok/\x01bad", "control characters"),
    ],
)
def test_hostile_names_are_refused(tmp_path, out, helpers, name, problem):
    archive = helpers.make_zip(tmp_path / "bad.zip", {"index.html": "x", name: "owned"})
    error = _refused(archive, out, problem)
    assert error.file in (name, repr(name))
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_entry_is_refused(tmp_path, out, helpers):
    archive = helpers.zip_with_infos(
        tmp_path / "link.zip",
        [(helpers.zip_info("index.html"), b"x"), helpers.symlink_entry("passwd", "/etc/passwd")],
    )
    _refused(archive, out, "symbolic links", file="passwd")


def test_special_file_entry_is_refused(tmp_path, out, helpers):
    archive = helpers.zip_with_infos(
        tmp_path / "fifo.zip", [(helpers.zip_info("pipe", mode=stat.S_IFIFO | 0o644), b"")]
    )
    _refused(archive, out, "special files", file="pipe")


def test_encrypted_entry_is_refused(tmp_path, out, helpers):
    archive = helpers.make_zip(tmp_path / "enc.zip", {"secret.html": "x"})
    data = bytearray(archive.read_bytes())
    # zipfile cannot write encrypted entries: set the "encrypted" flag bit in both headers.
    for sig, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = data.find(sig) + offset
        data[pos] |= 0x1
    archive.write_bytes(bytes(data))
    _refused(archive, out, "encrypted", file="secret.html")


def test_duplicate_names_are_refused(tmp_path, out):
    archive = tmp_path / "dup.zip"
    with pytest.warns(UserWarning):  # zipfile itself warns about the duplicate
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("index.html", "one")
            zf.writestr("index.html", "two")
    _refused(archive, out, "duplicate", file="index.html")


def test_duplicate_after_normalisation_is_refused(tmp_path, out, helpers):
    archive = helpers.make_zip(tmp_path / "dup.zip", {"a/index.html": "one", "a\\index.html": "two"})
    _refused(archive, out, "duplicate")


def test_file_and_folder_with_the_same_name_are_refused(tmp_path, out, helpers):
    archive = helpers.make_zip(tmp_path / "clash.zip", {"a": "file", "a/b.html": "x"})
    _refused(archive, out, "both a file and a folder")


def test_zip_bomb_by_ratio_is_refused(tmp_path, out, helpers):
    archive = helpers.make_zip(tmp_path / "bomb.zip", {"index.html": "x", "zeros.bin": bytes(8 * 1024 * 1024)})
    error = _refused(archive, out, "compression ratio", file="zeros.bin")
    assert "zip bomb" in error.problem


def test_small_repetitive_files_pass_the_ratio_check(tmp_path, out, helpers):
    archive = helpers.make_zip(tmp_path / "ok.zip", {"blank.txt": b" " * 200_000})
    assert (extract_zip(archive, out / "pkg") / "blank.txt").stat().st_size == 200_000


def test_zip_bomb_by_total_size_is_refused(tmp_path, out, helpers):
    entries = {f"f{n}.bin": os.urandom(300_000) for n in range(4)}
    archive = helpers.make_zip(tmp_path / "big.zip", entries)
    _refused(archive, out, "too large uncompressed", limits=Limits(max_total_size=1_000_000), file="big.zip")


def test_per_file_size_limit(tmp_path, out, helpers):
    archive = helpers.make_zip(tmp_path / "big.zip", {"video.mp4": os.urandom(200_000)})
    _refused(archive, out, "file too large", limits=Limits(max_file_size=100_000), file="video.mp4")


def test_too_many_files_is_refused(tmp_path, out, helpers):
    archive = helpers.make_zip(tmp_path / "many.zip", {f"f{n}.txt": "x" for n in range(11)})
    _refused(archive, out, "too many files", limits=Limits(max_files=10), file="many.zip")


def test_whole_archive_ratio_is_checked(tmp_path, out, helpers):
    # Many entries each under the per-entry threshold, together expanding far beyond the limit.
    entries = {f"part{n}.txt": bytes(900_000) for n in range(6)}
    archive = helpers.make_zip(tmp_path / "spread.zip", entries)
    _refused(archive, out, "expands", file="spread.zip")


def test_entry_larger_than_its_header_is_refused(tmp_path, out, helpers):
    """A header that understates the size cannot smuggle extra data in."""
    archive = helpers.make_zip(tmp_path / "liar.zip", {"a.txt": "A" * 5000}, compression=zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    # Patch the declared uncompressed size (local header and central directory) to 10 bytes.
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = data.find(sig)
        data[pos + offset : pos + offset + 4] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    _refused(archive, out, "more data than its header declares|corrupt|Bad CRC")


def test_corrupt_archive_is_refused(tmp_path, out, helpers):
    archive = helpers.make_zip(tmp_path / "crc.zip", {"a.txt": "hello world " * 100})
    data = bytearray(archive.read_bytes())
    pos = data.find(b"PK\x03\x04") + 30 + len("a.txt") + 5
    data[pos] ^= 0xFF
    archive.write_bytes(bytes(data))
    _refused(archive, out, "corrupt", file="crc.zip")


def test_not_a_zip(tmp_path, out):
    fake = tmp_path / "course.zip"
    fake.write_bytes(b"PK\x03\x04 but then garbage")
    _refused(fake, out, "not a valid ZIP archive", file="course.zip")
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(PackageError, match="not a ZIP archive or a package folder"):
        open_package(other, out / "pkg")


def test_existing_target_is_never_overwritten(tmp_path, out, helpers):
    archive = helpers.make_zip(tmp_path / "ok.zip", {"index.html": "x"})
    (out / "pkg").mkdir()
    (out / "pkg" / "keep.txt").write_text("keep")
    with pytest.raises(PackageError, match="already exists"):
        extract_zip(archive, out / "pkg")
    assert (out / "pkg" / "keep.txt").read_text() == "keep"


def test_deep_and_long_paths_are_limited(tmp_path, out, helpers):
    deep = "/".join(["d"] * 50) + "/x.txt"
    archive = helpers.make_zip(tmp_path / "deep.zip", {deep: "x"})
    _refused(archive, out, "nested deeper")
    with pytest.raises(PackageError, match="longer than"):
        check_member_name("a" * 2000)


def test_check_member_name_normalises():
    assert check_member_name("./a//b/./c.html") == "a/b/c.html"
    assert check_member_name("dir\\sub\\f.js") == "dir/sub/f.js"
    with pytest.raises(PackageError, match="empty name"):
        check_member_name("")


def test_extraction_memory_does_not_grow_with_package_size(tmp_path, out, helpers):
    size = 48 * 1024 * 1024
    archive = tmp_path / "large.zip"
    chunk = os.urandom(1024 * 1024)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf, zf.open("video.bin", "w", force_zip64=True) as fh:
        for _ in range(size // len(chunk)):
            fh.write(chunk)
    tracemalloc.start()
    try:
        extract_zip(archive, out / "pkg")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (out / "pkg" / "video.bin").stat().st_size == size
    assert peak < 8 * 1024 * 1024, f"peak Python memory {peak} bytes while extracting {size} bytes"


# --------------------------------------------------------------------------- folders


def test_directory_with_symlink_is_refused(tmp_path, helpers):
    pkg = helpers.write_tree(tmp_path / "pkg", {"imsmanifest.xml": "<manifest/>", "a/index.html": "x"})
    os.symlink("/etc/passwd", pkg / "a" / "passwd")
    with pytest.raises(PackageError, match="symbolic links") as err:
        scan_directory(pkg)
    assert err.value.file == "a/passwd"


def test_directory_with_symlinked_folder_is_refused(tmp_path, helpers):
    pkg = helpers.write_tree(tmp_path / "pkg", {"imsmanifest.xml": "<manifest/>"})
    os.symlink(tmp_path, pkg / "up", target_is_directory=True)
    with pytest.raises(PackageError, match="symbolic links"):
        scan_directory(pkg)


def test_directory_limits_apply(tmp_path, helpers):
    pkg = helpers.write_tree(tmp_path / "pkg", {f"f{n}.txt": "x" for n in range(5)})
    with pytest.raises(PackageError, match="too many files"):
        scan_directory(pkg, limits=Limits(max_files=4))
    assert sorted(scan_directory(pkg)) == [f"f{n}.txt" for n in range(5)]


def test_copy_directory_is_atomic(tmp_path, helpers):
    pkg = helpers.write_tree(tmp_path / "pkg", {"imsmanifest.xml": "<manifest/>", "a/b/c.html": "x"})
    out = tmp_path / "out"
    copy_directory(pkg, out / "copy")
    assert (out / "copy" / "a" / "b" / "c.html").read_text() == "x"
    os.symlink("/etc/passwd", pkg / "a" / "evil")
    with pytest.raises(PackageError):
        copy_directory(pkg, out / "copy2")
    assert sorted(os.listdir(out)) == ["copy"]


def test_opened_package_cleans_up(tmp_path, helpers):
    archive = helpers.make_zip(tmp_path / "ok.zip", {"index.html": "x"})
    with opened_package(archive) as root:
        assert (root / "index.html").is_file()
        seen = root
    assert not seen.exists()
