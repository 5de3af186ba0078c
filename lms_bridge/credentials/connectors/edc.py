"""European Digital Credential export: the completion as an ELM 3 ``EuropeanDigitalCredential``.

The EU's EDC Issuer seals credentials with an institution's qualified electronic seal; what it
takes in is the unsigned JSON-LD credential of the European Learning Model 3 application profile
for EDC ("uploadable" form: VC 1.1 context + ``http://data.europa.eu/snb/model/context/edc-ap``).
:func:`build_export` makes one from a :class:`~..models.Completion`:

* the learner (``Person``, ELM 3 §Person) holds one ``LearningAchievement`` claim, awarded by the
  issuer's ``AwardingProcess`` on the completion date, ``specifiedBy`` a
  ``LearningAchievementSpecification`` with the course's learning outcomes, its ESCO skills
  (``relatedESCOSkill``), EQF level, ECTS (``creditPoint``, the ECTS framework concept),
  workload (``volumeOfLearning``), language and learning setting (non-formal);
* ``provenBy`` a ``LearningAssessment`` with the grade, its type, supervision and identity
  verification (as notes);
* the issuer is an ``Organisation`` with its legal name, eIDAS legal identifier and country
  (mandatory for EDC issuers: settings ``legal_identifier`` and ``country``);
* the ``displayParameter`` carries the badge image (``IndividualDisplay``), as EDC requires.

:func:`validate_export` checks it against the ELM 3 SHACL shapes (``EDC-generic-full`` with the
``edc-generic-no-cv`` constraints it imports) with pyshacl. JSON-LD contexts come from the copies in
``data/edc/`` only: the document's ``@context`` URLs are replaced by those local contexts before
parsing, and any other context is refused, so nothing is ever fetched.

The connector "delivers" by storing the validated export (operators and the learner download it)
and, when ``endpoint`` is configured, POSTing it there with the idempotency key.
"""
from __future__ import annotations

import base64
import copy
import json
import threading
import uuid
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from ...outbox import Permanent
from ..models import Completion, IssuerProfile, utcnow
from . import DeliveryContext, IssuerConnector, post_json, record_receipt, register

DATA = Path(__file__).resolve().parents[1] / "data" / "edc"
VC_V1_CONTEXT = "https://www.w3.org/2018/credentials/v1"
EDC_CONTEXT = "http://data.europa.eu/snb/model/context/edc-ap"
LOCAL_CONTEXTS = {VC_V1_CONTEXT: "2018-credentials-v1.jsonld", EDC_CONTEXT: "edc-ap-context.jsonld"}
SHAPES = ("EDC-generic-no-cv.shacl.ttl", "EDC-generic-full.shacl.ttl")
SCHEMA_ID = "http://data.europa.eu/snb/model/ap/edc-generic-full"

# Controlled vocabularies (EU Vocabularies / Europass standard lists) the export uses.
CREDENTIAL_TYPES = "http://data.europa.eu/snb/credential/25831c2"
CREDENTIAL_GENERIC = "http://data.europa.eu/snb/credential/e34929035b"
LANGUAGES = "http://publications.europa.eu/resource/authority/language"
COUNTRIES = "http://publications.europa.eu/resource/authority/country"
EQF = "http://data.europa.eu/snb/eqf/25831c2"
EDUCATION_CREDITS = "http://data.europa.eu/snb/education-credit/25831c2"
ECTS = "http://data.europa.eu/snb/education-credit/6fcec5c5af"
LEARNING_SETTINGS = "http://data.europa.eu/snb/learning-setting/25831c2"
NON_FORMAL = "http://data.europa.eu/snb/learning-setting/e207a81fc7"
ENCODINGS = "http://data.europa.eu/snb/encoding/25831c2"
BASE64 = "http://data.europa.eu/snb/encoding/6146cde7dd"
FILE_TYPES = "http://publications.europa.eu/resource/authority/file-type"
PNG = "http://publications.europa.eu/resource/authority/file-type/PNG"
ESCO_SKILLS = "http://data.europa.eu/esco/concept-scheme/skills"

# ISO 639-1 -> EU "language" authority table codes, for the languages of EU member states.
LANGUAGE_CODES = {
    "bg": "BUL", "cs": "CES", "da": "DAN", "de": "DEU", "el": "ELL", "en": "ENG", "es": "SPA", "et": "EST",
    "fi": "FIN", "fr": "FRA", "ga": "GLE", "hr": "HRV", "hu": "HUN", "it": "ITA", "lt": "LIT", "lv": "LAV",
    "mt": "MLT", "nl": "NLD", "pl": "POL", "pt": "POR", "ro": "RON", "sk": "SLK", "sl": "SLV", "sv": "SWE",
    "no": "NOR", "is": "ISL", "tr": "TUR", "sr": "SRP", "mk": "MKD", "sq": "SQI",
}
_EXPORT_NAMESPACE = uuid.UUID("8b1c7e0e-6d4f-4a55-9e0e-3f0d2c9a7b11")


