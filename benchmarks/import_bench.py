"""Package import: time, throughput and peak memory for a ~50 MB and a ~200 MB SCORM 2004 package.

Each package is generated in a temporary folder (seeded, so every run imports the same bytes):
a real SCORM 2004 4th edition ``imsmanifest.xml`` (modules of SCO lessons, shared assets as a
dependency, a final quiz with a mastery score) over a few thousand files the way authoring tools
export them: compressible HTML, JavaScript, CSS, JSON and XML slide data, and incompressible
media (JPEG-like images, MP3-like audio, MP4-like video, WOFF2-like fonts), all deflated in the ZIP.

Each size is imported through the real import service (``lms_bridge.packages.service.import_package``:
safe extraction, format detection, manifest parsing, checksum, database rows, move into storage)
into a fresh, migrated SQLite database, in a child process of its own, so that the child's peak
RSS (``ru_maxrss`` from ``wait4``) is the import's peak memory: the same peak for both sizes means
memory does not grow with package size. The child also reports its RSS before the import (Python,
Flask, SQLAlchemy and lxml loaded) and where the time went (extraction, reading the package,
checksum, database and move).

    .venv/bin/python benchmarks/import_bench.py [--sizes 50,200] [--backend sqlite|postgres] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MB = 1_000_000
SEED = 20240501
WORDS = [
    "battery", "cell", "module", "pack", "voltage", "current", "insulation", "isolation", "safety",
    "technician", "vehicle", "electric", "high", "system", "charge", "discharge", "thermal", "runaway",
    "coolant", "connector", "contactor", "fuse", "relay", "measure", "multimeter", "glove", "procedure",
    "step", "check", "verify", "lock", "tag", "out", "service", "disconnect", "plug", "hazard", "arc",
    "flash", "protective", "equipment", "workshop", "training", "learner", "outcome", "assess", "quiz",
    "score", "lesson", "module", "unit", "competence", "skill", "diagnose", "repair", "replace", "inspect",
    "torque", "cable", "harness", "sensor", "controller", "inverter", "motor", "regenerative", "brake",
    "state", "health", "the", "a", "of", "to", "and", "in", "for", "with", "on", "is", "are", "be", "this",
    "that", "from", "by", "as", "at", "an", "or", "not", "can", "must", "should", "will",
]


# --------------------------------------------------------------------------- package generator


class Generator:
    """Seeded content the way authoring tools export a course: text that compresses about 3-4 to 1
    and media that does not compress."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        # A pool of paragraphs and code lines; files are assembled from random picks, so text
        # compresses like prose (a 32 KB deflate window rarely sees a repeat), not like a bomb.
        self.paragraphs = [self._sentence_block(self.rng.randint(40, 140)) for _ in range(400)]
        self.code = [self._code_line() for _ in range(3000)]

    def _sentence_block(self, words: int) -> str:
        picks = self.rng.choices(WORDS, k=words)
        return " ".join(picks).capitalize() + "."

    def _code_line(self) -> str:
        a, b, c = self.rng.choices(WORDS, k=3)
        n = self.rng.randint(0, 99999)
        kind = self.rng.randrange(4)
        if kind == 0:
            return f"  var {a}_{b} = function({c}, n) {{ return {c}.{a}(n + {n}); }};"
        if kind == 1:
            return f"  if ({a}.{b} !== undefined && {c} > {n}) {{ {a}.{b}.push('{c}-{n}'); }}"
        if kind == 2:
            return f'  "{a}{n}": {{"{b}": "{c}", "x": {n % 977}, "y": {n % 613}, "w": 1280, "h": 720}},'
        return f"  /* {a} {b} {c} {n} */ {a}.{b}({n});"

    def text(self, size: int, header: str = "") -> bytes:
        out, total = [header], len(header)
        while total < size:
            p = self.rng.choice(self.paragraphs)
            out.append(f"<p data-n=\"{self.rng.randint(0, 10**6)}\">{p}</p>\n")
            total += len(out[-1])
        return "".join(out).encode()[:size]

    def script(self, size: int) -> bytes:
        out, total = ["(function(){\n"], 14
        while total < size:
            line = self.rng.choice(self.code) + "\n"
            out.append(line)
            total += len(line)
        return "".join(out).encode()[:size]

    def media(self, size: int, magic: bytes) -> bytes:
        return magic + self.rng.randbytes(max(0, size - len(magic)))


MAGIC = {"jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "mp3": b"ID3\x04\x00\x00", "mp4": b"\x00\x00\x00\x20ftypisom",
         "woff2": b"wOF2\x00\x01\x00\x00", "png": b"\x89PNG\r\n\x1a\n"}


