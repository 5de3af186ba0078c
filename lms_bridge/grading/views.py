"""Teachers' pages after a launch: the Deep Linking picker, the chooser that binds a link made
without Deep Linking, and the class dashboard (blueprint ``grading``, under ``/teach/<token>``).

Every page is authenticated by the opaque launch token in its path, never by a cookie, so all of
them work inside an LMS iframe with third-party cookies blocked; forms post back to the same
token path (a cross-site page cannot know the token, which makes it the CSRF defence too).

* ``/teach/<token>/pick``: catalogue search (skill, EQF level, language, project, words), course
  preview, selection of the course or modules with a title and maximum score each, and the signed
  ``LtiDeepLinkingResponse`` posted to the platform (:mod:`.deep_linking`);
* ``/teach/<token>/choose``: the same search and preview for an instructor whose resource link
  names no course yet; the choice is stored (:func:`lms_bridge.player.binding.bind`);
* ``/teach/<token>/dashboard``: roster (NRPS, :mod:`.nrps`) with each member's progress, score and
  completion per module, a progress distribution chart, and ``dashboard.csv``.

:func:`deep_linking_landing` and :func:`instructor_landing` are what the player's landing page
shows for those launches.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from marshmallow import Schema, ValidationError, fields, validate
from werkzeug.datastructures import MultiDict

from ..api import schemas as api_schemas
from ..lti.roles import RoleSet
from ..lti.state import LaunchSession, load_launch_session
from ..packages import catalogue
from ..packages.models import Module
from ..player import binding as binding_service
from ..web import error_page, log_event
from . import dashboard as dashboard_service
from . import deep_linking, nrps

bp = Blueprint("grading", __name__, url_prefix="/teach")
PER_PAGE = 10
MAX_SCORE = 100000


# --------------------------------------------------------------------------- who may see what


def _launch(token: str) -> LaunchSession:
    launch = load_launch_session(token)
    if launch is None:
        abort(404)
    return launch


def _may_teach(launch: LaunchSession) -> bool:
    roles = RoleSet.of(launch.roles)
    return roles.is_instructor or roles.is_admin


def _refused(message: str, status: int = 403, code: str = "not_allowed") -> Response:
    return error_page(status, "Not available", message, "Open the activity from your course in the LMS again.",
                      code=code)


def _page(template: str, launch: LaunchSession, status: int = 200, **context) -> Response:
    html = render_template(template, launch=launch, d=launch.display, roles=RoleSet.of(launch.roles), **context)
    resp = Response(html, status=status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


@dataclass(frozen=True)
class Mode:
    """The two uses of the catalogue pages: deep linking (``pick``) and binding a link (``choose``)."""

    name: str
    view: str  # data-view of the page, as the landing page names it


PICK = Mode("pick", "deep_linking")
CHOOSE = Mode("choose", "instructor")


def _picker_launch(token: str | LaunchSession) -> tuple[LaunchSession, deep_linking.DeepLinkingSettings] | Response:
    """The launch of a teacher's deep linking request and its settings, or the refusal page."""
    launch = token if isinstance(token, LaunchSession) else _launch(token)
    try:
        settings = deep_linking.DeepLinkingSettings.of(launch)
    except deep_linking.DeepLinkingError as exc:
        return _refused(exc.message, exc.status, exc.code)
    if not _may_teach(launch):
        return _refused("Only teachers can add content from lms_bridge.")
    return launch, settings


def _chooser_launch(token: str | LaunchSession) -> LaunchSession | Response:
    """The launch of an instructor's activity (chooser, dashboard), or the refusal page."""
    launch = token if isinstance(token, LaunchSession) else _launch(token)
    if launch.message_type != "LtiResourceLinkRequest" or launch.resource_link_pk is None:
        return _refused("This page belongs to an activity launch: open the activity from your course again.")
    if not RoleSet.of(launch.roles).is_instructor:
        return _refused("Only the course's teachers can see this page.")
    return launch


# --------------------------------------------------------------------------- landing entry points


