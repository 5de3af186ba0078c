"""From completion record to credential, on a real database (SQLite or PostgreSQL): did:web
identifiers, issuing once (idempotent, deterministic id, schema-valid, both proof formats verify),
random status list indexes with collisions and roll-over, revocation in the published list, key
resolution (our profiles from the database, rotated keys, no foreign or embedded key for our
issuers, no fetching of private addresses), and baked PNG/SVG images."""
from __future__ import annotations

import json
import struct
import zlib
from datetime import datetime

import pytest

from tests.support.db_app import database_app
from tests.unit.credentials.test_completion import NATIVE, attempt_for, complete, learner

BASE = "https://tool.example.org:8443/lms"
DID = "did:web:tool.example.org%3A8443:lms:issuers:trireme"


@pytest.fixture(scope="module")
def app():
    with database_app(OUTBOX_WORKER="off", PUBLIC_BASE_URL=BASE) as app:
        with app.app_context():
            from lms_bridge.credentials.issuer import new_profile
            from lms_bridge.extensions import db
            from lms_bridge.packages.service import import_package

            app.config["TEST_COURSE"] = import_package(NATIVE).course_id
            new_profile(slug="trireme", name="TRIREME", source_project="TRIREME", validity_days=365,
                        url="https://trireme.example.eu")
            db.session.commit()
            db.session.remove()
        yield app


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app
        from lms_bridge.extensions import db

        db.session.rollback()
        db.session.remove()


def new_completion(app, **user):
    from lms_bridge.credentials.models import Completion
    from lms_bridge.extensions import db
    from lms_bridge.player import events

    user_pk, reg = learner(**user)
    complete(attempt_for(app.config["TEST_COURSE"], user_pk, reg))
    events.relay()
    return db.session.execute(db.select(Completion).filter_by(user_pk=user_pk)).scalar_one()


def test_did_web_identifiers(ctx):
    from lms_bridge.credentials import issuer

    profile = issuer.profile_by_slug("trireme")
    assert issuer.issuer_id(profile) == DID
    assert issuer.verification_method(profile) == f"{DID}#{profile.kid}"
    assert issuer.issuer_urls(profile) == {"profile": f"{BASE}/issuers/trireme", "did": f"{BASE}/issuers/trireme/did.json",
                                           "jwks": f"{BASE}/issuers/trireme/jwks.json"}
    for named in (DID, f"{DID}#{profile.kid}", f"{BASE}/issuers/trireme", f"{BASE}/issuers/trireme/jwks.json"):
        assert issuer.own_profile_slug(named) == "trireme", named
    for foreign in ("did:web:example.org:issuers:trireme", "https://example.org/issuers/trireme", None,
                    f"{DID}:extra"):
        assert issuer.own_profile_slug(foreign) is None, foreign
    # DID Web §3.2: the document of a did:web DID, always over HTTPS.
    assert issuer.did_web_url("did:web:example.org") == "https://example.org/.well-known/did.json"
    assert issuer.did_web_url("did:web:example.org%3A8443:a:b#k1") == "https://example.org:8443/a/b/did.json"
    doc = issuer.did_document(profile)
    assert doc["id"] == DID and doc["assertionMethod"] == [f"{DID}#{profile.kid}"]
    assert doc["verificationMethod"][0]["publicKeyMultibase"].startswith("z6Mk")
    assert issuer.profile_document(profile)["id"] == DID and issuer.jwks(profile)["keys"][0]["kid"] == profile.kid
    assert "d" not in issuer.jwks(profile)["keys"][0]


