"""Issuer keys, public keys for verification, multibase encodings and hashed recipient identities.

Issuer keys are Ed25519 (RFC 8032): ``EdDSA`` for VC-JWT (RFC 8037 OKP JWK) and the
``eddsa-rdfc-2022`` Data Integrity cryptosuite, whose verification methods name the key as a
Multikey (Controlled Identifiers 1.0 §2.2.2: multicodec ``ed25519-pub`` 0xed01 + 32 bytes,
multibase base58btc, so ``z6Mk...``). Verification also accepts the RSA and EC keys other issuers use
(the OB 3.0 specification's own VC-JWT examples are RS256 with an RSA key in the ``jwk`` header).
"""
from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ED25519_PUB_MULTICODEC = b"\xed\x01"  # multicodec table: ed25519-pub, varint-encoded
DID_KEY_PREFIX = "did:key:"

# -- encodings ---------------------------------------------------------------------------

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


def b58encode(data: bytes) -> str:
    """Base58 with the Bitcoin alphabet (multibase ``base58btc``); leading zero bytes become ``1``."""
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, rem = divmod(n, 58)
        out.append(_B58_ALPHABET[rem])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for char in text:
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise ValueError(f"{char!r} is not a base58btc character")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + (n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b"")


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2 "Base64url Encoding")."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or any(c in text for c in "+/= \n"):
        raise ValueError("not base64url without padding")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def multibase_encode(data: bytes, base: str = "base58btc") -> str:
    """Multibase string: ``z`` + base58btc, or ``u`` + base64url without padding."""
    if base == "base58btc":
        return "z" + b58encode(data)
    if base == "base64url":
        return "u" + b64url_encode(data)
    raise ValueError(f"unsupported multibase encoding {base!r}")


