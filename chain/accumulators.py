"""The registry's two running hashes, recomputed off-chain (consensus-critical, pure).

They let an auditor check a whole mirror against the chain with one ``eth_call``. Each starts from
a genesis value bound to the chain and the registry address, then folds in every event in order.
"""

from __future__ import annotations

from eth_abi.abi import encode

from chain.hashing import keccak256

ANCHOR_DOMAIN = 1
REVOCATION_DOMAIN = 2
NO_LEAF = bytes(32)  # the leaf recorded for a whole-root revocation


def genesis_accumulators(chain_id: int, registry: str) -> tuple[bytes, bytes]:
    """``(accumulator, revocationAccumulator)`` right after deployment."""
    return (
        keccak256(encode(["uint256", "address", "uint256"], [chain_id, registry, ANCHOR_DOMAIN])),
        keccak256(encode(["uint256", "address", "uint256"], [chain_id, registry, REVOCATION_DOMAIN])),
    )


def fold_anchor(previous: bytes, root: bytes, issuer: str, count: int, block_number: int) -> bytes:
    return keccak256(
        encode(
            ["bytes32", "bytes32", "address", "uint256", "uint256"],
            [previous, root, issuer, count, block_number],
        )
    )


def fold_revocation(
    previous: bytes, root: bytes, leaf: bytes, issuer: str, reason: int, block_number: int
) -> bytes:
    """``leaf`` is :data:`NO_LEAF` for a whole-root revocation."""
    return keccak256(
        encode(
            ["bytes32", "bytes32", "bytes32", "address", "uint8", "uint256"],
            [previous, root, leaf, issuer, reason, block_number],
        )
    )
