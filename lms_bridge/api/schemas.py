"""marshmallow schemas at the edge of the JSON API: what a request may say, what a response says.

Query schemas (``*QuerySchema``) validate request parameters and refuse unknown ones; response
schemas dump the catalogue's objects. :mod:`lms_bridge.api.openapi` turns both into the
OpenAPI 3.1 description, so the description cannot drift from what the views accept and return.
Response fields are always present (``null`` when a package does not say).
"""
from __future__ import annotations

import re
from datetime import UTC

from flask import url_for
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from ..packages.catalogue import SORTS
from ..packages.content import content_url
from ..packages.models import SKILL_KINDS

ESCO_URI = re.compile(r"^https?://data\.europa\.eu/esco/[A-Za-z0-9][A-Za-z0-9/._\-]*$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

# Kinds whose activity is a file of the package, launched from the content route.
CONTENT_KINDS = ("sco", "asset", "au", "webcontent")


# --------------------------------------------------------------------------- requests


class _Query(Schema):
    class Meta:
        unknown = RAISE


class CourseQuerySchema(_Query):
    """``GET /api/v1/courses``: list parameters (repeat ``skill``, ``eqf_level``, ``language``,
    ``source_project`` to give several)."""

    q = fields.String(validate=validate.Length(min=1, max=200), load_default=None,
                      metadata={"description": 'Words or "quoted phrases" that must all occur in the title, '
                                               "description, keywords, learning outcomes or skill labels "
                                               "(case- and accent-insensitive)."})
    skill = fields.List(
        fields.String(validate=validate.Regexp(ESCO_URI, error="not an ESCO concept URI (http://data.europa.eu/esco/...)")),
        load_default=list, validate=validate.Length(max=20),
        metadata={"description": "ESCO skill or occupation URI; a course must name every one given."})
    eqf_level = fields.List(fields.Integer(validate=validate.Range(1, 8)), load_default=list,
                            metadata={"description": "EQF level 1 to 8; any of those given."})
    language = fields.List(
        fields.String(validate=validate.Regexp(LANGUAGE, error="not a language tag (en, de, de-AT...)")),
        load_default=list, validate=validate.Length(max=20),
        metadata={"description": "BCP 47 language tag; `en` also matches `en-GB`; any of those given."})
    source_project = fields.List(fields.String(validate=validate.Length(min=1, max=200)), load_default=list,
                                 validate=validate.Length(max=20),
                                 metadata={"description": "Source project (DRIVES, ALBATTS...); any of those given."})
    workload_min = fields.Float(validate=validate.Range(min=0), load_default=None,
                                metadata={"description": "Least workload in hours."})
    workload_max = fields.Float(validate=validate.Range(min=0), load_default=None,
                                metadata={"description": "Greatest workload in hours."})
    page = fields.Integer(validate=validate.Range(min=1, max=100_000), load_default=1)
    per_page = fields.Integer(validate=validate.Range(min=1, max=100), load_default=20)
    sort = fields.String(validate=validate.OneOf(SORTS), load_default="title",
                         metadata={"description": "Sort key; a leading `-` sorts descending."})

    @validates_schema
    def _range(self, data, **_):
        low, high = data.get("workload_min"), data.get("workload_max")
        if low is not None and high is not None and low > high:
            raise ValidationError("must not be greater than workload_max", "workload_min")


class SkillQuerySchema(_Query):
    """``GET /api/v1/skills``: facet parameters."""

    kind = fields.String(validate=validate.OneOf(SKILL_KINDS), load_default=None,
                         metadata={"description": "Only skills, or only occupations."})
    q = fields.String(validate=validate.Length(min=1, max=200), load_default=None,
                      metadata={"description": "Part of the label or URI."})


# --------------------------------------------------------------------------- responses


class UTCDateTime(fields.DateTime):
    """Naive UTC datetimes from the database, written as ISO 8601 with an explicit offset."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)


def _string(**kwargs):
    return fields.String(allow_none=True, **kwargs)


class SkillSchema(Schema):
    uri = fields.String(metadata={"format": "uri"})
    label = _string(metadata={"description": "ESCO preferred label, when known."})
    kind = fields.String(validate=validate.OneOf(SKILL_KINDS))


class AuthorSchema(Schema):
    name = fields.String()
    affiliation = _string()
    url = _string()


def _course_url(version) -> str:
    return url_for("api.course_detail", course_id=version.course_id)


class CourseSummarySchema(Schema):
    """A course in a list: its current version's metadata."""

    id = fields.Integer(attribute="course_id", metadata={"description": "Course id (stable across versions)."})
    version_id = fields.Integer(attribute="id", metadata={"description": "Id of the current version."})
    identifier = fields.String(attribute="course.package_identifier",
                               metadata={"description": "The package's own identifier."})
    source_project = fields.String(attribute="course.source_project",
                                   metadata={"description": "Source project, or an empty string."})
    title = fields.String()
    description = _string()
    language = _string()
    licence = _string()
    version = _string(metadata={"description": "The package's version string."})
    format = fields.String(metadata={"description": "scorm12, scorm2004, cmi5, cc or native."})
    eqf_level = fields.Integer(allow_none=True, validate=validate.Range(1, 8))
    workload_hours = fields.Float(allow_none=True)
    ects = fields.Float(allow_none=True)
    keywords = fields.List(fields.String())
    authors = fields.List(fields.Nested(AuthorSchema))
    skills = fields.List(fields.Nested(SkillSchema), attribute="esco_skills")
    occupations = fields.List(fields.Nested(SkillSchema), attribute="esco_occupations")
    imported_at = UTCDateTime()
    url = fields.Function(_course_url, metadata={"description": "This course's detail in the API.",
                                                 "json_schema": {"type": "string", "format": "uri-reference"}})


class FacetValueSchema(Schema):
    value = fields.Raw(metadata={"json_schema": {"type": ["string", "integer"]}})
    count = fields.Integer()


class FacetsSchema(Schema):
    eqf_level = fields.List(fields.Nested(FacetValueSchema))
    language = fields.List(fields.Nested(FacetValueSchema))
    source_project = fields.List(fields.Nested(FacetValueSchema))
    skill = fields.List(fields.Nested(FacetValueSchema))


class CourseListSchema(Schema):
    items = fields.List(fields.Nested(CourseSummarySchema))
    total = fields.Integer(metadata={"description": "Courses matching, on every page."})
    page = fields.Integer()
    per_page = fields.Integer()
    pages = fields.Integer()
    facets = fields.Nested(FacetsSchema, metadata={"description": "Counts over every matching course."})


def _activity_url(activity) -> str | None:
    if activity.external:
        return activity.href if activity.kind != "unsupported" else None
    if activity.kind in CONTENT_KINDS and activity.href:
        return content_url(activity.version, activity.href)
    return None


def _question_count(activity) -> int | None:
    return len((activity.quiz or {}).get("questions") or []) if activity.kind == "quiz" else None


class ActivitySchema(Schema):
    identifier = fields.String()
    activity_key = fields.String(metadata={"description": "Stable across versions while the activity is unchanged."})
    kind = fields.String(metadata={"description": "sco, asset, au, webcontent, weblink, quiz, lesson or unsupported."})
    title = fields.String()
    description = _string()
    required = fields.Boolean()
    visible = fields.Boolean()
    supported = fields.Boolean()
    move_on = _string(metadata={"description": "cmi5 moveOn criterion (cmi5 section 13.1.4)."})
    mastery_score = fields.Float(allow_none=True, metadata={"description": "0 to 1."})
    completion_threshold = fields.Float(allow_none=True, metadata={"description": "0 to 1."})
    launch_method = _string()
    external = fields.Boolean()
    url = fields.Function(_activity_url, metadata={
        "description": "The launched file (package content) or web link; null for lessons and quizzes, "
                       "which the player renders.",
        "json_schema": {"type": ["string", "null"], "format": "uri-reference"}})
    question_count = fields.Function(_question_count, metadata={"json_schema": {"type": ["integer", "null"]}})


class ModuleSchema(Schema):
    identifier = fields.String()
    title = fields.String()
    description = _string()
    visible = fields.Boolean()
    activities = fields.List(fields.Nested(ActivitySchema))
    modules = fields.List(fields.Nested(lambda: ModuleSchema()))


class VersionSchema(Schema):
    id = fields.Integer()
    sequence = fields.Integer(metadata={"description": "1, 2, 3... in import order."})
    version = _string()
    format = fields.String()
    format_version = _string()
    imported_at = UTCDateTime()
    current = fields.Boolean(attribute="is_current")


class CompletionSchema(Schema):
    rule = fields.String(metadata={"description": "all_required or cmi5_moveon."})
    required_activities = fields.List(fields.String())
    pass_mark = fields.Float(allow_none=True, metadata={"description": "0 to 1."})


class CourseDetailSchema(CourseSummarySchema):
    """A course with its structure and every metadata field of its current version."""

    format_version = _string()
    learning_outcomes = fields.Function(lambda v: [o.text for o in v.learning_outcomes],
                                        metadata={"json_schema": {"type": "array", "items": {"type": "string"}}})
    prerequisites = fields.List(fields.String())
    completion = fields.Nested(CompletionSchema)
    modules = fields.List(fields.Nested(ModuleSchema))
    activity_count = fields.Function(lambda v: len(v.activities), metadata={"json_schema": {"type": "integer"}})
    versions = fields.List(fields.Nested(VersionSchema), attribute="course.versions")
    warnings = fields.List(fields.String(), metadata={"description": "Non-fatal problems found on import."})


class SkillFacetSchema(SkillSchema):
    course_count = fields.Integer(metadata={"description": "Current courses naming this concept."})


class SkillListSchema(Schema):
    items = fields.List(fields.Nested(SkillFacetSchema))
    total = fields.Integer()


class ErrorSchema(Schema):
    error = fields.String(metadata={"description": "A short code: bad_request, not_found..."})
    message = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.Raw(),
                         metadata={"description": "Field name to messages (bad parameters only).", "optional": True,
                                   "json_schema": {"type": "object", "additionalProperties": {
                                       "type": "array", "items": {"type": "string"}}}})


def load_args(schema: Schema, args) -> dict:
    """Validate a request's query string (a MultiDict): list fields take every value of a repeated
    parameter; other parameters must be given once. Raises ValidationError."""
    data: dict = {}
    errors: dict[str, list[str]] = {}
    by_key = {f.data_key or name: f for name, f in schema.fields.items()}
    for key in args:
        values = args.getlist(key)
        field = by_key.get(key)
        if isinstance(field, fields.List):
            data[key] = values
        elif len(values) > 1:
            errors[key] = ["Give this parameter once."]
        else:
            data[key] = values[0]
    try:
        loaded = schema.load(data)
    except ValidationError as exc:
        exc.messages.update(errors) if isinstance(exc.messages, dict) else None
        raise
    if errors:
        raise ValidationError(errors)
    return loaded