def multibase_decode(text: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise ValueError("empty multibase value")
    if text[0] == "z":
        return b58decode(text[1:])
    if text[0] == "u":
        return b64url_decode(text[1:])
    raise ValueError(f"unsupported multibase prefix {text[0]!r} (expected 'z' base58btc or 'u' base64url)")


# -- public keys -------------------------------------------------------------------------

# JWS "alg" (RFC 7518 §3.1, RFC 8037 §3.1) -> (key class, hash, RSA padding or EC curve size).
_RSA_ALGS = {"RS256": hashes.SHA256, "RS384": hashes.SHA384, "RS512": hashes.SHA512,
             "PS256": hashes.SHA256, "PS384": hashes.SHA384, "PS512": hashes.SHA512}
_EC_ALGS = {"ES256": (hashes.SHA256, "secp256r1"), "ES384": (hashes.SHA384, "secp384r1"),
            "ES512": (hashes.SHA512, "secp521r1")}
_EC_CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class PublicKey:
    """A public key to check signatures with, and where it came from (for the verifier's report).

    ``source`` is plain language completing "the issuer key ... ", such as "published at
    https://example.org/issuers/1/jwks.json"; ``self_asserted`` marks a key taken from the credential
    itself (a ``jwk`` header or a key fragment), which proves integrity but not who the issuer is.
    """

    key: Ed25519PublicKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    kid: str | None = None
    source: str = ""
    self_asserted: bool = False

    @classmethod
    def from_jwk(cls, jwk: dict, *, source: str = "", self_asserted: bool = False) -> PublicKey:
        """From an RFC 7517 JWK: OKP/Ed25519 (RFC 8037), RSA or EC P-256/384/521. Raises ValueError."""
        if not isinstance(jwk, dict):
            raise ValueError("a JWK must be a JSON object")
        if "d" in jwk or "p" in jwk:
            raise ValueError("the JWK contains private key material")
        kty = jwk.get("kty")
        try:
            if kty == "OKP" and jwk.get("crv") == "Ed25519":
                key = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
            elif kty == "RSA":
                key = rsa.RSAPublicNumbers(_b64url_int(jwk["e"]), _b64url_int(jwk["n"])).public_key()
            elif kty == "EC" and jwk.get("crv") in _EC_CURVES:
                key = ec.EllipticCurvePublicNumbers(
                    _b64url_int(jwk["x"]), _b64url_int(jwk["y"]), _EC_CURVES[jwk["crv"]]()
                ).public_key()
            else:
                raise ValueError(f"unsupported JWK key type {kty!r} / curve {jwk.get('crv')!r}")
        except (KeyError, TypeError) as exc:
            raise ValueError(f"the JWK lacks a required member: {exc}") from exc
        return cls(key, jwk.get("kid"), source, self_asserted)

    @classmethod
    def from_multibase(cls, value: str, *, kid: str | None = None, source: str = "",
                       self_asserted: bool = False) -> PublicKey:
        """From a Multikey ``publicKeyMultibase`` (``z6Mk...``: ed25519-pub multicodec, base58btc)."""
        raw = multibase_decode(value)
        if not raw.startswith(ED25519_PUB_MULTICODEC) or len(raw) != 34:
            raise ValueError("not an Ed25519 Multikey (multicodec 0xed01 followed by 32 bytes)")
        return cls(Ed25519PublicKey.from_public_bytes(raw[2:]), kid, source, self_asserted)

    @classmethod
    def from_did_key(cls, did_url: str, *, source: str = "", self_asserted: bool = False) -> PublicKey:
        """From a ``did:key`` DID or DID URL (did:key v0.7 §3.1.2: the key is the identifier)."""
        if not did_url.startswith(DID_KEY_PREFIX):
            raise ValueError(f"{did_url!r} is not a did:key identifier")
        value = did_url[len(DID_KEY_PREFIX):].split("#", 1)[0]
        return cls.from_multibase(value, kid=did_url, source=source or f"derived from the identifier {did_url}",
                                  self_asserted=self_asserted)

    def public_jwk(self) -> dict:
        if isinstance(self.key, Ed25519PublicKey):
            jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(_raw_public(self.key))}
        elif isinstance(self.key, rsa.RSAPublicKey):
            numbers = self.key.public_numbers()
            jwk = {"kty": "RSA", "e": _int_b64url(numbers.e), "n": _int_b64url(numbers.n)}
        else:
            numbers = self.key.public_numbers()
            crv = {v.name: k for k, v in _EC_CURVES.items()}[self.key.curve.name]
            size = (self.key.curve.key_size + 7) // 8
            jwk = {"kty": "EC", "crv": crv, "x": _int_b64url(numbers.x, size), "y": _int_b64url(numbers.y, size)}
        return jwk

    def thumbprint(self) -> str:
        """RFC 7638 JWK thumbprint (SHA-256, base64url)."""
        members = json.dumps(self.public_jwk(), sort_keys=True, separators=(",", ":"))
        return b64url_encode(hashlib.sha256(members.encode()).digest())

    def describe(self) -> str:
        """Short plain name: the Multikey for Ed25519, else type, size and thumbprint."""
        if isinstance(self.key, Ed25519PublicKey):
            return multibase_encode(ED25519_PUB_MULTICODEC + _raw_public(self.key))
        if isinstance(self.key, rsa.RSAPublicKey):
            return f"RSA-{self.key.key_size} (JWK thumbprint {self.thumbprint()})"
        return f"EC {self.key.curve.name} (JWK thumbprint {self.thumbprint()})"

    def check_alg(self, alg: str) -> str | None:
        """Why this key cannot verify JWS ``alg`` (so a header cannot pick a weaker algorithm), or None."""
        if isinstance(self.key, Ed25519PublicKey):
            return None if alg in ("EdDSA", "Ed25519") else f"an Ed25519 key cannot verify {alg!r}"
        if isinstance(self.key, rsa.RSAPublicKey):
            if alg not in _RSA_ALGS:
                return f"an RSA key cannot verify {alg!r}"
            if self.key.key_size < MIN_RSA_BITS:
                return f"the RSA key has {self.key.key_size} bits, fewer than {MIN_RSA_BITS}"
            return None
        if alg not in _EC_ALGS or _EC_ALGS[alg][1] != self.key.curve.name:
            return f"an EC {self.key.curve.name} key cannot verify {alg!r}"
        return None

    def verify(self, signature: bytes, data: bytes, alg: str = "EdDSA") -> bool:
        """True when ``signature`` over ``data`` is valid for this key and JWS ``alg``."""
        if self.check_alg(alg):
            return False
        try:
            if isinstance(self.key, Ed25519PublicKey):
                self.key.verify(signature, data)
            elif isinstance(self.key, rsa.RSAPublicKey):
                digest = _RSA_ALGS[alg]()
                pad = (padding.PKCS1v15() if alg.startswith("RS")
                       else padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size))
                self.key.verify(signature, data, pad, digest)
            else:
                # JWS carries EC signatures as R || S (RFC 7518 §3.4), cryptography wants DER.
                half = len(signature) // 2
                if len(signature) != 2 * ((self.key.curve.key_size + 7) // 8):
                    return False
                der = encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
                self.key.verify(der, data, ec.ECDSA(_EC_ALGS[alg][0]()))
        except InvalidSignature:
            return False
        return True


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64url_int(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


def _int_b64url(value: int, size: int | None = None) -> str:
    return b64url_encode(value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), "big"))


