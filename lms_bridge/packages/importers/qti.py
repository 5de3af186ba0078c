"""IMS QTI 1.2 assessments as profiled by IMS Common Cartridge (1.1 to 1.3).

The CC QTI profile tags each item with ``cc_profile`` metadata; we read:

* ``cc.multiple_choice.v0p1`` -> ``single``; ``cc.multiple_response.v0p1`` -> ``multiple``;
  ``cc.true_false.v0p1`` -> ``true_false``; ``cc.fib.v0p1`` -> ``fill_in`` (exact);
  ``cc.pattern_match.v0p1`` -> ``fill_in`` (``varsubstring``, contains);
  ``cc.essay.v0p1`` -> ``essay`` (kept, never auto-scored);
* Canvas ``question_type`` metadata as a fallback, and the response element itself
  (``response_lid`` cardinality, ``response_str``/``render_fib``) when neither is present;
* correct answers from ``resprocessing``: the ``varequal``/``varsubstring`` conditions
  (outside ``<not>``) of each ``respcondition`` that sets or adds a positive score;
* points from ``cc_weighting`` (or ``qmd_weighting``/``points_possible``), default 1;
* feedback from ``itemfeedback`` via ``displayfeedback``: the scoring condition's
  feedback is "correct", ``<other/>`` conditions before it "general" and after it
  "incorrect", single-choice conditions without a score per-choice feedback;
* ``cc_maxattempts`` on the assessment.

All question and feedback text is sanitised HTML.
"""

from __future__ import annotations

from lxml import etree

from ..course import Choice, Question, Quiz
from ..safezip import PackageError
from ..xml import attr, child, children, descendants, local_name, text
from .base import sanitize_html, text_to_html

PROFILE_KINDS = {
    "cc.multiple_choice": "single",
    "cc.multiple_response": "multiple",
    "cc.true_false": "true_false",
    "cc.fib": "fill_in",
    "cc.pattern_match": "fill_in",
    "cc.essay": "essay",
}
CANVAS_KINDS = {
    "multiple_choice_question": "single",
    "multiple_answers_question": "multiple",
    "true_false_question": "true_false",
    "short_answer_question": "fill_in",
    "essay_question": "essay",
}
_RESPONSES = ("response_lid", "response_str", "response_num", "response_xy", "response_grp")


def _metadata(el: etree._Element | None) -> dict[str, str]:
    fields: dict[str, str] = {}
    for field in descendants(el, "qtimetadatafield"):
        label = (text(child(field, "fieldlabel")) or "").lower()
        if label and label not in fields:
            fields[label] = text(child(field, "fieldentry")) or ""
    return fields


def _inside(el: etree._Element, names: tuple[str, ...], stop: etree._Element) -> bool:
    for anc in el.iterancestors():
        if anc is stop:
            return False
        if local_name(anc) in names:
            return True
    return False


def _material_html(material: etree._Element | None) -> str:
    """HTML for a QTI ``material`` (or ``flow_mat``) element."""
    if material is None:
        return ""
    parts = []
    for node in material.iter():
        ln = local_name(node)
        if ln in ("mattext", "matemtext"):
            value = "".join(node.itertext())
            if (attr(node, "texttype") or "text/plain").strip().lower() == "text/html":
                parts.append(sanitize_html(value))
            else:
                parts.append(text_to_html(value))
        elif ln == "matimage" and attr(node, "uri"):
            parts.append(sanitize_html(f'<img src="{_attr_escape(attr(node, "uri"))}" alt="">'))
    return "".join(p for p in parts if p)


def _attr_escape(value: str | None) -> str:
    return (value or "").replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None and value.strip() else None
    except ValueError:
        return None


class _Condition:
    """What one ``respcondition`` means for scoring and feedback."""

    def __init__(self, el: etree._Element):
        cond = child(el, "conditionvar")
        self.other = cond is not None and child(cond, "other") is not None
        self.positive: list[etree._Element] = []
        for test in descendants(cond, "varequal", "varsubstring"):
            if not _inside(test, ("not",), cond):
                self.positive.append(test)
        self.score = 0.0
        for setvar in children(el, "setvar"):
            value = _float(text(setvar)) or 0.0
            if (attr(setvar, "action") or "Set").lower() in ("set", "add"):
                self.score = max(self.score, value)
        self.feedback = [attr(d, "linkrefid") for d in children(el, "displayfeedback") if attr(d, "linkrefid")]


def parse_qti(root: etree._Element, *, source: str, identifier: str, warnings: list[str]) -> Quiz:
    """Turn a parsed ``questestinterop`` document into a :class:`Quiz`."""
    if local_name(root) != "questestinterop":
        raise PackageError(source, f"root element is <{local_name(root)}>, expected <questestinterop> (QTI 1.2)")
    assessment = child(root, "assessment")
    container = assessment if assessment is not None else child(root, "objectbank")
    if container is None:
        container = root
    meta = _metadata(child(container, "qtimetadata"))
    quiz = Quiz(
        identifier=identifier,
        title=" ".join((attr(container, "title") or "").split()) or identifier,
    )
    attempts = meta.get("cc_maxattempts", "").strip()
    if attempts.isdigit() and int(attempts) > 0:
        quiz.max_attempts = int(attempts)
    seen: set[str] = set()
    for n, item in enumerate(descendants(container, "item"), start=1):
        question = _question(item, n, source, warnings)
        if question.identifier in seen:
            question.identifier = f"{question.identifier}~{n}"
        seen.add(question.identifier)
        quiz.questions.append(question)
    if not quiz.questions:
        warnings.append(f"{source}: assessment has no questions")
    return quiz