def test_issuing_once(ctx):
    from lms_bridge.credentials import issuer, schema
    from lms_bridge.credentials.models import Credential, StatusList
    from lms_bridge.extensions import db

    completion = new_completion(ctx, given_name="Lena", family_name="Learner")
    first = issuer.issue(completion)
    again = issuer.issue(completion)
    assert again.id == first.id
    assert db.session.execute(db.select(db.func.count()).select_from(Credential).filter_by(
        completion_id=completion.id)).scalar() == 1
    assert first.urn == issuer.credential_links(completion)["id"]  # known before it was issued
    doc = first.credential_json
    assert schema.validate_ob3(doc) == [] and doc["id"] == first.urn and doc["issuer"]["id"] == DID
    assert doc["issuer"]["url"] == "https://trireme.example.eu"
    assert doc["validUntil"] and (first.valid_until - first.valid_from).days == 365
    status = doc["credentialStatus"]
    assert status["statusListIndex"] == str(first.status_index)
    assert status["statusListCredential"] == f"{BASE}/issuers/trireme/status/{first.status_list_id}"
    assert db.session.get(StatusList, first.status_list_id).allocated >= 1
    results = doc["credentialSubject"]["result"]
    assert results == [{"type": ["Result"], "resultDescription": doc["credentialSubject"]["achievement"]["id"] + "#result",
                        "value": "90", "status": "Completed"}]
    assert doc["evidence"][0]["narrative"].startswith("Completed “Hydrogen fuel-cell vehicle basics”")
    for form in (first.credential_json, first.credential_jwt):
        result = issuer.verify(form)
        assert result.ok, result.summary()
        assert result.check("revocation").detail.startswith("The credential has not been revoked")


def test_status_indexes_are_random_and_never_shared(ctx, monkeypatch):
    from lms_bridge.credentials import issuer

    one = issuer.issue(new_completion(ctx))
    draws = iter([one.status_index, one.status_index, 4242])
    monkeypatch.setattr(issuer.secrets, "randbelow", lambda n: next(draws))
    two = issuer.issue(new_completion(ctx))
    assert two.status_index == 4242 and two.status_list_id == one.status_list_id


def test_a_half_full_list_makes_a_new_one(ctx):
    from lms_bridge.credentials import issuer
    from lms_bridge.credentials.models import StatusList
    from lms_bridge.extensions import db

    current = issuer.issue(new_completion(ctx))
    listed = db.session.get(StatusList, current.status_list_id)
    listed.allocated = listed.size // 2
    db.session.commit()
    after = issuer.issue(new_completion(ctx))
    assert after.status_list_id != current.status_list_id
    assert db.session.get(StatusList, after.status_list_id).size >= 131072


def test_revocation_sets_the_bit_of_the_published_list(ctx):
    from lms_bridge.credentials import issuer, statuslist, verify

    credential = issuer.issue(new_completion(ctx))
    entry = credential.credential_json["credentialStatus"]
    document, jwt = issuer.status_list_documents(credential.status_list)
    assert not statuslist.is_set(document["credentialSubject"]["encodedList"], credential.status_index)
    assert issuer.check_status(entry) is False
    assert issuer.revoke(credential, "issued by mistake") is True
    assert issuer.revoke(credential, "again") is False and credential.revocation_reason == "issued by mistake"
    document, jwt = issuer.status_list_documents(credential.status_list)
    assert statuslist.is_set(document["credentialSubject"]["encodedList"], credential.status_index)
    assert issuer.check_status(entry) is True
    for form in (document, jwt):  # the list is a credential the issuer signed
        listed = verify.verify(form, resolve_key=issuer.resolve_key, schema=False, trust_embedded_keys=False)
        assert listed.ok, listed.summary()
    result = issuer.verify(credential.credential_jwt)
    assert not result.ok and "revoked" in result.check("revocation").detail
    # An entry pointing at a list or index we do not have cannot be decided.
    assert issuer.check_status({**entry, "statusListIndex": "99999999"}) is None
    assert issuer.check_status({**entry, "statusListCredential": f"{BASE}/issuers/trireme/status/987"}) is None


def test_rotated_keys_stay_published(ctx):
    from lms_bridge.credentials import issuer
    from lms_bridge.extensions import db

    credential = issuer.issue(new_completion(ctx))
    profile = credential.issuer_profile
    old_kid = profile.kid
    new_kid = issuer.rotate_key(profile)
    db.session.commit()
    try:
        assert new_kid != old_kid and [k["kid"] for k in issuer.published_keys(profile)] == [new_kid, old_kid]
        assert len(issuer.did_document(profile)["verificationMethod"]) == 2
        assert issuer.verify(credential.credential_json).ok  # signed before the rotation
        assert issuer.resolve_key(DID, f"{DID}#no-such-key") is None
        fresh = issuer.issue(new_completion(ctx))
        assert fresh.kid == new_kid and issuer.verify(fresh.credential_jwt).ok
    finally:
        db.session.rollback()


