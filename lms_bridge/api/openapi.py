"""The OpenAPI 3.1 description of the JSON API, generated from its marshmallow schemas.

``GET /api/v1/openapi.json`` serves :func:`build_spec`. Request parameters come from the query
schemas, response bodies from the response schemas (one component per schema class), so the
description follows the code. Field types map to JSON Schema 2020-12 as OpenAPI 3.1 uses it
(``allow_none`` becomes ``"type": [..., "null"]``); a field may give its own JSON Schema in
``metadata["json_schema"]`` (computed fields).
"""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from . import schemas as s

OPENAPI_VERSION = "3.1.0"


def _apply_validators(out: dict[str, Any], field: fields.Field, *, array: bool = False) -> None:
    for validator in getattr(field, "validators", []) or []:
        if isinstance(validator, validate.Range):
            if validator.min is not None:
                out["exclusiveMinimum" if not validator.min_inclusive else "minimum"] = validator.min
            if validator.max is not None:
                out["exclusiveMaximum" if not validator.max_inclusive else "maximum"] = validator.max
        elif isinstance(validator, validate.Length):
            low, high = ("minItems", "maxItems") if array else ("minLength", "maxLength")
            if validator.min is not None:
                out[low] = validator.min
            if validator.max is not None:
                out[high] = validator.max
        elif isinstance(validator, validate.OneOf):
            out["enum"] = list(validator.choices)
        elif isinstance(validator, validate.Regexp):
            out["pattern"] = validator.regex.pattern


