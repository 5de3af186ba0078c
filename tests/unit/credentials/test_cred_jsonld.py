"""Offline JSON-LD: local contexts only, RDFC-1.0 canonical N-Quads, safe mode, work limits."""

from __future__ import annotations

import json
import socket
import time

import pytest
from pyld import jsonld as pyld_jsonld

from lms_bridge.credentials.jsonld import (
    CONTEXT_DIR,
    CONTEXTS,
    CanonicalizationError,
    UnknownContextError,
    canonicalize,
    document_loader,
)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to connect, or to use PyLD's own (network) loader, fails the test loudly."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(pyld_jsonld, "_default_document_loader", refuse)
    return attempts


def test_every_mapped_context_is_vendored_and_parses():
    for url, filename in CONTEXTS.items():
        remote = document_loader(url)
        assert remote["documentUrl"] == url
        assert "@context" in remote["document"], url
        assert (CONTEXT_DIR / filename).is_file()


def test_loader_hands_out_copies():
    first = document_loader("https://www.w3.org/ns/credentials/v2")["document"]
    first["@context"]["poisoned"] = "http://evil.example/"
    assert "poisoned" not in document_loader("https://www.w3.org/ns/credentials/v2")["document"]["@context"]


def test_unknown_context_is_a_clear_error_and_never_fetched(no_network):
    doc = {
        "@context": ["https://www.w3.org/ns/credentials/v2", "https://contexts.example.net/badge/v9.jsonld"],
        "type": ["VerifiableCredential"],
        "issuer": "https://issuer.example/",
    }
    with pytest.raises(UnknownContextError) as raised:
        canonicalize(doc)
    assert raised.value.url == "https://contexts.example.net/badge/v9.jsonld"
    assert "no local copy" in str(raised.value) and "never fetched" in str(raised.value)
    assert no_network == []


def test_context_imported_by_a_context_is_refused_too(no_network):
    doc = {"@context": {"@import": "https://contexts.example.net/base.jsonld", "name": "https://schema.org/name"},
           "name": "x"}
    with pytest.raises(UnknownContextError, match="contexts.example.net/base.jsonld"):
        canonicalize(doc)
    assert no_network == []


def test_canonical_nquads_of_a_small_credential(no_network):
    doc = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": "urn:uuid:1",
        "type": ["VerifiableCredential"],
        "issuer": "https://issuer.example/",
        "validFrom": "2025-01-01T00:00:00Z",
        "credentialSubject": {"id": "did:example:ada"},
    }
    assert canonicalize(doc) == (
        "<urn:uuid:1> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> "
        "<https://www.w3.org/2018/credentials#VerifiableCredential> .\n"
        "<urn:uuid:1> <https://www.w3.org/2018/credentials#credentialSubject> <did:example:ada> .\n"
        "<urn:uuid:1> <https://www.w3.org/2018/credentials#issuer> <https://issuer.example/> .\n"
        "<urn:uuid:1> <https://www.w3.org/2018/credentials#validFrom> "
        "\"2025-01-01T00:00:00Z\"^^<http://www.w3.org/2001/XMLSchema#dateTime> .\n"
    )
    # Member order and blank-node labels do not matter to the canonical form.
    reordered = dict(reversed(list(doc.items())))
    assert canonicalize(reordered) == canonicalize(doc)


def test_blank_nodes_get_canonical_labels(credential):
    nquads = canonicalize(credential)
    assert "_:c14n0" in nquads
    assert canonicalize(json.loads(json.dumps(credential))) == nquads


def test_safe_mode_refuses_terms_the_contexts_do_not_define():
    doc = {"@context": {"name": "https://schema.org/name"}, "name": "Ada", "nickname": "A."}
    with pytest.raises(CanonicalizationError, match="'nickname'.*not defined"):
        canonicalize(doc)
    assert "Ada" in canonicalize(doc, safe=False)  # without safe mode the member silently vanishes
    assert "A." not in canonicalize(doc, safe=False)


def test_relative_iris_stay_in_the_signed_data():
    """Nothing a signature should cover may vanish: a relative id or issuer still changes the N-Quads."""
    doc = {"@context": ["https://www.w3.org/ns/credentials/v2"], "id": "credentials/1", "type": ["VerifiableCredential"],
           "issuer": "issuers/1"}
    assert canonicalize(doc) != canonicalize({**doc, "id": "credentials/2"})
    assert canonicalize(doc) != canonicalize({**doc, "issuer": "issuers/2"})


def test_malformed_json_ld_is_a_canonicalization_error():
    with pytest.raises(CanonicalizationError):
        canonicalize({"@context": 42, "name": "x"})


def test_context_cache_stays_bounded_and_evicts_without_deadlock():
    """More distinct inline contexts than the cache holds (each submitted credential may bring one)."""
    import threading

    from lms_bridge.credentials.jsonld import _RESOLVED

    def many():
        for i in range(100):
            canonicalize({"@context": {f"term{i}": f"https://example.org/{i}"}, f"term{i}": "x"})

    worker = threading.Thread(target=many, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive()
    assert len(_RESOLVED) <= _RESOLVED.maxsize


def test_poison_graph_is_refused_quickly():
    """Ten blank nodes all linked to each other: exponential for RDFC-1.0 without a work limit."""
    nodes = [f"_:n{i}" for i in range(10)]
    graph = [{"@id": n, "http://example.org/p": [{"@id": m} for m in nodes if m != n]} for n in nodes]
    started = time.monotonic()
    with pytest.raises(CanonicalizationError, match="indistinguishable|entangled"):
        canonicalize({"@graph": graph})
    assert time.monotonic() - started < 5
