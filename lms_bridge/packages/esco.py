"""ESCO concept URIs: canonical form, kind, and preferred labels.

ESCO (European Skills, Competences, Qualifications and Occupations) names every concept by a URI
under ``http://data.europa.eu/esco/``: skills and knowledge under ``skill/``, occupations under
``occupation/``, ISCO-08 groups under ``isco/``. Packages list URIs only; labels come from
:data:`KNOWN_LABELS` (the concepts the shipped courses use) or from ESCO's own CSV export
(``skills_en.csv``, ``occupations_en.csv``: columns ``conceptUri`` and ``preferredLabel``), loaded
with ``flask label-skills FILE...``.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

ESCO_PREFIX = "http://data.europa.eu/esco/"

KNOWN_LABELS: dict[str, str] = {
    "http://data.europa.eu/esco/skill/84cc8c9d-db57-42ec-8948-9b632bf06124": "battery chemistry",
    "http://data.europa.eu/esco/skill/8cf03262-b6b0-4fe8-9d66-91063bb32db3": "battery components",
    "http://data.europa.eu/esco/skill/7c8a86b2-b0ae-4969-901a-5949d9974755": "operate battery test equipment",
    "http://data.europa.eu/esco/skill/270de514-3206-4cf9-b122-0f148ab06fa1": "measure electrical characteristics",
    "http://data.europa.eu/esco/skill/6122d586-5978-431f-8e7a-96e61fc1f3fc": "wear appropriate protective gear",
    "http://data.europa.eu/esco/skill/66ea3249-a079-45ad-b4f2-e6a79b59f10f": "personal protective equipment",
    "http://data.europa.eu/esco/skill/970af2f2-9a19-41a0-b42b-b1f36b083d28": "comply with electrical safety regulations",
    "http://data.europa.eu/esco/skill/5f97fac8-2001-4b81-ae8b-22f9062d921a": "identify hazards in the workplace",
    "http://data.europa.eu/esco/skill/e3b4b533-cc4d-4c70-adb6-128120f40c88": "handling of dangerous goods",
    "http://data.europa.eu/esco/skill/40fa39b5-0f69-432a-b5ea-b01b5d98649a": "dispose of hazardous waste",
    "http://data.europa.eu/esco/skill/5b264a14-d4db-4352-9278-fbb63c5ebed4": "use automotive diagnostic equipment",
    "http://data.europa.eu/esco/skill/187f82c7-b165-4e6b-b327-704e38e85cdd": "automotive diagnostic equipment",
    "http://data.europa.eu/esco/skill/af851217-a577-401a-b7ed-887865e92951": "perform vehicle diagnostic procedures",
    "http://data.europa.eu/esco/skill/3a5275f4-67e5-4371-a31e-68291aa86691": "vehicle electrical systems",
    "http://data.europa.eu/esco/skill/cffc3e97-e942-4b13-a2f3-0bf4910c06d3": "use technical documentation",
    "http://data.europa.eu/esco/skill/4f5ccaad-0e4f-4e9f-8246-47765564387d": "upgrade firmware",
    "http://data.europa.eu/esco/skill/8088750d-8388-4170-a76f-48354c469c44": "cyber security",
    "http://data.europa.eu/esco/skill/df329d70-87b0-466b-a214-3431f36e2a5e": "protect ICT devices",
    "http://data.europa.eu/esco/skill/a4346013-a967-4a58-a533-6b32ad1364c5": "data protection",
    "http://data.europa.eu/esco/skill/33a82b83-c838-4889-ae62-fae1317481eb": "protect personal data and privacy",
    "http://data.europa.eu/esco/skill/5f1f365c-ad8c-4291-9ba5-79e2132a334d": "fuel cell types",
    "http://data.europa.eu/esco/skill/7c127140-3a91-4fe2-b33e-12567d78ef0f": "fuel gas",
    "http://data.europa.eu/esco/skill/60e7f136-49eb-4496-a54f-410a6e564de6": "handle gas cylinders",
    "http://data.europa.eu/esco/skill/a2b566b0-1070-47a4-adc8-88839942ce25": "hybrid control systems",
    "http://data.europa.eu/esco/skill/2e55bf22-45f2-43f6-8aa0-28894263313d": "electric motors",
    "http://data.europa.eu/esco/skill/b979d9ae-37c2-4d1f-b8b8-7539f913cb19": "electric drives",
    "http://data.europa.eu/esco/skill/1fea0bc2-a6fa-4fe8-b36f-7a3194f8ed1c": "electricity principles",
    "http://data.europa.eu/esco/occupation/06bd6285-13ed-4ea7-90cc-e9638a0600a9": "automotive battery technician",
    "http://data.europa.eu/esco/occupation/6656337f-67eb-4f48-b1e4-ecccdfa44dd2": "automotive electrician",
    "http://data.europa.eu/esco/occupation/4ad4024e-d1d3-4dea-b6d1-2c7948111dce": "vehicle technician",
    "http://data.europa.eu/esco/occupation/43eb6228-8241-47d6-875e-7ccc214291d5": "battery test technician",
    "http://data.europa.eu/esco/occupation/ecdc43f5-3b32-4f94-abf8-cd46480c8cb8": "vehicle electronics installer",
    "http://data.europa.eu/esco/occupation/444c9aa9-578d-4a9a-9949-99ef1bacb20e": "automotive engineering technician",
    "http://data.europa.eu/esco/occupation/8d410283-865d-4cbb-acae-ac7f69d9cf26": "automotive engineer",
}
"""Preferred English labels of the ESCO concepts the shipped courses (``mooc_packages/``) name, by
canonical URI, as verified in ``mooc_packages/ESCO_SOURCES.md``. Extend it when courses are added,
or load labels for any concept with ``flask label-skills``."""


def canonical_uri(uri: str) -> str:
    """``https://data.europa.eu/esco/...`` and stray whitespace normalised to ESCO's ``http://`` form."""
    uri = uri.strip()
    if uri.lower().startswith("https://data.europa.eu/"):
        uri = "http://" + uri[len("https://"):]
    return uri


def concept_kind(uri: str) -> str:
    """``occupation`` for ESCO occupations and ISCO groups, ``skill`` otherwise."""
    rest = canonical_uri(uri)[len(ESCO_PREFIX):] if canonical_uri(uri).startswith(ESCO_PREFIX) else ""
    return "occupation" if rest.startswith(("occupation/", "isco/")) else "skill"


def known_label(uri: str) -> str | None:
    return KNOWN_LABELS.get(canonical_uri(uri))


def read_label_csv(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(uri, label)`` pairs from an ESCO CSV export, or any CSV with ``uri``/``label`` columns.

    Column names accepted: ``conceptUri`` or ``uri``, and ``preferredLabel`` or ``label``.
    Raises ValueError when neither pair is present.
    """
    reader = csv.DictReader(lines)
    names = {n.strip().lower(): n for n in (reader.fieldnames or [])}
    uri_col = names.get("concepturi") or names.get("uri")
    label_col = names.get("preferredlabel") or names.get("label")
    if not uri_col or not label_col:
        raise ValueError("expected columns conceptUri and preferredLabel (ESCO export) or uri and label")
    for row in reader:
        uri, label = (row.get(uri_col) or "").strip(), (row.get(label_col) or "").strip()
        if uri and label:
            yield canonical_uri(uri), label


def read_label_file(data: bytes) -> Iterator[tuple[str, str]]:
    return read_label_csv(io.StringIO(data.decode("utf-8-sig")))
