"""Post-launch pages and the player.

Pages authenticate with the opaque launch token in the URL (never the Flask cookie session), so
they work in LMS iframes where third-party cookies are blocked. Content runtimes never see that
token: SCORM commits carry a narrow commit token (:mod:`.tokens`) and cmi5 AUs a one-time-fetched
Basic token (:mod:`.xapi`).

Where content runs, and why
---------------------------
Package content has an origin of its own (``CONTENT_BASE_URL``, or in development a second
loopback address of this machine: see :mod:`lms_bridge.packages.content`), which holds none of
the tool's cookies and cannot reach the player page. The activity is shown in an ``<iframe
sandbox="allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox
allow-downloads">`` (no ``allow-top-navigation``: content can never navigate the LMS page away):

* ``allow-same-origin`` is safe there and needed: it gives content its real origin, the content
  origin, so its own scripts, images and ``fetch`` to its own files work under the content CSP,
  while the browser's same-origin policy keeps it out of the player page (and so away from the
  launch token) and away from the tool's cookies. Popups and downloads (PDF handouts, "open in a
  new window") stay on the content origin too.
* SCOs are framed inside the SCORM runtime page (:mod:`.runtime`), on the content origin, which
  exposes the SCORM API next to them; the player hands it its configuration by ``postMessage``
  (``static/player/scorm-host.js``). cmi5 AUs talk to the xAPI endpoints with CORS (content origin
  only) and their own token. Native lessons are rendered in the player page; their images and
  media come from the content origin (``Cross-Origin-Resource-Policy: cross-origin``).
* Same-origin mode (``CONTENT_ISOLATION=off``, or no second origin available in development: a
  warning is logged) serves all of this on the tool's origin: such content is *trusted*, it could
  script the player page.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
)

from ..extensions import db
from ..lti.launch import C
from ..lti.models import User
from ..lti.roles import RoleSet
from ..lti.state import LaunchSession, load_launch_session
from ..packages.models import Activity, CourseVersion, Module
from ..web import error_page, log_event, public_url
from . import progress as progress_service
from . import quiz as quiz_service
from . import runtime, scorm_api, tokens, xapi
from .binding import Binding, BindingError, resolve
from .models import ActivityProgress, Attempt

bp = Blueprint("player", __name__)
bp.register_blueprint(xapi.bp)
bp.register_blueprint(runtime.bp)

log = logging.getLogger("lms_bridge.player")
SANDBOX = "allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox allow-downloads"
COMMIT_PURPOSE = "scorm-commit"


def launch_or_404(token: str) -> LaunchSession:
    launch = load_launch_session(token)
    if launch is None:
        abort(404)
    return launch


# --------------------------------------------------------------------------- landing


@bp.get("/launch/<token>")
def landing(token: str):
    launch = launch_or_404(token)
    role_set = RoleSet.of(launch.roles)
    # Teachers' launches open the grading pages: the Deep Linking picker, and for an activity the
    # class dashboard (or, while the link names no course, the chooser that binds it).
    if launch.message_type == "LtiDeepLinkingRequest":
        from ..grading.views import deep_linking_landing

        return deep_linking_landing(launch)
    if role_set.is_instructor and launch.message_type == "LtiResourceLinkRequest" and launch.resource_link_pk:
        from ..grading.views import instructor_landing

        return instructor_landing(launch)
    view = "instructor" if role_set.is_instructor else "learner"
    if view == "learner" and launch.message_type == "LtiResourceLinkRequest":
        return _player(launch, None)
    # Other messages (submission review, data privacy), and instructors without a resource link.
    binding = None
    if view == "instructor":
        try:
            binding = resolve(launch)
        except BindingError:
            binding = None
    return render_template(
        "player/landing.html", launch=launch, roles=role_set, view=view, d=launch.display, binding=binding,
        presentation=launch.claims.get(C + "launch_presentation") or {},
    )


# --------------------------------------------------------------------------- the player


@dataclass
class OutlineItem:
    kind: str  # "module" | "activity"
    title: str
    key: str | None = None
    activity_kind: str | None = None
    status: str = "not_started"  # not_started | in_progress | done
    children: list = field(default_factory=list)


def _status(summary: progress_service.Summary, key: str) -> str:
    if summary.satisfied.get(key):
        return "done"
    state = summary.states.get(key)
    if state is None or state.completion_status in ("not_attempted", "unknown"):
        return "not_started"
    return "in_progress"


def _outline(binding: Binding, summary: progress_service.Summary) -> tuple[list[OutlineItem], list[Activity]]:
    """The module tree shown (the bound module's, or the whole course's) and its activities in order."""
    order: list[Activity] = []

    def walk(module: Module) -> OutlineItem:
        item = OutlineItem("module", module.title or module.identifier)
        for child in module.children():
            if isinstance(child, Module):
                if child.visible:
                    sub = walk(child)
                    if sub.children:
                        item.children.append(sub)
            elif child.visible:
                order.append(child)
                item.children.append(OutlineItem("activity", child.title or child.identifier, key=child.activity_key,
                                                 activity_kind=child.kind, status=_status(summary, child.activity_key)))
        return item

    roots = [binding.module] if binding.module is not None else list(binding.version.modules)
    tree = [walk(m) for m in roots if m.visible]
    return [t for t in tree if t.children], order


def _not_set_up(launch: LaunchSession, message: str | None = None, status: int = 200):
    return render_template("player/not_set_up.html", launch=launch, d=launch.display, message=message,
                           roles=RoleSet.of(launch.roles)), status


def _start(launch: LaunchSession) -> tuple[Binding, Attempt] | tuple[None, Response]:
    try:
        binding = resolve(launch)
    except BindingError as exc:
        # The launch worked; the link names a course that is gone: a page that says so (200).
        return None, _not_set_up(launch, str(exc))
    if binding is None:
        return None, _not_set_up(launch)
    if launch.user_pk is None:
        return None, error_page(403, "No learner", "This launch did not say who you are, so progress cannot be kept.",
                                "Open the activity from your course in the LMS.", code="no_user")
    attempt = progress_service.start_attempt(user_pk=launch.user_pk, course=binding.course,
                                             registration_id=launch.registration_id, context_pk=launch.context_pk,
                                             resource_link_pk=launch.resource_link_pk)
    if attempt.version_id != binding.version.id:  # the attempt follows the current version
        binding.version = db.session.get(CourseVersion, attempt.version_id)
    return binding, attempt


def _pick(order: list[Activity], attempt: Attempt, binding: Binding, summary) -> Activity | None:
    """Where a learner resumes: the last activity opened, else the bound activity, else the first
    one not done yet, else the first."""
    by_key = {a.activity_key: a for a in order}
    if attempt.last_activity_key in by_key:
        return by_key[attempt.last_activity_key]
    if binding.activity_identifier:
        found = next((a for a in order if a.identifier == binding.activity_identifier), None)
        if found:
            return found
    return next((a for a in order if not summary.satisfied.get(a.activity_key)), order[0] if order else None)


@bp.get("/player/<token>/activity/<activity_key>")
def activity(token: str, activity_key: str):
    launch = launch_or_404(token)
    if not RoleSet.of(launch.roles).is_learner and launch.message_type != "LtiResourceLinkRequest":
        abort(403)
    return _player(launch, activity_key)


def _learner(launch: LaunchSession) -> tuple[str, str, str]:
    """(learner id, learner name as SCORM wants it, issuer) for runtimes."""
    user = db.session.get(User, launch.user_pk)
    from ..lti.directory import registration as registration_info

    reg = registration_info(launch.registration_id)
    family, given = (user.family_name or "", user.given_name or "") if user else ("", "")
    name = f"{family}, {given}".strip(", ") if (family or given) else (user.display_name if user else "")
    return (user.sub if user else str(launch.user_pk)), name, (reg.issuer if reg else "")


def _player(launch: LaunchSession, activity_key: str | None, *, quiz_result=None, quiz_error: str | None = None,
            status: int = 200):
    started = _start(launch)
    if started[0] is None:
        return started[1]
    binding, attempt = started
    summary = progress_service.summary(attempt)
    outline, order = _outline(binding, summary)
    if not order:
        return _not_set_up(launch, "The course linked to this activity has nothing to show yet.")
    by_key = {a.activity_key: a for a in order}
    current = by_key.get(activity_key) if activity_key else _pick(order, attempt, binding, summary)
    if current is None:
        abort(404)
    launched = progress_service.launch_activity(attempt, current.activity_key)
    summary = progress_service.summary(db.session.get(Attempt, attempt.id))
    outline, order = _outline(binding, summary)
    index = order.index(next(a for a in order if a.activity_key == current.activity_key))
    version = binding.version
    view = {"kind": current.kind, "frame_url": None, "external_url": None, "lesson_html": None, "scorm": None,
            "quiz": None}
    from ..packages.content import content_url

    view["frame_origin"] = runtime.frame_origin()
    progress_row = launched.progress
    if current.kind == "sco" and current.href and not current.external:
        learner_id, learner_name, _ = _learner(launch)
        fmt = version.format if version.format in ("scorm12", "scorm2004") else "scorm2004"
        # The SCORM runtime page on the content origin frames the SCO; it gets this configuration
        # from the player page by postMessage (never in a URL).
        view["frame_url"] = runtime.runtime_url(attempt.id, current.activity_key, fmt)
        view["scorm"] = {
            "version": fmt,
            "attempt": attempt.id,
            "activity": current.activity_key,
            "title": current.title or "",
            "scoUrl": content_url(version, current.href),
            "commitUrl": public_url("player.scorm_commit", attempt_id=attempt.id, activity_key=current.activity_key),
            "token": tokens.issue(COMMIT_PURPOSE, attempt_id=attempt.id, user_pk=attempt.user_pk, f=fmt),
            "session": launched.session,
            "cmi": scorm_api.initial_cmi(fmt, current, progress_row, learner_id=learner_id, learner_name=learner_name),
        }
    elif current.kind == "au" and current.href:
        learner_id, _, issuer = _learner(launch)
        base = current.href if current.external else content_url(version, current.href)
        cmi5 = xapi.launch(attempt_id=attempt.id, activity=current, registration=attempt.registration,
                           actor=xapi.actor_for(issuer, learner_id), content_url=base,
                           return_url=public_url("player.cmi5_returned"), ttl=current_app.config["LAUNCH_TOKEN_TTL"])
        view["frame_url"] = cmi5.url
    elif current.kind in ("asset", "webcontent", "sco") and current.href:
        if current.external:
            view["external_url"] = current.href
        else:
            view["frame_url"] = content_url(version, current.href)
    elif current.kind == "weblink" and current.href:
        view["external_url"] = current.href
    elif current.kind == "lesson":
        view["lesson_html"] = _lesson_html(version, current.html or "", title=current.title)
    elif current.kind == "quiz":
        quiz = quiz_service.load(current)
        if quiz is not None:
            state = (progress_row.state or {}).get("quiz") or {}
            mark = quiz_service.pass_mark(current, quiz, (version.completion or {}).get("pass_mark"))
            view["quiz"] = {
                "questions": quiz_service.public_questions(quiz), "pass_mark": mark, "state": state,
                "max_attempts": quiz.max_attempts, "result": quiz_result, "error": quiz_error,
                "responses": (quiz_result.feedback and {f["identifier"]: f["response"] for f in quiz_result.feedback})
                if quiz_result else {},
                "locked": bool(quiz.max_attempts and int(state.get("attempts") or 0) >= quiz.max_attempts),
            }
    progress_row = db.session.execute(db.select(ActivityProgress).filter_by(
        attempt_id=attempt.id, activity_key=current.activity_key)).scalar_one()
    html = render_template(
        "player/player.html", launch=launch, d=launch.display, binding=binding, version=version, attempt=attempt,
        summary=summary, outline=outline, current=current, view=view, progress=progress_row,
        prev=order[index - 1] if index > 0 else None, next=order[index + 1] if index + 1 < len(order) else None,
        position=index + 1, count=len(order), sandbox=SANDBOX, roles=RoleSet.of(launch.roles),
        scorm_json=json.dumps(view["scorm"]) if view["scorm"] else None,
    )
    resp = Response(html, status=status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


_URL_ATTR = re.compile(r'(\s(?:src|href|poster)=")([^"]*)(")')
_ABSOLUTE = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|#|/)")


_LEADING_H1 = re.compile(r"^\s*<h1\b[^>]*>(.*?)</h1>\s*", re.S | re.I)
_HEADING = re.compile(r"<(/?)h([1-5])\b", re.I)
_TAG = re.compile(r"<[^>]+>")


def _outline_headings(html: str, title: str | None) -> str:
    """The page has one ``<h1>``, the activity title (WCAG 1.3.1 / 2.4.6): a lesson that opens
    with the same title drops it, and the lesson's own headings move one level down."""
    lead = _LEADING_H1.match(html)
    if lead and title and " ".join(_TAG.sub("", lead.group(1)).split()).casefold() == " ".join(title.split()).casefold():
        html = html[lead.end():]
    return _HEADING.sub(lambda m: f"<{m.group(1)}h{int(m.group(2)) + 1}", html)


