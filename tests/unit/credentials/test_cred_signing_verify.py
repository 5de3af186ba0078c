"""Our credentials through both proof formats and the verifier: keys, tampering, dates, revocation,
bad input. Real Ed25519 signatures and real RDFC-1.0 canonicalisation throughout."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone

import pytest

from lms_bridge.credentials import ob3, statuslist
from lms_bridge.credentials.jsonld import UnknownContextError
from lms_bridge.credentials.keys import PublicKey, b64url_decode, b64url_encode, generate_issuer_key
from lms_bridge.credentials.signing import decode_jws, sign_data_integrity, sign_vc_jwt
from lms_bridge.credentials.verify import jwks_resolver, verify

from .conftest import ISSUED, ISSUER_ID, STATUS_LIST, make_credential

NOW = ISSUED + timedelta(days=30)


@pytest.fixture
def resolver(issuer_key):
    """The issuer's published key set, as the application's own issuer profiles serve it."""
    return jwks_resolver({ISSUER_ID: {"keys": [issuer_key.public_jwk()]}}.get)


def names(result):
    return {c.name: c for c in result.checks}


def sign_jws(header: dict, payload: dict, key) -> str:
    signing_input = b64url_encode(json.dumps(header).encode()) + "." + b64url_encode(json.dumps(payload).encode())
    return signing_input + "." + b64url_encode(key.sign(signing_input.encode()))


# -- VC-JWT ------------------------------------------------------------------------------------


def test_vc_jwt_header_and_claims_follow_ob3_section_8_2(credential, issuer_key):
    header, payload, _, _ = decode_jws(sign_vc_jwt(credential, issuer_key))
    assert header == {"alg": "EdDSA", "typ": "JWT", "kid": f"{ISSUER_ID}#key-1"}
    assert payload["iss"] == ISSUER_ID and payload["jti"] == credential["id"]
    assert payload["nbf"] == int(ISSUED.timestamp())
    assert payload["exp"] == int((ISSUED + timedelta(days=3 * 365)).timestamp())
    assert "sub" not in payload  # the learner is identified by hashed identities, not an id
    assert {k: v for k, v in payload.items() if k not in ("iss", "jti", "nbf", "exp")} == credential


def test_vc_jwt_round_trip_with_the_published_key(credential, issuer_key, resolver):
    result = verify(sign_vc_jwt(credential, issuer_key), resolve_key=resolver, now=NOW)
    assert result.ok, result.summary()
    assert result.format == "vc-jwt" and result.credential == credential
    checks = names(result)
    assert list(checks) == ["format", "issuer_key", "signature", "jwt_claims", "schema", "valid_from", "valid_until", "revocation"]
    assert checks["signature"].detail == (
        f"The signature (EdDSA) matches the issuer key {issuer_key.public_multibase()} "
        f"published in the key set of {ISSUER_ID}.")
    assert "comes from the credential itself" not in checks["issuer_key"].detail
    assert checks["revocation"].skipped and "was not checked" in checks["revocation"].detail


def test_vc_jwt_with_unknown_issuer_key_fails(credential, issuer_key):
    result = verify(sign_vc_jwt(credential, issuer_key), now=NOW)
    assert not result.ok
    checks = names(result)
    assert not checks["issuer_key"].ok
    assert checks["issuer_key"].detail.startswith(f"The issuer key {ISSUER_ID}#key-1 of {ISSUER_ID} could not be resolved")
    assert not checks["signature"].ok and "without the issuer key" in checks["signature"].detail


def test_vc_jwt_signed_by_another_key_fails(credential, resolver):
    impostor = generate_issuer_key(verification_method=f"{ISSUER_ID}#key-1")
    result = verify(sign_vc_jwt(credential, impostor), resolve_key=resolver, now=NOW)
    assert names(result)["issuer_key"].ok and not names(result)["signature"].ok
    assert not result.ok


def test_vc_jwt_with_embedded_jwk_is_self_asserted(credential, issuer_key):
    token = sign_vc_jwt(credential, issuer_key, embed_jwk=True, typ="vc+jwt")
    header = decode_jws(token)[0]
    assert header["typ"] == "vc+jwt" and header["jwk"] == {"kty": "OKP", "crv": "Ed25519", "x": issuer_key.public_jwk()["x"]}
    result = verify(token, now=NOW)
    assert result.ok and result.key.self_asserted
    assert "carried in the JWT header (jwk)" in names(result)["issuer_key"].detail
    assert not verify(token, now=NOW, trust_embedded_keys=False).ok


def test_vc_jwt_tampered_payload_fails(credential, issuer_key, resolver):
    header, payload, signature = sign_vc_jwt(credential, issuer_key).split(".")
    claims = json.loads(b64url_decode(payload))
    claims["credentialSubject"]["achievement"]["creditsAvailable"] = 30
    forged = ".".join([header, b64url_encode(json.dumps(claims).encode()), signature])
    result = verify(forged, resolve_key=resolver, now=NOW)
    assert not result.ok and not names(result)["signature"].ok


def test_jwt_claims_must_agree_with_the_credential(credential, issuer_key, resolver):
    payload = {**credential, "iss": "https://someone-else.example/", "jti": credential["id"]}
    result = verify(sign_jws({"alg": "EdDSA", "kid": issuer_key.verification_method}, payload, issuer_key),
                    resolve_key=resolver, now=NOW)
    assert names(result)["signature"].ok
    claims = names(result)["jwt_claims"]
    assert not claims.ok and "iss is 'https://someone-else.example/'" in claims.detail


def test_vc_claim_form_of_older_vc_jwts_is_read(credential, issuer_key, resolver):
    inner = {k: v for k, v in credential.items() if k not in ("id", "issuer")}
    payload = {"vc": {**inner, "issuer": ISSUER_ID}, "iss": ISSUER_ID, "jti": credential["id"], "nbf": int(ISSUED.timestamp())}
    result = verify(sign_jws({"alg": "EdDSA", "typ": "JWT", "kid": issuer_key.verification_method}, payload, issuer_key),
                    resolve_key=resolver, now=NOW)
    assert names(result)["signature"].ok and names(result)["jwt_claims"].ok
    assert result.credential["id"] == credential["id"]


@pytest.mark.parametrize("alg", ["none", "HS256", None])
def test_unaccepted_jws_algorithms_fail_the_format_check(credential, issuer_key, alg):
    token = sign_jws({"alg": alg, "kid": issuer_key.verification_method}, credential, issuer_key)
    result = verify(token, resolve_key=lambda *_: issuer_key.public_key(), now=NOW)
    assert not result.ok and result.checks[0].name == "format" and "not accepted" in result.checks[0].detail


@pytest.mark.parametrize("extra, message", [
    ({"typ": "at+jwt"}, "has the type 'at+jwt'"),
    ({"crit": ["b64"], "b64": False}, "requires the header extensions ['b64']"),
])
def test_other_kinds_of_jws_are_refused(credential, issuer_key, resolver, extra, message):
    token = sign_jws({"alg": "EdDSA", "kid": issuer_key.verification_method, **extra}, credential, issuer_key)
    result = verify(token, resolve_key=resolver, now=NOW)
    assert not result.ok and message in result.checks[0].detail


def test_rs256_header_cannot_be_used_with_an_ed25519_key(credential, issuer_key, resolver):
    token = sign_jws({"alg": "RS256", "kid": issuer_key.verification_method}, credential, issuer_key)
    signature = names(verify(token, resolve_key=resolver, now=NOW))["signature"]
    assert not signature.ok and "cannot verify 'RS256'" in signature.detail


def test_enveloped_verifiable_credential_is_unwrapped(credential, issuer_key, resolver):
    envelope = {"@context": [ob3.VC_V2_CONTEXT], "type": ["EnvelopedVerifiableCredential"],
                "id": "data:application/vc+jwt," + sign_vc_jwt(credential, issuer_key)}
    result = verify(envelope, resolve_key=resolver, now=NOW)
    assert result.ok and result.format == "vc-jwt"


# -- Data Integrity ----------------------------------------------------------------------------


def test_data_integrity_proof_shape(credential, issuer_key):
    signed = sign_data_integrity(credential, issuer_key, verification_method=issuer_key.did_key_url(),
                                 created=datetime(2025, 3, 1, 12, 0, 5, tzinfo=timezone.utc))
    assert "proof" not in credential  # the input is not modified
    [proof] = signed["proof"]
    assert {k: v for k, v in proof.items() if k != "proofValue"} == {
        "type": "DataIntegrityProof", "cryptosuite": "eddsa-rdfc-2022", "created": "2025-03-01T12:00:05Z",
        "verificationMethod": issuer_key.did_key_url(), "proofPurpose": "assertionMethod"}
    assert proof["proofValue"].startswith("z") and len(proof["proofValue"]) > 80
    from lms_bridge.credentials.schema import validate_ob3
    assert validate_ob3(signed) == []


def test_data_integrity_round_trip_with_did_key(credential, issuer_key):
    signed = sign_data_integrity(credential, issuer_key, verification_method=issuer_key.did_key_url())
    result = verify(signed, now=NOW)
    assert result.ok, result.summary()
    assert result.format == "data-integrity"
    key = names(result)["issuer_key"].detail
    assert f"derived from the identifier {issuer_key.did_key()}, which nothing links to the issuer {ISSUER_ID}" in key
    assert result.key.self_asserted


def test_data_integrity_issuer_that_is_a_did_key(achievement, issuer_key):
    credential = make_credential(achievement)
    credential["issuer"] = ob3.build_profile(issuer_key.did_key(), "Battery Academy")
    result = verify(sign_data_integrity(credential, issuer_key, verification_method=issuer_key.did_key_url()), now=NOW)
    assert result.ok, result.summary()
    assert "derived from the issuer's own identifier" in names(result)["issuer_key"].detail
    assert not result.key.self_asserted


def test_data_integrity_round_trip_with_published_key(credential, issuer_key, resolver):
    signed = sign_data_integrity(credential, issuer_key, verification_method=issuer_key.verification_method)
    assert verify(signed, resolve_key=resolver, now=NOW).ok
    unknown = verify(signed, now=NOW)  # https://...#key-1 names no key by itself
    assert not unknown.ok and not names(unknown)["issuer_key"].ok


@pytest.mark.parametrize("tamper", [
    lambda d: d.update(name="Master of Batteries"),
    lambda d: d["credentialSubject"]["identifier"][0].update(salt="other"),
    lambda d: d["credentialSubject"]["achievement"]["alignment"].pop(),
    lambda d: d.update(validUntil="2099-01-01T00:00:00Z"),
    lambda d: d["proof"][0].update(created="2025-03-02T00:00:00Z"),  # the proof options are signed too
    lambda d: d["proof"][0].update(proofValue=d["proof"][0]["proofValue"][:-2] + "zz"),
])
def test_data_integrity_tampering_fails(credential, issuer_key, tamper):
    signed = sign_data_integrity(credential, issuer_key, verification_method=issuer_key.did_key_url())
    tamper(signed)
    result = verify(signed, now=NOW)
    assert not result.ok and not names(result)["signature"].ok


def test_proof_set_with_two_keys(credential, issuer_key):
    second = generate_issuer_key()
    signed = sign_data_integrity(credential, issuer_key, verification_method=issuer_key.did_key_url())
    signed = sign_data_integrity(signed, second, verification_method=second.did_key_url())
    assert len(signed["proof"]) == 2
    assert verify(signed, now=NOW).ok
    signed["proof"][1]["proofValue"] = signed["proof"][0]["proofValue"]
    assert not verify(signed, now=NOW).ok


def test_single_proof_object_is_accepted(credential, issuer_key):
    signed = sign_data_integrity(credential, issuer_key, verification_method=issuer_key.did_key_url())
    signed["proof"] = signed["proof"][0]
    assert names(verify(signed, now=NOW, schema=False))["signature"].ok


@pytest.mark.parametrize("change, message", [
    ({"cryptosuite": "eddsa-2022"}, "is not supported"),
    ({"type": "Ed25519Signature2020"}, "is not supported"),
    ({"proofPurpose": "authentication"}, "needs 'assertionMethod'"),
    ({"proofValue": "uAAAA"}, "proof value is malformed"),
    ({"expires": "2025-03-02T00:00:00Z"}, "The proof expired on 2025-03-02T00:00:00Z."),
])
def test_unsupported_proofs_fail_with_a_reason(credential, issuer_key, change, message):
    signed = sign_data_integrity(credential, issuer_key, verification_method=issuer_key.did_key_url())
    signed["proof"][0].update(change)
    signature = names(verify(signed, now=NOW))["signature"]
    assert not signature.ok and message in signature.detail


def test_unknown_context_fails_signing_and_verification_without_fetching(credential, issuer_key):
    with_unknown = {**credential, "@context": credential["@context"] + ["https://contexts.example.net/extra.jsonld"]}
    with pytest.raises(UnknownContextError):
        sign_data_integrity(with_unknown, issuer_key, verification_method=issuer_key.did_key_url())
    signed = sign_data_integrity(credential, issuer_key, verification_method=issuer_key.did_key_url())
    signed["@context"] = with_unknown["@context"]
    signature = names(verify(signed, now=NOW))["signature"]
    assert not signature.ok
    assert "could not be rebuilt offline" in signature.detail and "https://contexts.example.net/extra.jsonld" in signature.detail


# -- dates, revocation, schema -----------------------------------------------------------------


@pytest.fixture(params=["vc-jwt", "data-integrity"])
def secure(request, issuer_key, resolver):
    """Sign with either format and verify with the issuer's published key."""
    def sign_and_verify(credential, **options):
        if request.param == "vc-jwt":
            secured = sign_vc_jwt(credential, issuer_key)
        else:
            secured = sign_data_integrity(credential, issuer_key, verification_method=issuer_key.verification_method)
        return verify(secured, resolve_key=resolver, **options)
    return sign_and_verify


