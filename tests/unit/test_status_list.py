"""Bitstring Status List: the bits, their encoding, bounded decoding, entries and index draws."""

from __future__ import annotations

import gzip
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.core.encoding import b64url
from chain.core.status_list import (
    LIST_BYTES,
    LIST_SIZE,
    MAX_LIST_BYTES,
    StatusListError,
    bitstring,
    decode_list,
    draw_index,
    encode_list,
    is_set,
    list_bits,
    list_credential,
    read_entry,
    set_indexes,
    status_entry,
)
from tests.factories import deterministic_bytes

URL = "https://uni.example/status/1"


def test_bit_zero_is_the_most_significant_bit_of_the_first_byte() -> None:
    bits = bitstring([0, 9, LIST_SIZE - 1])
    assert (bits[0], bits[1], bits[-1]) == (0x80, 0x40, 0x01)
    assert len(bits) == LIST_BYTES
    assert set_indexes(bits) == [0, 9, LIST_SIZE - 1]
    assert [is_set(bits, i) for i in (0, 1, 8, 9)] == [True, False, False, True]


@settings(max_examples=50, deadline=None)
@given(st.sets(st.integers(0, LIST_SIZE - 1), max_size=200))
def test_encoding_round_trips(revoked: set[int]) -> None:
    encoded = encode_list(bitstring(revoked))
    assert encoded.startswith("u")
    assert set_indexes(decode_list(encoded)) == sorted(revoked)
    assert encode_list(bitstring(revoked)) == encoded  # no time or name in the GZIP header


BAD_LISTS = {
    "not multibase base64url": (
        "z" + b64url(gzip.compress(bytes(LIST_BYTES), mtime=0)),
        "multibase base64url",
    ),
    "not base64url": ("u" + "!" * 10, "not base64url"),
    "not gzip": ("u" + b64url(b"not gzip at all"), "not GZIP"),
    "truncated": ("u" + b64url(gzip.compress(bytes(LIST_BYTES), mtime=0)[:-12]), "truncated"),
    "too short": ("u" + b64url(gzip.compress(bytes(LIST_BYTES - 1), mtime=0)), "at least 131,072 entries"),
    "too long": ("u" + "A" * (4 * MAX_LIST_BYTES + 1), "bounded length"),
}


@pytest.mark.parametrize(("encoded", "message"), list(BAD_LISTS.values()), ids=list(BAD_LISTS))
def test_bad_lists_are_refused(encoded: str, message: str) -> None:
    with pytest.raises(StatusListError, match=message):
        decode_list(encoded)


def test_a_gzip_bomb_is_refused_without_inflating_it() -> None:
    """1 GB of zeros compresses to about 1 MB; reading stops at the limit."""
    bomb = "u" + b64url(gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9))
    assert len(bomb) < 200_000
    with pytest.raises(StatusListError, match="inflates past"):
        decode_list(bomb)
    with pytest.raises(StatusListError, match="outside a list"):
        bitstring([LIST_SIZE])


def test_draws_avoid_taken_indexes_and_are_not_in_issuance_order() -> None:
    taken: set[int] = set()
    for _ in range(2_000):
        index = draw_index(taken.__contains__, os.urandom)
        assert index not in taken
        taken.add(index)
    drawn = list(taken)
    assert drawn != sorted(drawn)
    assert max(drawn) > LIST_SIZE // 2  # spread over the whole list, not packed at its start
    with pytest.raises(StatusListError, match="too full"):
        draw_index(lambda index: True, deterministic_bytes("full"))


def test_entries_round_trip_and_bad_ones_are_refused() -> None:
    entry = status_entry(URL, 4711)
    assert entry == {
        "id": f"{URL}#4711",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "4711",
        "statusListCredential": URL,
    }
    assert read_entry({"credentialStatus": entry}) == (URL, 4711)
    assert read_entry({"credentialStatus": [{"type": "Other"}, entry]}) == (URL, 4711)
    assert read_entry({}) is None
    assert read_entry({"credentialStatus": {**entry, "statusPurpose": "suspension"}}) is None
    bad: list[dict[str, Any]] = [{**entry, "statusListIndex": 4711}, {**entry, "statusListIndex": "-1"}]
    for status in bad:
        with pytest.raises(StatusListError):
            read_entry({"credentialStatus": status})


def test_the_list_credential_carries_its_bits() -> None:
    credential = list_credential(URL, "did:web:uni.example", [3, 5], "2026-12-07T00:00:00Z")
    assert credential["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert credential["credentialSubject"]["id"] == f"{URL}#list"
    assert set_indexes(list_bits(credential)) == [3, 5]
    with pytest.raises(StatusListError, match="statusPurpose"):
        list_bits({"credentialSubject": {**credential["credentialSubject"], "statusPurpose": "suspension"}})
