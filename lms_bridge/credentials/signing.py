"""Securing credentials: VC-JWT (OB 3.0 §8.2) and Data Integrity ``eddsa-rdfc-2022``.

VC-JWT follows what OB 3.0 §8.2 ("JSON Web Token Proof Format") and the specification's own
``*.vc-jwt.txt`` examples do: a compact JWS (RFC 7515) whose payload is the credential itself with
the JWT registered claims beside it (``iss`` = issuer id, ``jti`` = credential id, ``sub`` =
subject id, ``nbf`` = validFrom, ``exp`` = validUntil), header ``typ`` "JWT". :mod:`.verify` also
reads the older form that wraps the credential in a ``vc`` claim.

Data Integrity follows VC Data Integrity EdDSA Cryptosuites v1.0 §3.2 (eddsa-rdfc-2022): hash the
RDFC-1.0 canonical form of the proof configuration and of the document without proof (SHA-256
each), sign ``proofConfigHash || documentHash`` with Ed25519, multibase base58btc the signature.
"""
from __future__ import annotations

import copy
import hashlib
import json
from datetime import datetime, timezone

from .keys import IssuerKey, b64url_decode, b64url_encode, multibase_encode
from .ob3 import iso_datetime, parse_datetime

CRYPTOSUITE = "eddsa-rdfc-2022"
JWT_CLAIMS = ("iss", "jti", "sub", "nbf", "exp", "iat", "aud")


def _id(value) -> str | None:
    """``id`` of an issuer/subject given as an object or as a bare IRI (VC 2.0 §4.7)."""
    return value.get("id") if isinstance(value, dict) else value if isinstance(value, str) else None


def _timestamp(value: str) -> int:
    return int(parse_datetime(value).timestamp())


# -- VC-JWT ----------------------------------------------------------------------------------


def jwt_claims(credential: dict) -> dict:
    """The JWT registered claims OB 3.0 §8.2 derives from a credential."""
    subject = credential.get("credentialSubject")
    claims = {
        "iss": _id(credential.get("issuer")),
        "jti": credential.get("id"),
        "sub": _id(subject[0] if isinstance(subject, list) and subject else subject),
        "nbf": _timestamp(credential["validFrom"]) if credential.get("validFrom") else None,
        "exp": _timestamp(credential["validUntil"]) if credential.get("validUntil") else None,
    }
    return {k: v for k, v in claims.items() if v is not None}


def _json(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_vc_jwt(credential: dict, key: IssuerKey, *, typ: str = "JWT", embed_jwk: bool = False) -> str:
    """Compact JWS of ``credential`` (OB 3.0 §8.2), ``alg`` EdDSA (RFC 8037).

    Header ``kid`` is the key's verification method (or its JWKS kid), which verifiers resolve to
    the issuer's published key. ``embed_jwk`` also puts the public key in a ``jwk`` header, as the
    specification's examples do, for verifiers that cannot resolve ``kid`` (they then learn the
    credential is intact, not who signed it). ``typ`` "vc+jwt" gives the VC-JOSE-COSE media type.
    """
    if not isinstance(credential.get("@context"), list):
        raise ValueError("the credential has no @context list")
    header = {"alg": "EdDSA", "typ": typ, "kid": key.verification_method or key.kid}
    if embed_jwk:
        header["jwk"] = {k: v for k, v in key.public_jwk().items() if k in ("kty", "crv", "x")}
    payload = {**credential, **jwt_claims(credential)}
    signing_input = f"{b64url_encode(_json(header))}.{b64url_encode(_json(payload))}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"


def decode_jws(token: str) -> tuple[dict, dict, bytes, bytes]:
    """(header, payload, signing input, signature) of a compact JWS; ValueError when malformed.

    Does not check the signature.
    """
    if not isinstance(token, str):
        raise ValueError("a VC-JWT is a string")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ValueError(f"a compact JWS has 3 dot-separated parts, this has {len(parts)}")
    try:
        header = json.loads(b64url_decode(parts[0]))
        payload = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"the JWS parts are not base64url-encoded JSON: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("the JWS header and payload must be JSON objects")
    return header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def credential_from_jwt_payload(payload: dict) -> dict:
    """The credential in a VC-JWT payload: the ``vc`` claim (VC-JWT 1.1 form) or the payload minus
    the JWT registered claims (OB 3.0.3 / VC-JOSE-COSE form)."""
    if isinstance(payload.get("vc"), dict) and "@context" not in payload:
        return payload["vc"]
    return {k: v for k, v in payload.items() if k not in JWT_CLAIMS}


# -- Data Integrity --------------------------------------------------------------------------


def _without_proof(document: dict) -> dict:
    return {k: v for k, v in document.items() if k != "proof"}


def data_integrity_hash(document: dict, proof_options: dict) -> bytes:
    """``proofConfigHash || transformedDocumentHash`` (eddsa-rdfc-2022 §3.2.4 Hashing).

    ``proof_options`` is the proof without ``proofValue``; it gets the document's ``@context``
    (§3.2.5 Proof Configuration) before canonicalisation. Raises
    :class:`.jsonld.CanonicalizationError` for documents that cannot be canonicalised offline.
    """
    from .jsonld import canonicalize  # PyLD loads only when Data Integrity is used

    config = {**{k: v for k, v in proof_options.items() if k != "proofValue"}, "@context": document.get("@context")}
    config_hash = hashlib.sha256(canonicalize(config).encode("utf-8")).digest()
    document_hash = hashlib.sha256(canonicalize(_without_proof(document)).encode("utf-8")).digest()
    return config_hash + document_hash


def sign_data_integrity(credential: dict, key: IssuerKey, *, verification_method: str | None = None,
                        created: datetime | None = None) -> dict:
    """A copy of ``credential`` with a ``DataIntegrityProof`` (eddsa-rdfc-2022 §3.2.1 Create Proof).

    ``verification_method`` (default: the key's, else its did:key URL) must dereference to this
    key's Multikey. ``proof`` is written as a list (the OB 3.0 schema requires one); an existing
    proof is kept and the new one is added to the proof set (VC Data Integrity 1.0 §2.1.2), signing
    the document without any proofs.
    """
    proof = {
        "type": "DataIntegrityProof",
        "cryptosuite": CRYPTOSUITE,
        "created": iso_datetime(created or datetime.now(timezone.utc)),
        "verificationMethod": verification_method or key.verification_method or key.did_key_url(),
        "proofPurpose": "assertionMethod",
    }
    signature = key.sign(data_integrity_hash(credential, proof))
    proof["proofValue"] = multibase_encode(signature, "base58btc")
    existing = credential.get("proof")
    existing = [] if existing is None else existing if isinstance(existing, list) else [existing]
    secured = copy.deepcopy(_without_proof(credential))
    secured["proof"] = copy.deepcopy(existing) + [proof]
    return secured