def test_expired_credential_fails(secure, achievement):
    credential = make_credential(achievement, valid_until=ISSUED + timedelta(days=10))
    result = secure(credential, now=ISSUED + timedelta(days=11))
    assert not result.ok and names(result)["signature"].ok
    assert names(result)["valid_until"].detail == "The credential expired on 11 March 2025, 12:00 UTC."


def test_not_yet_valid_credential_fails(secure, achievement):
    result = secure(make_credential(achievement), now=ISSUED - timedelta(days=1))
    assert not result.ok
    assert names(result)["valid_from"].detail == "The credential is not valid yet: it is valid from 01 March 2025, 12:00 UTC."


def test_small_clock_differences_are_tolerated(secure, achievement):
    assert secure(make_credential(achievement), now=ISSUED - timedelta(seconds=30)).ok


def test_revoked_credential_fails(secure, credential):
    published = {STATUS_LIST: statuslist.status_list_credential(STATUS_LIST, ISSUER_ID, statuslist.encode({7}))}
    result = secure(credential, now=NOW, check_status=statuslist.status_checker(published.get))
    assert not result.ok and names(result)["signature"].ok
    assert names(result)["revocation"].detail == (
        f"The credential has been revoked by its issuer (BitstringStatusListEntry {STATUS_LIST}).")