def deep_linking_landing(launch: LaunchSession) -> Response:
    """What a deep linking launch opens: the picker's search page."""
    found = _picker_launch(launch)
    if isinstance(found, Response):
        return found
    return _search(launch, PICK, found[1], {})


def instructor_landing(launch: LaunchSession) -> Response:
    """What an instructor's resource link launch opens: the dashboard, or the chooser when unbound."""
    found = _chooser_launch(launch)
    if isinstance(found, Response):
        return found
    return _dashboard(launch)


# --------------------------------------------------------------------------- catalogue search


def _facets() -> dict:
    """The values the search form offers: those of the whole catalogue."""
    page = catalogue.search_courses(catalogue.CourseQuery(per_page=1))
    return {"eqf_level": [f.value for f in page.facets.get("eqf_level", [])],
            "language": [f.value for f in page.facets.get("language", [])],
            "source_project": [f.value for f in page.facets.get("source_project", [])],
            "skill": sorted(catalogue.skill_facets(kind="skill"), key=lambda f: (f.label or f.uri).casefold())}


def _search(launch: LaunchSession, mode: Mode, settings, args, status: int = 200) -> Response:
    errors: dict = {}
    # The search form sends every field; an empty one ("Any level") is no filter.
    args = MultiDict([(k, v) for k, v in (args.items(multi=True) if args else []) if v.strip()])
    try:
        query = api_schemas.load_args(api_schemas.CourseQuerySchema(), args)
    except ValidationError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        query = api_schemas.CourseQuerySchema().load({})
        status = 400
    page = catalogue.search_courses(catalogue.CourseQuery(
        q=query["q"], skills=query["skill"], eqf_levels=query["eqf_level"], languages=query["language"],
        source_projects=query["source_project"], page=query["page"], per_page=PER_PAGE, sort=query["sort"],
    ), with_facets=False)
    return _page("grading/picker.html", launch, status, mode=mode, settings=settings, page=page, query=query,
                 facets=_facets(), errors=errors, args=args)


@bp.get("/<token>/pick")
def pick(token: str):
    found = _picker_launch(token)
    if isinstance(found, Response):
        return found
    launch, settings = found
    return _search(launch, PICK, settings, request.args)


@bp.get("/<token>/choose")
def choose(token: str):
    launch = _chooser_launch(token)
    if isinstance(launch, Response):
        return launch
    return _search(launch, CHOOSE, None, request.args)


# --------------------------------------------------------------------------- preview and selection


@dataclass
class Option:
    """One thing the teacher may select in a course: the whole course, or a module."""

    key: str  # "course" or "m<module id>"
    title: str
    depth: int
    module: Module | None
    activities: int


def _options(version) -> list[Option]:
    options = [Option("course", version.title, 0, None,
                      sum(len(dashboard_service.activity_keys(m)) for m in version.modules if m.visible))]

    def walk(module: Module, depth: int):
        if not module.visible:
            return
        count = len(dashboard_service.activity_keys(module))
        options.append(Option(f"m{module.id}", module.title or module.identifier, depth, module, count))
        for child in module.modules:
            walk(child, depth + 1)

    for root in version.modules:
        walk(root, 1)
    return [o for o in options if o.activities or o.module is None]


def _course(course_id: int):
    version = catalogue.course_detail(course_id)
    if version is None:
        abort(404)
    return version


def _preview(launch: LaunchSession, mode: Mode, settings, version, *, status: int = 200, errors=None,
             form=None) -> Response:
    return _page("grading/preview.html", launch, status, mode=mode, settings=settings, version=version,
                 options=_options(version), errors=errors or [], form=form, max_score=MAX_SCORE,
                 back=request.args.get("back") or (form or {}).get("back") or "")


class ChoiceSchema(Schema):
    """One ticked option of a selection form: the whole course or one module of it."""

    key = fields.String(required=True, validate=validate.Regexp(r"^(course|m[0-9]{1,12})$"))