def _question(item: etree._Element, n: int, source: str, warnings: list[str]) -> Question:
    ident = attr(item, "ident") or f"q{n}"
    meta = _metadata(child(item, "itemmetadata"))
    presentation = child(item, "presentation")
    response = next(descendants(presentation, *_RESPONSES), None)

    prompt_parts = []
    for material in descendants(presentation, "material"):
        if not _inside(material, _RESPONSES, presentation):
            prompt_parts.append(_material_html(material))
    prompt = "".join(prompt_parts)

    kind = _kind(meta, response)
    points = None
    for key in ("cc_weighting", "qmd_weighting", "points_possible"):
        points = _float(meta.get(key))
        if points is not None:
            break
    question = Question(
        identifier=ident,
        kind=kind,
        prompt=prompt,
        title=" ".join((attr(item, "title") or "").split()),
        points=points if points is not None and points > 0 else 1.0,
        match="contains" if meta.get("cc_profile", "").startswith("cc.pattern_match") else "exact",
    )
    if response is not None and local_name(response) == "response_lid":
        for label in descendants(response, "response_label"):
            label_id = attr(label, "ident")
            if label_id:
                question.choices.append(
                    Choice(identifier=label_id, text=_material_html(child(label, "material")) or _material_html(label))
                )
        question.shuffle = (attr(child(response, "render_choice"), "shuffle") or "No").lower() == "yes"

    feedback = {attr(fb, "ident"): _material_html(fb) for fb in children(item, "itemfeedback") if attr(fb, "ident")}
    conditions = [_Condition(c) for c in descendants(child(item, "resprocessing"), "respcondition")]
    first_scoring = next((i for i, c in enumerate(conditions) if c.score > 0), None)
    correct_ids: set[str] = set()
    choice_ids = {c.identifier for c in question.choices}
    for i, cond in enumerate(conditions):
        if cond.score > 0:
            for test in cond.positive:
                value = (test.text or "").strip()
                if question.kind in ("fill_in",):
                    if local_name(test) == "varsubstring":
                        question.match = "contains"
                    if (attr(test, "case") or "No").lower() == "yes":
                        question.case_sensitive = True
                    if value and value not in question.answers:
                        question.answers.append(value)
                elif value:
                    correct_ids.add(value)
            if cond.feedback and not question.correct_feedback:
                question.correct_feedback = _join_feedback(feedback, cond.feedback)
        elif cond.other and not cond.positive:
            target = "general_feedback" if first_scoring is None or i < first_scoring else "incorrect_feedback"
            if cond.feedback and not getattr(question, target):
                setattr(question, target, _join_feedback(feedback, cond.feedback))
        elif len(cond.positive) == 1 and cond.feedback:
            value = (cond.positive[0].text or "").strip()
            for choice in question.choices:
                if choice.identifier == value and not choice.feedback:
                    choice.feedback = _join_feedback(feedback, cond.feedback)

    for choice in question.choices:
        choice.correct = choice.identifier in correct_ids
    unknown = correct_ids - choice_ids
    if question.choices and unknown:
        warnings.append(f"{source}: question {ident!r}: correct answer(s) {sorted(unknown)} match no choice")
    _check(question, source, warnings)
    return question


def _join_feedback(feedback: dict[str, str], refs: list[str]) -> str | None:
    html = "".join(feedback.get(r, "") for r in refs)
    return html or None


def _kind(meta: dict[str, str], response: etree._Element | None) -> str:
    profile = meta.get("cc_profile", "").strip().lower()
    for prefix, kind in PROFILE_KINDS.items():
        if profile.startswith(prefix):
            return kind
    canvas = meta.get("question_type", "").strip().lower()
    if canvas:
        return CANVAS_KINDS.get(canvas, "unsupported")
    if response is None:
        return "unsupported"
    ln = local_name(response)
    if ln == "response_lid":
        return "multiple" if (attr(response, "rcardinality") or "Single").lower() == "multiple" else "single"
    if ln == "response_str":
        return "fill_in"
    return "unsupported"


def _check(question: Question, source: str, warnings: list[str]) -> None:
    """Downgrade questions we could not understand to ``unsupported`` (never fatal)."""
    kind = question.kind
    problem = None
    if kind in ("single", "true_false", "multiple"):
        if not question.choices:
            problem = "has no choices"
        elif not question.correct_choice_ids():
            problem = "has no correct choice"
        elif kind == "true_false" and len(question.choices) != 2:
            question.kind = "single"
    elif kind == "fill_in" and not question.answers:
        problem = "has no accepted answer"
    if problem:
        warnings.append(f"{source}: question {question.identifier!r} ({kind}) {problem}; it will not be scored")
        question.kind = "unsupported"
