"""Operator commands for course packages (``flask --app wsgi <command>``).

* ``import-packages PATH...``: import packages; a PATH is a package (ZIP of any extension,
  package folder, bare ``cmi5.xml``) or a folder of packages (``mooc_packages/``: each
  sub-folder and each ZIP file in it is one package; other files such as README.md are
  skipped). One line per package, then a summary; exits 1 if any package failed.
* ``list-packages [--json]``: the imported courses and their versions.
* ``remove-package ID``: a course with every version, rows and files.
* ``label-skills FILE...``: ESCO preferred labels from ESCO's CSV export.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import click

from .safezip import PackageError, is_zip

log = logging.getLogger("lms_bridge.packages")


def _is_package_folder(path: Path) -> bool:
    from .importers import importers

    return any(importer.detect(path) for importer in importers())


def expand_paths(paths: list[str]) -> list[tuple[str, Path]]:
    """``(label, path)`` of every package named by ``paths`` (folders of packages expanded)."""
    out: list[tuple[str, Path]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir() and not path.is_symlink() and not _is_package_folder(path):
            for entry in sorted(path.iterdir(), key=lambda p: p.name):
                if entry.name.startswith((".", "_")):
                    continue
                if (entry.is_dir() and not entry.is_symlink()) or is_zip(entry):
                    out.append((os.path.join(raw, entry.name), entry))
        else:
            out.append((raw, path))
    return out


def register_cli(app) -> None:
    @app.cli.command("import-packages")
    @click.argument("paths", nargs=-1, required=True)
    @click.option("--verbose", "-v", is_flag=True, help="Also print each package's import warnings.")
    def import_packages(paths, verbose):
        """Import course packages: files, package folders, or folders of packages (mooc_packages/)."""
        from .service import import_package_outcome

        packages = expand_paths(list(paths))
        if not packages:
            click.echo(f"no packages found in {', '.join(paths)}")
            return
        counts = {"imported": 0, "unchanged": 0, "failed": 0}
        for label, path in packages:
            try:
                outcome = import_package_outcome(path)
            except PackageError as exc:
                counts["failed"] += 1
                click.echo(f"FAILED     {label}: {exc}")
                continue
            except Exception as exc:
                counts["failed"] += 1
                log.exception("import of %s failed", label)
                click.echo(f"FAILED     {label}: unexpected error ({type(exc).__name__}: {exc})")
                continue
            v = outcome.version
            counts[outcome.status] += 1
            if outcome.created:
                warnings = v.warnings or []
                detail = (f"{len(v.activities)} activities"
                          + (f", {outcome.kept_activity_keys} kept from the previous version"
                             if not outcome.course_created else "")
                          + (f", {len(warnings)} warnings" if warnings else ""))
                number = f" {v.version}" if v.version else ""
                click.echo(f"imported   {label}: {v.title!r}{number} ({v.format}) "
                           f"as course {v.course_id} version {v.id}; {detail}")
                if verbose:
                    for warning in warnings:
                        click.echo(f"  warning: {warning}")
            else:
                click.echo(f"unchanged  {label}: already imported as course {v.course_id} version {v.id}")
        click.echo(f"{len(packages)} packages: {counts['imported']} imported, {counts['unchanged']} unchanged, "
                   f"{counts['failed']} failed")
        if counts["failed"]:
            raise SystemExit(1)

    @app.cli.command("list-packages")
    @click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
    def list_packages(as_json):
        """Imported courses with their current version and version count."""
        from .service import describe_version, list_courses

        courses = list_courses()
        if as_json:
            click.echo(json.dumps([{
                "id": c.id, "source_project": c.source_project, "identifier": c.package_identifier,
                "current": describe_version(c.current_version) if c.current_version else None,
                "versions": [{"id": v.id, "version": v.version, "sequence": v.sequence, "checksum": v.checksum,
                              "imported_at": v.imported_at.isoformat() + "Z"} for v in c.versions],
            } for c in courses], indent=2))
            return
        if not courses:
            click.echo("no courses imported (flask import-packages PATH...)")
            return
        click.echo(f"{'id':>4}  {'version':<10} {'format':<10} {'versions':>8}  title [source project] identifier")
        for c in courses:
            v = c.current_version
            project = f" [{c.source_project}]" if c.source_project else ""
            click.echo(f"{c.id:>4}  {(v.version or '-') if v else '-':<10} {v.format if v else '-':<10} "
                       f"{len(c.versions):>8}  {v.title if v else '(no version)'}{project} {c.package_identifier}")

    @app.cli.command("remove-package")
    @click.argument("course_id", type=int)
    def remove_package(course_id):
        """Remove a course (ID from list-packages) with every version's rows and files."""
        from .service import remove_course

        try:
            course = remove_course(course_id)
        except LookupError as exc:
            raise click.ClickException(f"{exc} (see flask list-packages)") from exc
        click.echo(f"removed course {course_id} ({course.package_identifier})")

    @app.cli.command("label-skills")
    @click.argument("files", nargs=-1, required=True, type=click.File("rb"))
    def label_skills(files):
        """Set ESCO skill labels from ESCO CSV exports (conceptUri, preferredLabel) or uri,label CSVs."""
        from .esco import read_label_file
        from .service import set_skill_labels

        total = 0
        for fh in files:
            try:
                total += set_skill_labels(read_label_file(fh.read()))
            except (ValueError, UnicodeDecodeError) as exc:
                raise click.ClickException(f"{fh.name}: {exc}") from exc
        click.echo(f"labels changed for {total} skills")