def test_our_issuer_is_never_vouched_for_by_another_key(ctx):
    from lms_bridge.credentials import issuer, ob3, signing
    from lms_bridge.credentials.keys import generate_issuer_key

    forger = generate_issuer_key(kid="forged")
    genuine = issuer.issue(new_completion(ctx)).credential_json
    unsigned = {k: v for k, v in genuine.items() if k != "proof"}
    # Signed with another key that the JWT carries itself, naming one of our key ids.
    forger.verification_method = f"{DID}#forged"
    jwt = signing.sign_vc_jwt(unsigned, forger, embed_jwk=True)
    result = issuer.verify(jwt)
    assert not result.ok and not result.check("issuer_key").ok
    enveloped = {"@context": ["https://www.w3.org/ns/credentials/v2"], "type": "EnvelopedVerifiableCredential",
                 "id": "data:application/vc+jwt," + jwt}
    assert not issuer.verify(enveloped).check("issuer_key").ok
    # Even a did:key that is the forger's own, named as our verification method's fragment.
    forger.verification_method = forger.did_key_url()
    assert not issuer.verify(signing.sign_vc_jwt(unsigned, forger)).check("issuer_key").ok
    # A key of another did:web controller is not accepted for our DID either.
    assert issuer.resolve_key(DID, "did:web:evil.example.org#key-1") is None
    # did:key issuers are fine: the identifier is the key.
    did_key = generate_issuer_key()
    did_key.verification_method = did_key.did_key_url()
    other = ob3.build_credential(credential_id="urn:uuid:00000000-0000-4000-8000-000000000001",
                                 issuer=ob3.build_profile(did_key.did_key(), "Someone"), achievement=unsigned[
                                     "credentialSubject"]["achievement"], identities=unsigned["credentialSubject"][
                                     "identifier"], valid_from=datetime(2026, 1, 1), name="Other")
    assert issuer.verify(signing.sign_vc_jwt(other, did_key)).check("issuer_key").ok


@pytest.mark.parametrize("url", ["http://example.org/did.json", "https://127.0.0.1/did.json",
                                 "https://localhost/x", "https://10.1.2.3/did.json", "https://[::1]/did.json"])
def test_verification_never_fetches_private_or_plain_http_addresses(ctx, url):
    from lms_bridge.credentials import issuer

    with pytest.raises(ValueError):
        issuer.fetch_json(url)


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pos, chunks = 8, []
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF, kind
        chunks.append((kind, data))
        pos += 12 + length
    return chunks


def test_baked_png(ctx):
    from lms_bridge.credentials import issuer

    credential = issuer.issue(new_completion(ctx))
    payload = json.dumps(credential.credential_json)
    baked = issuer.bake_png(payload)
    chunks = _chunks(baked)
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"iTXt", b"IEND"]
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (width, height, depth, colour) == (240, 240, 8, 6)
    keyword, rest = chunks[2][1].split(b"\x00", 1)
    assert keyword == b"openbadgecredential" and rest[:2] == b"\x00\x00"  # iTXt, not compressed
    assert issuer.read_baked_png(baked) == payload
    assert issuer.read_baked_png(issuer.bake_png(credential.credential_jwt)) == credential.credential_jwt
    assert issuer.read_baked_png(issuer.badge_png()) is None
    with pytest.raises(ValueError):
        issuer.bake_png(payload, image=b"GIF89a")


def test_baked_svg(ctx):
    from lms_bridge.credentials import issuer
    from lms_bridge.packages.xml import parse_xml

    credential = issuer.issue(new_completion(ctx))
    credential.credential_json = {**credential.credential_json, "name": "A ]]> B & <C>"}  # not committed
    svg = parse_xml(issuer.bake_svg(credential).encode(), name="badge.svg")
    element = svg.find("{https://purl.imsglobal.org/ob/v3p0}credential")
    assert json.loads(element.text)["name"] == "A ]]> B & <C>"
    jwt_svg = parse_xml(issuer.bake_svg(credential, jwt=True).encode(), name="badge.svg")
    assert jwt_svg.find("{https://purl.imsglobal.org/ob/v3p0}credential").get("verify") == credential.credential_jwt
    assert svg.find("{http://www.w3.org/2000/svg}title").text.startswith("Hydrogen fuel-cell vehicle basics")