def build_package(path: Path, target_bytes: int, seed: int = SEED) -> dict:
    """Write a SCORM 2004 ZIP of about ``target_bytes`` at ``path``; returns what it holds."""
    gen = Generator(seed)
    rng = gen.rng
    resources: list[str] = []
    items: list[str] = []
    stats = {"files": 0, "content_bytes": 0, "media_bytes": 0, "text_bytes": 0}

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        def add(name: str, data: bytes, media: bool) -> str:
            # Authoring tools deflate everything; a fast level for media keeps generation quick.
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 5, 1, 12, 0, 0)), data,
                        compress_type=zipfile.ZIP_DEFLATED, compresslevel=1 if media else 6)
            stats["files"] += 1
            stats["content_bytes"] += len(data)
            stats["media_bytes" if media else "text_bytes"] += len(data)
            return name

        shared = [
            add("shared/lib/player-runtime.js", gen.script(1_600_000), False),
            add("shared/lib/scorm-wrapper.js", gen.script(120_000), False),
            add("shared/css/course.css", gen.script(220_000), False),
            *[add(f"shared/fonts/font-{i}.woff2", gen.media(rng.randint(60_000, 160_000), MAGIC["woff2"]), True)
              for i in range(6)],
            *[add(f"shared/img/ui-{i:02d}.png", gen.media(rng.randint(2_000, 40_000), MAGIC["png"]), True)
              for i in range(40)],
        ]
        resources.append('<resource identifier="RES-SHARED" type="webcontent" adlcp:scormType="asset">'
                         + "".join(f'<file href="{f}"/>' for f in shared) + "</resource>")

        lesson = 0
        module_items: list[str] = []
        module = 1
        while zf.fp.tell() < target_bytes - 3 * MB:  # a lesson is about 6 MB; the quiz and manifest come last
            lesson += 1
            room = target_bytes - zf.fp.tell()  # no video in the last lessons, to land near the target
            base = f"m{module:02d}/l{lesson:03d}"
            files = [add(f"{base}/index.html", gen.text(rng.randint(40_000, 160_000),
                                                        f"<!doctype html><title>Lesson {lesson}</title>\n"), False),
                     add(f"{base}/lesson.js", gen.script(rng.randint(300_000, 900_000)), False),
                     add(f"{base}/transcript.html", gen.text(rng.randint(20_000, 80_000), "<!doctype html>\n"), False)]
            files += [add(f"{base}/slides/slide{s:02d}.json", gen.script(rng.randint(4_000, 30_000)), False)
                      for s in range(rng.randint(12, 30))]
            files += [add(f"{base}/slides/slide{s:02d}.xml", gen.text(rng.randint(2_000, 12_000), "<slide>"), False)
                      for s in range(rng.randint(6, 14))]
            files += [add(f"{base}/img/pic{s:02d}.jpg", gen.media(rng.randint(30_000, 450_000), MAGIC["jpg"]), True)
                      for s in range(rng.randint(4, 10))]
            files.append(add(f"{base}/audio/narration.mp3", gen.media(rng.randint(500_000, 2_500_000), MAGIC["mp3"]),
                             True))
            if lesson % 3 == 0 and room > 16 * MB:
                files.append(add(f"{base}/video/clip.mp4", gen.media(rng.randint(4_000_000, 12_000_000),
                                                                     MAGIC["mp4"]), True))
            resources.append(
                f'<resource identifier="RES-{lesson}" type="webcontent" adlcp:scormType="sco" href="{base}/index.html">'
                + "".join(f'<file href="{f}"/>' for f in files) + '<dependency identifierref="RES-SHARED"/></resource>')
            module_items.append(f'<item identifier="ITEM-{lesson}" identifierref="RES-{lesson}">'
                                f"<title>Lesson {lesson}</title></item>")
            if len(module_items) == 6:
                items.append(f'<item identifier="MOD-{module}"><title>Module {module}</title>{"".join(module_items)}</item>')
                module_items = []
                module += 1
        if module_items:
            items.append(f'<item identifier="MOD-{module}"><title>Module {module}</title>{"".join(module_items)}</item>')
        quiz = [add("quiz/index.html", gen.text(40_000, "<!doctype html><title>Final quiz</title>\n"), False),
                add("quiz/quiz.js", gen.script(90_000), False)]
        resources.append('<resource identifier="RES-QUIZ" type="webcontent" adlcp:scormType="sco" href="quiz/index.html">'
                         + "".join(f'<file href="{f}"/>' for f in quiz) + '<dependency identifierref="RES-SHARED"/></resource>')
        items.append('<item identifier="QUIZ"><title>Final quiz</title>'
                     '<item identifier="QUIZ-SCO" identifierref="RES-QUIZ"><title>Final quiz</title>'
                     '<imsss:sequencing><imsss:objectives><imsss:primaryObjective objectiveID="quiz-passed" '
                     'satisfiedByMeasure="true"><imsss:minNormalizedMeasure>0.8</imsss:minNormalizedMeasure>'
                     "</imsss:primaryObjective></imsss:objectives></imsss:sequencing></item></item>")
        manifest = f"""<?xml version="1.0" encoding="UTF-8"?>
<manifest identifier="org.example.bench.ev-battery-{target_bytes // MB}mb" version="1.0.0"
  xmlns="http://www.imsglobal.org/xsd/imscp_v1p1" xmlns:adlcp="http://www.adlnet.org/xsd/adlcp_v1p3"
  xmlns:adlseq="http://www.adlnet.org/xsd/adlseq_v1p3" xmlns:adlnav="http://www.adlnet.org/xsd/adlnav_v1p3"
  xmlns:imsss="http://www.imsglobal.org/xsd/imsss" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.imsglobal.org/xsd/imscp_v1p1 imscp_v1p1.xsd http://www.adlnet.org/xsd/adlcp_v1p3 adlcp_v1p3.xsd http://www.imsglobal.org/xsd/imsss imsss_v1p0.xsd">
  <metadata><schema>ADL SCORM</schema><schemaversion>2004 4th Edition</schemaversion></metadata>
  <organizations default="ORG">
    <organization identifier="ORG">
      <title>High-voltage battery safety, benchmark edition ({target_bytes // MB} MB)</title>
      {"".join(items)}
    </organization>
  </organizations>
  <resources>
    {"".join(resources)}
  </resources>
</manifest>
"""
        add("imsmanifest.xml", manifest.encode(), False)
    stats["lessons"] = lesson
    stats["zip_bytes"] = path.stat().st_size
    return stats


