"""Keys, encodings and hashed identities (lms_bridge.credentials.keys), against published test vectors."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from lms_bridge.credentials.keys import (
    IssuerKey,
    PublicKey,
    b58decode,
    b58encode,
    b64url_encode,
    find_jwk,
    generate_issuer_key,
    identity_hash,
    multibase_decode,
    multibase_encode,
    normalize_email,
)

# RFC 8032 §7.1 TEST 1 key pair, which RFC 8037 Appendix A uses for its JWK and JWS examples.
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8037_JWK_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"  # RFC 8037 §A.3
RFC8037_JWS = (  # RFC 8037 §A.4: payload "Example of Ed25519 signing", header {"alg":"EdDSA"}
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def rfc_key() -> IssuerKey:
    return IssuerKey("rfc8037", Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET))


@pytest.mark.parametrize("raw, encoded", [
    (b"", ""),
    (b"Hello World!", "2NEpo7TZRRrLZSi2U"),  # draft-msporny-base58 §5 example
    (b"\x00\x00\x28\x7f\xb4\xcd", "11233QC4"),  # same draft: each leading zero byte becomes "1"
])
def test_base58btc_vectors(raw, encoded):
    assert b58encode(raw) == encoded
    assert b58decode(encoded) == raw


def test_base58_rejects_characters_outside_the_alphabet():
    with pytest.raises(ValueError, match="base58btc"):
        b58decode("0OIl")


def test_multibase_prefixes():
    assert multibase_encode(b"\x01\x02", "base58btc") == "z" + b58encode(b"\x01\x02")
    assert multibase_encode(b"\xfb\xff", "base64url") == "u-_8"
    assert multibase_decode("u-_8") == b"\xfb\xff"
    with pytest.raises(ValueError, match="prefix"):
        multibase_decode("mAQI")


def test_rfc8037_public_jwk_and_thumbprint():
    key = rfc_key()
    assert key.public_jwk() == {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_JWK_X, "kid": "rfc8037",
                                "alg": "EdDSA", "use": "sig"}
    assert key.public_key().thumbprint() == RFC8037_THUMBPRINT


def test_rfc8037_jws_signature_is_reproduced_and_verifies():
    key = rfc_key()
    signing_input, signature = RFC8037_JWS.rsplit(".", 1)
    assert b64url_encode(key.sign(signing_input.encode())) == signature
    public = PublicKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_JWK_X})
    assert public.verify(key.sign(signing_input.encode()), signing_input.encode(), "EdDSA")
    assert not public.verify(key.sign(b"other"), signing_input.encode(), "EdDSA")


def test_multikey_and_did_key_round_trip():
    key = generate_issuer_key()
    multibase = key.public_multibase()
    assert multibase.startswith("z6Mk") and len(multibase_decode(multibase)) == 34
    assert key.did_key_url() == f"did:key:{multibase}#{multibase}"
    from_did = PublicKey.from_did_key(key.did_key_url())
    assert from_did.describe() == multibase
    assert from_did.verify(key.sign(b"data"), b"data")
    with pytest.raises(ValueError, match="Multikey"):
        PublicKey.from_multibase("z" + b58encode(b"\x12\x00" + bytes(32)))  # not ed25519-pub


def test_generated_key_kid_is_its_thumbprint_and_pem_round_trips():
    key = generate_issuer_key()
    assert key.kid == key.public_key().thumbprint()
    again = IssuerKey.from_pem(key.private_pem(), kid=key.kid, verification_method="https://x.example/#k")
    assert again.public_multibase() == key.public_multibase()
    assert again.verification_method == "https://x.example/#k"
    assert "PRIVATE" not in repr(again) and key.private_pem() not in repr(again)


def test_from_pem_refuses_non_ed25519_keys():
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(ValueError, match="Ed25519"):
        IssuerKey.from_pem(pem, kid="rsa")


def test_public_key_from_jwk_refuses_private_and_unknown_keys():
    with pytest.raises(ValueError, match="private"):
        PublicKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_JWK_X, "d": "secret"})
    with pytest.raises(ValueError, match="unsupported"):
        PublicKey.from_jwk({"kty": "oct", "k": "c2VjcmV0"})
    with pytest.raises(ValueError, match="required member"):
        PublicKey.from_jwk({"kty": "RSA", "n": "AQAB"})


def test_algorithm_must_fit_the_key():
    ed = PublicKey(generate_issuer_key().private_key.public_key())
    assert ed.check_alg("EdDSA") is None
    assert "cannot verify" in ed.check_alg("RS256")
    small_rsa = PublicKey(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key())
    assert "fewer than 2048" in small_rsa.check_alg("RS256")
    p256 = PublicKey(ec.generate_private_key(ec.SECP256R1()).public_key())
    assert p256.check_alg("ES256") is None and "cannot verify" in p256.check_alg("ES384")


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_rsa_jws_signatures_verify(alg):
    from cryptography.hazmat.primitives.asymmetric import padding

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pad = padding.PKCS1v15() if alg == "RS256" else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    signature = private.sign(b"data", pad, hashes.SHA256())
    public = PublicKey.from_jwk(PublicKey(private.public_key()).public_jwk())
    assert public.verify(signature, b"data", alg)
    assert not public.verify(signature, b"Data", alg)


def test_es256_jws_signature_in_r_s_form_verifies():
    private = ec.generate_private_key(ec.SECP256R1())
    r, s = decode_dss_signature(private.sign(b"data", ec.ECDSA(hashes.SHA256())))
    jws_signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    public = PublicKey.from_jwk(PublicKey(private.public_key()).public_jwk())
    assert public.verify(jws_signature, b"data", "ES256")
    assert not public.verify(jws_signature, b"other", "ES256")
    assert not public.verify(jws_signature[:-1], b"data", "ES256")


def test_find_jwk_by_kid_or_url_fragment():
    jwks = {"keys": [{"kid": "a", "kty": "OKP"}, {"kid": "b", "kty": "OKP"}]}
    assert find_jwk(jwks, "b")["kid"] == "b"
    assert find_jwk(jwks, "https://issuer.example/jwks.json#a")["kid"] == "a"
    assert find_jwk(jwks, "c") is None
    assert find_jwk(jwks, None) is None  # ambiguous
    assert find_jwk({"keys": [{"kty": "OKP"}]}, None) == {"kty": "OKP"}


def test_identity_hash_is_sha256_of_value_then_salt():
    expected = hashlib.sha256(b"ada@example.org" + b"4f1a9c").hexdigest()
    assert identity_hash("ada@example.org", "4f1a9c") == "sha256$" + expected
    assert identity_hash("ada@example.org", "other") != identity_hash("ada@example.org", "4f1a9c")


def test_normalize_email():
    assert normalize_email("  Ada.Lovelace@Example.ORG \n") == "ada.lovelace@example.org"
    # NFC: a decomposed e + combining acute accent equals the precomposed é
    assert normalize_email("Re\u0301my@example.org") == normalize_email("R\u00e9my@example.org")
