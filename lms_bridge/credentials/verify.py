"""Verifying Open Badges 3.0 credentials, reporting in plain words what was checked.

Accepts a VC-JWT (OB 3.0 §8.2, both the OB 3.0.3 form with the credential as JWT payload and the
older ``vc`` claim form), a credential with Data Integrity proofs (``eddsa-rdfc-2022``, VC Data
Integrity EdDSA Cryptosuites v1.0 §3.2.2 Verify Proof), a VC 2.0 ``EnvelopedVerifiableCredential``
(VC 2.0 "Enveloped Verifiable Credentials") wrapping a VC-JWT, or an unsigned credential (which fails the signature check).
Checks, in order: ``format``, ``issuer_key``, ``signature``, ``jwt_claims`` (VC-JWT only),
``schema``, ``valid_from``, ``valid_until``, ``revocation``. Bad input never raises: it yields a
failed ``format`` check.

Keys: ``resolve_key(issuer_id, kid_or_verification_method)`` is asked first (e.g.
:func:`jwks_resolver` over the issuer profiles this application publishes); it must answer None
for a key that does not belong to that issuer. Without an answer, keys that need no lookup are
used: a ``did:key`` (the identifier is the key), and, with ``trust_embedded_keys``, a key carried by
the credential itself (a JWT ``jwk`` header or a Multikey fragment such as
``https://issuer.example/#z6Mk...``, as in the OB 3.0 examples). Those are reported as
self-asserted: they show the credential is intact, not who issued it.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .keys import DID_KEY_PREFIX, PublicKey, find_jwk, multibase_decode
from .ob3 import parse_datetime
from .schema import validate_ob3
from .signing import CRYPTOSUITE, credential_from_jwt_payload, decode_jws, jwt_claims

log = logging.getLogger(__name__)
ResolveKey = Callable[[str, "str | None"], "PublicKey | None"]
CheckStatus = Callable[[dict], "bool | None"]

CLOCK_SKEW = timedelta(seconds=60)  # tolerated difference between the issuer's clock and ours
JWT_ALGS = ("EdDSA", "Ed25519", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
# "typ" values of credentials: OB 3.0 §8.2 ("JWT") and VC-JOSE-COSE media types. Anything else (an
# access token, an ID token) is a different kind of JWT and must not pass for a credential.
JWT_TYPES = (None, "JWT", "vc+jwt", "vc+ld+jwt", "vc+ld+json+jwt", "application/vc+jwt")


@dataclass
class Check:
    """One verification step. ``skipped`` marks a step that did not apply or was not requested
    (``ok`` is then True: it does not make the credential fail)."""

    name: str
    ok: bool
    detail: str
    skipped: bool = False

    def to_json(self) -> dict:
        return {"name": self.name, "ok": self.ok, "skipped": self.skipped, "detail": self.detail}


@dataclass
class VerificationResult:
    format: str  # "vc-jwt" | "data-integrity" | "unsigned" | "unknown" (input not understood)
    checks: list[Check] = field(default_factory=list)
    credential: dict | None = None
    key: PublicKey | None = None  # the key the signature was checked with

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def summary(self) -> str:
        if self.ok:
            return "The credential is valid: " + "; ".join(c.detail for c in self.checks if not c.skipped)
        return "The credential is NOT valid: " + "; ".join(c.detail for c in self.failed())

    def to_json(self, include_credential: bool = False) -> dict:
        """A JSON-ready dict for the verification endpoint."""
        out = {"ok": self.ok, "format": self.format, "checks": [c.to_json() for c in self.checks]}
        if self.key is not None:
            out["key"] = {"id": self.key.describe(), "source": self.key.source, "selfAsserted": self.key.self_asserted}
        if include_credential:
            out["credential"] = self.credential
        return out


def jwks_resolver(lookup: Callable[[str], dict | None]) -> ResolveKey:
    """A ``resolve_key`` over JWKS documents: ``lookup(issuer_id)`` returns that issuer's JWKS
    (or None). The kid / verification method is matched on the key's ``kid`` or on its fragment."""

    def resolve(issuer_id: str, ref: str | None) -> PublicKey | None:
        jwk = find_jwk(lookup(issuer_id) or {}, ref)
        return PublicKey.from_jwk(jwk, source=f"published in the key set of {issuer_id}") if jwk else None

    return resolve


