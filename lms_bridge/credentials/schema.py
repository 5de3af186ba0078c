"""Validation against the official 1EdTech OB 3.0 JSON Schemas (JSON Schema draft 2019-09), offline.

The schemas in ``data/schema/`` are the ones the OB 3.0 specification publishes (see
``data/SOURCE.txt``): ``achievementcredential.json`` for OpenBadgeCredential / AchievementCredential
and ``endorsementcredential.json`` for EndorsementCredential. Every ``$ref`` in them is internal,
and the registry below holds only these files, so validation never fetches anything.
"""
from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft201909Validator, FormatChecker
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parent / "data" / "schema"
SCHEMAS = {"achievement": "achievementcredential.json", "endorsement": "endorsementcredential.json"}

# jsonschema checks "date-time" only with an optional package; this is RFC 3339 §5.6, which
# requires the time zone (a credential's validFrom without one would be read differently by each verifier).
_formats = FormatChecker()


@_formats.checks("date-time", raises=ValueError)
def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if len(value) < 20 or value[10] not in "Tt" or not (value[-1] in "Zz" or value[-6] in "+-"):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time with a time zone")
    datetime.fromisoformat(value[:-1] + "+00:00" if value[-1] in "Zz" else value)
    return True


@lru_cache(maxsize=None)
def _validator(kind: str) -> Draft201909Validator:
    schemas = {name: json.loads((SCHEMA_DIR / filename).read_text(encoding="utf-8")) for name, filename in SCHEMAS.items()}
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
    schema = schemas[kind]
    Draft201909Validator.check_schema(schema)
    return Draft201909Validator(schema, registry=registry, format_checker=_formats)


def _path(error) -> str:
    parts = []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else ("." if parts else "") + str(part))
    return "".join(parts) or "(credential)"


def validate_ob3(credential: dict) -> list[str]:
    """Schema errors of an OB 3.0 credential, as "path: message" lines; empty when valid.

    EndorsementCredentials are checked against the endorsement schema, everything else against the
    AchievementCredential schema. Any ``proof`` is validated too (the schema requires a list).
    """
    if not isinstance(credential, dict):
        return ["(credential): a credential must be a JSON object"]
    types = credential.get("type")
    kind = "endorsement" if isinstance(types, list) and "EndorsementCredential" in types else "achievement"
    errors = sorted(_validator(kind).iter_errors(credential), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"{_path(e)}: {e.message}" for e in errors]