# --------------------------------------------------------------------------- the child: one import


def child(package: str) -> None:
    """Import ``package`` into the database named by the environment; print one JSON line."""
    import resource

    from lms_bridge import create_app

    app = create_app()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    phases: dict[str, float] = {}

    def timed(module, name):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - t0

        setattr(module, name, wrapper)

    from lms_bridge.packages import service
    from lms_bridge.packages.importers import base

    timed(base, "open_package")
    timed(base, "load_directory")
    timed(service, "tree_checksum")
    timed(service, "_record")
    with app.app_context():
        t0, cpu0 = time.perf_counter(), time.process_time()
        version = service.import_package(package)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        info = {"seconds": seconds, "cpu": cpu, "files": version.file_count, "content_bytes": version.size_bytes,
                "activities": len(version.activities), "rss_before_kb": rss_before, "phases": phases}
    print(json.dumps(info))


# --------------------------------------------------------------------------- the parent


def run_child(package: Path, env: dict) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(package)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.stdout.read(), proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"import failed ({proc.returncode}):\n{err.decode()[-4000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_rss_kb"] = usage.ru_maxrss
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200", help="package sizes in MB (ZIP bytes), comma-separated")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--keep", help="keep the generated packages in this folder (and reuse them next time)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    os.environ["LMS_BRIDGE_TEST_BACKEND"] = args.backend

    from tests.support.servers import free_port, fresh_database, migrate, server_env

    work = Path(tempfile.mkdtemp(prefix="lms_bridge_import_bench_"))
    packages = Path(args.keep) if args.keep else work
    packages.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            package = packages / f"scorm2004-{size}mb.zip"
            if not package.exists():
                t0 = time.perf_counter()
                stats = build_package(package, size * MB)
                print(f"generated {package.name}: {stats['zip_bytes'] / MB:.1f} MB ZIP, {stats['files']} files, "
                      f"{stats['content_bytes'] / MB:.1f} MB content ({stats['media_bytes'] / MB:.1f} MB media, "
                      f"{stats['text_bytes'] / MB:.1f} MB text), {stats['lessons']} lessons "
                      f"in {time.perf_counter() - t0:.1f} s", flush=True)
            tmp = work / f"run-{size}"
            tmp.mkdir()
            database = fresh_database(tmp)
            try:
                env = server_env(database, free_port(), tmp, LOG_LEVEL="WARNING")
                migrate(env)
                os.sync()  # the generator's writes are not the import's
                result = run_child(package, env)
            finally:
                database.drop()
            zip_mb = package.stat().st_size / MB
            result.update(size=size, zip_mb=zip_mb)
            rows.append(result)
            phases = ", ".join(f"{k} {v:.2f} s" for k, v in result["phases"].items())
            print(f"{size:>4} MB: {zip_mb:7.1f} MB ZIP, {result['content_bytes'] / MB:7.1f} MB content, "
                  f"{result['files']} files, {result['activities']} activities: {result['seconds']:6.2f} s "
                  f"({result['cpu']:.2f} s CPU) -> {zip_mb / result['seconds']:6.1f} MB/s of ZIP, "
                  f"{result['content_bytes'] / MB / result['seconds']:6.1f} MB/s of content; "
                  f"peak RSS {result['peak_rss_kb'] / 1024:6.1f} MiB (before the import {result['rss_before_kb'] / 1024:.1f} MiB)"
                  f"\n       ({phases})", flush=True)
        if len(rows) > 1:
            small, large = rows[0], rows[-1]
            growth = (large["peak_rss_kb"] - small["peak_rss_kb"]) / 1024
            print(f"peak RSS {small['size']} MB -> {large['size']} MB package: {growth:+.1f} MiB "
                  f"({large['zip_mb'] / small['zip_mb']:.1f}x the bytes)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