def test_credential_not_in_the_revocation_list_passes(secure, credential):
    published = {STATUS_LIST: statuslist.status_list_credential(STATUS_LIST, ISSUER_ID, statuslist.encode({6, 8}))}
    result = secure(credential, now=NOW, check_status=statuslist.status_checker(published.get))
    assert result.ok and names(result)["revocation"].detail.startswith("The credential has not been revoked")


def test_suspension_is_reported_as_such(secure, achievement):
    credential = make_credential(achievement, status_index=None)
    credential["credentialStatus"] = statuslist.status_entry(STATUS_LIST, 3, purpose="suspension")
    result = secure(credential, now=NOW, check_status=lambda entry: True)
    assert "has been suspended" in names(result)["revocation"].detail


@pytest.mark.parametrize("check_status, message", [
    (lambda entry: None, "could not be determined"),
    (lambda entry: 1 / 0, "could not be checked: division by zero"),
])
def test_unknown_status_fails_without_raising(secure, credential, check_status, message):
    result = secure(credential, now=NOW, check_status=check_status)
    assert not result.ok and message in names(result)["revocation"].detail


def test_schema_errors_fail_verification_unless_disabled(issuer_key, resolver, credential):
    broken = copy.deepcopy(credential)
    broken["credentialSubject"]["achievement"]["achievementType"] = "Nanodegree"
    token = sign_vc_jwt(broken, issuer_key)
    result = verify(token, resolve_key=resolver, now=NOW)
    assert names(result)["signature"].ok and not names(result)["schema"].ok
    assert "achievementType: 'Nanodegree'" in names(result)["schema"].detail
    assert verify(token, resolve_key=resolver, now=NOW, schema=False).ok