class PickedItemSchema(ChoiceSchema):
    """A picked option with what the LMS shows for it (DL 2.0 §3.2 ``title``, §3.2.2 ``scoreMaximum``)."""

    title = fields.String(required=True, validate=validate.Length(
        min=1, max=255, error="Give a title of 1 to 255 characters."))
    score_maximum = fields.Float(allow_none=True, allow_nan=False, validate=validate.Range(
        min=0, min_inclusive=False, max=MAX_SCORE,
        error=f"The maximum score must be a number above 0 and at most {MAX_SCORE}."))


def _selection(form, options: list[Option], *, details: bool, line_items: bool = False) -> tuple[list[dict], list[str]]:
    """The ticked options of a selection form, validated: (choices, errors said for people). With
    ``details`` each carries its title, and its maximum score when the LMS makes grade columns."""
    by_key = {o.key: o for o in options}
    keys = list(dict.fromkeys(form.getlist("item")))
    if not keys:
        return [], ["Choose the whole course or at least one module."]
    raw = []
    for key in keys:
        entry = {"key": key}
        if details:
            entry["title"] = (form.get(f"title_{key}") or "").strip()
            score = (form.get(f"score_{key}") or "").strip()
            entry["score_maximum"] = (score or None) if line_items else None
        raw.append(entry)
    errors: list[str] = []
    try:
        choices = (PickedItemSchema if details else ChoiceSchema)(many=True).load(raw)
    except ValidationError as exc:
        for index, problems in sorted(exc.messages.items()):
            name = by_key[keys[index]].title if keys[index] in by_key else keys[index]
            for field_name, messages in problems.items():
                errors += [f"{name}: {m}" if field_name != "key" else f"{name}: not a choice of this course."
                           for m in messages]
        return [], errors
    for choice in choices:
        if choice["key"] not in by_key:
            errors.append(f"{choice['key']} is not a part of this course.")
        elif details and line_items and choice["score_maximum"] is None:
            errors.append(f"{by_key[choice['key']].title}: give a maximum score.")
    return ([] if errors else choices), errors


@bp.get("/<token>/pick/courses/<int:course_id>")
def pick_preview(token: str, course_id: int):
    found = _picker_launch(token)
    if isinstance(found, Response):
        return found
    launch, settings = found
    return _preview(launch, PICK, settings, _course(course_id))


@bp.post("/<token>/pick/courses/<int:course_id>")
def pick_submit(token: str, course_id: int):
    found = _picker_launch(token)
    if isinstance(found, Response):
        return found
    launch, settings = found
    version = _course(course_id)
    if deep_linking.was_claimed(launch):
        return _refused("This content selection was already sent to your LMS. To add more, start \"Add content\" "
                        "in your LMS again.", 409, "already_returned")
    options = _options(version)
    selected, errors = _selection(request.form, options, details=True, line_items=settings.line_items)
    if not errors:
        by_key = {o.key: o for o in options}
        items = [deep_linking.ResourceLinkItem(
            course=version.course, module=by_key[s["key"]].module, title=s["title"],
            text=_text(by_key[s["key"]].module.description if by_key[s["key"]].module else version.description),
            score_maximum=s["score_maximum"]) for s in selected]
        try:
            signed = deep_linking.respond(launch, items, msg=_added_message(items))
        except deep_linking.DeepLinkingError as exc:
            if exc.code == "already_returned":
                return _refused(exc.message, exc.status, exc.code)
            errors = [exc.message]
        else:
            log_event("grading.deep_link.returned", registration=launch.registration_id, course=version.course_id,
                      items=[i["custom"] for i in signed.claims[deep_linking.DL + "content_items"]])
            return _page("grading/deep_link_return.html", launch, signed=signed, items=items,
                         line_items=settings.line_items)
    return _preview(launch, PICK, settings, version, status=400, errors=errors, form=request.form)


@bp.post("/<token>/pick/none")
def pick_nothing(token: str):
    """Return to the LMS without content (DL 2.0 §4.5: an empty ``content_items``)."""
    found = _picker_launch(token)
    if isinstance(found, Response):
        return found
    launch, _settings = found
    try:
        signed = deep_linking.respond(launch, [], msg="Nothing was added from lms_bridge.")
    except deep_linking.DeepLinkingError as exc:
        return _refused(exc.message, exc.status, exc.code)
    return _page("grading/deep_link_return.html", launch, signed=signed, items=[], line_items=False)


