"""OB 3.0 documents (lms_bridge.credentials.ob3) and the official JSON schema (lms_bridge.credentials.schema)."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone

import pytest

from lms_bridge.credentials import ob3
from lms_bridge.credentials.keys import identity_hash
from lms_bridge.credentials.schema import validate_ob3

from .conftest import ISSUED, ISSUER_ID, SPEC_EXAMPLES, make_credential


def test_built_credential_has_the_ob3_shape(credential, achievement):
    assert credential["@context"] == [ob3.VC_V2_CONTEXT, ob3.OB_V3_CONTEXT, ob3.OB_EXTENSIONS_CONTEXT]
    assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert credential["issuer"] == {"id": ISSUER_ID, "type": ["Profile"], "name": "Battery Academy",
                                    "url": "https://battery-academy.example.org"}
    assert credential["validFrom"] == "2025-03-01T12:00:00Z"
    assert credential["validUntil"] == "2028-02-29T12:00:00Z"
    subject = credential["credentialSubject"]
    assert subject["type"] == ["AchievementSubject"] and subject["achievement"] is achievement
    assert [i["identityType"] for i in subject["identifier"]] == ["emailAddress", "ltiUserId"]
    assert subject["result"] == [{"type": ["Result"], "resultDescription": achievement["resultDescription"][0]["id"],
                                  "value": "85", "status": "Completed"}]
    assert credential["credentialSchema"] == [{"id": ob3.ACHIEVEMENT_CREDENTIAL_SCHEMA,
                                               "type": "1EdTechJsonSchemaValidator2019"}]
    assert credential["credentialStatus"]["type"] == "BitstringStatusListEntry"
    json.dumps(credential)  # JSON-ready


def test_achievement_carries_micro_credential_metadata(achievement):
    assert achievement["achievementType"] == "MicroCredential"
    assert achievement["criteria"] == {"narrative": "Complete all modules and score at least 60% in the final assessment."}
    esco = [a for a in achievement["alignment"] if a["targetFramework"] == "ESCO"]
    assert [a["targetUrl"] for a in esco] == [
        "http://data.europa.eu/esco/skill/84cc8c9d-db57-42ec-8948-9b632bf06124",
        "http://data.europa.eu/esco/skill/6122d586-5978-431f-8e7a-96e61fc1f3fc",
    ]
    assert esco[0]["targetName"] == "battery chemistry"
    eqf = [a for a in achievement["alignment"] if a["targetFramework"] == "European Qualifications Framework"]
    assert eqf == [{"type": ["Alignment"], "targetType": "ext:EQFLevel", "targetFramework": "European Qualifications Framework",
                    "targetName": "EQF level 4", "targetCode": "4", "targetUrl": "http://data.europa.eu/snb/eqf/4"}]
    assert achievement["creditsAvailable"] == 2
    assert achievement["inLanguage"] == "en" and achievement["fieldOfStudy"] == "Automotive engineering"
    assert achievement["tag"] == ["electromobility", "safety"]
    assert achievement["resultDescription"][0]["requiredValue"] == "60"
    assert achievement["resultDescription"][0]["resultType"] == "Percent"


def test_minimal_achievement_omits_unknown_members():
    achievement = ob3.build_achievement(id="https://x.example/a", name="A", description="D", criteria_id="https://x.example/a/criteria")
    assert achievement == {"id": "https://x.example/a", "type": ["Achievement"], "achievementType": "MicroCredential",
                           "name": "A", "description": "D", "criteria": {"id": "https://x.example/a/criteria"}}


def test_builders_refuse_what_the_model_forbids():
    with pytest.raises(ValueError, match="criteria"):
        ob3.build_achievement(id="https://x.example/a", name="A", description="D")
    with pytest.raises(ValueError, match="EQF"):
        ob3.eqf_alignment(9)
    with pytest.raises(ValueError, match="identifier"):
        ob3.build_credential(credential_id="urn:uuid:1", issuer=ob3.build_profile(ISSUER_ID, "Battery Academy"),
                             achievement={}, identities=[], valid_from=ISSUED, name="x")


def test_recipient_identity_hashes_normalised_email():
    identity = ob3.recipient_identity("emailAddress", " Ada.Lovelace@Example.org", "4f1a9c")
    assert identity == {"type": "IdentityObject", "identityType": "emailAddress", "hashed": True, "salt": "4f1a9c",
                        "identityHash": identity_hash("ada.lovelace@example.org", "4f1a9c")}
    fresh = ob3.recipient_identity("ltiUserId", "lti-user-42", None)
    assert len(fresh["salt"]) == 32 and fresh["identityHash"] == identity_hash("lti-user-42", fresh["salt"])
    plain = ob3.recipient_identity("lisSourcedId", "SIS-1", hashed=False)
    assert plain == {"type": "IdentityObject", "identityHash": "SIS-1", "identityType": "lisSourcedId", "hashed": False}


def test_iso_datetime_is_utc_whole_seconds():
    aware = datetime(2025, 3, 1, 13, 0, 0, 999999, tzinfo=timezone(timedelta(hours=1)))
    assert ob3.iso_datetime(aware) == "2025-03-01T12:00:00Z"
    assert ob3.iso_datetime(datetime(2025, 3, 1, 12, 0)) == "2025-03-01T12:00:00Z"  # naive = UTC


def test_without_credential_schema_the_extensions_context_is_left_out(achievement):
    credential = make_credential(achievement, credential_schema=False)
    assert credential["@context"] == [ob3.VC_V2_CONTEXT, ob3.OB_V3_CONTEXT]
    assert "credentialSchema" not in credential
    assert validate_ob3(credential) == []


def test_built_credential_validates_against_the_official_schema(credential):
    assert validate_ob3(credential) == []


@pytest.mark.parametrize("path", sorted(SPEC_EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_specification_examples_validate(path):
    assert validate_ob3(json.loads(path.read_text())) == []


def _broken(credential, mutate):
    doc = copy.deepcopy(credential)
    mutate(doc)
    return validate_ob3(doc)


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d.pop("validFrom"), "(credential): 'validFrom' is a required property"),
    (lambda d: d.update(validFrom="2025-03-01 12:00"), "validFrom: '2025-03-01 12:00' is not a 'date-time'"),
    (lambda d: d.update(validFrom="2025-03-01T12:00:00"), "validFrom: '2025-03-01T12:00:00' is not a 'date-time'"),
    (lambda d: d.update(type=["VerifiableCredential"]), "type: ['VerifiableCredential'] does not contain items matching"),
    (lambda d: d["credentialSubject"]["achievement"].update(achievementType="Nanodegree"),
     "credentialSubject.achievement.achievementType: 'Nanodegree' is not valid"),
    (lambda d: d["credentialSubject"]["identifier"][0].update(identityType="mail"),
     "credentialSubject.identifier[0].identityType: 'mail' is not valid"),
    (lambda d: d["credentialSubject"]["identifier"][0].update(extra=1),
     "credentialSubject.identifier[0]: Additional properties are not allowed ('extra' was unexpected)"),
    (lambda d: d["credentialSubject"]["achievement"].update(inLanguage="english"),
     "credentialSubject.achievement.inLanguage: 'english' does not match"),
    (lambda d: d["credentialSubject"]["achievement"].update(creditsAvailable="2 ECTS"),
     "credentialSubject.achievement.creditsAvailable: '2 ECTS' is not of type 'number'"),
    (lambda d: d.update(proof={"type": "DataIntegrityProof"}), "proof: {'type': 'DataIntegrityProof'} is not of type 'array'"),
])
def test_schema_errors_name_the_member(credential, mutate, expected):
    errors = _broken(credential, mutate)
    assert any(e.startswith(expected) for e in errors), errors


def test_validate_non_object():
    assert validate_ob3(["not", "a", "credential"]) == ["(credential): a credential must be a JSON object"]