def _nullable(out: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in out:
        return {"anyOf": [out, {"type": "null"}]}
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        out["type"] = [*kind, "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


class SpecBuilder:
    """Collects components while converting schemas."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, schema: Schema | type[Schema]) -> dict[str, str]:
        cls = schema if isinstance(schema, type) else type(schema)
        name = cls.__name__.removesuffix("Schema")
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursive schemas refer to themselves
            self.components[name] = self.object_schema(cls())
        return {"$ref": f"#/components/schemas/{name}"}

    def object_schema(self, schema: Schema) -> dict[str, Any]:
        """A response body: every field is present (unless marked ``optional``); nothing else is."""
        props = {}
        required = []
        for name, field in schema.fields.items():
            key = field.data_key or name
            props[key] = self.field(field)
            if not (field.metadata or {}).get("optional"):
                required.append(key)
        out: dict[str, Any] = {"type": "object", "properties": props, "required": required,
                               "additionalProperties": False}
        doc = (type(schema).__doc__ or "").strip()
        if doc:
            out["description"] = " ".join(doc.split())
        return out

    def field(self, field: fields.Field) -> dict[str, Any]:
        meta = field.metadata or {}
        if "json_schema" in meta:
            out = dict(meta["json_schema"])
        elif isinstance(field, fields.Nested):
            out = self.ref(field.nested() if callable(field.nested) and not isinstance(field.nested, type)
                           else field.nested)
        elif isinstance(field, fields.List):
            out = {"type": "array", "items": self.field(field.inner)}
            _apply_validators(out, field, array=True)
        elif isinstance(field, fields.Dict):
            out = {"type": "object"}
        elif isinstance(field, fields.Boolean):
            out = {"type": "boolean"}
        elif isinstance(field, fields.Integer):
            out = {"type": "integer"}
        elif isinstance(field, (fields.Float, fields.Number)):
            out = {"type": "number"}
        elif isinstance(field, fields.DateTime):
            out = {"type": "string", "format": "date-time"}
        elif isinstance(field, fields.Url):
            out = {"type": "string", "format": "uri"}
        elif isinstance(field, fields.String):
            out = {"type": "string"}
        else:
            out = {}
        if not isinstance(field, fields.List):
            _apply_validators(out, field)
        if "format" in meta and "$ref" not in out:
            out["format"] = meta["format"]
        if meta.get("description") and "$ref" not in out:
            out["description"] = meta["description"]
        if field.allow_none and "json_schema" not in meta:
            out = _nullable(out)
        return out

    def parameters(self, schema: Schema) -> list[dict[str, Any]]:
        """Query parameters from a query schema (list fields: repeat the parameter)."""
        out = []
        for name, field in schema.fields.items():
            param: dict[str, Any] = {"name": field.data_key or name, "in": "query", "required": bool(field.required)}
            body = self.field(field)
            body.pop("description", None)
            default = field.load_default
            if default is not None and not callable(default):
                body["default"] = default
            if isinstance(body.get("type"), list):
                body["type"] = [t for t in body["type"] if t != "null"] or "string"
                if len(body["type"]) == 1:
                    body["type"] = body["type"][0]
            param["schema"] = body
            if isinstance(field, fields.List):
                param["style"], param["explode"] = "form", True
            description = (field.metadata or {}).get("description")
            if description:
                param["description"] = description
            out.append(param)
        return out


def _json(ref: dict[str, str], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def build_spec(server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.1 document; ``server_url`` is the tool's base URL (``/`` for relative)."""
    b = SpecBuilder()
    error = b.ref(s.ErrorSchema)
    bad_request = _json(error, "Invalid query parameters: `errors` maps each parameter to its problems.")
    paths = {
        "/api/v1/courses": {"get": {
            "operationId": "listCourses",
            "summary": "Search and filter the catalogue",
            "description": "The current version of every course matching all the given filters, one page at a "
                           "time, with facet counts over all matching courses.",
            "tags": ["catalogue"],
            "parameters": b.parameters(s.CourseQuerySchema()),
            "responses": {"200": _json(b.ref(s.CourseListSchema), "A page of courses."), "400": bad_request},
        }},
        "/api/v1/courses/{course_id}": {"get": {
            "operationId": "getCourse",
            "summary": "One course with its structure and metadata",
            "tags": ["catalogue"],
            "parameters": [{"name": "course_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {"200": _json(b.ref(s.CourseDetailSchema), "The course's current version."),
                          "404": _json(error, "No such course.")},
        }},
        "/api/v1/skills": {"get": {
            "operationId": "listSkills",
            "summary": "ESCO skills and occupations of the catalogue, with course counts (facets)",
            "tags": ["catalogue"],
            "parameters": b.parameters(s.SkillQuerySchema()),
            "responses": {"200": _json(b.ref(s.SkillListSchema), "Skills and occupations, most used first."),
                          "400": bad_request},
        }},
        "/api/v1/verify": {"post": {
            "operationId": "verifyCredential",
            "summary": "Verify an Open Badges 3.0 credential (any issuer)",
            "description": "Checks the format, the issuer's key (for credentials of this tool's issuers: only a key "
                           "the issuer publishes), the signature (VC-JWT or eddsa-rdfc-2022 Data Integrity proof), "
                           "the OB 3.0 schema, validity dates and revocation (Bitstring Status List), and says "
                           "plainly what each check found. Open to any origin (CORS), no credentials.",
            "tags": ["credentials"],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["credential"],
                "properties": {"credential": {"oneOf": [
                    {"type": "object", "description": "An OpenBadgeCredential (JSON, with a Data Integrity proof)"},
                    {"type": "string", "description": "A VC-JWT (compact JWS)"}]}}}}}},
            "responses": {
                "200": _json({"type": "object", "required": ["ok", "checks"], "properties": {
                    "ok": {"type": "boolean"},
                    "format": {"type": "string", "enum": ["vc-jwt", "data-integrity", "unsigned", "unknown"]},
                    "checks": {"type": "array", "items": {"type": "object", "required": ["name", "ok", "detail"],
                                                          "properties": {"name": {"type": "string"},
                                                                         "ok": {"type": "boolean"},
                                                                         "skipped": {"type": "boolean"},
                                                                         "detail": {"type": "string"}}}}},
                    "additionalProperties": True}, "What was checked, and whether the credential is valid."),
                "400": _json(error, "The body is not JSON of the form {\"credential\": ...}."),
                "413": _json(error, "The body is larger than 1 MB."),
            },
        }},
        "/api/v1/openapi.json": {"get": {
            "operationId": "getOpenApi",
            "summary": "This description",
            "tags": ["meta"],
            "responses": {"200": {"description": "OpenAPI 3.1 document.",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}},
        }},
    }
    from .. import __version__

    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "lms_bridge catalogue API",
            "version": __version__,
            "description": "Read-only catalogue of the open courses imported into lms_bridge: search, filters "
                           "by ESCO skill, EQF level, language, source project and workload, course structure.",
            "license": {"name": "Course metadata: see each course's licence"},
        },
        "servers": [{"url": server_url}],
        "tags": [{"name": "catalogue"}, {"name": "credentials"}, {"name": "meta"}],
        "paths": paths,
        "components": {"schemas": dict(sorted(b.components.items()))},
    }
