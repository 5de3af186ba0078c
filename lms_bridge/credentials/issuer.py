"""The built-in Open Badges 3.0 issuer: identifiers, published keys, issuing, status lists,
revocation, verification and baked images.

Identifiers (DID Web method, §3.2 "path-based" DIDs; one issuer profile each)::

    issuer id              did:web:<host>:issuers:<slug>      (":" in host:port written %3A)
    DID document           <PUBLIC_BASE_URL>/issuers/<slug>/did.json
    verification method    did:web:<host>:issuers:<slug>#<kid>   (Multikey, Ed25519)
    issuer Profile (OB 3.0 Appendix B)   <PUBLIC_BASE_URL>/issuers/<slug>
    key set (RFC 7517)     <PUBLIC_BASE_URL>/issuers/<slug>/jwks.json
    status list            <PUBLIC_BASE_URL>/issuers/<slug>/status/<list id>

(``/.well-known/did.json`` would give one DID per host; path-based DIDs give one per issuer.)

Issuing (:func:`issue`) runs once per completion, in the ``credential.builtin`` delivery: it builds
the ``OpenBadgeCredential`` (:mod:`.ob3`), allocates a random index in the issuer's status list
(Bitstring Status List v1.0 §6.1 recommends random indexes for herd privacy), signs it twice, as
JSON with an ``eddsa-rdfc-2022`` Data Integrity proof and as VC-JWT, checks it against the OB 3.0
JSON schema and stores both. The credential's id is derived from the completion's
(``urn:uuid:<uuid5>``), so it is known before it is issued (the webhook record names it) and a
retried delivery can never make a second one: ``cred_credential.completion_id`` is unique too.

Revocation sets the credential's bit in the published list (:func:`revoke`); the list credential
is signed by the issuer's key whenever its content changes.
"""
from __future__ import annotations

import html
import ipaddress
import json
import logging
import math
import secrets
import socket
import struct
import threading
import uuid
import zlib
from datetime import datetime, timedelta
from urllib.parse import quote, unquote, urlsplit

from flask import current_app, has_request_context, request

from ..extensions import db
from . import ob3, signing, statuslist
from .keys import IssuerKey, PublicKey, find_jwk, generate_issuer_key
from .models import Completion, Credential, IssuerProfile, StatusList, insert_unless_exists, utcnow

log = logging.getLogger("lms_bridge.credentials")

DID_CONTEXTS = ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]
PROFILE_CONTEXTS = [ob3.VC_V2_CONTEXT, ob3.OB_V3_CONTEXT]
STATUS_LIST_SIZE = statuslist.MIN_SIZE
# uuid5 namespace for credential ids derived from completion ids.
_CREDENTIAL_NAMESPACE = uuid.UUID("0f2d8a2e-5c1b-4d8e-a7f3-2b6e9c4d1a37")


class IssuingError(Exception):
    """The credential cannot be issued as configured (the message says what to fix)."""


# --------------------------------------------------------------------------- URLs and identifiers


def base_url() -> str:
    """The tool's public base URL: PUBLIC_BASE_URL, else (in a request) the request's host."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if base:
        return base.rstrip("/")
    if has_request_context():
        return request.host_url.rstrip("/")
    raise IssuingError("PUBLIC_BASE_URL is not set: credentials name the tool's public address "
                       "(issuer ids, status lists), so set PUBLIC_BASE_URL=https://your-tool and restart.")


def external_url(endpoint: str, **values) -> str:
    """Absolute URL of a route, built against :func:`base_url` (works in workers, outside requests)."""
    parts = urlsplit(base_url())
    adapter = current_app.url_map.bind(parts.netloc, url_scheme=parts.scheme, script_name=parts.path or "/")
    return adapter.build(endpoint, values, force_external=True)


def _did_prefix() -> str:
    parts = urlsplit(base_url())
    segments = [quote(parts.netloc, safe="")] + [quote(s, safe="") for s in parts.path.split("/") if s]
    return "did:web:" + ":".join(segments)


def issuer_id(profile: IssuerProfile) -> str:
    """The issuer's ``did:web`` identifier (DID Web §3.2: path segments after the host)."""
    return f"{_did_prefix()}:issuers:{profile.slug}"


def verification_method(profile: IssuerProfile, kid: str | None = None) -> str:
    return f"{issuer_id(profile)}#{kid or profile.kid}"


