"""Plain, serialisable description of an imported course.

Every importer (SCORM, cmi5, Common Cartridge, native) produces the same shape:
a :class:`Course` with skills metadata, a tree of :class:`Module` objects holding
:class:`Activity` objects, and a :class:`CompletionRule`. Nothing here touches the
database; ``to_dict()`` / ``from_dict()`` round-trip through JSON-compatible values.

Ordering: a module's children (activities and sub-modules) are ordered by their
``position``; :meth:`Module.children` and :meth:`Course.iter_activities` honour it.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

ACTIVITY_KINDS = ("sco", "asset", "au", "webcontent", "weblink", "quiz", "lesson", "unsupported")
"""``unsupported`` marks content we keep in the structure but cannot play (discussions, LTI links...)."""

QUESTION_KINDS = ("single", "multiple", "true_false", "fill_in", "essay", "unsupported")
"""``essay`` and ``unsupported`` questions are carried along but never auto-scored."""

MOVE_ON_VALUES = ("NotApplicable", "Passed", "Completed", "CompletedAndPassed", "CompletedOrPassed")
"""cmi5 section 13.1.4 ``moveOn`` vocabulary (default ``NotApplicable``)."""

COMPLETION_RULES = ("all_required", "cmi5_moveon")


@dataclass
class Author:
    name: str
    affiliation: str | None = None
    url: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str) -> Author:
        if isinstance(data, str):
            return cls(name=data)
        return cls(name=data["name"], affiliation=data.get("affiliation"), url=data.get("url"))


@dataclass
class Choice:
    """One answer option; ``text`` and ``feedback`` are sanitised HTML."""

    identifier: str
    text: str
    correct: bool = False
    feedback: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Choice:
        return cls(
            identifier=data["identifier"],
            text=data.get("text", ""),
            correct=bool(data.get("correct", False)),
            feedback=data.get("feedback"),
        )


def _normalise_answer(value: str, case_sensitive: bool) -> str:
    value = unicodedata.normalize("NFC", " ".join(str(value).split()))
    return value if case_sensitive else value.casefold()


@dataclass
class Question:
    """A quiz question. ``prompt`` and feedback texts are sanitised HTML.

    * ``single`` / ``true_false``: the response is one choice id (or a bool for
      ``true_false``); it scores when that choice is correct.
    * ``multiple``: one or more correct choices; the response is a list of choice ids and
      scores only when it matches the correct set exactly.
    * ``fill_in``: ``answers`` lists the accepted strings (whitespace-collapsed, compared
      case-insensitively unless ``case_sensitive``); ``match="contains"`` accepts any
      response containing one of them (QTI ``varsubstring``).
    """

    identifier: str
    kind: str
    prompt: str
    title: str = ""
    choices: list[Choice] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    case_sensitive: bool = False
    match: str = "exact"
    points: float = 1.0
    correct_feedback: str | None = None
    incorrect_feedback: str | None = None
    general_feedback: str | None = None
    shuffle: bool = False

    @property
    def auto_scored(self) -> bool:
        return self.kind in ("single", "multiple", "true_false", "fill_in")

    def correct_choice_ids(self) -> list[str]:
        return [c.identifier for c in self.choices if c.correct]

    def is_correct(self, response: Any) -> bool:
        """True when ``response`` earns full credit (see the class docstring for its shape)."""
        if self.kind in ("single", "true_false"):
            if isinstance(response, bool) and self.kind == "true_false":
                response = self._true_false_choice(response)
            return response is not None and str(response) in self.correct_choice_ids()
        if self.kind == "multiple":
            if response is None or isinstance(response, (str, bytes)):
                response = [response] if response else []
            return set(map(str, response)) == set(self.correct_choice_ids())
        if self.kind == "fill_in":
            if response is None:
                return False
            given = _normalise_answer(response, self.case_sensitive)
            for accepted in self.answers:
                want = _normalise_answer(accepted, self.case_sensitive)
                if given == want or (self.match == "contains" and want and want in given):
                    return True
            return False
        return False

    def grade(self, response: Any) -> float:
        """Points earned for ``response`` (all or nothing)."""
        return self.points if self.auto_scored and self.is_correct(response) else 0.0

    def _true_false_choice(self, value: bool) -> str | None:
        wanted = "true" if value else "false"
        for choice in self.choices:
            if choice.identifier.lower() == wanted or re.sub(r"<[^>]+>", "", choice.text).strip().lower() == wanted:
                return choice.identifier
        return None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Question:
        return cls(
            identifier=data["identifier"],
            kind=data["kind"],
            prompt=data.get("prompt", ""),
            title=data.get("title", ""),
            choices=[Choice.from_dict(c) for c in data.get("choices", [])],
            answers=list(data.get("answers", [])),
            case_sensitive=bool(data.get("case_sensitive", False)),
            match=data.get("match", "exact"),
            points=float(data.get("points", 1.0)),
            correct_feedback=data.get("correct_feedback"),
            incorrect_feedback=data.get("incorrect_feedback"),
            general_feedback=data.get("general_feedback"),
            shuffle=bool(data.get("shuffle", False)),
        )


@dataclass
class QuizResult:
    points: float
    max_points: float
    scaled: float
    """``points / max_points`` in 0..1 (0 when nothing is auto-scored)."""
    per_question: dict[str, float]


@dataclass
class Quiz:
    """A set of questions; ``pass_mark`` is a normalised 0..1 threshold on the scaled score."""

    identifier: str
    title: str
    questions: list[Question] = field(default_factory=list)
    pass_mark: float | None = None
    max_attempts: int | None = None
    time_limit_seconds: int | None = None
    shuffle: bool = False

    @property
    def max_points(self) -> float:
        return sum(q.points for q in self.questions if q.auto_scored)

    def grade(self, responses: Mapping[str, Any]) -> QuizResult:
        """Score ``responses`` (question id -> response); essays and unknown kinds score 0 and do not count."""
        per_question = {q.identifier: q.grade(responses.get(q.identifier)) for q in self.questions}
        points = sum(per_question.values())
        max_points = self.max_points
        scaled = round(points / max_points, 6) if max_points else 0.0
        return QuizResult(points=points, max_points=max_points, scaled=scaled, per_question=per_question)

    def passed(self, scaled: float) -> bool:
        return scaled >= (self.pass_mark if self.pass_mark is not None else 0.0)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quiz:
        return cls(
            identifier=data["identifier"],
            title=data.get("title", ""),
            questions=[Question.from_dict(q) for q in data.get("questions", [])],
            pass_mark=data.get("pass_mark"),
            max_attempts=data.get("max_attempts"),
            time_limit_seconds=data.get("time_limit_seconds"),
            shuffle=bool(data.get("shuffle", False)),
        )


@dataclass
class Activity:
    """One launchable (or at least listable) unit of a course.

    ``href`` is the launch URL: for package content a relative, percent-encoded URL from
    the package root (it may carry a query string or fragment, e.g. SCORM ``parameters``);
    for ``external`` activities an absolute http(s) URL. ``file`` is the plain relative
    path of the launched file inside the package (no query), or ``None``.
    ``mastery_score`` and ``completion_threshold`` are normalised to 0..1.
    """

    identifier: str
    title: str
    kind: str
    href: str | None = None
    file: str | None = None
    external: bool = False
    launch_parameters: str | None = None
    mastery_score: float | None = None
    completion_threshold: float | None = None
    required: bool = True
    visible: bool = True
    move_on: str | None = None
    launch_method: str | None = None
    activity_type: str | None = None
    description: str | None = None
    quiz: Quiz | None = None
    html: str | None = None
    """Sanitised lesson body (native lessons), ready to render inside the player."""
    extra: dict[str, Any] = field(default_factory=dict)
    position: int = 0

    @property
    def supported(self) -> bool:
        return self.kind != "unsupported"

    def fingerprint(self) -> str:
        """Hash of what a learner's progress depends on (not titles or ordering).

        Re-importing a newer package version can keep progress on activities whose
        identifier and fingerprint are unchanged.
        """
        data = self.to_dict()
        for key in ("title", "description", "position", "visible", "required"):
            data.pop(key, None)
        if data.get("quiz"):
            data["quiz"].pop("title", None)
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Activity:
        values = dict(data)
        quiz = values.pop("quiz", None)
        values.pop("supported", None)
        return cls(**values, quiz=Quiz.from_dict(quiz) if quiz else None)


@dataclass
class Module:
    """A group of activities; modules nest (SCORM aggregations, cmi5 blocks, CC folders)."""

    identifier: str
    title: str
    activities: list[Activity] = field(default_factory=list)
    modules: list[Module] = field(default_factory=list)
    description: str | None = None
    visible: bool = True
    position: int = 0

    def add(self, child: Activity | Module) -> Activity | Module:
        """Append ``child`` after the existing children, keeping document order."""
        child.position = len(self.activities) + len(self.modules)
        if isinstance(child, Module):
            self.modules.append(child)
        else:
            self.activities.append(child)
        return child

    def children(self) -> list[Activity | Module]:
        return sorted([*self.activities, *self.modules], key=lambda c: c.position)

    def iter_activities(self, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Activity]]:
        here = (*path, self.title)
        for child in self.children():
            if isinstance(child, Module):
                yield from child.iter_activities(here)
            else:
                yield here, child

    def iter_modules(self) -> Iterator[Module]:
        yield self
        for sub in sorted(self.modules, key=lambda m: m.position):
            yield from sub.iter_modules()

    def is_empty(self) -> bool:
        return not self.activities and all(m.is_empty() for m in self.modules)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Module:
        return cls(
            identifier=data["identifier"],
            title=data.get("title", ""),
            activities=[Activity.from_dict(a) for a in data.get("activities", [])],
            modules=[Module.from_dict(m) for m in data.get("modules", [])],
            description=data.get("description"),
            visible=data.get("visible", True),
            position=data.get("position", 0),
        )


@dataclass
class CompletionRule:
    """When is the course complete?

    * ``all_required``: every activity listed in ``required_activities`` is completed and,
      for scored ones, passed: an activity's own ``mastery_score`` wins, otherwise the
      course ``pass_mark`` (0..1) applies; with neither, completing it is enough.
    * ``cmi5_moveon``: every AU in ``required_activities`` satisfies its ``moveOn``
      criterion (cmi5 section 13.1.4: AUs with ``NotApplicable`` are satisfied anyway).
    """

    rule: str = "all_required"
    required_activities: list[str] = field(default_factory=list)
    pass_mark: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompletionRule:
        return cls(
            rule=data.get("rule", "all_required"),
            required_activities=list(data.get("required_activities", [])),
            pass_mark=data.get("pass_mark"),
        )


METADATA_FIELDS = (
    "title",
    "description",
    "language",
    "licence",
    "source_project",
    "authors",
    "version",
    "keywords",
    "learning_outcomes",
    "esco_skills",
    "esco_occupations",
    "eqf_level",
    "workload_hours",
    "ects",
    "prerequisites",
)
"""Course fields a ``lms_bridge.json``/``lms_bridge.yaml`` sidecar may set."""


@dataclass
class Course:
    """An imported course: descriptive and skills metadata, structure, completion rule.

    ``format`` is one of ``scorm12``, ``scorm2004``, ``cmi5``, ``cc``, ``native``;
    ``format_version`` the declared edition (``"2004 3rd Edition"``, ``"1.3.0"`` ...).
    ``content_root`` is the package root relative to the opened directory ("" normally;
    a sub-folder when an archive wraps everything in one top-level folder): activity
    hrefs are relative to it. ``warnings`` lists non-fatal problems found on import.
    """

    identifier: str
    title: str
    format: str
    format_version: str | None = None
    description: str | None = None
    language: str | None = None
    licence: str | None = None
    source_project: str | None = None
    authors: list[Author] = field(default_factory=list)
    version: str | None = None
    keywords: list[str] = field(default_factory=list)
    learning_outcomes: list[str] = field(default_factory=list)
    esco_skills: list[str] = field(default_factory=list)
    esco_occupations: list[str] = field(default_factory=list)
    eqf_level: int | None = None
    workload_hours: float | None = None
    ects: float | None = None
    prerequisites: list[str] = field(default_factory=list)
    completion: CompletionRule = field(default_factory=CompletionRule)
    modules: list[Module] = field(default_factory=list)
    content_root: str = ""
    warnings: list[str] = field(default_factory=list)

    def iter_activities(self) -> Iterator[tuple[tuple[str, ...], Activity]]:
        """Yield ``(module title path, activity)`` depth-first in document order."""
        for module in sorted(self.modules, key=lambda m: m.position):
            yield from module.iter_activities()

    def activities(self) -> list[Activity]:
        return [a for _, a in self.iter_activities()]

    def iter_modules(self) -> Iterator[Module]:
        for module in sorted(self.modules, key=lambda m: m.position):
            yield from module.iter_modules()

    def activity(self, identifier: str) -> Activity | None:
        return next((a for a in self.activities() if a.identifier == identifier), None)

    def apply_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Overlay metadata (a validated sidecar); keys that are absent are left alone."""
        for key in METADATA_FIELDS:
            if key not in metadata or metadata[key] is None:
                continue
            value = metadata[key]
            if key == "authors":
                value = [a if isinstance(a, Author) else Author.from_dict(a) for a in value]
            elif isinstance(value, list):
                value = list(value)
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Course:
        values = dict(data)
        values["authors"] = [Author.from_dict(a) for a in values.get("authors", [])]
        values["completion"] = CompletionRule.from_dict(values.get("completion") or {})
        values["modules"] = [Module.from_dict(m) for m in values.get("modules", [])]
        return cls(**values)


def dedupe_identifiers(modules: Iterable[Module], warnings: list[str]) -> None:
    """Make module and activity identifiers unique (suffix ``~2``, ``~3``...), warning once each.

    Manifests must use unique identifiers, but real exports do not always: progress is
    keyed by activity identifier, so duplicates would share it.
    """
    seen_by_kind: dict[str, set[str]] = {"module": set(), "activity": set()}

    def unique(identifier: str, what: str) -> str:
        seen = seen_by_kind[what]
        if identifier not in seen:
            seen.add(identifier)
            return identifier
        n = 2
        while f"{identifier}~{n}" in seen:
            n += 1
        new = f"{identifier}~{n}"
        seen.add(new)
        warnings.append(f"duplicate {what} identifier {identifier!r} renamed to {new!r}")
        return new

    def walk(module: Module) -> None:
        module.identifier = unique(module.identifier, "module")
        for child in module.children():
            if isinstance(child, Module):
                walk(child)
            else:
                child.identifier = unique(child.identifier, "activity")

    for module in modules:
        walk(module)
