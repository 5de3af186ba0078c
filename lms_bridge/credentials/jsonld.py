"""JSON-LD processing for credentials, offline: local contexts and RDF Dataset Canonicalization.

Data Integrity proofs (VC Data Integrity 1.0; EdDSA Cryptosuites v1.0 §3.2 ``eddsa-rdfc-2022``) are
computed over the RDFC-1.0 canonical N-Quads of a JSON-LD document, so every ``@context`` URL must
be dereferenced. A verifier that fetched contexts from the network could be steered by whoever
serves them (and would leak which credentials it checks), so :func:`document_loader` serves only
the copies vendored in ``data/contexts/`` (see ``data/SOURCE.txt``) and refuses any other URL with
:class:`UnknownContextError`; it never opens a connection.

Processing runs in "safe mode" (VC Data Integrity 1.0 §2.4 "Contexts and Vocabularies": terms the
contexts do not define must raise an error rather than be dropped silently), because a dropped
property is not covered by the signature yet would still be shown to the reader.
"""
from __future__ import annotations

import copy
import json
import threading
from functools import lru_cache
from pathlib import Path

from cachetools import LRUCache
from pyld.canon import URDNA2015
from pyld.context_resolver import ContextResolver
from pyld.jsonld import JsonLdError, JsonLdProcessor

DATA_DIR = Path(__file__).resolve().parent / "data"
CONTEXT_DIR = DATA_DIR / "contexts"

# Context URL -> vendored file (as in 1EdTech's validator, inspector-vc CachingDocumentLoader).
CONTEXTS: dict[str, str] = {
    "https://www.w3.org/ns/credentials/v2": "credentials-v2.jsonld",
    "https://www.w3.org/2018/credentials/v1": "2018-credentials-v1.jsonld",
    "https://purl.imsglobal.org/spec/ob/v3p0/context.json": "ob-v3p0.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.1.json": "ob-v3p0-3.0.1.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.2.json": "ob-v3p0-3.0.2.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json": "ob-v3p0-3.0.3.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json": "ob-v3p0-extensions.json",
    "https://w3id.org/security/data-integrity/v1": "data-integrity-v1.jsonld",
    "https://www.w3.org/ns/did/v1": "did-v1.jsonld",
    # ELM 3 / European Digital Credential application profile (EDC export).
    "http://data.europa.eu/snb/model/context/edc-ap": "edc-ap-context.jsonld",
}


class CanonicalizationError(ValueError):
    """The document cannot be turned into canonical N-Quads (bad JSON-LD, unknown term or context)."""


class UnknownContextError(CanonicalizationError):
    """A ``@context`` URL (or other remote document) has no local copy; nothing was fetched."""

    def __init__(self, url: str):
        self.url = url
        super().__init__(
            f"The JSON-LD context {url!r} has no local copy, and contexts are never fetched from the network. "
            f"Known contexts: {', '.join(sorted(CONTEXTS))}."
        )


@lru_cache(maxsize=None)
def _context_document(filename: str) -> dict:
    return json.loads((CONTEXT_DIR / filename).read_text(encoding="utf-8"))


def document_loader(url: str, options: dict | None = None) -> dict:
    """PyLD document loader serving only the vendored contexts (JSON-LD 1.1 API §9.4.1 RemoteDocument).

    Raises :class:`UnknownContextError` for any other URL: never touches the network.
    """
    filename = CONTEXTS.get(url) or CONTEXTS.get(url.rstrip("/"))
    if filename is None:
        raise UnknownContextError(url)
    return {
        "contentType": "application/ld+json",
        "contextUrl": None,
        "documentUrl": url,
        # A copy: PyLD may annotate what it is given, and the parsed file is shared.
        "document": copy.deepcopy(_context_document(filename)),
        # "static" lets PyLD's ContextResolver keep the processed context in _RESOLVED below.
        "tag": "static",
    }


