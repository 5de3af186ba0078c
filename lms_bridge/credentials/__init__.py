"""Open Badges 3.0 micro-credentials: build, sign, verify and revoke, without a database.

- :mod:`.ob3` builds OpenBadgeCredential documents (1EdTech OB 3.0 on the W3C VC Data Model 2.0);
- :mod:`.keys` holds Ed25519 issuer keys, public keys for verification and hashed identities;
- :mod:`.signing` secures credentials as VC-JWT (OB 3.0 §8.2) or with a Data Integrity proof
  (``eddsa-rdfc-2022``, VC Data Integrity EdDSA Cryptosuites v1.0);
- :mod:`.verify` checks either form and says in plain words what it checked;
- :mod:`.statuslist` publishes revocation as a W3C Bitstring Status List v1.0;
- :mod:`.schema` validates against the official OB 3.0 JSON Schema;
- :mod:`.jsonld` canonicalises JSON-LD (RDFC-1.0) with local contexts only, never the network.

This package imports nothing at start-up: import the submodule you need (PyLD is loaded only by
:mod:`.jsonld`, which Data Integrity signing and verification use).
"""