class ExportError(ValueError):
    """The export cannot be built as configured (missing legal identifier, unknown country...)."""


def _concept(uri: str, scheme: str, label: str | None = None, lang: str = "en") -> dict:
    concept = {"id": uri, "type": "Concept", "inScheme": {"id": scheme, "type": "ConceptScheme"}}
    if label:
        concept["prefLabel"] = {lang: label}
    return concept


def language_concept(code: str | None) -> tuple[dict, str]:
    """(EU language concept, two-letter tag for language-tagged strings) of a course language."""
    tag = (code or "en").split("-")[0].lower()
    eu = LANGUAGE_CODES.get(tag)
    if eu is None:
        tag, eu = "en", "ENG"
    return _concept(f"{LANGUAGES}/{eu}", LANGUAGES), tag


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hours(value: float) -> str:
    """xsd:duration of a workload in hours (PT6H, PT1H30M)."""
    minutes = round(value * 60)
    hours, rest = divmod(minutes, 60)
    return "PT" + (f"{hours}H" if hours else "") + (f"{rest}M" if rest or not hours else "")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def export_id(completion: Completion) -> str:
    return f"urn:epass:credential:{uuid.uuid5(_EXPORT_NAMESPACE, completion.uuid)}"


def build_export(completion: Completion, profile: IssuerProfile, settings: Mapping, *,
                 learner_email: str | None = None, image_png: bytes | None = None,
                 issued_at: datetime | None = None) -> dict:
    """The ELM 3 EDC JSON-LD credential of a completion (unsigned, for the EDC Issuer to seal).

    ``settings``: ``legal_identifier`` (the issuer's eIDAS legal identifier, e.g. a VAT or
    registration number; required), ``country`` (EU country authority code such as ``BEL``;
    required), ``legal_name`` (defaults to the profile's name).
    """
    from ..issuer import badge_png

    legal_identifier = str(settings.get("legal_identifier") or "").strip()
    country = str(settings.get("country") or "").strip().upper()
    if not legal_identifier or len(country) != 3 or not country.isalpha():
        raise ExportError("the EDC export needs the issuer's eIDAS legal identifier (setting legal_identifier) and "
                          "its country as a three-letter EU country code (setting country, e.g. BEL)")
    language, tag = language_concept(completion.language)
    issued_at = (issued_at or utcnow()).replace(microsecond=0)
    title = {tag: completion.course_title}
    country_concept = _concept(f"{COUNTRIES}/{country}", COUNTRIES)
    org_id = f"urn:epass:org:{profile.slug}"
    issuer = {
        "id": org_id, "type": "Organisation",
        "legalName": {tag: str(settings.get("legal_name") or profile.name)},
        "eIDASIdentifier": {"id": f"urn:epass:legalIdentifier:{profile.slug}", "type": "LegalIdentifier",
                            "notation": legal_identifier, "spatial": country_concept},
        "location": [{"id": f"urn:epass:location:{profile.slug}", "type": "Location",
                      "address": [{"id": f"urn:epass:address:{profile.slug}", "type": "Address",
                                   "countryCode": country_concept}]}],
    }
    if profile.url:
        issuer["homepage"] = [{"id": f"urn:epass:webResource:{profile.slug}", "type": "WebResource",
                               "contentURL": profile.url}]
    awarding = {"id": "urn:epass:awardingProcess:1", "type": "AwardingProcess", "awardingBody": [{"id": org_id}],
                "awardingDate": _iso(completion.completed_at)}
    outcomes = [{"id": f"urn:epass:learningOutcome:{n}", "type": "LearningOutcome", "title": {tag: text}}
                for n, text in enumerate(completion.learning_outcomes or [], start=1)]
    skills = [_concept(s["uri"], ESCO_SKILLS, s.get("label")) for s in completion.esco_skills or []
              if str(s.get("uri", "")).startswith("http://data.europa.eu/esco/skill/")]
    if skills:
        outcomes.append({"id": f"urn:epass:learningOutcome:{len(outcomes) + 1}", "type": "LearningOutcome",
                         "title": {tag: "Skills (ESCO) this course develops"}, "relatedESCOSkill": skills})
    specification = {
        "id": "urn:epass:learningAchievementSpec:1", "type": "LearningAchievementSpecification", "title": title,
        "description": {tag: (completion.achievement or {}).get("description") or completion.course_title},
        "language": [language], "learningSetting": _concept(NON_FORMAL, LEARNING_SETTINGS, "non-formal"),
    }
    if outcomes:
        specification["learningOutcome"] = outcomes
    if completion.eqf_level and 1 <= completion.eqf_level <= 8:
        specification["eqfLevel"] = _concept(f"http://data.europa.eu/snb/eqf/{completion.eqf_level}", EQF)
    if completion.ects:
        specification["creditPoint"] = [{"id": "urn:epass:creditPoint:1", "type": "CreditPoint",
                                         "framework": _concept(ECTS, EDUCATION_CREDITS, "European Credit Transfer System"),
                                         "point": _number(completion.ects)}]
    if completion.workload_hours:
        specification["volumeOfLearning"] = _hours(completion.workload_hours)
    notes = [("Type of assessment", completion.assessment_type), ("Supervision", completion.supervision),
             ("Identity verification", completion.identity_verification)]
    grade = (f"{round(completion.score_scaled * 100)} %" if completion.score_scaled is not None else "Completed") + (
        f" (pass mark {round(completion.pass_mark * 100)} %)" if completion.pass_mark is not None else "")
    assessment = {
        "id": "urn:epass:learningAssessment:1", "type": "LearningAssessment", "title": {tag: "Final assessment"},
        "grade": {"id": "urn:epass:note:grade", "type": "Note", "noteLiteral": {tag: grade}},
        "awardedBy": awarding,
        "additionalNote": [{"id": f"urn:epass:note:{n}", "type": "Note", "noteLiteral": {tag: f"{label}: {text}"}}
                           for n, (label, text) in enumerate(notes, start=1) if text],
    }
    person = {
        "id": f"urn:epass:person:{uuid.uuid5(_EXPORT_NAMESPACE, completion.uuid + ':person')}", "type": "Person",
        "hasClaim": [{"id": "urn:epass:learningAchievement:1", "type": "LearningAchievement", "title": title,
                      "awardedBy": awarding, "specifiedBy": specification, "provenBy": [assessment]}],
    }
    if completion.learner_name:
        person["fullName"] = {tag: completion.learner_name}
    if learner_email:
        person["contactPoint"] = [{"id": "urn:epass:contactPoint:1", "type": "ContactPoint",
                                   "emailAddress": [{"id": f"mailto:{learner_email}", "type": "Mailbox"}]}]
    image = base64.b64encode(image_png or badge_png()).decode("ascii")
    display = {
        "id": "urn:epass:displayParameter:1", "type": "DisplayParameter", "title": title,
        "language": [language], "primaryLanguage": language,
        "individualDisplay": [{
            "id": "urn:epass:individualDisplay:1", "type": "IndividualDisplay", "language": language,
            "displayDetail": [{"id": "urn:epass:displayDetail:1", "type": "DisplayDetail", "page": 1,
                               "image": {"id": "urn:epass:mediaObject:1", "type": "MediaObject", "content": image,
                                         "contentEncoding": _concept(BASE64, ENCODINGS, "base64"),
                                         "contentType": _concept(PNG, FILE_TYPES, "PNG")}}],
        }],
    }
    return {
        "@context": [VC_V1_CONTEXT, EDC_CONTEXT],
        "id": export_id(completion),
        "type": ["VerifiableCredential", "EuropeanDigitalCredential"],
        "credentialSchema": [{"id": SCHEMA_ID, "type": "ShaclValidator2017"}],
        "credentialProfiles": [_concept(CREDENTIAL_GENERIC, CREDENTIAL_TYPES, "Generic")],
        "displayParameter": display,
        "issuer": issuer,
        "issuanceDate": _iso(issued_at),
        "issued": _iso(issued_at),
        "validFrom": _iso(issued_at),
        "credentialSubject": person,
    }


