"""Revocation through a published status list (W3C Bitstring Status List v1.0).

Each credential gets an index in a list; the issuer publishes the list as a
``BitstringStatusListCredential`` whose ``encodedList`` is the GZIP-compressed bitstring,
multibase base64url-encoded (§2.2, §3.1). Bit 1 at a credential's index means its status
(``revocation`` or ``suspension``) is set. Lists have at least 131,072 entries (16 KiB) so one
credential's status is hidden among many ("herd privacy", §6.1).
"""
from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterable
from datetime import datetime

from .keys import b64url_decode, multibase_decode, multibase_encode
from .ob3 import iso_datetime

MIN_SIZE = 131072  # §3.1: "a minimum bitstring length of 131,072 (16KB)"
PURPOSES = ("revocation", "suspension", "refresh", "message")
ENTRY_TYPE = "BitstringStatusListEntry"
LIST_CREDENTIAL_TYPE = "BitstringStatusListCredential"


class StatusListError(ValueError):
    """A malformed encoded list (STATUS_LIST_DECODING_ERROR) or index out of range (RANGE_ERROR), §3.2."""


def set_bit(bitstring: bytearray, index: int, value: bool = True) -> None:
    """Set or clear ``index``: index 0 is the leftmost (most significant) bit of byte 0 (§3.1)."""
    if not 0 <= index < len(bitstring) * 8:
        raise StatusListError(f"index {index} is outside a list of {len(bitstring) * 8} entries")
    mask = 0x80 >> (index % 8)
    if value:
        bitstring[index // 8] |= mask
    else:
        bitstring[index // 8] &= ~mask & 0xFF


def encode(bits: bytearray | bytes | Iterable[int], size: int = MIN_SIZE) -> str:
    """``encodedList`` value (§3.1 Bitstring Generation Algorithm).

    ``bits`` is either the bitstring itself (bytes, padded with zeros to ``size`` bits) or the
    indices whose bit is set (a set of ints). The GZIP header carries no timestamp, so the same
    list always encodes to the same string.
    """
    if size < MIN_SIZE or size % 8:
        raise StatusListError(f"a status list has a multiple of 8 entries, at least {MIN_SIZE}")
    if isinstance(bits, (bytes, bytearray)):
        if len(bits) * 8 > size:
            raise StatusListError(f"the bitstring has {len(bits) * 8} entries, more than size={size}")
        bitstring = bytearray(bits) + bytearray(size // 8 - len(bits))
    else:
        bitstring = bytearray(size // 8)
        for index in bits:
            set_bit(bitstring, index)
    return multibase_encode(gzip.compress(bytes(bitstring), mtime=0), "base64url")


def decode(encoded: str) -> bytes:
    """The uncompressed bitstring of an ``encodedList`` (§3.2 step "expand").

    Accepts the multibase form (``u`` + base64url) and the bare base64url of the StatusList2021
    drafts (a GZIP stream always starts ``H4sI``).
    """
    try:
        compressed = b64url_decode(encoded) if encoded.startswith("H4sI") else multibase_decode(encoded)
        return gzip.decompress(compressed)
    except (ValueError, OSError, EOFError, zlib.error, AttributeError) as exc:
        raise StatusListError(f"the encoded status list cannot be decoded: {exc}") from exc


def is_set(encoded: str, index: int) -> bool:
    """Whether the status bit at ``index`` is 1 (§3.2 Validate Algorithm, steps on the bitstring)."""
    bitstring = decode(encoded)
    if not 0 <= index < len(bitstring) * 8:
        raise StatusListError(f"index {index} is outside the list of {len(bitstring) * 8} entries (RANGE_ERROR)")
    return bool(bitstring[index // 8] & (0x80 >> (index % 8)))


def status_entry(list_url: str, index: int, purpose: str = "revocation") -> dict:
    """The credential's ``credentialStatus`` (§2.1 BitstringStatusListEntry).

    ``statusListIndex`` is a base-10 string, as the specification requires.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"statusPurpose must be one of {PURPOSES}")
    if index < 0:
        raise ValueError("statusListIndex must not be negative")
    return {
        "id": f"{list_url}#{index}",
        "type": ENTRY_TYPE,
        "statusPurpose": purpose,
        "statusListIndex": str(index),
        "statusListCredential": list_url,
    }


def status_list_credential(list_id: str, issuer: dict | str, encoded: str, purpose: str = "revocation",
                           *, valid_from: datetime | None = None, valid_until: datetime | None = None) -> dict:
    """The unsigned list credential to publish at ``list_id`` (§2.2 BitstringStatusListCredential).

    The caller signs it with the same issuer key as the credentials it covers.
    """
    credential = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": list_id,
        "type": ["VerifiableCredential", LIST_CREDENTIAL_TYPE],
        "issuer": issuer,
        "credentialSubject": {
            "id": f"{list_id}#list",
            "type": "BitstringStatusList",
            "statusPurpose": purpose,
            "encodedList": encoded,
        },
    }
    if valid_from is not None:
        credential["validFrom"] = iso_datetime(valid_from)
    if valid_until is not None:
        credential["validUntil"] = iso_datetime(valid_until)
    return credential


def status_checker(fetch_list: Callable[[str], dict | None]) -> Callable[[dict], bool | None]:
    """A ``check_status`` callable for :func:`lms_bridge.credentials.verify.verify`.

    ``fetch_list(url)`` returns the (already verified) status list credential published at ``url``,
    or None when it is unavailable. The checker answers True when the entry's revocation or
    suspension bit is set, False when it is clear, None when it cannot tell (other status types or
    purposes, unavailable or mismatched list, index out of range).
    """

    def check(entry: dict) -> bool | None:
        if not isinstance(entry, dict) or entry.get("type") != ENTRY_TYPE:
            return None
        if entry.get("statusPurpose") not in ("revocation", "suspension"):
            return None
        try:
            index = int(entry["statusListIndex"])
            listed = fetch_list(entry["statusListCredential"])
        except (KeyError, TypeError, ValueError):
            return None
        subject = (listed or {}).get("credentialSubject")
        if not isinstance(subject, dict) or subject.get("statusPurpose") != entry["statusPurpose"]:
            return None
        try:
            return is_set(subject["encodedList"], index)
        except (KeyError, StatusListError):
            return None

    return check