def issuer_urls(profile: IssuerProfile) -> dict:
    return {
        "profile": external_url("credentials.issuer_profile", slug=profile.slug),
        "did": external_url("credentials.issuer_did", slug=profile.slug),
        "jwks": external_url("credentials.issuer_jwks", slug=profile.slug),
    }


def credential_uuid(completion: Completion) -> str:
    return str(uuid.uuid5(_CREDENTIAL_NAMESPACE, completion.uuid))


def credential_links(completion: Completion) -> dict:
    """Where the completion's credential is (or will be) published."""
    cred = credential_uuid(completion)
    return {
        "id": f"urn:uuid:{cred}",
        "verifyUrl": external_url("credentials.verify_page", credential_id=cred),
        "json": external_url("credentials.download", credential_id=cred, fmt="json"),
        "jwt": external_url("credentials.download", credential_id=cred, fmt="jwt"),
    }


def own_profile_slug(did_or_url: str | None) -> str | None:
    """The slug of one of OUR issuer profiles that ``did_or_url`` names (a did:web DID, DID URL or
    issuer URL under this tool), or None when it names someone else."""
    if not did_or_url:
        return None
    value = did_or_url.split("#", 1)[0]
    prefix = _did_prefix() + ":issuers:"
    if value.startswith(prefix):
        slug = value[len(prefix):]
        return slug if slug and ":" not in slug else None
    url_prefix = base_url() + "/issuers/"
    if value.startswith(url_prefix):
        rest = value[len(url_prefix):].split("/")
        return rest[0] or None
    return None


# --------------------------------------------------------------------------- profiles and keys


_keys: dict[tuple[int, str], IssuerKey] = {}
_keys_lock = threading.Lock()


def signing_key(profile: IssuerProfile) -> IssuerKey:
    """The profile's Ed25519 key, parsed once per process and key id."""
    cache_key = (profile.id, profile.kid)
    key = _keys.get(cache_key)
    if key is None:
        key = IssuerKey.from_pem(profile.private_pem, profile.kid)
        with _keys_lock:
            _keys[cache_key] = key
    key.verification_method = verification_method(profile)
    return key


def published_keys(profile: IssuerProfile) -> list[dict]:
    """Every public key of the profile that verifiers may need: the current one, then earlier ones
    (credentials signed before a key rotation stay verifiable). Items: kid, jwk, multibase."""
    key = signing_key(profile)
    current = {"kid": profile.kid, "jwk": key.public_jwk(), "multibase": key.public_multibase()}
    return [current] + [k for k in (profile.previous_keys or []) if k.get("kid") != profile.kid]


def new_profile(*, slug: str, name: str, url: str | None = None, email: str | None = None,
                description: str | None = None, source_project: str | None = None, is_default: bool = False,
                connectors: list[str] | None = None, settings: dict | None = None,
                validity_days: int | None = None) -> IssuerProfile:
    """A new issuer profile with a fresh Ed25519 key (added to the session, not committed)."""
    key = generate_issuer_key()
    profile = IssuerProfile(slug=slug, name=name, url=url, email=email, description=description,
                            source_project=source_project or None, is_default=is_default, kid=key.kid,
                            private_pem=key.private_pem(), previous_keys=[],
                            connectors=list(connectors or ["builtin"]), settings=dict(settings or {}),
                            validity_days=validity_days)
    db.session.add(profile)
    return profile


def rotate_key(profile: IssuerProfile) -> str:
    """Give the profile a new signing key; the old public key stays published. Returns the new kid."""
    old = published_keys(profile)[0]
    key = generate_issuer_key()
    profile.previous_keys = [old] + [k for k in (profile.previous_keys or []) if k.get("kid") != old["kid"]]
    profile.kid, profile.private_pem = key.kid, key.private_pem()
    return key.kid


def ensure_default_profile() -> IssuerProfile:
    """The default issuer profile (the tool itself), created on first use; safe under concurrency
    (runs inside the event relay's transaction, so no savepoint: see :func:`.models.insert_unless_exists`)."""
    found = db.session.execute(db.select(IssuerProfile).filter_by(is_default=True)).scalars().first()
    if found is not None:
        return found
    name = current_app.config.get("TOOL_NAME", "lms_bridge")
    key = generate_issuer_key()
    now = utcnow()
    insert_unless_exists(IssuerProfile, dict(
        slug="default", name=name, is_default=True, description=f"Micro-credentials issued by {name} for completed courses.",
        kid=key.kid, private_pem=key.private_pem(), previous_keys=[], connectors=["builtin"], settings={},
        created_at=now, updated_at=now), conflict=("slug",))
    return db.session.execute(db.select(IssuerProfile).filter_by(slug="default")).scalar_one()