# --------------------------------------------------------------------------- SHACL validation


@lru_cache(maxsize=None)
def _context(url: str) -> dict:
    return json.loads((DATA / LOCAL_CONTEXTS[url]).read_text(encoding="utf-8"))["@context"]


@lru_cache(maxsize=1)
def _shapes():
    import rdflib

    graph = rdflib.Graph()
    for name in SHAPES:
        graph.parse(DATA / name, format="turtle")
    return graph


_validate_lock = threading.Lock()


def _document_loader(url: str, options: dict | None = None) -> dict:
    """PyLD document loader serving the two contexts of ``data/edc/`` and refusing anything else."""
    if url not in LOCAL_CONTEXTS:
        raise ExportError(f"the JSON-LD context {url!r} has no local copy (contexts are never fetched); an EDC "
                          f"export may only use {', '.join(LOCAL_CONTEXTS)}")
    return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url,
            "document": {"@context": copy.deepcopy(_context(url))}}


def _dropped(term: str | None) -> None:
    raise ExportError(f"the property {term!r} is not defined by the ELM 3 / VC contexts: it would be lost "
                      "(JSON-LD drops unknown terms), so the export is refused")


def to_graph(document: dict):
    """The RDF graph of an export: JSON-LD to RDF (PyLD) with the contexts of ``data/edc/`` only, and
    an error for any property the contexts do not define (JSON-LD would silently drop it, and the
    shapes would never see it), then read into rdflib for pyshacl."""
    import rdflib
    from pyld.jsonld import JsonLdError, JsonLdProcessor

    try:
        nquads = JsonLdProcessor(on_property_dropped=_dropped).to_rdf(
            copy.deepcopy(document), {"format": "application/n-quads", "documentLoader": _document_loader})
    except JsonLdError as exc:
        cause = exc
        while cause is not None and not isinstance(cause, ExportError):
            cause = cause.__cause__ or cause.__context__
        raise (cause or ExportError(f"the export is not valid JSON-LD: {str(exc).splitlines()[0]}")) from exc
    graph = rdflib.Graph()
    graph.parse(data=nquads, format="nt")
    return graph


