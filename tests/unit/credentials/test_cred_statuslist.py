"""Bitstring Status List v1.0 (lms_bridge.credentials.statuslist)."""

from __future__ import annotations

import base64
import gzip

import pytest

from lms_bridge.credentials import statuslist
from lms_bridge.credentials.statuslist import StatusListError

# Bitstring Status List v1.0 §2.2 example: an empty list of 131,072 entries.
SPEC_EMPTY_LIST = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"


def test_the_specification_example_decodes_to_16kb_of_zeros():
    bitstring = statuslist.decode(SPEC_EMPTY_LIST)
    assert len(bitstring) == 16384 and not any(bitstring)
    assert not statuslist.is_set(SPEC_EMPTY_LIST, 0) and not statuslist.is_set(SPEC_EMPTY_LIST, 131071)


def test_encoding_is_gzip_then_multibase_base64url():
    encoded = statuslist.encode({0, 9})
    assert encoded.startswith("uH4sI")  # 'u' multibase base64url + the GZIP magic number
    raw = gzip.decompress(base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4)))
    assert len(raw) == 131072 // 8
    # Index 0 is the leftmost bit of the first byte (§3.1), index 9 the second bit of the second byte.
    assert raw[0] == 0b1000_0000 and raw[1] == 0b0100_0000 and not any(raw[2:])


def test_round_trip_and_deterministic_output():
    revoked = {3, 8, 1000, 131071}
    encoded = statuslist.encode(revoked)
    assert encoded == statuslist.encode(sorted(revoked))  # no timestamp in the GZIP header
    bitstring = statuslist.decode(encoded)
    assert {i for i in range(131072) if bitstring[i // 8] & (0x80 >> i % 8)} == revoked
    assert all(statuslist.is_set(encoded, i) for i in revoked) and not statuslist.is_set(encoded, 4)


def test_encode_from_a_bitstring_and_set_bit():
    bits = bytearray(16)
    statuslist.set_bit(bits, 5)
    statuslist.set_bit(bits, 6)
    statuslist.set_bit(bits, 6, False)
    encoded = statuslist.encode(bits)
    assert len(statuslist.decode(encoded)) == 16384  # padded to the minimum size
    assert statuslist.is_set(encoded, 5) and not statuslist.is_set(encoded, 6)
    assert len(statuslist.decode(statuslist.encode(set(), size=262144))) == 32768


def test_sizes_and_ranges_are_enforced():
    with pytest.raises(StatusListError, match="at least 131072"):
        statuslist.encode(set(), size=1024)
    with pytest.raises(StatusListError, match="outside"):
        statuslist.encode({131072})
    with pytest.raises(StatusListError, match="RANGE_ERROR"):
        statuslist.is_set(SPEC_EMPTY_LIST, 131072)
    with pytest.raises(StatusListError, match="cannot be decoded"):
        statuslist.decode("unot-gzip")
    with pytest.raises(StatusListError, match="cannot be decoded"):
        statuslist.decode("x123")


def test_legacy_status_list_2021_encoding_without_multibase_prefix():
    legacy = SPEC_EMPTY_LIST[1:]
    assert len(statuslist.decode(legacy)) == 16384


def test_status_entry_and_list_credential_shapes():
    entry = statuslist.status_entry("https://lms.example.org/status/1", 94567)
    assert entry == {
        "id": "https://lms.example.org/status/1#94567",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "94567",
        "statusListCredential": "https://lms.example.org/status/1",
    }
    with pytest.raises(ValueError):
        statuslist.status_entry("https://lms.example.org/status/1", 1, purpose="deletion")
    listed = statuslist.status_list_credential("https://lms.example.org/status/1", "https://issuer.example/",
                                               SPEC_EMPTY_LIST, "revocation")
    assert listed["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert listed["credentialSubject"] == {"id": "https://lms.example.org/status/1#list", "type": "BitstringStatusList",
                                           "statusPurpose": "revocation", "encodedList": SPEC_EMPTY_LIST}


def test_status_checker_reads_the_published_list():
    url = "https://lms.example.org/status/1"
    published = {url: statuslist.status_list_credential(url, "https://issuer.example/", statuslist.encode({7}))}
    check = statuslist.status_checker(published.get)
    assert check(statuslist.status_entry(url, 7)) is True
    assert check(statuslist.status_entry(url, 8)) is False
    # Cannot tell: list unavailable, purpose mismatch, other status types, index out of range.
    assert check(statuslist.status_entry("https://lms.example.org/status/404", 7)) is None
    assert check(statuslist.status_entry(url, 7, purpose="suspension")) is None
    assert check({"type": "1EdTechRevocationList", "id": url}) is None
    assert check(statuslist.status_entry(url, 10**7)) is None
