"""``/api/v1``: the public, read-only course catalogue (JSON). Described in ``/api/v1/openapi.json``.

Views parse the request with a schema, call one catalogue function and dump the result; every
error is JSON (``{"error", "message"}``, plus ``"errors"`` per parameter for a 400). The
catalogue is the metadata of open courses, so it needs no login and answers any origin (CORS,
without credentials).
"""
from __future__ import annotations

from flask import jsonify, request
from marshmallow import ValidationError

from ..packages import catalogue
from ..web import public_url
from . import bp
from . import schemas as s
from .openapi import build_spec


def json_error(status: int, error: str, message: str, **extra):
    response = jsonify({"error": error, "message": message, **extra})
    response.status_code = status
    return response


def _messages(value) -> list[str]:
    """marshmallow messages as a flat list: ``{"0": ["Not a valid integer."]}`` of a repeated parameter
    becomes ``["value 1: Not a valid integer."]``."""
    if isinstance(value, dict):
        out = []
        for key, inner in value.items():
            prefix = f"value {int(key) + 1}: " if str(key).isdigit() else ("" if key == "_schema" else f"{key}: ")
            out += [prefix + m for m in _messages(inner)]
        return out
    if isinstance(value, (list, tuple)):
        return [m for item in value for m in _messages(item)]
    return [str(value)]


@bp.errorhandler(ValidationError)
def _invalid(exc: ValidationError):
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    errors = {field: _messages(value) for field, value in messages.items()}
    return json_error(400, "bad_request", "Some query parameters are not valid; see errors.", errors=errors)


@bp.after_request
def _public(response):
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers.setdefault("Cache-Control", "no-cache")
    return response


@bp.get("/courses")
def list_courses():
    args = s.load_args(s.CourseQuerySchema(), request.args)
    page = catalogue.search_courses(catalogue.CourseQuery(
        q=args["q"], skills=args["skill"], eqf_levels=args["eqf_level"], languages=args["language"],
        source_projects=args["source_project"], workload_min=args["workload_min"],
        workload_max=args["workload_max"], page=args["page"], per_page=args["per_page"], sort=args["sort"],
    ))
    return s.CourseListSchema().dump(page)


@bp.get("/courses/<int:course_id>")
def course_detail(course_id: int):
    version = catalogue.course_detail(course_id)
    if version is None:
        return json_error(404, "not_found", f"There is no course {course_id}.")
    return s.CourseDetailSchema().dump(version)


@bp.get("/skills")
def skills():
    args = s.load_args(s.SkillQuerySchema(), request.args)
    items = catalogue.skill_facets(kind=args["kind"], q=args["q"])
    return s.SkillListSchema().dump({"items": items, "total": len(items)})


@bp.get("/openapi.json")
def openapi():
    base = public_url("index").rstrip("/") or "/"
    return build_spec(server_url=base)


@bp.route("/<path:anything>")
def not_found(anything: str):
    return json_error(404, "not_found", f"There is no API endpoint /api/v1/{anything}; see /api/v1/openapi.json.")