class _LockedLRU(LRUCache):
    """LRUCache reorders itself on reads; a lock keeps it sound under threaded workers.

    Re-entrant, so a cachetools version whose eviction (inside ``__setitem__``) reads through
    ``__getitem__`` cannot deadlock it.
    """

    def __init__(self, maxsize: int):
        super().__init__(maxsize)
        self._lock = threading.RLock()

    def __getitem__(self, key):
        with self._lock:
            return super().__getitem__(key)

    def __setitem__(self, key, value):
        with self._lock:
            super().__setitem__(key, value)


# Processed contexts, shared by all calls in this process. Our own cache rather than PyLD's global
# one, so a context some other code resolved with a network loader can never be reused here.
# Bounded: inline contexts of submitted credentials are cached too, keyed by their content.
_RESOLVED = _LockedLRU(maxsize=64)

# Work limits for canonicalisation of untrusted input (RDFC-1.0 Security Considerations, "Dataset
# Poisoning"): real credentials need a handful of Hash N-Degree Quads calls, no large permutations.
MAX_N_DEGREE_CALLS = 1000
MAX_RELATED_PER_HASH = 7  # 7! = 5040 permutations at most per related hash


class _BoundedURDNA2015(URDNA2015):
    """PyLD's URDNA2015 (RDFC-1.0 §4.4) that gives up on datasets built to make it work forever."""

    def __init__(self):
        super().__init__()
        self._calls = 0

    def hash_n_degree_quads(self, id_, issuer):
        self._calls += 1
        if self._calls > MAX_N_DEGREE_CALLS:
            raise CanonicalizationError("The document's blank nodes are too entangled to canonicalise (work limit reached).")
        return super().hash_n_degree_quads(id_, issuer)

    def create_hash_to_related(self, id_, issuer):
        related = super().create_hash_to_related(id_, issuer)
        if any(len(nodes) > MAX_RELATED_PER_HASH for nodes in related.values()):
            raise CanonicalizationError("The document has too many indistinguishable blank nodes to canonicalise.")
        return related


def _raise_dropped(term: str | None) -> None:
    raise CanonicalizationError(
        f"The property {term!r} is not defined by the document's JSON-LD contexts; it would be dropped "
        "from the signed data (JSON-LD safe mode)."
    )


def _unwrap(exc: BaseException) -> CanonicalizationError:
    """The most telling error in PyLD's chain of wrapped exceptions."""
    seen = exc
    while seen is not None:
        if isinstance(seen, CanonicalizationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    details = []
    seen = exc
    while seen is not None and len(details) < 4:
        details.append(str(getattr(seen, "message", None) or seen).split(" Possible causes")[0])
        seen = seen.__cause__
    return CanonicalizationError("JSON-LD processing failed: " + " <- ".join(details))


def canonicalize(doc: dict, *, safe: bool = True) -> str:
    """Canonical N-Quads of ``doc`` (RDF Dataset Canonicalization RDFC-1.0).

    PyLD's ``URDNA2015`` is the algorithm W3C standardised as RDFC-1.0 (renamed; the Recommendation
    only changed how canonical N-Quads escape a few control characters, absent from credentials).
    Contexts come from :func:`document_loader` only. With ``safe`` (the default) a property the
    contexts do not define raises instead of being dropped. (Relative IRIs are not dropped: PyLD
    resolves them against its default base, so they stay signed.)
    """
    processor = JsonLdProcessor(on_property_dropped=_raise_dropped) if safe else JsonLdProcessor()
    options = {
        "documentLoader": document_loader,
        "contextResolver": ContextResolver(_RESOLVED, document_loader),
        "base": "",
        "produceGeneralizedRdf": False,
    }
    try:
        # What JsonLdProcessor.normalize does, with the bounded algorithm in place of URDNA2015.
        dataset = processor.to_rdf(doc, options)
        return _BoundedURDNA2015().main(dataset, {"format": "application/n-quads"})
    except CanonicalizationError:
        raise
    except (JsonLdError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise _unwrap(exc) from exc