def find_jwk(jwks: dict, kid: str | None) -> dict | None:
    """The key for ``kid`` in a JWKS (RFC 7517 §5); a kid given as a URL also matches on its fragment.

    With no kid, the set's only key (a set with several keys and no kid is ambiguous: None).
    """
    keys = [k for k in (jwks or {}).get("keys", []) if isinstance(k, dict)]
    if kid is None:
        return keys[0] if len(keys) == 1 else None
    fragment = kid.rsplit("#", 1)[-1]
    for jwk in keys:
        if jwk.get("kid") in (kid, fragment):
            return jwk
    return None


# -- issuer keys -------------------------------------------------------------------------


@dataclass
class IssuerKey:
    """An issuer's Ed25519 signing key.

    ``kid`` names it in the issuer's JWKS (defaults to the RFC 7638 thumbprint);
    ``verification_method`` is the URL verifiers dereference to find the public key (a JWKS key URL,
    a ``did:web`` DID URL, or the ``did:key`` URL of :meth:`did_key_url`), set by the caller, who
    knows where keys are published. Signers fall back to :meth:`did_key_url` when it is unset.
    A verification method whose fragment is the kid (``https://host/issuers/7#<kid>``) is what
    :func:`.verify.jwks_resolver` and :func:`find_jwk` match against a published JWKS.
    """

    kid: str
    private_key: Ed25519PrivateKey = field(repr=False)
    verification_method: str | None = None

    @classmethod
    def from_pem(cls, pem: str | bytes, kid: str, verification_method: str | None = None) -> IssuerKey:
        """From an unencrypted PKCS#8 PEM, as :meth:`private_pem` writes it. Raises ValueError."""
        key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("issuer keys must be Ed25519")
        return cls(kid, key, verification_method)

    def private_pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")

    def public_key(self) -> PublicKey:
        return PublicKey(self.private_key.public_key(), self.kid)

    def public_jwk(self) -> dict:
        """The OKP JWK to publish in the issuer's JWKS (RFC 8037 §2)."""
        return {**self.public_key().public_jwk(), "kid": self.kid, "alg": "EdDSA", "use": "sig"}

    def public_multibase(self) -> str:
        """The Multikey ``publicKeyMultibase`` value, ``z6Mk...``."""
        return multibase_encode(ED25519_PUB_MULTICODEC + _raw_public(self.private_key.public_key()))

    def did_key(self) -> str:
        return DID_KEY_PREFIX + self.public_multibase()

    def did_key_url(self) -> str:
        """``did:key:z6Mk...#z6Mk...``: a verification method anyone can resolve without a network."""
        return f"{self.did_key()}#{self.public_multibase()}"

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)


def generate_issuer_key(kid: str | None = None, verification_method: str | None = None) -> IssuerKey:
    """A new Ed25519 issuer key; ``kid`` defaults to the public key's RFC 7638 thumbprint."""
    private_key = Ed25519PrivateKey.generate()
    return IssuerKey(kid or PublicKey(private_key.public_key()).thumbprint(), private_key, verification_method)


# -- recipient identities ----------------------------------------------------------------


def normalize_email(email: str) -> str:
    """The form of an e-mail address that is hashed: trimmed, Unicode NFC, lower case.

    Lower-casing the local part is what OB 2.0/3.0 issuers and verifiers do in practice, so a
    learner proving "ada@Example.org" matches a credential issued to "Ada@example.org".
    """
    return unicodedata.normalize("NFC", email.strip()).lower()


def identity_hash(value: str, salt: str) -> str:
    """OB 3.0 data model, IdentityHash (used by IdentityObject.identityHash when ``hashed`` is true):
    ``sha256$`` + hex SHA-256 of the identity value followed by the salt, as in OB 2.0."""
    return "sha256$" + hashlib.sha256((value + (salt or "")).encode("utf-8")).hexdigest()