def validate_export(document: dict) -> list[str]:
    """Violations of the ELM 3 EDC shapes, one plain line each (empty when the export conforms)."""
    from pyshacl import validate
    from rdflib import RDF, SH

    graph = to_graph(document)
    with _validate_lock:  # one shapes graph per process, read by one validation at a time
        conforms, report, _text = validate(graph, shacl_graph=_shapes(), inference="none", advanced=True,
                                           allow_warnings=True)
    if conforms:
        return []
    problems = []
    for result in report.subjects(RDF.type, SH.ValidationResult):
        severity = report.value(result, SH.resultSeverity)
        if severity is not None and severity != SH.Violation:
            continue
        path = report.value(result, SH.resultPath)
        focus = report.value(result, SH.focusNode)
        message = report.value(result, SH.resultMessage)
        problems.append(f"{focus} {path.n3(graph.namespace_manager) if path is not None else ''}: {message}")
    return sorted(problems) or ["the export does not conform to the ELM 3 shapes"]


# --------------------------------------------------------------------------- the connector


@register
class EdcConnector(IssuerConnector):
    name = "edc"
    label = "European Digital Credential export"
    setting_help = {
        "legal_identifier": "the issuer's eIDAS legal identifier (VAT or business registration number)",
        "country": "the issuer's country, EU three-letter code (BEL, FRA, DEU...)",
        "legal_name": "the issuer's legal name (default: the profile's name)",
        "endpoint": "optional URL the validated export is POSTed to (JSON-LD)",
        "token": "optional bearer token for that endpoint",
        "include_email": "true to name the learner's e-mail address (contactPoint) for the EDC Issuer's delivery",
    }

    def check_settings(self, settings: Mapping) -> list[str]:
        problems = []
        if not str(settings.get("legal_identifier") or "").strip():
            problems.append("legal_identifier (the issuer's eIDAS legal identifier) is missing")
        country = str(settings.get("country") or "").strip()
        if len(country) != 3 or not country.isalpha():
            problems.append("country must be a three-letter EU country code such as BEL")
        endpoint = str(settings.get("endpoint") or "")
        if endpoint and not endpoint.startswith(("https://", "http://")):
            problems.append("endpoint must be an http(s) URL")
        return problems

    def target(self, settings: Mapping, profile: IssuerProfile) -> str:
        return settings.get("endpoint") or "stored for download (EDC Issuer upload)"

    def deliver(self, ctx: DeliveryContext) -> str:
        from ...extensions import db
        from ...lti.models import User

        email = None
        if ctx.settings.get("include_email") and ctx.completion.user_pk is not None:
            user = db.session.get(User, ctx.completion.user_pk)
            email = user.email if user is not None else None
        try:
            document = build_export(ctx.completion, ctx.profile, ctx.settings, learner_email=email,
                                    issued_at=ctx.completion.completed_at)
            problems = validate_export(document)
        except ExportError as exc:
            raise Permanent(f"The EDC export cannot be built: {exc}. Fix the edc settings of issuer profile "
                            f"{ctx.profile.slug!r}, then retry.", status="invalid export") from exc
        if problems:
            raise Permanent("The EDC export does not validate against the ELM 3 SHACL shapes: " + "; ".join(problems[:5])
                            + ". Check the course metadata and the edc settings, then retry.", status="invalid export")
        completion_id = ctx.completion.id
        note = "validated against the ELM 3 shapes, stored for download"
        external_id = None
        endpoint = ctx.settings.get("endpoint")
        if endpoint:
            headers = {"Content-Type": "application/ld+json", "Idempotency-Key": ctx.idempotency_key}
            if ctx.settings.get("token"):
                headers["Authorization"] = f"Bearer {ctx.settings['token']}"
            resp, status = post_json(endpoint, json.dumps(document).encode("utf-8"), headers, what="The EDC endpoint")
            external_id = resp.headers.get("Location")
            note += f"; sent to {endpoint} ({status})"
        record_receipt(completion_id, self.name, external_id=external_id, note=note, document=document)
        return note[:100]