def profile_by_slug(slug: str) -> IssuerProfile | None:
    return db.session.execute(db.select(IssuerProfile).filter_by(slug=slug)).scalar_one_or_none()


def profile_document(profile: IssuerProfile) -> dict:
    """The issuer ``Profile`` (OB 3.0 Appendix B.1 Profile) published at the profile URL."""
    doc = ob3.build_profile(issuer_id(profile), profile.name, url=profile.url, email=profile.email,
                            description=profile.description)
    return {"@context": PROFILE_CONTEXTS, **doc}


def did_document(profile: IssuerProfile) -> dict:
    """The DID document of the issuer (DID Core §5; keys as Multikey, Controlled Identifiers 1.0 §2.2.2)."""
    did = issuer_id(profile)
    methods = [{"id": f"{did}#{k['kid']}", "type": "Multikey", "controller": did,
                "publicKeyMultibase": k["multibase"]} for k in published_keys(profile)]
    refs = [m["id"] for m in methods]
    return {"@context": DID_CONTEXTS, "id": did, "alsoKnownAs": [issuer_urls(profile)["profile"]],
            "verificationMethod": methods, "assertionMethod": refs, "authentication": refs[:1]}


def jwks(profile: IssuerProfile) -> dict:
    return {"keys": [k["jwk"] for k in published_keys(profile)]}


# --------------------------------------------------------------------------- status lists


