"""The lms_bridge native course format, and the metadata sidecar for other formats.

A native package has ``course.json`` or ``course.yaml`` (``.yml``) at its root, validated
by :class:`CourseManifestSchema` (marshmallow): course and skills metadata, modules of
lessons (HTML or Markdown files, rendered and sanitised with nh3), quizzes (inline or in
a YAML/JSON file) and web links, and a completion rule. ``mooc_packages/README.md``
documents it with an example.

SCORM, cmi5 and Common Cartridge packages carry little or no skills metadata; an optional
``lms_bridge.json`` / ``lms_bridge.yaml`` at their root, validated by
:class:`MetadataSchema` (the metadata part of the native manifest), supplies it.

YAML is read with a safe loader that also refuses aliases (no "billion laughs" through
anchors), and every file is size-limited.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from pathlib import Path
from typing import Any

import markdown as markdown_lib
import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from ..course import Activity, Choice, CompletionRule, Course, Module, Question, Quiz
from ..safezip import PackageError
from .base import Importer, PackageFiles, sanitize_html

MANIFEST_NAMES = ("course.json", "course.yaml", "course.yml")
SIDECAR_NAMES = ("lms_bridge.json", "lms_bridge.yaml", "lms_bridge.yml")
MAX_MANIFEST_BYTES = 2 * 1024 * 1024
MAX_LESSON_BYTES = 8 * 1024 * 1024
LESSON_SUFFIXES = (".md", ".markdown", ".html", ".htm")
QUIZ_SUFFIXES = (".yaml", ".yml", ".json")

ESCO_SKILL = re.compile(r"^https?://data\.europa\.eu/esco/skill/[A-Za-z0-9][A-Za-z0-9.\-]*$")
ESCO_OCCUPATION = re.compile(r"^https?://data\.europa\.eu/esco/(occupation/[A-Za-z0-9\-]+|isco/C\d{1,4})$")
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


# --------------------------------------------------------------------------- loading


class _SafeNoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases (entity-expansion style attacks)."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed", event.start_mark)
        return super().compose_node(parent, index)


def load_data_file(files: PackageFiles, relpath: str, *, max_bytes: int = MAX_MANIFEST_BYTES) -> Any:
    """Parse a JSON or YAML file from the package (by extension); errors name the file."""
    data = files.read_bytes(relpath, max_bytes=max_bytes)
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PackageError(relpath, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        if relpath.lower().endswith(".json"):
            return json.loads(content)
        return yaml.load(content, Loader=_SafeNoAliasLoader)  # noqa: S506 - safe loader subclass
    except json.JSONDecodeError as exc:
        raise PackageError(relpath, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PackageError(relpath, f"invalid YAML{where}: {problem}") from exc
    except RecursionError as exc:
        raise PackageError(relpath, "document nested too deeply") from exc


def _flatten_errors(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            label = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            out.extend(_flatten_errors(value, label))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {m}" if prefix else m for m in messages]
    if isinstance(messages, list):
        return [e for m in messages for e in _flatten_errors(m, prefix)]
    return [f"{prefix}: {messages}" if prefix else str(messages)]


def _validate(schema: Schema, data: Any, relpath: str) -> dict:
    if not isinstance(data, dict):
        raise PackageError(relpath, "expected a mapping (key: value pairs) at the top level")
    try:
        return schema.load(data)
    except ValidationError as exc:
        problems = _flatten_errors(exc.messages)
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise PackageError(relpath, "invalid: " + "; ".join(problems[:5]) + more) from exc


# --------------------------------------------------------------------------- schemas


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class AuthorSchema(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=300))
    affiliation = fields.String(load_default=None)
    url = fields.Url(load_default=None, schemes={"http", "https", "mailto"})


def _uri_list(pattern: re.Pattern[str], what: str) -> fields.List:
    return fields.List(
        fields.String(validate=validate.Regexp(pattern, error=f"not an ESCO {what} URI: {{input}}")),
        load_default=None,
    )


class MetadataSchema(_Strict):
    """Course and skills metadata; every key optional (used alone for sidecars)."""

    title = fields.String(validate=validate.Length(min=1, max=500))
    description = fields.String()
    language = fields.String(validate=validate.Regexp(LANGUAGE, error="not a language tag (e.g. en, de-AT)"))
    licence = fields.String(validate=validate.Length(min=1, max=200))
    source_project = fields.String(validate=validate.Length(min=1, max=200))
    authors = fields.List(fields.Nested(AuthorSchema))
    version = fields.String(validate=validate.Length(min=1, max=50))
    keywords = fields.List(fields.String(validate=validate.Length(min=1, max=200)))
    learning_outcomes = fields.List(fields.String(validate=validate.Length(min=1)))
    esco_skills = _uri_list(ESCO_SKILL, "skill")
    esco_occupations = _uri_list(ESCO_OCCUPATION, "occupation")
    eqf_level = fields.Integer(strict=True, validate=validate.Range(1, 8), allow_none=True)
    workload_hours = fields.Float(validate=validate.Range(min=0, min_inclusive=False, max=10000), allow_none=True)
    ects = fields.Float(validate=validate.Range(min=0, max=360), allow_none=True)
    prerequisites = fields.List(fields.String(validate=validate.Length(min=1)))

    @pre_load
    def normalise(self, data: Any, **_: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}
        if "license" in data and "licence" not in data:
            data["licence"] = data.pop("license")
        if isinstance(data.get("version"), (int, float)) or hasattr(data.get("version"), "isoformat"):
            data["version"] = str(data["version"])
        if isinstance(data.get("authors"), list):
            data["authors"] = [{"name": a} if isinstance(a, str) else a for a in data["authors"]]
        for key in ("esco_skills", "esco_occupations"):
            if isinstance(data.get(key), list):
                data[key] = [
                    "http://" + u[len("https://") :]
                    if isinstance(u, str) and u.startswith("https://data.europa.eu/")
                    else u
                    for u in data[key]
                ]
        return data


class FeedbackSchema(_Strict):
    correct = fields.String(load_default=None)
    incorrect = fields.String(load_default=None)
    general = fields.String(load_default=None)


class ChoiceSchema(_Strict):
    id = fields.String(validate=validate.Regexp(IDENTIFIER), load_default=None)
    text = fields.String(required=True, validate=validate.Length(min=1))
    correct = fields.Boolean(load_default=False)
    feedback = fields.String(load_default=None)


QUESTION_TYPES = ("single", "multiple", "true_false", "fill_in")


class QuestionSchema(_Strict):
    id = fields.String(required=True, validate=validate.Regexp(IDENTIFIER))
    type = fields.String(required=True, validate=validate.OneOf(QUESTION_TYPES))
    prompt = fields.String(required=True, validate=validate.Length(min=1))
    choices = fields.List(fields.Nested(ChoiceSchema), load_default=list)
    answer = fields.Boolean(load_default=None)
    answers = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    case_sensitive = fields.Boolean(load_default=False)
    match = fields.String(load_default="exact", validate=validate.OneOf(("exact", "contains")))
    points = fields.Float(load_default=1.0, validate=validate.Range(min=0, min_inclusive=False, max=1000))
    feedback = fields.Nested(FeedbackSchema, load_default=None)
    shuffle = fields.Boolean(load_default=False)

    @pre_load
    def feedback_string(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("feedback"), str):
            data = {**data, "feedback": {"general": data["feedback"]}}
        return data

    @validates_schema
    def check_type(self, data: dict, **_: Any) -> None:
        kind, choices = data["type"], data.get("choices") or []
        correct = [c for c in choices if c.get("correct")]
        if kind in ("single", "multiple"):
            if len(choices) < 2:
                raise ValidationError("needs at least two choices", "choices")
            if kind == "single" and len(correct) != 1:
                raise ValidationError("a single-choice question needs exactly one correct choice", "choices")
            if kind == "multiple" and not correct:
                raise ValidationError("a multiple-choice question needs at least one correct choice", "choices")
            ids = [c["id"] for c in choices if c.get("id")]
            if len(ids) != len(set(ids)):
                raise ValidationError("choice ids must be unique", "choices")
        elif kind == "true_false":
            if data.get("answer") is None:
                raise ValidationError("a true_false question needs answer: true or false", "answer")
            if choices:
                raise ValidationError("a true_false question takes answer:, not choices:", "choices")
        elif kind == "fill_in" and not data.get("answers"):
            raise ValidationError("a fill_in question needs at least one accepted answer", "answers")


class _QuizSettings(_Strict):
    title = fields.String(load_default=None)
    pass_mark = fields.Float(load_default=None, validate=validate.Range(0, 1))
    shuffle = fields.Boolean(load_default=False)
    max_attempts = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1))
    time_limit_minutes = fields.Float(load_default=None, validate=validate.Range(min=0, min_inclusive=False))


class QuizFileSchema(_QuizSettings):
    """A quiz file: settings plus ``questions`` (or just a list of questions)."""

    questions = fields.List(fields.Nested(QuestionSchema), required=True, validate=validate.Length(min=1))

    @validates_schema
    def unique_ids(self, data: dict, **_: Any) -> None:
        _unique_question_ids(data.get("questions") or [])


def _unique_question_ids(questions: list[dict]) -> None:
    ids = [q["id"] for q in questions]
    if len(ids) != len(set(ids)):
        raise ValidationError("question ids must be unique within a quiz", "questions")


ACTIVITY_TYPES = ("lesson", "quiz", "weblink")


class ActivitySchema(_QuizSettings):
    id = fields.String(required=True, validate=validate.Regexp(IDENTIFIER))
    title = fields.String(required=True, validate=validate.Length(min=1, max=500))
    type = fields.String(required=True, validate=validate.OneOf(ACTIVITY_TYPES))
    description = fields.String(load_default=None)
    file = fields.String(load_default=None)
    url = fields.Url(load_default=None, schemes={"http", "https"})
    required = fields.Boolean(load_default=True)
    duration_minutes = fields.Float(load_default=None, validate=validate.Range(min=0))
    questions = fields.List(fields.Nested(QuestionSchema), load_default=None)

    @validates_schema
    def check_type(self, data: dict, **_: Any) -> None:
        kind, file = data["type"], data.get("file")
        if kind == "lesson":
            if not file:
                raise ValidationError("a lesson needs file: (a .md or .html file in the package)", "file")
            if not file.lower().endswith(LESSON_SUFFIXES):
                raise ValidationError(f"lesson files must end in {', '.join(LESSON_SUFFIXES)}", "file")
        elif kind == "quiz":
            if bool(file) == bool(data.get("questions")):
                raise ValidationError("a quiz needs either questions: or file: (not both)", "questions")
            if file and not file.lower().endswith(QUIZ_SUFFIXES):
                raise ValidationError(f"quiz files must end in {', '.join(QUIZ_SUFFIXES)}", "file")
            if data.get("questions"):
                _unique_question_ids(data["questions"])
        elif kind == "weblink" and not data.get("url"):
            raise ValidationError("a weblink needs url:", "url")


class ModuleSchema(_Strict):
    id = fields.String(required=True, validate=validate.Regexp(IDENTIFIER))
    title = fields.String(required=True, validate=validate.Length(min=1, max=500))
    description = fields.String(load_default=None)
    activities = fields.List(fields.Nested(ActivitySchema), load_default=list)
    modules = fields.List(fields.Nested(lambda: ModuleSchema()), load_default=list)


class CompletionSchema(_Strict):
    required = fields.Raw(load_default="all")
    pass_mark = fields.Float(load_default=None, validate=validate.Range(0, 1))

    @validates_schema
    def check_required(self, data: dict, **_: Any) -> None:
        value = data.get("required")
        if value == "all":
            return
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError('must be "all" or a list of activity ids', "required")


class CourseManifestSchema(MetadataSchema):
    """``course.json`` / ``course.yaml``: metadata plus structure and completion rule."""

    format_version = fields.Integer(strict=True, load_default=1, validate=validate.OneOf((1,)))
    identifier = fields.String(required=True, validate=validate.Length(min=1, max=300))
    title = fields.String(required=True, validate=validate.Length(min=1, max=500))
    modules = fields.List(fields.Nested(ModuleSchema), required=True, validate=validate.Length(min=1))
    completion = fields.Nested(CompletionSchema, load_default=lambda: {"required": "all", "pass_mark": None})


# --------------------------------------------------------------------------- sidecar


def _root_file(files: PackageFiles, names: tuple[str, ...]) -> list[str]:
    return [found for name in names if (found := files.resolve(name)) is not None and "/" not in found]


def load_sidecar(files: PackageFiles) -> dict | None:
    """Validated ``lms_bridge.json``/``.yaml`` metadata at the package root, or None."""
    found = _root_file(files, SIDECAR_NAMES)
    if not found:
        return None
    if len(found) > 1:
        raise PackageError(found[1], f"more than one metadata sidecar ({', '.join(found)}); keep one")
    data = load_data_file(files, found[0])
    return _validate(MetadataSchema(), data, found[0])


# --------------------------------------------------------------------------- importer


def _markdown(source: str) -> str:
    return markdown_lib.markdown(source, extensions=["extra", "sane_lists"], output_format="html")


def _inline_html(source: str | None, base_dir: str) -> str | None:
    """Markdown for short texts (prompts, choices, feedback), sanitised; one paragraph is unwrapped."""
    if source is None:
        return None
    html = sanitize_html(_markdown(source), base_dir=base_dir)
    m = re.fullmatch(r"<p>(.*)</p>", html, re.DOTALL)
    if m and "<p>" not in m.group(1):
        return m.group(1)
    return html


_BODY = re.compile(r"<body[^>]*>(.*)</body\s*>", re.IGNORECASE | re.DOTALL)


class NativeImporter(Importer):
    """lms_bridge native packages (``course.json`` / ``course.yaml``)."""

    format = "native"
    uses_sidecar = False

    def detect(self, root_dir: str | os.PathLike[str]) -> bool:
        root = Path(root_dir)
        return any((root / n).is_file() and not (root / n).is_symlink() for n in MANIFEST_NAMES)

    def parse(self, root: Path, files: PackageFiles) -> Course:
        found = [n for n in MANIFEST_NAMES if n in files.paths]
        if not found:
            raise PackageError(MANIFEST_NAMES[0], "manifest is missing")
        if len(found) > 1:
            raise PackageError(found[1], f"more than one course manifest ({', '.join(found)}); keep one")
        name = found[0]
        data = _validate(CourseManifestSchema(), load_data_file(files, name), name)
        return _NativeBuilder(files, name, data).build()


class _NativeBuilder:
    def __init__(self, files: PackageFiles, name: str, data: dict):
        self.files = files
        self.name = name
        self.data = data
        self.warnings: list[str] = []
        self.activity_ids: set[str] = set()
        self.module_ids: set[str] = set()

    def build(self) -> Course:
        d = self.data
        if _root_file(self.files, SIDECAR_NAMES):
            self.warnings.append(
                f"{self.name}: lms_bridge sidecar ignored; native packages keep metadata in the manifest"
            )
        modules = [self.module(m, f"modules.{n}") for n, m in enumerate(d["modules"])]
        for n, module in enumerate(modules):
            module.position = n
        course = Course(
            identifier=d["identifier"],
            title=d["title"],
            format="native",
            format_version=str(d.get("format_version", 1)),
            modules=modules,
            warnings=self.warnings,
        )
        course.apply_metadata(d)
        activities = course.activities()
        completion = d.get("completion") or {}
        required = completion.get("required", "all")
        if required == "all":
            required_ids = [a.identifier for a in activities if a.required]
        else:
            known = {a.identifier for a in activities}
            unknown = [r for r in required if r not in known]
            if unknown:
                raise PackageError(self.name, f"completion.required names unknown activities: {', '.join(unknown)}")
            required_ids = list(dict.fromkeys(required))
            for activity in activities:
                activity.required = activity.identifier in required_ids
        course.completion = CompletionRule(
            rule="all_required", required_activities=required_ids, pass_mark=completion.get("pass_mark")
        )
        return course

    def module(self, data: dict, where: str) -> Module:
        if data["id"] in self.module_ids:
            raise PackageError(self.name, f"{where}.id: duplicate module id {data['id']!r}")
        self.module_ids.add(data["id"])
        module = Module(identifier=data["id"], title=data["title"], description=data.get("description"))
        for n, activity in enumerate(data.get("activities", [])):
            module.add(self.activity(activity, f"{where}.activities.{n}"))
        for n, sub in enumerate(data.get("modules", [])):
            module.add(self.module(sub, f"{where}.modules.{n}"))
        return module

    def path(self, relpath: str, where: str) -> str:
        """A file referenced by the manifest: relative, inside the package, present."""
        raw = relpath.strip().replace("\\", "/")
        norm = posixpath.normpath(raw)
        if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw) or norm == ".." or norm.startswith("../"):
            raise PackageError(self.name, f"{where}: {relpath!r} must be a relative path inside the package")
        actual = self.files.resolve(norm)
        if actual is None:
            raise PackageError(self.name, f"{where}: file {relpath!r} is not in the package")
        return actual

    def activity(self, data: dict, where: str) -> Activity:
        ident = data["id"]
        if ident in self.activity_ids:
            raise PackageError(self.name, f"{where}.id: duplicate activity id {ident!r}")
        self.activity_ids.add(ident)
        extra: dict[str, Any] = {}
        if data.get("duration_minutes") is not None:
            extra["duration_minutes"] = data["duration_minutes"]
        activity = Activity(
            identifier=ident,
            title=data["title"],
            kind=data["type"],
            required=data.get("required", True),
            description=data.get("description"),
            extra=extra,
        )
        if data["type"] == "lesson":
            path = self.path(data["file"], f"{where}.file")
            activity.file = path
            activity.html = self.lesson_html(path)
        elif data["type"] == "weblink":
            activity.href = data["url"]
            activity.external = True
        else:
            activity.quiz = self.quiz(ident, data, where)
            activity.mastery_score = activity.quiz.pass_mark
            if data.get("file"):
                activity.file = self.path(data["file"], f"{where}.file")
        return activity

    def lesson_html(self, path: str) -> str:
        raw = self.files.read_bytes(path, max_bytes=MAX_LESSON_BYTES)
        try:
            source = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PackageError(path, f"lesson is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        if path.lower().endswith((".md", ".markdown")):
            html = _markdown(source)
        else:
            m = _BODY.search(source)
            html = m.group(1) if m else source
        clean = sanitize_html(html, base_dir=posixpath.dirname(path))
        if not clean:
            self.warnings.append(f"{path}: lesson is empty after sanitising")
        return clean

    def quiz(self, ident: str, data: dict, where: str) -> Quiz:
        settings = data
        base_dir = posixpath.dirname(self.name)
        if data.get("file"):
            path = self.path(data["file"], f"{where}.file")
            raw = load_data_file(self.files, path)
            settings = _validate(QuizFileSchema(), {"questions": raw} if isinstance(raw, list) else raw, path)
            base_dir = posixpath.dirname(path)
            # Settings in the manifest win over the quiz file's.
            settings = {
                **settings,
                **{k: data[k] for k in ("pass_mark", "max_attempts", "time_limit_minutes") if data.get(k) is not None},
            }
        minutes = settings.get("time_limit_minutes")
        return Quiz(
            identifier=ident,
            title=settings.get("title") or data["title"],
            questions=[self.question(q, base_dir) for q in settings["questions"]],
            pass_mark=settings.get("pass_mark"),
            max_attempts=settings.get("max_attempts"),
            time_limit_seconds=int(minutes * 60) if minutes else None,
            shuffle=bool(settings.get("shuffle") or data.get("shuffle")),
        )

    def question(self, q: dict, base_dir: str) -> Question:
        feedback = q.get("feedback") or {}
        question = Question(
            identifier=q["id"],
            kind=q["type"],
            prompt=_inline_html(q["prompt"], base_dir) or "",
            case_sensitive=q.get("case_sensitive", False),
            match=q.get("match", "exact"),
            points=q.get("points", 1.0),
            correct_feedback=_inline_html(feedback.get("correct"), base_dir),
            incorrect_feedback=_inline_html(feedback.get("incorrect"), base_dir),
            general_feedback=_inline_html(feedback.get("general"), base_dir),
            shuffle=q.get("shuffle", False),
        )
        if q["type"] == "true_false":
            question.choices = [
                Choice("true", "True", correct=q["answer"] is True),
                Choice("false", "False", correct=q["answer"] is False),
            ]
        elif q["type"] == "fill_in":
            question.answers = list(q["answers"])
        else:
            explicit = {c["id"] for c in q["choices"] if c.get("id")}
            auto = (f"c{n}" for n in range(1, 10_000) if f"c{n}" not in explicit)
            for c in q["choices"]:
                question.choices.append(
                    Choice(
                        identifier=c.get("id") or next(auto),
                        text=_inline_html(c["text"], base_dir) or "",
                        correct=c.get("correct", False),
                        feedback=_inline_html(c.get("feedback"), base_dir),
                    )
                )
        return question
