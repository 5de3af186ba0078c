"""Open Badges 3.0 credential documents (1EdTech OB 3.0 on the W3C VC Data Model 2.0), unsigned.

Builders return plain JSON-ready dicts shaped as the OB 3.0 data model (Appendix B) names them:
an ``OpenBadgeCredential`` whose ``credentialSubject`` is an ``AchievementSubject`` pointing at an
``Achievement`` and identifying the learner by hashed ``IdentityObject``s. Micro-credential
metadata maps onto OB 3.0 as follows (the European approach to micro-credentials, Council
Recommendation 2022/C 243/02, names these elements):

- ESCO skills -> ``alignment`` entries with ``targetFramework`` "ESCO" and the ESCO concept URI;
- EQF level -> an ``alignment`` to the EQF level concept ``http://data.europa.eu/snb/eqf/<n>``;
- ECTS credits -> ``creditsAvailable`` (and ``creditsEarned`` on the subject);
- pass mark -> a ``resultDescription``; the learner's score -> a ``Result`` referring to it.

Nothing here signs (see :mod:`.signing`) or touches the network.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timezone

from .keys import identity_hash, normalize_email

VC_V2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_V3_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
# Defines the 1EdTech credentialSchema/credentialStatus types; the spec's examples add it with them.
OB_EXTENSIONS_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json"

# credentialSchema of an AchievementCredential (OB 3.0 §"JSON Schema", as in the spec's examples).
ACHIEVEMENT_CREDENTIAL_SCHEMA = (
    "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json"
)
SCHEMA_VALIDATOR_TYPE = "1EdTechJsonSchemaValidator2019"

ESCO_FRAMEWORK = "ESCO"
EQF_FRAMEWORK = "European Qualifications Framework"
EQF_LEVEL_URI = "http://data.europa.eu/snb/eqf/{level}"  # EU Vocabularies "EQF level" concept scheme


def iso_datetime(value: datetime) -> str:
    """VC 2.0 §4.9 dateTimeStamp in UTC, whole seconds: ``2025-01-31T12:00:00Z``.

    A naive datetime is taken as UTC (the application stores UTC without a zone).
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(value: str) -> datetime:
    """A credential's date-time string as an aware datetime (``Z`` or an offset; none read as UTC).

    Raises ValueError for anything else.
    """
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a date-time string")
    parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    # dateTimeStamp requires a zone; read a zoneless value as UTC rather than as local time.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _image(url: str | None) -> dict | None:
    return {"id": url, "type": "Image"} if url else None


def _compact(obj: dict) -> dict:
    """Drop unset optional members (None, empty lists), so documents carry only what is known."""
    return {k: v for k, v in obj.items() if v is not None and v != [] and v != ()}


# -- alignments and results ----------------------------------------------------------------


def esco_alignment(uri: str, label: str | None = None) -> dict:
    """An ``Alignment`` to an ESCO skill; ``targetType`` ceasn:Competency (a skill is a competency)."""
    return {
        "type": ["Alignment"],
        "targetType": "ceasn:Competency",
        "targetFramework": ESCO_FRAMEWORK,
        "targetName": label or uri,
        "targetUrl": uri,
    }


def eqf_alignment(level: int) -> dict:
    """An ``Alignment`` to EQF level 1-8 (extension ``targetType`` "ext:EQFLevel")."""
    if not isinstance(level, int) or not 1 <= level <= 8:
        raise ValueError("EQF levels run from 1 to 8")
    return {
        "type": ["Alignment"],
        "targetType": "ext:EQFLevel",
        "targetFramework": EQF_FRAMEWORK,
        "targetName": f"EQF level {level}",
        "targetCode": str(level),
        "targetUrl": EQF_LEVEL_URI.format(level=level),
    }


def pass_mark_description(achievement_id: str, pass_mark: float | int, *, value_max: float | int = 100,
                          name: str = "Final score") -> dict:
    """The ``ResultDescription`` of a score in percent with its pass mark (``requiredValue``)."""
    return {
        "id": f"{achievement_id}#result",
        "type": ["ResultDescription"],
        "name": name,
        "resultType": "Percent",
        "requiredValue": _number(pass_mark),
        "valueMin": "0",
        "valueMax": _number(value_max),
    }


def build_result(value: float | int | str, *, result_description: str | None = None,
                 status: str = "Completed") -> dict:
    """A learner's ``Result``; ``result_description`` is the id of the achievement's ResultDescription."""
    return _compact({
        "type": ["Result"],
        "resultDescription": result_description,
        "value": value if isinstance(value, str) else _number(value),
        "status": status,
    })


def build_evidence(*, id: str | None = None, name: str | None = None, narrative: str | None = None,
                   description: str | None = None, genre: str | None = None) -> dict:
    """An ``Evidence`` entry (e.g. the learner's completion record or submitted work)."""
    return _compact({"id": id, "type": ["Evidence"], "name": name, "narrative": narrative,
                     "description": description, "genre": genre})


def _number(value: float | int) -> str:
    """Numbers as OB 3.0 string values: ``60`` not ``60.0``."""
    return str(int(value)) if float(value).is_integer() else str(value)


# -- documents -------------------------------------------------------------------------------