def _open_list(profile: IssuerProfile) -> StatusList:
    """The profile's status list with room left (half full at most), created when none has."""
    found = db.session.execute(db.select(StatusList).where(
        StatusList.issuer_profile_id == profile.id, StatusList.purpose == "revocation",
        StatusList.allocated < StatusList.size // 2).order_by(StatusList.id)).scalars().first()
    if found is None:
        found = StatusList(issuer_profile_id=profile.id, purpose="revocation", size=STATUS_LIST_SIZE, allocated=0)
        db.session.add(found)
        db.session.flush()
    return found


def status_list_url(status_list: StatusList) -> str:
    return external_url("credentials.status_list", slug=status_list.issuer_profile.slug, list_id=status_list.id)


def revoked_indexes(status_list_id: int) -> set[int]:
    return set(db.session.execute(db.select(Credential.status_index).where(
        Credential.status_list_id == status_list_id, Credential.revoked_at.is_not(None))).scalars())


_list_cache: dict[tuple, tuple[dict, str]] = {}


def status_list_documents(status_list: StatusList) -> tuple[dict, str]:
    """The list credential (BitstringStatusListCredential, §2.2) as JSON with a Data Integrity proof
    and as VC-JWT, signed by the issuer's key; rebuilt only when a bit changes."""
    profile = status_list.issuer_profile
    encoded = statuslist.encode(revoked_indexes(status_list.id), status_list.size)
    cache_key = (id(db.engine), status_list.id, profile.kid, base_url(), encoded)
    cached = _list_cache.get(cache_key)
    if cached is not None:
        return cached
    key = signing_key(profile)
    unsigned = statuslist.status_list_credential(status_list_url(status_list), issuer_id(profile), encoded,
                                                 status_list.purpose, valid_from=utcnow())
    documents = (signing.sign_data_integrity(unsigned, key, verification_method=key.verification_method),
                 signing.sign_vc_jwt(unsigned, key))
    if len(_list_cache) > 256:
        _list_cache.clear()
    _list_cache[cache_key] = documents
    return documents


# --------------------------------------------------------------------------- issuing


def build_credential(completion: Completion, *, credential_id: str, status_entry: dict | None,
                     issued_at: datetime) -> dict:
    """The unsigned ``OpenBadgeCredential`` of a completion (OB 3.0 Appendix B AchievementCredential)."""
    profile = completion.issuer_profile
    info = completion.achievement or {}
    achievement_id = info.get("id") or _achievement_id(completion)
    skills = [(s["uri"], s.get("label")) for s in completion.esco_skills or []]
    achievement = ob3.build_achievement(
        id=achievement_id, name=completion.course_title, description=info.get("description") or completion.course_title,
        criteria_narrative=info.get("criteria"), achievement_type="MicroCredential", skills=skills,
        eqf_level=completion.eqf_level if completion.eqf_level and 1 <= completion.eqf_level <= 8 else None,
        ects=completion.ects, in_language=completion.language, tags=info.get("keywords") or (),
        pass_mark=round(completion.pass_mark * 100, 2) if completion.pass_mark is not None else None,
        version=completion.course_version,
    )
    identities = []
    if completion.email_hash:
        identities.append({"type": "IdentityObject", "identityHash": completion.email_hash,
                           "identityType": "emailAddress", "hashed": True, "salt": completion.identity_salt})
    identities.append(ob3.recipient_identity("ltiUserId", completion.learner_sub, completion.identity_salt))
    if completion.platform_issuer:
        identities.append(ob3.recipient_identity("ltiPlatformId", completion.platform_issuer, hashed=False))
    results = []
    if completion.score_scaled is not None:
        results.append(ob3.build_result(round(completion.score_scaled * 100, 2),
                                        result_description=f"{achievement_id}#result" if completion.pass_mark is not None
                                        else None))
    evidence = [ob3.build_evidence(
        id=completion.evidence_url, name="Course completion",
        narrative=_evidence_narrative(completion), genre="Completion record")]
    valid_until = issued_at + timedelta(days=profile.validity_days) if profile.validity_days else None
    return ob3.build_credential(
        credential_id=credential_id, issuer={k: v for k, v in profile_document(profile).items() if k != "@context"},
        achievement=achievement, identities=identities, valid_from=issued_at, valid_until=valid_until,
        name=completion.course_title, results=results, evidence=evidence, credential_status=status_entry,
        awarded_date=completion.completed_at, credits_earned=completion.ects,
        description=f"Awarded for completing “{completion.course_title}”.",
    )


def _achievement_id(completion: Completion) -> str:
    """The course's public catalogue entry (``/api/v1/courses/<id>``) describes the achievement; a
    course removed since keeps a URN made of its package identifier."""
    if completion.course_id is not None:
        return external_url("api.course_detail", course_id=completion.course_id)
    return f"urn:lms-bridge:achievement:{quote(completion.course_identifier, safe=':')}"


def _evidence_narrative(completion: Completion) -> str:
    text = f"Completed “{completion.course_title}” on {completion.completed_at:%d %B %Y}"
    if completion.score_scaled is not None:
        text += f" with a final score of {round(completion.score_scaled * 100)} %"
        if completion.pass_mark is not None:
            text += f" (pass mark {round(completion.pass_mark * 100)} %)"
    return text + f". Assessment: {completion.assessment_type}. Supervision: {completion.supervision}. " \
                  f"Identity: {completion.identity_verification}."


def issue(completion: Completion) -> Credential:
    """Build, sign and store the completion's credential, once (see the module docstring).

    Returns the stored credential; a second call (a retried delivery) returns the first one.
    Raises :class:`IssuingError` when the credential would not validate against the OB 3.0 schema.
    """
    existing = credential_of(completion.id)
    if existing is not None:
        return existing
    from .schema import validate_ob3

    profile = completion.issuer_profile
    key = signing_key(profile)
    cred_uuid = credential_uuid(completion)
    issued_at = utcnow().replace(microsecond=0)
    for _ in range(20):
        status_list = _open_list(profile)
        index = secrets.randbelow(status_list.size)
        unsigned = build_credential(completion, credential_id=f"urn:uuid:{cred_uuid}", issued_at=issued_at,
                                    status_entry=statuslist.status_entry(status_list_url(status_list), index))
        signed = signing.sign_data_integrity(unsigned, key, verification_method=key.verification_method,
                                             created=issued_at)
        problems = validate_ob3(signed)
        if problems:
            db.session.rollback()
            raise IssuingError("the credential does not validate against the OB 3.0 schema: " + "; ".join(problems[:5]))
        valid_until = unsigned.get("validUntil")
        new_id = insert_unless_exists(Credential, dict(
            uuid=cred_uuid, completion_id=completion.id, issuer_profile_id=profile.id, kid=key.kid,
            verification_method=key.verification_method, credential_json=signed,
            credential_jwt=signing.sign_vc_jwt(unsigned, key), status_list_id=status_list.id, status_index=index,
            issued_at=issued_at, valid_from=issued_at,
            valid_until=datetime.fromisoformat(valid_until[:-1]) if valid_until else None))
        if new_id is None:
            existing = credential_of(completion.id)
            if existing is not None:  # issued meanwhile by another worker
                db.session.commit()
                return existing
            db.session.rollback()
            continue  # the random index was taken: draw again
        db.session.execute(db.update(StatusList).where(StatusList.id == status_list.id).values(
            allocated=StatusList.allocated + 1))
        db.session.commit()
        log.info("credential %s issued for completion %s (status list %s index %s)", cred_uuid, completion.uuid,
                 status_list.id, index)
        return db.session.get(Credential, new_id)
    raise IssuingError("no free status list index found after 20 draws")


def credential_of(completion_id: int) -> Credential | None:
    return db.session.execute(db.select(Credential).filter_by(completion_id=completion_id)).scalar_one_or_none()


def credential_by_uuid(credential_id: str) -> Credential | None:
    value = credential_id.removeprefix("urn:uuid:")
    try:
        uuid.UUID(value)
    except ValueError:
        return None
    return db.session.execute(db.select(Credential).filter_by(uuid=value)).scalar_one_or_none()


def revoke(credential: Credential, reason: str) -> bool:
    """Revoke a credential: its bit in the status list is set from now on. False when it already was."""
    changed = db.session.execute(db.update(Credential).where(
        Credential.id == credential.id, Credential.revoked_at.is_(None)).values(
        revoked_at=utcnow(), revocation_reason=reason or "revoked by an operator")).rowcount
    db.session.commit()
    db.session.refresh(credential)
    if changed:
        log.info("credential %s revoked: %s", credential.uuid, reason)
    return bool(changed)


# --------------------------------------------------------------------------- verification


def _public_key(entry: dict, source: str) -> PublicKey:
    return PublicKey.from_multibase(entry["multibase"], kid=entry["kid"], source=source)


def resolve_key(issuer: str, ref: str | None) -> PublicKey | None:
    """``resolve_key`` for :func:`.verify.verify`: our issuers from the database (the same data the
    DID documents publish), other ``did:web`` issuers and key URLs over HTTPS (timeouts, no private
    addresses). A key is returned only when it belongs to ``issuer``."""
    slug = own_profile_slug(issuer)
    if slug is not None:
        profile = profile_by_slug(slug)
        if profile is None:
            return None
        if ref and own_profile_slug(ref) not in (None, slug):
            return None
        kid = (ref or profile.kid).rsplit("#", 1)[-1]
        entry = next((k for k in published_keys(profile) if k["kid"] == kid), None)
        if entry is None:
            return None
        url = issuer_urls(profile)["did"]
        return _public_key(entry, f"published by the issuer in its DID document {url} (did:web)")
    if issuer.startswith("did:web:"):
        return _resolve_did_web(issuer, ref)
    if ref and ref.startswith("https://") and ref.split("#", 1)[0].startswith(issuer.rstrip("/")):
        return _resolve_key_url(ref)
    return None


def did_web_url(did: str) -> str:
    """DID Web §3.2 Read: the HTTPS URL of a did:web DID's document."""
    parts = did.split("#", 1)[0][len("did:web:"):].split(":")
    host = unquote(parts[0])
    path = "/".join(unquote(p) for p in parts[1:])
    return f"https://{host}/{path}/did.json" if path else f"https://{host}/.well-known/did.json"


def _resolve_did_web(issuer: str, ref: str | None) -> PublicKey | None:
    did = issuer.split("#", 1)[0]
    if ref and ref.split("#", 1)[0] != did:
        return None  # a key of another controller never speaks for this issuer
    url = did_web_url(did)
    doc = fetch_json(url)
    for method in doc.get("verificationMethod") or []:
        if not isinstance(method, dict):
            continue
        mid = method.get("id", "")
        full = did + mid if mid.startswith("#") else mid
        if ref and full != ref and mid.rsplit("#", 1)[-1] != ref.rsplit("#", 1)[-1]:
            continue
        source = f"published by the issuer in its DID document {url} (did:web)"
        if method.get("publicKeyMultibase"):
            return PublicKey.from_multibase(method["publicKeyMultibase"], kid=full, source=source)
        if method.get("publicKeyJwk"):
            return PublicKey.from_jwk(method["publicKeyJwk"], source=source)
    return None


def _resolve_key_url(ref: str) -> PublicKey | None:
    url = ref.split("#", 1)[0]
    doc = fetch_json(url)
    source = f"published by the issuer at {url}"
    if "keys" in doc:
        jwk = find_jwk(doc, ref)
        return PublicKey.from_jwk(jwk, source=source) if jwk else None
    if doc.get("kty"):
        return PublicKey.from_jwk(doc, source=source)
    if doc.get("publicKeyMultibase"):
        return PublicKey.from_multibase(doc["publicKeyMultibase"], kid=ref, source=source)
    return None


def fetch_json(url: str) -> dict:
    """GET a JSON document for verification: HTTPS only, never a private, loopback or link-local
    address (the verification API must not become a way into the tool's network), with timeouts."""
    from ..http_client import get_json

    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"{url} is not an https URL")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise ValueError(f"{parts.hostname} cannot be resolved") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise ValueError(f"{parts.hostname} is a private or local address; it is not fetched")
    return get_json(url, headers={"Accept": "application/did+json, application/json"})


def check_status(entry: dict) -> bool | None:
    """``check_status`` for :func:`.verify.verify`: our lists from the database, others fetched
    (and their list credential verified) over HTTPS."""
    url = entry.get("statusListCredential") if isinstance(entry, dict) else None
    if isinstance(url, str) and url.startswith(base_url() + "/issuers/"):
        try:
            list_id = int(url.rstrip("/").rsplit("/", 1)[-1])
            index = int(entry["statusListIndex"])
        except (KeyError, TypeError, ValueError):
            return None
        status_list = db.session.get(StatusList, list_id)
        if status_list is None or url != status_list_url(status_list) or not 0 <= index < status_list.size:
            return None
        return index in revoked_indexes(list_id)
    return statuslist.status_checker(_fetch_verified_list)(entry)


def _fetch_verified_list(url: str) -> dict | None:
    from .verify import verify as verify_credential

    try:
        doc = fetch_json(url)
    except Exception:
        return None
    result = verify_credential(doc, resolve_key=resolve_key, schema=False, trust_embedded_keys=False)
    return result.credential if result.ok else None


def verify(data):
    """Verify any OB 3.0 credential (JSON or VC-JWT) and report every check (:mod:`.verify`).

    A credential naming one of our issuers must be signed by that issuer's published key: a key it
    carries itself (a JWT ``jwk`` header, a did:key or Multikey fragment) never speaks for us, so
    such a credential is checked again without trusting embedded keys, and fails.
    """
    from .verify import Check
    from .verify import verify as verify_credential

    result = verify_credential(data, resolve_key=resolve_key, check_status=check_status)
    if result.key is None or not result.key.self_asserted or not isinstance(result.credential, dict):
        return result
    issuer = result.credential.get("issuer")
    issuer = issuer.get("id") if isinstance(issuer, dict) else issuer
    if not isinstance(issuer, str) or own_profile_slug(issuer) is None:
        return result
    result = verify_credential(data, resolve_key=resolve_key, check_status=check_status, trust_embedded_keys=False)
    if result.key is not None and result.key.self_asserted:  # a did:key of someone else
        result.checks = [Check("issuer_key", False, (
            f"The credential names the issuer {issuer}, but its key {result.key.describe()} is not one that issuer "
            f"publishes (it was {result.key.source}): it was not issued by {issuer}.")) if c.name == "issuer_key" else c
            for c in result.checks]
    return result


# --------------------------------------------------------------------------- baked images


BADGE_SIZE = 240
_COLOURS = {"ring": (11, 83, 148), "face": (232, 240, 250), "mark": (30, 107, 48)}
_png_cache: dict[int, bytes] = {}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _segment_distance(px: float, py: float, ax: float, ay: float, bx: float, by: float) -> float:
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def badge_png(size: int = BADGE_SIZE) -> bytes:
    """A plain badge image (a ring, a face and a check mark), drawn without an imaging library."""
    cached = _png_cache.get(size)
    if cached is not None:
        return cached
    c, outer, inner = size / 2, size / 2 - 2, size / 2 - 18
    stroke = size / 14
    check = [(0.30 * size, 0.52 * size), (0.44 * size, 0.66 * size), (0.71 * size, 0.37 * size)]
    rows = []
    for y in range(size):
        row = bytearray(b"\x00")  # filter type None
        for x in range(size):
            d = math.hypot(x + 0.5 - c, y + 0.5 - c)
            if d > outer:
                row += b"\x00\x00\x00\x00"
                continue
            colour = _COLOURS["ring"] if d > inner else _COLOURS["face"]
            mark = min(_segment_distance(x + 0.5, y + 0.5, *check[0], *check[1]),
                       _segment_distance(x + 0.5, y + 0.5, *check[1], *check[2]))
            if d <= inner and mark <= stroke / 2:
                colour = _COLOURS["mark"]
            alpha = 255 if outer - d >= 1 else int(255 * max(0.0, outer - d))
            row += bytes(colour) + bytes([alpha])
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    png = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
           + _png_chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + _png_chunk(b"IEND", b""))
    _png_cache[size] = png
    return png


