"""The European Digital Credential export (ELM 3 JSON-LD, "uploadable" form for the EDC Issuer):
built from a completion record, it validates with pyshacl against the ELM 3 SHACL shapes of
``shared/samples/edc/elm3_model`` (EDC-generic-full + the edc-generic-no-cv constraints it imports);
what it says (skills, EQF, ECTS, workload, assessment); what it refuses (missing issuer identifiers,
terms the contexts do not define, unknown contexts); and that it never touches the network."""
from __future__ import annotations

import base64
import copy
import json
import socket
from datetime import datetime
from pathlib import Path

import pytest

from lms_bridge.credentials.connectors import edc
from lms_bridge.credentials.models import Completion, IssuerProfile

ELM3 = Path("/work/shared/samples/edc/elm3_model")
VC_V1 = Path("/work/shared/samples/openbadges3/contexts/2018-credentials-v1.jsonld")
SETTINGS = {"legal_identifier": "BE0123456789", "country": "BEL", "legal_name": "TRIREME consortium"}

pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")


def completion(**changes) -> Completion:
    values = dict(
        uuid="6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f", course_title="Hydrogen fuel-cell vehicle basics", language="en",
        course_identifier="urn:lms-bridge:mooc:hydrogen-fcev-basics", source_project="TRIREME",
        achievement={"description": "An introduction to hydrogen mobility for vehicle technicians."},
        learning_outcomes=["Describe the properties of hydrogen that matter for vehicle use.",
                           "Explain the electrochemical operation of a PEM fuel cell."],
        esco_skills=[{"uri": "http://data.europa.eu/esco/skill/5f1f365c-ad8c-4291-9ba5-79e2132a334d", "label": "fuel cell types"},
                     {"uri": "http://data.europa.eu/esco/skill/7c127140-3a91-4fe2-b33e-12567d78ef0f", "label": "fuel gas"}],
        eqf_level=4, ects=0.2, workload_hours=6, completed_at=datetime(2026, 11, 21, 10, 30), score_scaled=0.9,
        pass_mark=0.8, assessment_type="Online quiz, graded automatically", supervision="Unsupervised",
        identity_verification="LMS account (LTI 1.3 launch)", learner_name="Lena Learner", learner_sub="4",
        identity_salt="5a1t",
    )
    values.update(changes)
    return Completion(**values)


def profile() -> IssuerProfile:
    return IssuerProfile(slug="trireme", name="TRIREME", url="https://trireme.example.eu")


def export(c: Completion | None = None, settings: dict | None = None, **kw) -> dict:
    return edc.build_export(c or completion(), profile(), SETTINGS if settings is None else settings, **kw)


def shacl_conforms(document: dict) -> tuple[bool, str]:
    """pyshacl straight against the sample shapes files (independent of edc.validate_export)."""
    import rdflib
    from pyshacl import validate

    contexts = {edc.VC_V1_CONTEXT: VC_V1, edc.EDC_CONTEXT: ELM3 / "edc-ap-context.jsonld"}
    inline = {**document, "@context": [json.loads(contexts[c].read_text())["@context"] for c in document["@context"]]}
    data = rdflib.Graph().parse(data=json.dumps(inline), format="json-ld")
    shapes = rdflib.Graph()
    shapes.parse(ELM3 / "EDC-generic-no-cv.shacl.ttl", format="turtle")
    shapes.parse(ELM3 / "EDC-generic-full.shacl.ttl", format="turtle")
    conforms, _report, text = validate(data, shacl_graph=shapes, inference="none", advanced=True)
    return conforms, text


def test_export_validates_against_the_elm3_shapes():
    document = export(learner_email="lena@example.org")
    conforms, report = shacl_conforms(document)
    assert conforms, report
    assert edc.validate_export(document) == []


def test_the_vendored_shapes_are_the_samples():
    data = Path(edc.__file__).resolve().parents[1] / "data" / "edc"
    for name in (*edc.SHAPES, "edc-ap-context.jsonld"):
        assert (data / name).read_bytes() == (ELM3 / name).read_bytes(), name
    assert (data / "2018-credentials-v1.jsonld").read_bytes() == VC_V1.read_bytes()
    assert "EUPL-1.2" in (data / "SOURCE.txt").read_text() and (data / "LICENCE-EUPL-1.2.txt").exists()