def test_resolver_errors_are_reported_not_raised(credential, issuer_key):
    def broken_resolver(issuer_id, kid):
        raise ConnectionError("issuer host unreachable")
    result = verify(sign_vc_jwt(credential, issuer_key), resolve_key=broken_resolver, now=NOW)
    assert not result.ok and "issuer host unreachable" in names(result)["issuer_key"].detail


def test_unsigned_credential_fails(credential):
    result = verify(credential, now=NOW)
    assert result.format == "unsigned" and not result.ok
    assert names(result)["signature"].detail.startswith("The credential carries no proof")
    assert names(result)["schema"].ok


def test_to_json_is_serialisable(credential, issuer_key, resolver):
    result = verify(sign_vc_jwt(credential, issuer_key), resolve_key=resolver, now=NOW)
    out = json.loads(json.dumps(result.to_json(include_credential=True)))
    assert out["ok"] is True and out["format"] == "vc-jwt" and out["credential"] == credential
    assert out["key"] == {"id": issuer_key.public_multibase(), "source": f"published in the key set of {ISSUER_ID}",
                          "selfAsserted": False}
    assert {"name": "signature", "ok": True, "skipped": False, "detail": names(result)["signature"].detail} in out["checks"]


def test_verify_accepts_text_and_bytes(credential, issuer_key):
    signed = sign_data_integrity(credential, issuer_key, verification_method=issuer_key.did_key_url())
    text = json.dumps(signed)
    assert verify(text, now=NOW).ok and verify(text.encode(), now=NOW).ok
    assert verify(sign_vc_jwt(credential, issuer_key, embed_jwk=True).encode() + b"\n", now=NOW).ok


