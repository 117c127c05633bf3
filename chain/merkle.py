"""Merkle trees compatible with OpenZeppelin's ``StandardMerkleTree`` for leaf encoding ``["bytes32"]``.

Consensus-critical and frozen: for the same digests this gives the same root, proofs and
multiproofs as ``@openzeppelin/merkle-tree`` (npm), and its proofs verify with OpenZeppelin's
``MerkleProof`` on-chain.

- leaf = keccak256(keccak256(abi.encode(digest))); for a bytes32, abi.encode is the 32 bytes;
- leaves are sorted ascending by hash and stored from the end of a flat array of 2n-1 nodes;
- node i has children 2i+1 and 2i+2; an inner node is keccak256 of its children sorted.

Pure: no I/O. Memory is one list of 2n-1 hashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from eth_hash.auto import keccak


class MerkleError(ValueError):
    pass


def leaf_hash(digest: bytes) -> bytes:
    if len(digest) != 32:
        raise MerkleError(f"a digest is 32 bytes, got {len(digest)}")
    return keccak(keccak(digest))


def hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


@dataclass(frozen=True)
class MultiProof:
    leaves: tuple[bytes, ...]  # leaf hashes, in the order MerkleProof.multiProofVerify expects
    proof: tuple[bytes, ...]
    proof_flags: tuple[bool, ...]


class MerkleTree:
    """A tree over document digests. Build once; proofs are then list lookups."""

    def __init__(self, digests: Sequence[bytes]) -> None:
        if not digests:
            raise MerkleError("a Merkle tree needs at least one leaf")
        hashed = sorted((leaf_hash(d), i) for i, d in enumerate(digests))
        n = len(hashed)
        size = 2 * n - 1
        tree: list[bytes] = [b""] * size
        self._tree_index: dict[bytes, int] = {}
        for position, (leaf, _) in enumerate(hashed):
            tree_index = size - 1 - position
            tree[tree_index] = leaf
            self._tree_index.setdefault(leaf, tree_index)
        for i in range(size - 1 - n, -1, -1):
            left, right = tree[2 * i + 1], tree[2 * i + 2]
            tree[i] = keccak(left + right) if left < right else keccak(right + left)
        self._tree = tree
        self._n = n

    def __len__(self) -> int:
        return self._n

    @property
    def root(self) -> bytes:
        return self._tree[0]

    @property
    def leaves(self) -> list[bytes]:
        """Leaf hashes in tree order (the order of a batch's public manifest)."""
        return [self._tree[len(self._tree) - 1 - i] for i in range(self._n)]

    def _index_of(self, leaf: bytes) -> int:
        try:
            return self._tree_index[leaf]
        except KeyError:
            raise MerkleError(f"leaf 0x{leaf.hex()} is not in this tree") from None

    def proof(self, leaf: bytes) -> list[bytes]:
        """The sibling path from ``leaf`` (a leaf hash) to the root."""
        index = self._index_of(leaf)
        path = []
        while index > 0:
            sibling = index + 1 if index % 2 == 1 else index - 1
            path.append(self._tree[sibling])
            index = (index - 1) // 2
        return path

    def proof_for_digest(self, digest: bytes) -> list[bytes]:
        return self.proof(leaf_hash(digest))

    def multiproof(self, leaves: Sequence[bytes]) -> MultiProof:
        """OpenZeppelin's multiproof for several leaf hashes (for one-transaction revocation)."""
        indices = sorted((self._index_of(leaf) for leaf in leaves), reverse=True)
        if any(a == b for a, b in pairwise(indices)):
            raise MerkleError("cannot prove the same leaf twice")
        stack = list(indices)
        proof: list[bytes] = []
        flags: list[bool] = []
        head = 0  # stack is consumed from the front; keep an offset instead of popping
        while head < len(stack) and stack[head] > 0:
            j = stack[head]
            head += 1
            sibling = j + 1 if j % 2 == 1 else j - 1
            if head < len(stack) and stack[head] == sibling:
                flags.append(True)
                head += 1
            else:
                flags.append(False)
                proof.append(self._tree[sibling])
            stack.append((j - 1) // 2)
        if not indices:
            proof.append(self._tree[0])
        return MultiProof(tuple(self._tree[i] for i in indices), tuple(proof), tuple(flags))


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root ``proof`` leads to from ``leaf`` (OpenZeppelin ``MerkleProof.processProof``)."""
    computed = leaf
    for sibling in proof:
        computed = hash_pair(computed, sibling)
    return computed


def verify_proof(leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    return process_proof(leaf, proof) == root