def test_what_the_export_says():
    document = export()
    assert document["@context"] == [edc.VC_V1_CONTEXT, edc.EDC_CONTEXT]
    assert document["type"] == ["VerifiableCredential", "EuropeanDigitalCredential"]
    assert document["credentialProfiles"][0]["id"] == edc.CREDENTIAL_GENERIC
    issuer = document["issuer"]
    assert issuer["legalName"] == {"en": "TRIREME consortium"} and issuer["eIDASIdentifier"]["notation"] == "BE0123456789"
    assert issuer["eIDASIdentifier"]["spatial"]["id"].endswith("/country/BEL")
    claim = document["credentialSubject"]["hasClaim"][0]
    assert claim["type"] == "LearningAchievement" and claim["title"] == {"en": "Hydrogen fuel-cell vehicle basics"}
    assert claim["awardedBy"]["awardingDate"] == "2026-11-21T10:30:00Z"
    spec = claim["specifiedBy"]
    assert spec["eqfLevel"]["id"] == "http://data.europa.eu/snb/eqf/4"
    assert spec["creditPoint"][0]["framework"]["id"] == edc.ECTS and spec["creditPoint"][0]["point"] == "0.2"
    assert spec["volumeOfLearning"] == "PT6H" and spec["language"][0]["id"].endswith("/language/ENG")
    assert spec["learningSetting"]["id"] == edc.NON_FORMAL
    skills = [s["id"] for o in spec["learningOutcome"] for s in o.get("relatedESCOSkill", [])]
    assert skills == [s["uri"] for s in completion().esco_skills]
    assert [o["title"]["en"] for o in spec["learningOutcome"][:2]] == completion().learning_outcomes
    assessment = claim["provenBy"][0]
    assert assessment["grade"]["noteLiteral"] == {"en": "90 % (pass mark 80 %)"}
    notes = " ".join(n["noteLiteral"]["en"] for n in assessment["additionalNote"])
    assert "Online quiz" in notes and "Unsupervised" in notes and "LMS account" in notes
    image = document["displayParameter"]["individualDisplay"][0]["displayDetail"][0]["image"]
    assert base64.b64decode(image["content"]).startswith(b"\x89PNG") and image["contentType"]["id"] == edc.PNG
    assert document["credentialSubject"]["fullName"] == {"en": "Lena Learner"}
    assert "contactPoint" not in document["credentialSubject"]  # no e-mail unless configured
    # Stable: the same completion gives the same identifiers.
    assert export()["id"] == document["id"] == edc.export_id(completion())


def test_sparse_completions_still_validate():
    sparse = completion(esco_skills=[], learning_outcomes=[], eqf_level=None, ects=None, workload_hours=None,
                        score_scaled=None, pass_mark=None, learner_name=None, language="fr-BE")
    document = export(sparse)
    assert edc.validate_export(document) == []
    spec = document["credentialSubject"]["hasClaim"][0]["specifiedBy"]
    assert "eqfLevel" not in spec and "creditPoint" not in spec and "learningOutcome" not in spec
    assert spec["language"][0]["id"].endswith("/language/FRA") and "fr" in spec["title"]
    assert document["credentialSubject"]["hasClaim"][0]["provenBy"][0]["grade"]["noteLiteral"] == {"fr": "Completed"}


@pytest.mark.parametrize("code, concept, tag", [("en", "ENG", "en"), ("de-AT", "DEU", "de"), ("el", "ELL", "el"),
                                                ("xx", "ENG", "en"), (None, "ENG", "en")])
def test_language_concepts(code, concept, tag):
    found, found_tag = edc.language_concept(code)
    assert found["id"] == f"{edc.LANGUAGES}/{concept}" and found_tag == tag


@pytest.mark.parametrize("hours, duration", [(6, "PT6H"), (1.5, "PT1H30M"), (0.25, "PT15M"), (0.001, "PT0M")])
def test_workload_as_duration(hours, duration):
    assert edc._hours(hours) == duration


@pytest.mark.parametrize("settings", [{"country": "BEL"}, {"legal_identifier": "BE1", "country": "BE"},
                                      {"legal_identifier": "BE1", "country": "B3L"}])
def test_issuer_identifiers_are_required(settings):
    with pytest.raises(edc.ExportError, match="legal identifier"):
        export(settings=settings)
    assert edc.EdcConnector().check_settings(settings)


def test_the_shapes_catch_what_is_wrong():
    document = export()
    no_id = copy.deepcopy(document)
    del no_id["issuer"]["eIDASIdentifier"]
    problems = edc.validate_export(no_id)
    assert any("eidasLegalIdentifier" in p for p in problems)
    assert not shacl_conforms(no_id)[0]
    wrong_scheme = copy.deepcopy(document)
    wrong_scheme["credentialProfiles"][0]["inScheme"]["id"] = "http://example.org/my-types"
    assert any("credential/25831c2" in p for p in edc.validate_export(wrong_scheme))
    no_display = copy.deepcopy(document)
    del no_display["displayParameter"]["individualDisplay"]
    assert any("individualDisplay" in p for p in edc.validate_export(no_display))


def test_terms_the_contexts_do_not_define_are_refused():
    document = export()
    document["credentialSubject"]["hasClaim"][0]["specifiedBy"]["relatedEscoSkill"] = "misspelt"
    with pytest.raises(edc.ExportError, match="relatedEscoSkill"):
        edc.validate_export(document)


def test_contexts_come_from_local_copies_only(monkeypatch):
    other = export()
    other["@context"] = [edc.VC_V1_CONTEXT, "https://example.org/another-context.jsonld"]
    with pytest.raises(edc.ExportError, match="no local copy"):
        edc.validate_export(other)

    def no_network(*args, **kwargs):
        raise AssertionError("the EDC export tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    edc._shapes.cache_clear()
    edc._context.cache_clear()
    assert edc.validate_export(export()) == []