# -- helpers -----------------------------------------------------------------------------------


def _issuer_id(credential: dict) -> str | None:
    issuer = credential.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
    return issuer_id if isinstance(issuer_id, str) else None


def _when(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%d %B %Y, %H:%M UTC")


def _fragment_key(ref: str) -> str | None:
    """The Multikey in a verification method's fragment (``...#z6Mk...``), or None."""
    fragment = ref.rsplit("#", 1)[1] if "#" in ref else ""
    return fragment if fragment.startswith("z6Mk") else None


class _Resolution:
    """The outcome of finding the issuer key: the key, or why there is none."""

    def __init__(self, key: PublicKey | None = None, problem: str = ""):
        self.key, self.problem = key, problem


def _resolve_key(issuer_id: str | None, ref: str | None, resolve_key: ResolveKey | None,
                 header_jwk: dict | None, trust_embedded_keys: bool) -> _Resolution:
    if ref is not None and not isinstance(ref, str):
        return _Resolution(problem=f"The key reference {ref!r} is not a string.")
    shown = ref or "(none named)"
    if resolve_key is not None and issuer_id:
        try:
            key = resolve_key(issuer_id, ref)
        except Exception as exc:  # a resolver's network or parse error is a verification outcome
            return _Resolution(problem=f"Looking up the key {shown} of {issuer_id} failed: {exc}")
        if key is not None:
            return _Resolution(key)
    try:
        did = ref if ref and ref.startswith(DID_KEY_PREFIX) else None
        if not ref and issuer_id and issuer_id.startswith(DID_KEY_PREFIX):
            did = issuer_id  # no key named: a did:key issuer is its own key
        if did:
            controller = did.split("#", 1)[0]
            if controller == issuer_id:
                return _Resolution(PublicKey.from_did_key(did, source=f"derived from the issuer's own identifier {controller}"))
            return _Resolution(PublicKey.from_did_key(
                did, self_asserted=True,
                source=f"derived from the identifier {controller}, which nothing links to the issuer {issuer_id}"))
        if trust_embedded_keys and header_jwk is not None:
            return _Resolution(PublicKey.from_jwk(header_jwk, source="carried in the JWT header (jwk)", self_asserted=True))
        if trust_embedded_keys and ref and _fragment_key(ref):
            return _Resolution(PublicKey.from_multibase(
                _fragment_key(ref), kid=ref, self_asserted=True,
                source=f"named in the verification method {ref} itself (not fetched from {ref.split('#', 1)[0]})"))
    except ValueError as exc:
        return _Resolution(problem=f"The key {shown} is malformed: {exc}")
    return _Resolution(problem=(
        f"The issuer key {shown} of {issuer_id or 'an unnamed issuer'} could not be resolved: "
        "it is not a key this verifier knows for that issuer" + ("" if trust_embedded_keys else
                                                                 ", and keys carried by the credential itself are not trusted")))


def _key_check(resolution: _Resolution, issuer_id: str | None) -> Check:
    key = resolution.key
    if key is None:
        return Check("issuer_key", False, resolution.problem)
    detail = f"The issuer key {key.describe()} was {key.source}."
    if key.self_asserted:
        detail += (f" The key comes from the credential itself: it proves the credential is intact, "
                   f"not that {issuer_id or 'the named issuer'} issued it.")
    return Check("issuer_key", True, detail)


def _signature_ok(key: PublicKey, alg: str) -> Check:
    return Check("signature", True, f"The signature ({alg}) matches the issuer key {key.describe()} {key.source}.")


def _signature_bad(key: PublicKey, alg: str) -> Check:
    return Check("signature", False, (
        f"The signature ({alg}) does not match the issuer key {key.describe()}: the credential was changed "
        "after it was signed, or it was signed with another key."))


# -- the two proof formats -----------------------------------------------------------------


def _verify_jwt(token: str, resolve_key, trust_embedded_keys) -> tuple[VerificationResult, dict]:
    """Result with format/issuer_key/signature/jwt_claims checks, and the JWT claims for the time checks."""
    try:
        header, payload, signing_input, signature = decode_jws(token)
    except ValueError as exc:
        return VerificationResult("vc-jwt", [Check("format", False, f"This is not a readable VC-JWT: {exc}.")]), {}
    credential = credential_from_jwt_payload(payload)
    if "vc" in payload and "@context" not in payload:
        # VC-JWT 1.1 form: id and issuer may live only in the jti and iss claims.
        for member, claim in (("id", "jti"), ("issuer", "iss")):
            if member not in credential and claim in payload:
                credential[member] = payload[claim]
    result = VerificationResult("vc-jwt", credential=credential)
    alg = header.get("alg")
    problem = (
        f"uses the algorithm {alg!r}, which is not accepted (accepted: {', '.join(JWT_ALGS)})" if alg not in JWT_ALGS
        else f"has the type {header['typ']!r}, not a credential's" if header.get("typ") not in JWT_TYPES
        # RFC 7515 §4.1.11: extensions listed in "crit" must be understood; this verifier knows none.
        else f"requires the header extensions {header['crit']!r}, which this verifier does not support" if "crit" in header
        else ""
    )
    if problem:
        result.checks.append(Check("format", False, f"The VC-JWT {problem}."))
        return result, {}
    result.checks.append(Check("format", True, f"A VC-JWT (OB 3.0 §8.2, compact JWS, {alg})."))
    issuer_id = _issuer_id(credential)
    resolution = _resolve_key(issuer_id, header.get("kid"), resolve_key, header.get("jwk"), trust_embedded_keys)
    result.checks.append(_key_check(resolution, issuer_id))
    if resolution.key is None:
        result.checks.append(Check("signature", False, "The signature could not be checked without the issuer key."))
    else:
        result.key = resolution.key
        problem = resolution.key.check_alg(alg)
        if problem:
            result.checks.append(Check("signature", False, f"The signature cannot be accepted: {problem}."))
        elif resolution.key.verify(signature, signing_input, alg):
            result.checks.append(_signature_ok(resolution.key, alg))
        else:
            result.checks.append(_signature_bad(resolution.key, alg))
    result.checks.append(_claims_check(payload, credential))
    return result, payload


def _claims_check(payload: dict, credential: dict) -> Check:
    """OB 3.0 §8.2: iss, jti, sub, nbf, exp must agree with the credential they stand for."""
    try:
        expected = jwt_claims(credential)
    except (ValueError, TypeError, AttributeError) as exc:
        return Check("jwt_claims", False, f"The JWT claims cannot be compared with the credential: {exc}.")
    wrong = [f"{name} is {payload[name]!r} but the credential says {expected[name]!r}"
             for name in ("iss", "jti", "sub", "nbf", "exp") if name in payload and name in expected
             and payload[name] != expected[name]]
    if wrong:
        return Check("jwt_claims", False, "The JWT claims contradict the credential: " + "; ".join(wrong) + ".")
    present = [name for name in ("iss", "jti", "sub", "nbf", "exp") if name in payload]
    return Check("jwt_claims", True, f"The JWT claims ({', '.join(present) or 'none'}) agree with the credential.")


def _verify_data_integrity(credential: dict, resolve_key, trust_embedded_keys, now: datetime) -> VerificationResult:
    from .jsonld import CanonicalizationError
    from .signing import data_integrity_hash

    result = VerificationResult("data-integrity", credential=credential)
    proofs = credential.get("proof")
    proofs = proofs if isinstance(proofs, list) else [proofs]
    if not proofs or not all(isinstance(p, dict) for p in proofs):
        result.checks.append(Check("format", False, "The credential's proof is not a proof object or a list of them."))
        return result
    result.checks.append(Check("format", True, f"A credential with {len(proofs)} embedded Data Integrity "
                                               f"proof{'s' if len(proofs) > 1 else ''} (VC Data Integrity 1.0)."))
    issuer_id = _issuer_id(credential)
    key_checks, signature_checks = [], []
    for proof in proofs:
        label = f" {proof.get('verificationMethod')}" if len(proofs) > 1 else ""
        if proof.get("type") != "DataIntegrityProof" or proof.get("cryptosuite") != CRYPTOSUITE:
            signature_checks.append(Check("signature", False, (
                f"The proof type {proof.get('type')!r} / cryptosuite {proof.get('cryptosuite')!r} is not supported "
                f"(supported: DataIntegrityProof with {CRYPTOSUITE}).")))
            continue
        if proof.get("proofPurpose") != "assertionMethod":
            signature_checks.append(Check("signature", False, (
                f"The proof's purpose is {proof.get('proofPurpose')!r}; a credential needs 'assertionMethod'.")))
            continue
        try:  # VC Data Integrity 1.0 proof option "expires" (PROOF_EXPIRED)
            expired = "expires" in proof and parse_datetime(proof["expires"]) < now - CLOCK_SKEW
        except ValueError:
            signature_checks.append(Check("signature", False, f"The proof's expiry {proof['expires']!r} cannot be read."))
            continue
        if expired:
            signature_checks.append(Check("signature", False, f"The proof expired on {proof['expires']}."))
            continue
        resolution = _resolve_key(issuer_id, proof.get("verificationMethod"), resolve_key, None, trust_embedded_keys)
        key_checks.append(_key_check(resolution, issuer_id))
        if resolution.key is None:
            signature_checks.append(Check("signature", False, "The signature could not be checked without the issuer key."))
            continue
        result.key = resolution.key
        try:
            signature = multibase_decode(proof.get("proofValue") or "")
            if not proof["proofValue"].startswith("z"):
                raise ValueError("proofValue must be multibase base58btc ('z...')")
            data = data_integrity_hash(credential, proof)
        except CanonicalizationError as exc:
            signature_checks.append(Check("signature", False, f"The signed data could not be rebuilt offline: {exc}"))
            continue
        except ValueError as exc:
            signature_checks.append(Check("signature", False, f"The proof value is malformed: {exc}."))
            continue
        if resolution.key.verify(signature, data, "EdDSA"):
            signature_checks.append(_signature_ok(resolution.key, f"{CRYPTOSUITE}{label}"))
        else:
            signature_checks.append(_signature_bad(resolution.key, CRYPTOSUITE))
    result.checks.extend(_merge(key_checks) + _merge(signature_checks))
    return result


def _merge(checks: list[Check]) -> list[Check]:
    """One check per name for a proof set: failed if any proof failed."""
    if len(checks) <= 1:
        return checks
    return [Check(checks[0].name, all(c.ok for c in checks), " ".join(c.detail for c in checks))]


# -- checks on the credential itself -----------------------------------------------------------


def _time_checks(credential: dict, claims: dict, now: datetime) -> list[Check]:
    try:
        starts = [parse_datetime(credential[k]) for k in ("validFrom", "issuanceDate") if k in credential]
        ends = [parse_datetime(credential[k]) for k in ("validUntil", "expirationDate") if k in credential]
        starts += [datetime.fromtimestamp(claims["nbf"], timezone.utc)] if isinstance(claims.get("nbf"), (int, float)) else []
        ends += [datetime.fromtimestamp(claims["exp"], timezone.utc)] if isinstance(claims.get("exp"), (int, float)) else []
    except (ValueError, OverflowError, OSError) as exc:
        bad = Check("valid_from", False, f"The credential's validity dates cannot be read: {exc}.")
        return [bad, Check("valid_until", False, bad.detail)]
    checks = []
    if not starts:
        checks.append(Check("valid_from", True, "The credential names no start of validity.", skipped=True))
    elif now + CLOCK_SKEW < max(starts):
        checks.append(Check("valid_from", False, f"The credential is not valid yet: it is valid from {_when(max(starts))}."))
    else:
        checks.append(Check("valid_from", True, f"The credential is valid from {_when(max(starts))}."))
    if not ends:
        checks.append(Check("valid_until", True, "The credential does not expire.", skipped=True))
    elif now - CLOCK_SKEW > min(ends):
        checks.append(Check("valid_until", False, f"The credential expired on {_when(min(ends))}."))
    else:
        checks.append(Check("valid_until", True, f"The credential is valid until {_when(min(ends))}."))
    return checks


def _status_check(credential: dict, check_status: CheckStatus | None) -> Check:
    entries = credential.get("credentialStatus")
    entries = [] if entries is None else entries if isinstance(entries, list) else [entries]
    if not entries:
        return Check("revocation", True, "The credential names no status list, so it cannot be revoked.", skipped=True)
    names = ", ".join(f"{e.get('type')} {e.get('statusListCredential') or e.get('id')}"
                      if isinstance(e, dict) else repr(e) for e in entries)
    if check_status is None:
        return Check("revocation", True, f"The credential's status ({names}) was not checked.", skipped=True)
    for entry in entries:
        try:
            status = check_status(entry)
        except Exception as exc:  # the status list host being down is an outcome, not a crash
            return Check("revocation", False, f"The credential's status ({names}) could not be checked: {exc}.")
        if status is None:
            return Check("revocation", False, f"The credential's status ({names}) could not be determined.")
        if status:
            purpose = entry.get("statusPurpose", "revocation") if isinstance(entry, dict) else "revocation"
            state = "suspended" if purpose == "suspension" else "revoked"
            return Check("revocation", False, f"The credential has been {state} by its issuer ({names}).")
    return Check("revocation", True, f"The credential has not been revoked ({names}).")


def _schema_check(credential: dict) -> Check:
    errors = validate_ob3(credential)
    if errors:
        shown = "; ".join(errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
        return Check("schema", False, f"The credential does not match the 1EdTech OB 3.0 JSON schema: {shown}.")
    return Check("schema", True, "The credential matches the 1EdTech OB 3.0 JSON schema.")


# -- entry point -------------------------------------------------------------------------------


def read_input(credential) -> tuple[str | dict | None, str]:
    """What :func:`verify` was given: the VC-JWT string (also unwrapped from an
    EnvelopedVerifiableCredential) or the credential dict, or None and why not. Does not verify."""
    if isinstance(credential, bytes):
        try:
            credential = credential.decode("utf-8")
        except UnicodeDecodeError:
            return None, "The input is not UTF-8 text."
    if isinstance(credential, str):
        text = credential.strip()
        if not text.startswith("{"):
            return text, ""
        try:
            credential = json.loads(text)
        except ValueError as exc:
            return None, f"The input is not valid JSON: {exc}."
        except RecursionError:
            return None, "The input is JSON nested too deeply to be a credential."
    if not isinstance(credential, dict):
        return None, "The input is neither a VC-JWT nor a JSON credential object."
    envelope_id = credential.get("id")
    if "EnvelopedVerifiableCredential" in (credential.get("type") or []) and isinstance(envelope_id, str):
        prefix = envelope_id.split(",", 1)
        if len(prefix) == 2 and prefix[0].startswith("data:application/vc+jwt"):
            return prefix[1], ""
    return credential, ""


_read_input = read_input  # the name lms_bridge.credentials.issuer first used


def verify(credential: str | bytes | dict, *, resolve_key: ResolveKey | None = None,
           check_status: CheckStatus | None = None, now: datetime | None = None, schema: bool = True,
           trust_embedded_keys: bool = True) -> VerificationResult:
    """Verify a credential and report every check (see the module docstring).

    ``check_status(credentialStatus entry)`` answers True when revoked or suspended, False when not,
    None when it cannot tell (see :func:`.statuslist.status_checker`). ``now`` defaults to the
    current time; ``schema`` validates against the OB 3.0 JSON schema.
    """
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    try:
        return _verify(credential, resolve_key, check_status, now, schema, trust_embedded_keys)
    except Exception as exc:  # RecursionError on absurdly nested input, or a bug: report, never raise
        log.warning("credential verification failed unexpectedly", exc_info=True)
        return VerificationResult("unknown", [Check("format", False, f"The input could not be processed ({type(exc).__name__}).")])


def _verify(credential, resolve_key, check_status, now, schema, trust_embedded_keys) -> VerificationResult:
    data, problem = read_input(credential)
    if data is None:
        return VerificationResult("unknown", [Check("format", False, problem)])
    claims: dict = {}
    if isinstance(data, str):
        result, claims = _verify_jwt(data, resolve_key, trust_embedded_keys)
    elif "proof" in data:
        result = _verify_data_integrity(data, resolve_key, trust_embedded_keys, now)
    else:
        result = VerificationResult("unsigned", [
            Check("format", True, "An unsigned credential (JSON)."),
            Check("signature", False, "The credential carries no proof: nothing shows who issued it or that it is unchanged."),
        ], credential=data)
    doc = result.credential
    if not result.check("format").ok:
        return result
    types = doc.get("type") if isinstance(doc, dict) else None
    if not isinstance(types, list) or "VerifiableCredential" not in types:
        result.checks[0] = Check("format", False, "The content is not a Verifiable Credential (its type lacks 'VerifiableCredential').")
        return result
    if schema:
        result.checks.append(_schema_check(doc))
    result.checks.extend(_time_checks(doc, claims, now))
    result.checks.append(_status_check(doc, check_status))
    return result