@pytest.mark.parametrize("bad", [
    "", "   ", "hello", "a.b", "a.b.c", "e30.e30.", "W10.W10.", "{", "{\"a\": ", "[1, 2]", "null",
    b"\xff\xfe", 42, None, [], {}, {"type": ["VerifiableCredential"], "proof": "yes"},
    {"type": ["VerifiableCredential"], "proof": [1, 2]}, {"type": "Nope", "proof": []},
    {"type": ["EnvelopedVerifiableCredential"], "id": "data:application/vc+jwt,not-a-jwt"},
])
def test_malformed_input_never_raises(bad):
    result = verify(bad)
    assert not result.ok
    assert result.checks[0].name == "format" and result.checks[0].detail
    json.dumps(result.to_json())


@pytest.mark.parametrize("header, payload", [
    ({"alg": "EdDSA", "kid": 5}, {"type": ["VerifiableCredential"], "issuer": {"id": ["x"]}}),
    ({"alg": "EdDSA", "jwk": "not-a-jwk"}, {"type": ["VerifiableCredential"], "issuer": "did:key:zBad"}),
    ({"alg": "EdDSA"}, {"type": ["VerifiableCredential"], "validFrom": "yesterday", "nbf": 5, "credentialSubject": 7}),
])
def test_hostile_jwt_contents_never_raise(issuer_key, header, payload):
    result = verify(sign_jws(header, payload, issuer_key))
    assert not result.ok
    json.dumps(result.to_json())


def test_deeply_nested_input_never_raises():
    deep = "{\"a\": " * 100000 + "1" + "}" * 100000
    result = verify(deep)
    assert not result.ok and result.checks[0].detail == "The input is JSON nested too deeply to be a credential."


def test_not_a_verifiable_credential(issuer_key):
    token = sign_jws({"alg": "EdDSA"}, {"sub": "someone", "name": "not a credential"}, issuer_key)
    result = verify(token)
    assert not result.ok and "not a Verifiable Credential" in result.checks[0].detail


def test_public_key_from_resolver_may_be_a_multikey(credential, issuer_key):
    """A resolver for did:web documents answers with the publicKeyMultibase of the verification method."""
    def did_web(issuer_id, vm):
        return PublicKey.from_multibase(issuer_key.public_multibase(), source="published in did:web:lms.example.org")
    signed = sign_data_integrity(credential, issuer_key, verification_method="did:web:lms.example.org#key-1")
    result = verify(signed, resolve_key=did_web, now=NOW)
    assert result.ok and "published in did:web:lms.example.org" in names(result)["signature"].detail