def _lesson_html(version: CourseVersion, html: str, *, title: str | None = None) -> str:
    """Lesson HTML (sanitised at import, URLs relative to the package root) with its links and
    media pointing at the package's content URLs, and its headings under the player's title."""
    from ..packages.content import content_url

    html = _outline_headings(html, title)

    def fix(match):
        url = match.group(2)
        if not url or _ABSOLUTE.match(url):
            return match.group(0)
        return match.group(1) + content_url(version, url) + match.group(3)

    return _URL_ATTR.sub(fix, html)


@bp.post("/player/<token>/activity/<activity_key>/quiz")
def submit_quiz(token: str, activity_key: str):
    launch = launch_or_404(token)
    started = _start(launch)
    if started[0] is None:
        return started[1]
    binding, attempt = started
    activity = db.session.execute(db.select(Activity).filter_by(version_id=binding.version.id,
                                                                activity_key=activity_key)).scalar_one_or_none()
    if activity is None or activity.kind != "quiz":
        abort(404)
    row = db.session.execute(db.select(ActivityProgress).filter_by(attempt_id=attempt.id,
                                                                   activity_key=activity_key)).scalar_one_or_none()
    try:
        result = quiz_service.submit(attempt.id, activity, request.form, (binding.version.completion or {}).get("pass_mark"),
                                     (row.state or {}).get("quiz") if row is not None else None)
    except quiz_service.QuizRefused as exc:
        return _player(launch, activity_key, quiz_error=str(exc), status=409)
    log_event("player.quiz.submitted", attempt=attempt.id, activity=activity_key, scaled=result.scaled,
              passed=result.passed)
    return _player(launch, activity_key, quiz_result=result)