def bake_png(payload: str, image: bytes | None = None) -> bytes:
    """OB 3.0 §5.3.1 baking: an uncompressed ``iTXt`` chunk with keyword ``openbadgecredential``
    holding the credential (JSON for an embedded proof, the compact JWS for VC-JWT), before IEND."""
    image = image or badge_png()
    end = image.rfind(b"IEND") - 4
    if end < 8 or not image.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("not a PNG image")
    itxt = b"openbadgecredential\x00" + b"\x00\x00" + b"\x00" + b"\x00" + payload.encode("utf-8")
    return image[:end] + _png_chunk(b"iTXt", itxt) + image[end:]


def read_baked_png(image: bytes) -> str | None:
    """The credential baked into a PNG (the ``openbadgecredential`` iTXt chunk), or None."""
    pos = 8
    while pos + 8 <= len(image):
        length, kind = struct.unpack(">I4s", image[pos:pos + 8])
        data = image[pos + 8:pos + 8 + length]
        if kind == b"iTXt" and data.startswith(b"openbadgecredential\x00"):
            rest = data[len(b"openbadgecredential\x00"):]
            compressed, _method = rest[0], rest[1]
            rest = rest[2:]
            _lang, rest = rest.split(b"\x00", 1)
            _translated, text = rest.split(b"\x00", 1)
            return (zlib.decompress(text) if compressed else text).decode("utf-8")
        pos += 12 + length
    return None


