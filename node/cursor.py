"""Opaque, tamper-evident pagination cursors: a position, signed with the node's secret.

A cursor is ``base64url(payload) "." base64url(HMAC-SHA256(key, payload)[:16])``. Clients cannot
forge or edit one (a changed byte fails the MAC), and a cursor from another node (or from before
a restart with a random secret) is refused rather than misread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from chain.core.encoding import b64url
from chain.service.web import BadRequest

MAX_CURSOR_LENGTH = 256
_MAC_BYTES = 16
_VERSION = 1


class InvalidCursor(BadRequest):
    """A cursor this node did not make, or one that was changed (HTTP 400)."""

    code = "invalid_cursor"


@dataclass(frozen=True)
class Position:
    """Where a page of revocations ended: ``(block number, log index)`` in chain order."""

    since_block: int
    block_number: int
    log_index: int


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def encode_cursor(key: bytes, position: Position) -> str:
    """The opaque cursor for ``position``, MACed with ``key`` (the format is in the module docstring)."""
    payload = json.dumps(
        [_VERSION, position.since_block, position.block_number, position.log_index], separators=(",", ":")
    ).encode()
    return f"{b64url(payload)}.{b64url(_mac(key, payload))}"


def decode_cursor(key: bytes, cursor: str) -> Position:
    """The position in ``cursor``; :class:`InvalidCursor` (400) if it was not made by this key."""
    problem = InvalidCursor("the cursor is invalid: use next_cursor from a previous page, unchanged")
    if len(cursor) > MAX_CURSOR_LENGTH or cursor.count(".") != 1:
        raise problem
    encoded, mac = cursor.split(".")
    try:
        payload, presented = _unb64(encoded), _unb64(mac)
    except ValueError:
        raise problem from None
    if not hmac.compare_digest(presented, _mac(key, payload)):
        raise problem
    try:
        version, since_block, block_number, log_index = json.loads(payload)
    except (ValueError, TypeError):
        raise problem from None
    if version != _VERSION or not all(
        isinstance(v, int) and v >= 0 for v in (since_block, block_number, log_index)
    ):
        raise problem
    return Position(since_block, block_number, log_index)
