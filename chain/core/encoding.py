"""Bytes and their JSON spelling: 0x-prefixed lowercase hex, 32-byte words."""

from __future__ import annotations


def to_bytes32(value: bytes | str) -> bytes:
    """Accepts 32 raw bytes or a 0x-hex string of them."""
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return raw


def hex0x(value: bytes) -> str:
    """``value`` as FinVault writes bytes in JSON: lowercase hex with a ``0x`` prefix."""
    return "0x" + value.hex()
