"""The registry's two running hashes, recomputed off-chain (consensus-critical, pure).

They let an auditor check a whole mirror against the chain with one ``eth_call``. Each starts from
a genesis value bound to the chain and the registry address, then folds in every event in order.
The ABI encoding (every argument a 32-byte word) is written out by hand: the indexer folds
hundreds of thousands of events, and the contract suite checks these values against the chain.
"""

from __future__ import annotations

from chain.core.hashing import keccak256

ANCHOR_DOMAIN = 1
REVOCATION_DOMAIN = 2
NO_LEAF = bytes(32)  # the leaf recorded for a whole-root revocation


def _address_word(address: str | bytes) -> bytes:
    raw = bytes.fromhex(address[2:]) if isinstance(address, str) else address
    if len(raw) != 20:
        raise ValueError("an address is 20 bytes")
    return bytes(12) + raw


def _uint_word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def genesis_accumulators(chain_id: int, registry: str | bytes) -> tuple[bytes, bytes]:
    """``(accumulator, revocationAccumulator)`` right after deployment."""
    head = _uint_word(chain_id) + _address_word(registry)
    return keccak256(head + _uint_word(ANCHOR_DOMAIN)), keccak256(head + _uint_word(REVOCATION_DOMAIN))


def fold_anchor(previous: bytes, root: bytes, issuer: str | bytes, count: int, block_number: int) -> bytes:
    """keccak256(abi.encode(previous, root, issuer, count, block.number))."""
    return keccak256(previous + root + _address_word(issuer) + _uint_word(count) + _uint_word(block_number))


def fold_revocation(
    previous: bytes, root: bytes, leaf: bytes, issuer: str | bytes, reason: int, block_number: int
) -> bytes:
    """keccak256(abi.encode(previous, root, leaf, issuer, reason, block.number)); ``leaf`` is
    :data:`NO_LEAF` for a whole-root revocation."""
    return keccak256(
        previous + root + leaf + _address_word(issuer) + _uint_word(reason) + _uint_word(block_number)
    )