def build_achievement(
    *,
    id: str,
    name: str,
    description: str,
    criteria_narrative: str | None = None,
    criteria_id: str | None = None,
    achievement_type: str = "MicroCredential",
    skills: Iterable[str | tuple[str, str | None]] = (),
    eqf_level: int | None = None,
    ects: float | None = None,
    in_language: str | None = None,
    field_of_study: str | None = None,
    tags: Iterable[str] = (),
    pass_mark: float | None = None,
    alignments: Iterable[dict] = (),
    image: str | None = None,
    human_code: str | None = None,
    version: str | None = None,
) -> dict:
    """An OB 3.0 ``Achievement`` (Appendix B, Achievement).

    ``skills`` are ESCO concept URIs or ``(uri, preferred label)`` pairs; ``ects`` becomes
    ``creditsAvailable``; ``pass_mark`` (percent) becomes a ``resultDescription``; ``alignments``
    adds ready-made Alignment dicts after the ESCO and EQF ones. ``criteria`` needs a narrative or
    an id (a page describing the criteria), per the data model.
    """
    if not criteria_narrative and not criteria_id:
        raise ValueError("an Achievement needs criteria: a narrative, an id, or both")
    alignment = [esco_alignment(*(s if isinstance(s, tuple) else (s,))) for s in skills]
    if eqf_level is not None:
        alignment.append(eqf_alignment(eqf_level))
    alignment.extend(alignments)
    return _compact({
        "id": id,
        "type": ["Achievement"],
        "achievementType": achievement_type,
        "name": name,
        "description": description,
        "criteria": _compact({"id": criteria_id, "narrative": criteria_narrative}),
        "image": _image(image),
        "alignment": alignment,
        "creditsAvailable": ects,
        "inLanguage": in_language,
        "fieldOfStudy": field_of_study,
        "humanCode": human_code,
        "version": version,
        "tag": list(tags),
        "resultDescription": [pass_mark_description(id, pass_mark)] if pass_mark is not None else None,
    })


def build_profile(id: str, name: str, url: str | None = None, email: str | None = None,
                  description: str | None = None, *, image: str | None = None) -> dict:
    """The issuer ``Profile`` (Appendix B, Profile): one per source project or institution."""
    return _compact({"id": id, "type": ["Profile"], "name": name, "url": url, "email": email,
                     "description": description, "image": _image(image)})


def recipient_identity(type: str, value: str, salt: str | None = None, hashed: bool = True) -> dict:
    """An ``IdentityObject`` naming the learner (Appendix B, IdentityObject).

    ``type`` is an OB 3.0 identityType such as ``emailAddress``, ``ltiUserId``, ``lisSourcedId``,
    ``identifier``. E-mail addresses are normalised (:func:`normalize_email`) before hashing. With
    ``hashed`` (the default, since the credential travels beyond the LMS) the value is stored as an
    IdentityHash with ``salt`` (a fresh random salt when None); unhashed values are stored as given.
    """
    if type == "emailAddress":
        value = normalize_email(value)
    if not hashed:
        return {"type": "IdentityObject", "identityHash": value, "identityType": type, "hashed": False}
    salt = salt if salt is not None else secrets.token_hex(16)
    return {"type": "IdentityObject", "identityHash": identity_hash(value, salt), "identityType": type,
            "hashed": True, "salt": salt}


def build_credential(
    *,
    credential_id: str,
    issuer: dict,
    achievement: dict,
    identities: list[dict],
    valid_from: datetime,
    valid_until: datetime | None = None,
    name: str,
    results: list | None = None,
    evidence: list | None = None,
    credential_status: dict | None = None,
    credential_schema: bool = True,
    subject_id: str | None = None,
    description: str | None = None,
    awarded_date: datetime | None = None,
    credits_earned: float | None = None,
    image: str | None = None,
) -> dict:
    """An unsigned ``OpenBadgeCredential`` (OB 3.0 Appendix B, AchievementCredential; VC 2.0 §4).

    ``@context`` is VC 2.0 + OB 3.0.3 (+ the OB extensions context, which defines the
    ``1EdTechJsonSchemaValidator2019`` type, when ``credential_schema`` is on). The learner is
    identified by ``identities`` (IdentityObjects); ``subject_id`` (e.g. a learner's DID) is added
    when known. ``credential_status`` comes from :func:`.statuslist.status_entry`.
    """
    if not identities and not subject_id:
        raise ValueError("the credential subject needs an identifier (IdentityObject) or an id")
    subject = _compact({
        "id": subject_id,
        "type": ["AchievementSubject"],
        "identifier": list(identities),
        "achievement": achievement,
        "result": list(results or []),
        "creditsEarned": credits_earned,
    })
    context = [VC_V2_CONTEXT, OB_V3_CONTEXT] + ([OB_EXTENSIONS_CONTEXT] if credential_schema else [])
    return _compact({
        "@context": context,
        "id": credential_id,
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": name,
        "description": description,
        "image": _image(image),
        "issuer": issuer,
        "validFrom": iso_datetime(valid_from),
        "validUntil": iso_datetime(valid_until) if valid_until else None,
        "awardedDate": iso_datetime(awarded_date) if awarded_date else None,
        "credentialSubject": subject,
        "evidence": list(evidence or []),
        "credentialStatus": credential_status,
        "credentialSchema": (
            [{"id": ACHIEVEMENT_CREDENTIAL_SCHEMA, "type": SCHEMA_VALIDATOR_TYPE}] if credential_schema else None
        ),
    })
