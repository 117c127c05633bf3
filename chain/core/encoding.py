"""Values and their JSON spelling: bytes as 0x-prefixed lowercase hex, 32-byte words, and times
as ISO 8601 UTC with a ``Z``."""

from __future__ import annotations

import binascii
import re
from datetime import UTC, datetime

#: Standard base64's two last letters, as base64url spells them.
_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def to_bytes32(value: bytes | str) -> bytes:
    """Accepts 32 raw bytes or a 0x-hex string of them."""
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return raw


def hex0x(value: bytes) -> str:
    """``value`` as FinVault writes bytes in JSON: lowercase hex with a ``0x`` prefix."""
    return "0x" + value.hex()


def iso_utc(moment: int | datetime) -> str:
    """A unix timestamp (block time) or an aware datetime as ISO 8601 UTC: ``2026-12-04T21:20:44Z``."""
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2): JWS parts, SD-JWT disclosures, the node's cursors."""
    # ``base64.urlsafe_b64encode`` spelled out: an SD-JWT issuance makes some 30 of these.
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_URL_SAFE).decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_FROM_URL_SAFE = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"", b"==", b"=")  # by length mod 4
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: The letters that may end unpadded base64url of length 2 or 3 (mod 4): those whose bits past
#: the data are zero. Any other ending is a second spelling of the same bytes.
_CANONICAL_LAST = {
    2: frozenset(_ALPHABET[::16]),  # 4 of the last letter's 6 bits are padding
    3: frozenset(_ALPHABET[::4]),  # 2 of them are
}


def from_b64url(text: str) -> bytes:
    """The bytes of strict unpadded base64url: only the URL-safe alphabet, no padding, canonical
    trailing bits (one spelling per value); ValueError otherwise."""
    tail = len(text) % 4
    if tail == 1 or not _B64URL.fullmatch(text):
        raise ValueError("not unpadded base64url")
    if tail and text[-1] not in _CANONICAL_LAST[tail]:  # non-zero trailing bits
        raise ValueError("base64url with non-canonical trailing bits")
    return binascii.a2b_base64(text.encode("ascii").translate(_FROM_URL_SAFE) + _PADDING[tail])
