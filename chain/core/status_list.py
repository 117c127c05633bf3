"""W3C Bitstring Status List v1.0: revocation that any verifier can see, beside the chain.

The chain is the source of truth for revocation; a status list publishes the same facts in the
form the Verifiable Credentials ecosystem reads. Pure functions over bytes and JSON:

- a credential's ``credentialStatus`` is a ``BitstringStatusListEntry`` naming its list (a URL)
  and its index in it (a decimal string);
- the list is a ``BitstringStatusListCredential`` whose ``credentialSubject.encodedList`` is the
  multibase (``u``: base64url, no padding) GZIP of the bitstring; bit ``i`` is the most significant
  bit first: byte ``i // 8``, mask ``0x80 >> (i % 8)``; a set bit means revoked;
- every list holds :data:`LIST_SIZE` entries (131,072: the specification's minimum, for herd
  privacy), and indexes are drawn at random among the free ones (:func:`draw_index`), so an index
  says nothing about when its credential was issued.

Decoding is bounded before it runs: the encoded text by length, the GZIP stream by the size it may
inflate to (a 16 KiB list compresses to tens of bytes, so a small input may claim gigabytes).
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from chain.core.encoding import b64url, from_b64url
from chain.core.errors import FinVaultError

ENTRY_TYPE = "BitstringStatusListEntry"
#: An issuer's companion to each list: the index, leaf and root of its certificates (docs/formats.md).
LEAVES_FORMAT = "finvault-status-leaves/1"
LIST_CREDENTIAL_TYPE = "BitstringStatusListCredential"
LIST_TYPE = "BitstringStatusList"
PURPOSE = "revocation"
#: Entries in every list: the specification's minimum (16 KiB of bits).
LIST_SIZE = 131_072
LIST_BYTES = LIST_SIZE // 8
#: The most an encodedList may inflate to here, and the longest one read (a list of random bits
#: compresses to about its own size).
MAX_LIST_BYTES = 16 * LIST_BYTES
MAX_ENCODED_CHARS = 4 * MAX_LIST_BYTES
VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")


class StatusListError(FinVaultError, ValueError):
    """A status list or status entry that cannot be read: the one error this module raises."""

    code = "status_list_invalid"


def encode_list(bits: bytes) -> str:
    """``encodedList`` of a bitstring: ``u`` + base64url (no padding) of its GZIP (no file name, time
    0: the same bits always encode alike)."""
    return "u" + b64url(gzip.compress(bytes(bits), mtime=0))


def decode_list(encoded: str) -> bytes:
    """The bitstring of an ``encodedList``, refused (:class:`StatusListError`) when it is not
    multibase base64url GZIP, inflates past :data:`MAX_LIST_BYTES`, or is shorter than a list."""
    if not isinstance(encoded, str) or not encoded.startswith("u") or len(encoded) > MAX_ENCODED_CHARS:
        raise StatusListError("encodedList must be multibase base64url ('u' + text) of bounded length")
    try:
        compressed = from_b64url(encoded[1:])
    except ValueError:
        raise StatusListError("encodedList is not base64url") from None
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # a GZIP member
    try:
        bits = inflater.decompress(compressed, MAX_LIST_BYTES + 1)
    except zlib.error:
        raise StatusListError("encodedList is not GZIP") from None
    if len(bits) > MAX_LIST_BYTES:
        raise StatusListError(f"encodedList inflates past {MAX_LIST_BYTES:,} bytes")
    if not inflater.eof:
        raise StatusListError("encodedList is a truncated GZIP stream")
    if len(bits) < LIST_BYTES:
        raise StatusListError(f"a status list holds at least {LIST_SIZE:,} entries")
    return bits


def bitstring(revoked: Iterable[int], size: int = LIST_SIZE) -> bytes:
    """The bitstring of ``size`` entries with the ``revoked`` indexes set."""
    bits = bytearray(size // 8)
    for index in revoked:
        if not 0 <= index < size:
            raise StatusListError(f"index {index} is outside a list of {size:,} entries")
        bits[index // 8] |= 0x80 >> (index % 8)
    return bytes(bits)


def is_set(bits: bytes, index: int) -> bool:
    """Whether entry ``index`` of ``bits`` is set (revoked)."""
    if not 0 <= index < 8 * len(bits):
        raise StatusListError(f"index {index} is outside a list of {8 * len(bits):,} entries")
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


def set_indexes(bits: bytes) -> list[int]:
    """Every set index of ``bits``, in order."""
    return [
        8 * position + offset
        for position, byte in enumerate(bits)
        if byte
        for offset in range(8)
        if byte & (0x80 >> offset)
    ]


def draw_index(
    taken: Callable[[int], bool], random_bytes: Callable[[int], bytes], size: int = LIST_SIZE
) -> int:
    """A random index of a list of ``size`` entries for which ``taken`` is false (rejection
    sampling: the caller starts a new list well before this one fills)."""
    for _ in range(10_000):
        index = int.from_bytes(random_bytes(4), "big") % size  # 2^32 is a multiple of the sizes used
        if not taken(index):
            return index
    raise StatusListError("this status list is too full to draw a free index; start a new one")


def status_entry(list_url: str, index: int) -> dict[str, str]:
    """The ``credentialStatus`` of a credential at ``index`` of the list published at ``list_url``."""
    return {
        "id": f"{list_url}#{index}",
        "type": ENTRY_TYPE,
        "statusPurpose": PURPOSE,
        "statusListIndex": str(index),
        "statusListCredential": list_url,
    }


def read_entry(credential: Mapping[str, Any]) -> tuple[str, int] | None:
    """``(list URL, index)`` of a credential's revocation status entry; None when it has none."""
    entries = credential.get("credentialStatus")
    for entry in entries if isinstance(entries, list) else [entries]:
        if not isinstance(entry, Mapping) or entry.get("type") != ENTRY_TYPE:
            continue
        if entry.get("statusPurpose") != PURPOSE:
            continue
        url, index = entry.get("statusListCredential"), entry.get("statusListIndex")
        if not isinstance(url, str) or not isinstance(index, str) or not _INDEX.fullmatch(index):
            raise StatusListError("a BitstringStatusListEntry names its list (a URL) and index (digits)")
        return url, int(index)
    return None


def list_credential(list_url: str, issuer: Any, revoked: Iterable[int], valid_from: str) -> dict[str, Any]:
    """The unsecured ``BitstringStatusListCredential`` published at ``list_url`` (its issuer
    secures it), with the ``revoked`` indexes set."""
    return {
        "@context": [VC_CONTEXT],
        "id": list_url,
        "type": ["VerifiableCredential", LIST_CREDENTIAL_TYPE],
        "issuer": issuer,
        "validFrom": valid_from,
        "credentialSubject": {
            "id": f"{list_url}#list",
            "type": LIST_TYPE,
            "statusPurpose": PURPOSE,
            "encodedList": encode_list(bitstring(revoked)),
        },
    }


def list_bits(credential: Mapping[str, Any]) -> bytes:
    """The bitstring a status list credential publishes (its proof is the caller's to check)."""
    subject = credential.get("credentialSubject")
    if not isinstance(subject, Mapping) or subject.get("type") != LIST_TYPE:
        raise StatusListError(f"not a {LIST_CREDENTIAL_TYPE}: its credentialSubject is no {LIST_TYPE}")
    if subject.get("statusPurpose") != PURPOSE:
        raise StatusListError(f"this list's statusPurpose is not {PURPOSE!r}")
    return decode_list(subject.get("encodedList"))  # type: ignore[arg-type]  # checked there
