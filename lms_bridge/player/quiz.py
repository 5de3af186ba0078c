"""Native and QTI quizzes: shown without their answers, graded on the server.

A quiz activity's ``quiz`` JSON (from the native importer or the Common Cartridge QTI importer)
holds the answer key. The browser only ever gets :func:`public_questions` (prompts and choices);
a submission is graded by :meth:`lms_bridge.packages.course.Quiz.grade` and recorded through the
progress service as completion ``completed``, success ``passed``/``failed`` against the pass mark
(the activity's mastery score, else the quiz's pass mark, else the course's), and the score.

Retakes: allowed up to ``max_attempts`` (unlimited when unset). The **highest** score counts
(an LMS's usual "highest grade" policy): a worse retake shows its own feedback but does not
lower the recorded score or status.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import MultiDict

from ..packages.course import Quiz
from ..packages.models import Activity
from . import progress as progress_service
from .models import utcnow


@dataclass
class QuestionView:
    identifier: str
    kind: str
    prompt: str
    title: str
    choices: list[dict]
    points: float
    auto_scored: bool


def load(activity: Activity) -> Quiz | None:
    return Quiz.from_dict(activity.quiz) if activity.quiz else None


def public_questions(quiz: Quiz) -> list[QuestionView]:
    """Prompts and choices only: never the correct flags, accepted answers or feedback."""
    return [QuestionView(identifier=q.identifier, kind=q.kind, prompt=q.prompt, title=q.title,
                         choices=[{"identifier": c.identifier, "text": c.text} for c in q.choices],
                         points=q.points, auto_scored=q.auto_scored) for q in quiz.questions]


def responses_from_form(quiz: Quiz, form: MultiDict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q in quiz.questions:
        name = "q-" + q.identifier
        if q.kind == "multiple":
            out[q.identifier] = [v for v in form.getlist(name) if isinstance(v, str)][:100]
        else:
            value = form.get(name)
            out[q.identifier] = value[:2000] if isinstance(value, str) and value.strip() else None
    return out


def pass_mark(activity: Activity, quiz: Quiz, course_pass_mark: float | None) -> float | None:
    for value in (activity.mastery_score, quiz.pass_mark, course_pass_mark):
        if value is not None:
            return float(value)
    return None


def feedback(quiz: Quiz, responses: dict[str, Any]) -> list[dict]:
    """Per-question feedback shown after a submission (the answer key's texts, never the key itself
    for questions answered wrongly, except the accepted answer of fill-in questions)."""
    out = []
    for q in quiz.questions:
        response = responses.get(q.identifier)
        correct = q.is_correct(response) if q.auto_scored else None
        chosen = response if isinstance(response, list) else ([response] if response else [])
        choice_feedback = [c.feedback for c in q.choices if c.identifier in chosen and c.feedback]
        text = [q.correct_feedback if correct else q.incorrect_feedback] if q.auto_scored else []
        out.append({
            "identifier": q.identifier, "correct": correct, "points": q.grade(response), "max_points": q.points,
            "response": response, "messages": [t for t in [*choice_feedback, *text, q.general_feedback] if t],
            "kind": q.kind,
        })
    return out


@dataclass
class Submission:
    scaled: float
    points: float
    max_points: float
    passed: bool
    pass_mark: float | None
    feedback: list[dict]
    attempts: int
    recorded: bool


class QuizRefused(Exception):
    pass


def submit(attempt_id: int, activity: Activity, form: MultiDict, course_pass_mark: float | None,
           previous: dict | None) -> Submission:
    quiz = load(activity)
    if quiz is None:
        raise QuizRefused("This activity has no questions.")
    state = dict(previous or {})
    attempts = int(state.get("attempts") or 0)
    if quiz.max_attempts and attempts >= quiz.max_attempts:
        raise QuizRefused(f"You have used all {quiz.max_attempts} attempts at this quiz.")
    responses = responses_from_form(quiz, form)
    result = quiz.grade(responses)
    mark = pass_mark(activity, quiz, course_pass_mark)
    passed = mark is None or result.scaled >= mark - 1e-9
    best = state.get("best_scaled")
    better = best is None or result.scaled > best
    attempts += 1
    quiz_state = {
        "attempts": attempts, "responses": responses, "last_scaled": result.scaled, "last_points": result.points,
        "max_points": result.max_points, "last_passed": passed, "submitted_at": utcnow().isoformat() + "Z",
        "best_scaled": result.scaled if better else best,
    }
    update = progress_service.ProgressUpdate(completion_status="completed", state={"quiz": quiz_state})
    if better:
        update.success_status = "passed" if passed else "failed"
        update.score_scaled = result.scaled
        update.score_raw = result.points
        update.score_min = 0.0
        update.score_max = result.max_points
    progress_service.record(attempt_id, activity.activity_key, update)
    return Submission(scaled=result.scaled, points=result.points, max_points=result.max_points, passed=passed,
                      pass_mark=mark, feedback=feedback(quiz, responses), attempts=attempts, recorded=better)