def _text(value: str | None) -> str | None:
    if not value:
        return None
    value = " ".join(value.split())
    return value if len(value) <= 1000 else value[:999] + "\u2026"


def _added_message(items) -> str:
    titles = ", ".join(f"\u201c{i.title}\u201d" for i in items)
    return f"Added from lms_bridge: {titles}."


@bp.get("/<token>/choose/courses/<int:course_id>")
def choose_preview(token: str, course_id: int):
    launch = _chooser_launch(token)
    if isinstance(launch, Response):
        return launch
    return _preview(launch, CHOOSE, None, _course(course_id))


@bp.post("/<token>/choose/courses/<int:course_id>")
def choose_submit(token: str, course_id: int):
    launch = _chooser_launch(token)
    if isinstance(launch, Response):
        return launch
    version = _course(course_id)
    options = _options(version)
    selected, errors = _selection(request.form, options, details=False)
    if len(selected) > 1:
        errors = ["Choose one: the whole course or one module."]
    if errors:
        return _preview(launch, CHOOSE, None, version, status=400, errors=errors, form=request.form)
    if binding_service.named_course(launch) is not None:
        return _refused("This activity already names its course in its custom parameters; change it in the LMS.",
                        409, "bound_by_lms")
    module = next(o.module for o in options if o.key == selected[0]["key"])
    try:
        binding_service.bind(launch, version.course, module)
    except binding_service.AlreadyBound:
        pass  # someone chose first: their choice stands, the dashboard shows it
    else:
        log_event("grading.link.bound", resource_link=launch.resource_link_pk, course=version.course_id,
                  module=module.identifier if module else None, user=launch.user_pk)
    return redirect(url_for("grading.dashboard", token=launch.token), 303)


# --------------------------------------------------------------------------- dashboard


def _dashboard(launch: LaunchSession) -> Response:
    try:
        bound = binding_service.resolve(launch)
    except binding_service.BindingError as exc:
        return _page("grading/dashboard.html", launch, board=None, binding_error=str(exc))
    if bound is None:
        return _search(launch, CHOOSE, None, {})
    roster_row = nrps.sync(launch)  # when the stored roster is older than nrps.ROSTER_MAX_AGE
    board = dashboard_service.build(launch, bound, roster_row, nrps_offered=bool(nrps.memberships_url(launch)))
    return _page("grading/dashboard.html", launch, board=board, binding_error=None, bins=dashboard_service.BINS)


@bp.get("/<token>/dashboard")
def dashboard(token: str):
    launch = _chooser_launch(token)
    if isinstance(launch, Response):
        return launch
    return _dashboard(launch)


@bp.post("/<token>/dashboard/roster")
def refresh_roster(token: str):
    launch = _chooser_launch(token)
    if isinstance(launch, Response):
        return launch
    if launch.context_pk is None or not nrps.memberships_url(launch):
        return _refused("Your LMS did not offer the roster (Names and Role Provisioning) for this course.", 400,
                        "no_roster_service")
    nrps.sync(launch, force=True)
    return redirect(url_for("grading.dashboard", token=launch.token), 303)


@bp.get("/<token>/dashboard.csv")
def dashboard_csv(token: str):
    launch = _chooser_launch(token)
    if isinstance(launch, Response):
        return launch
    try:
        bound = binding_service.resolve(launch)
    except binding_service.BindingError as exc:
        return _refused(str(exc), 404, "not_bound")
    if bound is None:
        return _refused("This activity does not open a course yet.", 404, "not_bound")
    roster_row = nrps.roster(launch.context_pk) if launch.context_pk is not None else None
    board = dashboard_service.build(launch, bound, roster_row)
    name = "".join(ch if ch.isalnum() else "-" for ch in (launch.display.get("link_title") or "activity"))[:60]
    resp = Response("\ufeff" + dashboard_service.to_csv(board), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="{name or "activity"}-progress.csv"'
    resp.headers["Cache-Control"] = "no-store"
    return resp