def bake_svg(credential: Credential, *, jwt: bool = False) -> str:
    """OB 3.0 §5.3.2 baking: an ``openbadges:credential`` element in the SVG's namespace
    ``https://purl.imsglobal.org/ob/v3p0``, holding the JSON credential in CDATA, or the VC-JWT in
    its ``verify`` attribute."""
    title = html.escape(credential.completion.course_title, quote=True)
    issuer = html.escape(credential.issuer_profile.name, quote=True)
    if jwt:
        baked = f'<openbadges:credential verify="{html.escape(credential.credential_jwt, quote=True)}"/>'
    else:
        body = json.dumps(credential.credential_json, ensure_ascii=False, indent=1).replace("]]>", "]]]]><![CDATA[>")
        baked = f"<openbadges:credential><![CDATA[{body}]]></openbadges:credential>"
    eqf = credential.completion.eqf_level
    label = f"EQF {eqf}" if eqf else "Completed"
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:openbadges="https://purl.imsglobal.org/ob/v3p0" '
        f'width="{BADGE_SIZE}" height="{BADGE_SIZE}" viewBox="0 0 240 240" role="img" aria-labelledby="t">'
        f'<title id="t">{title}: micro-credential issued by {issuer}</title>{baked}'
        '<circle cx="120" cy="120" r="118" fill="#0b5394"/><circle cx="120" cy="120" r="100" fill="#e8f0fa"/>'
        '<path d="M72 125 L106 158 L170 89" fill="none" stroke="#1e6b30" stroke-width="17" stroke-linecap="round" '
        'stroke-linejoin="round"/>'
        f'<text x="120" y="200" text-anchor="middle" font-family="sans-serif" font-size="18" fill="#0b5394">'
        f'{html.escape(label)}</text></svg>'
    )