@bp.get("/player/<token>/progress.json")
def progress_json(token: str):
    launch = launch_or_404(token)
    started = _start(launch)
    if started[0] is None:
        return jsonify({"error": "not_set_up"}), 404
    _binding, attempt = started
    summary = progress_service.summary(attempt)
    return jsonify(_summary_json(attempt, summary))


def _summary_json(attempt: Attempt, summary: progress_service.Summary) -> dict:
    return {
        "attempt": attempt.id, "percent": summary.percent, "done": summary.done, "total": summary.total,
        "completed": summary.completed, "score_scaled": summary.score_scaled,
        "activities": {k: {"done": v, "completion_status": summary.states[k].completion_status if k in summary.states
                           else "not_attempted"} for k, v in summary.satisfied.items()},
    }


@bp.get("/player/cmi5/returned")
def cmi5_returned():
    """Where an AU goes when it is done (cmi5 §10 ``returnURL``): a page saying so, in the frame."""
    return render_template("player/returned.html")


# --------------------------------------------------------------------------- SCORM commits


@bp.route("/player/api/attempts/<int:attempt_id>/activities/<activity_key>/scorm/commit", methods=["POST", "OPTIONS"])
@runtime.cors(methods="POST", headers="Authorization, Content-Type")
def scorm_commit(attempt_id: int, activity_key: str):
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except ValueError:
        return jsonify(result=False, errorCode=101, error="bad_json", message="The commit is not JSON."), 400
    if not isinstance(body, dict):
        return jsonify(result=False, errorCode=101, error="bad_json", message="The commit must be a JSON object."), 400
    header = request.headers.get("Authorization", "")
    token = body.get("token") or (header[7:] if header.lower().startswith("bearer ") else None)
    claims = tokens.verify(COMMIT_PURPOSE, token if isinstance(token, str) else None)
    if claims is None:
        return jsonify(result=False, errorCode=101, error="bad_token",
                       message="The commit token is missing, invalid or expired: reload the activity."), 401
    if claims["a"] != attempt_id:
        return jsonify(result=False, errorCode=101, error="forbidden",
                       message="This commit token is for another attempt."), 403
    session, seq = body.get("session"), body.get("seq")
    if not isinstance(session, int) or not isinstance(seq, int) or isinstance(session, bool) or seq < 0:
        return jsonify(result=False, errorCode=101, error="bad_sequence",
                       message="session and seq (integers) are required."), 400
    cmi = scorm_api.cmi_tree(body)
    update = scorm_api.commit_update(claims.get("f") or "scorm2004", cmi)
    try:
        result = progress_service.record(attempt_id, activity_key, update, session=session, seq=seq)
    except progress_service.ProgressError as exc:
        return jsonify(result=False, errorCode=101, error=exc.code, message=exc.message), exc.status
    answer = {"result": True, "errorCode": 0, "applied": result.applied, "reason": result.reason,
              "events": result.events}
    if result.events:
        attempt = db.session.get(Attempt, attempt_id)
        answer["progress"] = _summary_json(attempt, progress_service.summary(attempt))
    return jsonify(answer)
