"""The signed examples of the 1EdTech OB 3.0 specification verify; tampered copies do not.

The examples (tests/fixtures/openbadges3/, see SOURCE.txt) carry their own keys: eddsa-rdfc-2022
proofs name a Multikey in the verification method's fragment, VC-JWTs an RSA key in the ``jwk``
header. Their signatures are checked for real (PyLD RDFC-1.0 + Ed25519, RS256).
"""

from __future__ import annotations

import copy
import json

import pytest

from lms_bridge.credentials.keys import b64url_decode, b64url_encode
from lms_bridge.credentials.verify import verify

from .conftest import SPEC_EXAMPLES, SPEC_NOW

DATA_INTEGRITY = sorted(SPEC_EXAMPLES.glob("*.eddsa-rdfc-2022.json"))
VC_JWT = sorted(SPEC_EXAMPLES.glob("*.vc-jwt.txt"))


def test_the_fixture_set_is_complete():
    assert len(DATA_INTEGRITY) == 8 and len(VC_JWT) == 8


def _check(result, name):
    check = result.check(name)
    assert check is not None, [c.name for c in result.checks]
    return check


@pytest.mark.parametrize("path", DATA_INTEGRITY, ids=lambda p: p.name)
def test_data_integrity_examples_verify(path):
    result = verify(path.read_text(), now=SPEC_NOW)
    assert result.ok, result.summary()
    assert result.format == "data-integrity"
    signature = _check(result, "signature").detail
    fragment = json.loads(path.read_text())["proof"][0]["verificationMethod"].split("#")[1]
    assert signature.startswith(f"The signature (eddsa-rdfc-2022) matches the issuer key {fragment}")
    assert "comes from the credential itself" in _check(result, "issuer_key").detail
    assert _check(result, "schema").ok


@pytest.mark.parametrize("path", VC_JWT, ids=lambda p: p.name)
def test_vc_jwt_examples_verify(path):
    result = verify(path.read_text(), now=SPEC_NOW)
    assert result.ok, result.summary()
    assert result.format == "vc-jwt"
    assert _check(result, "signature").detail.startswith("The signature (RS256) matches the issuer key RSA-2048")
    assert "carried in the JWT header" in _check(result, "issuer_key").detail
    assert _check(result, "jwt_claims").ok


@pytest.mark.parametrize("path", DATA_INTEGRITY, ids=lambda p: p.name)
def test_data_integrity_examples_fail_when_a_name_is_changed(path):
    doc = json.loads(path.read_text())
    doc["name"] = doc.get("name", "") + " (forged)"
    result = verify(doc, now=SPEC_NOW)
    assert not result.ok
    signature = _check(result, "signature")
    assert not signature.ok and "changed after it was signed" in signature.detail


def test_data_integrity_example_fails_when_a_nested_value_is_changed():
    doc = json.loads((SPEC_EXAMPLES / "ob3_D1_basic.eddsa-rdfc-2022.json").read_text())
    doc["credentialSubject"]["achievement"]["name"] = "Leadership"
    assert not _check(verify(doc, now=SPEC_NOW), "signature").ok


@pytest.mark.parametrize("path", DATA_INTEGRITY, ids=lambda p: p.name)
def test_data_integrity_examples_fail_when_the_proof_value_is_changed(path):
    doc = json.loads(path.read_text())
    value = doc["proof"][0]["proofValue"]
    doc["proof"][0]["proofValue"] = value[:-3] + ("ABC" if value[-3:] != "ABC" else "abc")
    result = verify(doc, now=SPEC_NOW)
    assert not result.ok and not _check(result, "signature").ok


def test_data_integrity_example_fails_when_the_proof_is_moved_to_another_credential():
    d1 = json.loads((SPEC_EXAMPLES / "ob3_D1_basic.eddsa-rdfc-2022.json").read_text())
    d4 = json.loads((SPEC_EXAMPLES / "ob3_D4_alignment_case.eddsa-rdfc-2022.json").read_text())
    d4["proof"] = d1["proof"]
    assert not _check(verify(d4, now=SPEC_NOW), "signature").ok


def test_data_integrity_example_fails_when_the_key_is_swapped():
    doc = json.loads((SPEC_EXAMPLES / "ob3_D1_basic.eddsa-rdfc-2022.json").read_text())
    other = json.loads((SPEC_EXAMPLES / "ob3_D2_complete.eddsa-rdfc-2022.json").read_text())
    doc["proof"][0]["verificationMethod"] = other["proof"][0]["verificationMethod"]
    assert not _check(verify(doc, now=SPEC_NOW), "signature").ok


def _jwt_parts(path):
    return path.read_text().strip().split(".")


@pytest.mark.parametrize("path", VC_JWT, ids=lambda p: p.name)
def test_vc_jwt_examples_fail_when_a_name_is_changed(path):
    header, payload, signature = _jwt_parts(path)
    claims = json.loads(b64url_decode(payload))
    claims["name"] = claims.get("name", "") + " (forged)"
    forged = ".".join([header, b64url_encode(json.dumps(claims).encode()), signature])
    result = verify(forged, now=SPEC_NOW)
    assert not result.ok
    assert "changed after it was signed" in _check(result, "signature").detail


def test_vc_jwt_example_fails_when_the_payload_is_swapped():
    header, _, signature = _jwt_parts(SPEC_EXAMPLES / "ob3_D1_basic.vc-jwt.txt")
    _, other_payload, _ = _jwt_parts(SPEC_EXAMPLES / "ob3_D4_alignment_case.vc-jwt.txt")
    result = verify(".".join([header, other_payload, signature]), now=SPEC_NOW)
    assert not result.ok and not _check(result, "signature").ok


def test_vc_jwt_example_fails_when_the_signature_is_changed():
    header, payload, signature = _jwt_parts(SPEC_EXAMPLES / "ob3_D2_complete.vc-jwt.txt")
    raw = bytearray(b64url_decode(signature))
    raw[10] ^= 0x01
    result = verify(".".join([header, payload, b64url_encode(bytes(raw))]), now=SPEC_NOW)
    assert not _check(result, "signature").ok


def test_vc_jwt_example_fails_when_the_header_key_is_replaced():
    header, payload, signature = _jwt_parts(SPEC_EXAMPLES / "ob3_D1_basic.vc-jwt.txt")
    other_header = _jwt_parts(SPEC_EXAMPLES / "ob3_D4_alignment_case.vc-jwt.txt")[0]
    assert not _check(verify(".".join([other_header, payload, signature]), now=SPEC_NOW), "signature").ok


def test_self_asserted_keys_can_be_refused():
    for path in (DATA_INTEGRITY[0], VC_JWT[0]):
        result = verify(path.read_text(), now=SPEC_NOW, trust_embedded_keys=False)
        assert not result.ok
        key = _check(result, "issuer_key")
        assert not key.ok and "could not be resolved" in key.detail and "not trusted" in key.detail


def test_expired_example_fails_after_valid_until():
    from datetime import datetime, timezone

    result = verify((SPEC_EXAMPLES / "ob3_D2_complete.vc-jwt.txt").read_text(), now=datetime(2031, 1, 1, tzinfo=timezone.utc))
    assert not result.ok
    assert _check(result, "valid_until").detail == "The credential expired on 01 January 2030, 00:00 UTC."
    assert _check(result, "signature").ok


def test_examples_are_not_changed_by_verification():
    doc = json.loads(DATA_INTEGRITY[1].read_text())
    before = copy.deepcopy(doc)
    verify(doc, now=SPEC_NOW)
    assert doc == before
