"""Merkle trees compatible with OpenZeppelin's ``StandardMerkleTree`` for leaf encoding ``["bytes32"]``.

Consensus-critical and frozen: for the same digests this gives the same root, proofs and
multiproofs as ``@openzeppelin/merkle-tree`` (npm), and its proofs verify with OpenZeppelin's
``MerkleProof`` on-chain.

- leaf = keccak256(keccak256(abi.encode(digest))); for a bytes32, abi.encode is the 32 bytes;
- leaves are sorted ascending by hash and stored from the end of a flat array of 2n-1 nodes,
  so the smallest leaf sits at index 2n-2;
- node i has children 2i+1 and 2i+2; an inner node is keccak256 of its two children, sorted.

A batch never holds the same digest twice (:class:`MerkleError`): with unique leaves, every proof
and multiproof is exactly OpenZeppelin's.

Pure: no I/O. Memory is the flat array of 2n-1 hashes plus the sorted leaf list; proofs are
computed on demand, so streaming a million receipts never holds a million proofs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice, pairwise

from sha3 import keccak_256

from chain.core.errors import FinVaultError
from chain.core.hashing import keccak256


class MerkleError(FinVaultError, ValueError):
    """A digest, proof or tree that does not fit the ``["bytes32"]`` standard Merkle tree."""

    code = "merkle_invalid"


def leaf_hash(digest: bytes) -> bytes:
    """keccak256(keccak256(digest)), the standard tree's leaf; raises :class:`MerkleError` unless 32 bytes."""
    if len(digest) != 32:
        raise MerkleError(f"a digest is 32 bytes, got {len(digest)}")
    return bytes(keccak_256(keccak_256(digest).digest()).digest())


def hash_pair(a: bytes, b: bytes) -> bytes:
    """An inner node: keccak256 of the two children, smaller first (so the order given does not matter)."""
    return keccak256(a + b) if a < b else keccak256(b + a)


@dataclass(frozen=True)
class MultiProof:
    """One proof for several leaves at once, the arguments of OpenZeppelin's ``multiProofVerify``."""

    leaves: tuple[bytes, ...]  # leaf hashes, in the order MerkleProof.multiProofVerify expects
    proof: tuple[bytes, ...]
    proof_flags: tuple[bool, ...]


class MerkleTree:
    """A tree over document digests. Build once; each proof is then ~log2(n) list lookups."""

    def __init__(self, digests: Sequence[bytes]) -> None:
        if not digests:
            raise MerkleError("a Merkle tree needs at least one leaf")
        if any(len(d) != 32 for d in digests):
            raise MerkleError("every digest must be 32 bytes")
        k = keccak_256
        sorted_leaves = sorted([k(k(d).digest()).digest() for d in digests])
        if any(map(bytes.__eq__, sorted_leaves, islice(sorted_leaves, 1, None))):
            # OpenZeppelin would accept it, but a leaf's proof would then depend on which copy is
            # asked for; salted documents never collide, so a repeat is a caller's mistake.
            raise MerkleError("the same digest appears twice in one batch")
        n = len(sorted_leaves)
        size = 2 * n - 1
        tree: list[bytes] = [b""] * (n - 1)
        tree.extend(reversed(sorted_leaves))
        # Build one heap level at a time (level L spans [2^L - 1, 2^(L+1) - 2]); the comprehension
        # over child slices is much faster than a per-node loop.
        last_inner = n - 2
        level_start = (1 << ((size).bit_length() - 1)) - 1
        while last_inner >= 0:
            lo = min(level_start, last_inner + 1)
            hi = last_inner
            if lo <= hi:
                lefts = tree[2 * lo + 1 : 2 * hi + 2 : 2]
                rights = tree[2 * lo + 2 : 2 * hi + 3 : 2]
                tree[lo : hi + 1] = [
                    k(a + b).digest() if a < b else k(b + a).digest()
                    for a, b in zip(lefts, rights, strict=True)
                ]
                last_inner = lo - 1
            level_start = (level_start - 1) // 2
        self._tree = tree
        self._sorted = sorted_leaves
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __getstate__(self) -> bytes:
        """Pickled compactly (the issuer hands a batch's tree to its worker processes): the flat
        array as one string of 32-byte hashes, which :meth:`__setstate__` splits again without
        hashing anything."""
        return b"".join(self._tree)

    def __setstate__(self, nodes: bytes) -> None:
        if not nodes or len(nodes) % 64 != 32:  # 2n - 1 hashes of 32 bytes
            raise MerkleError("not the nodes of a Merkle tree")
        tree = [nodes[start : start + 32] for start in range(0, len(nodes), 32)]
        n = (len(tree) + 1) // 2
        self._tree = tree
        self._sorted = list(reversed(tree[n - 1 :]))  # the leaves, ascending
        self._n = n

    @property
    def root(self) -> bytes:
        """The 32-byte root, what the batch anchors (for one leaf, the leaf itself)."""
        return self._tree[0]

    @property
    def leaves(self) -> list[bytes]:
        """Leaf hashes in tree order, i.e. ascending (the order of a batch's public manifest)."""
        return list(self._sorted)

    def _index_of(self, leaf: bytes) -> int:
        position = bisect_left(self._sorted, leaf)
        if position == self._n or self._sorted[position] != leaf:
            raise MerkleError(f"leaf 0x{leaf.hex()} is not in this tree")
        return 2 * self._n - 2 - position

    def _path(self, index: int) -> list[bytes]:
        tree = self._tree
        path = []
        while index:
            path.append(tree[index + 1 if index & 1 else index - 1])
            index = (index - 1) >> 1
        return path

    def proof(self, leaf: bytes) -> list[bytes]:
        """The sibling path from ``leaf`` (a leaf hash) to the root."""
        return self._path(self._index_of(leaf))

    def proof_for_digest(self, digest: bytes) -> list[bytes]:
        """The sibling path for a document digest (hashed into its leaf first)."""
        return self.proof(leaf_hash(digest))

    def proofs(self) -> Iterator[tuple[bytes, list[bytes]]]:
        """Every ``(leaf, proof)``, computed lazily by a depth-first walk.

        Each node's path is its sibling plus its parent's path, so a proof costs one list copy
        instead of a loop over the levels; the walk holds O(log n) paths at a time.
        """
        tree = self._tree
        first_leaf = self._n - 1
        stack: list[tuple[int, list[bytes]]] = [(0, [])]
        pop, push = stack.pop, stack.append
        while stack:
            index, above = pop()
            path = [tree[index + 1 if index & 1 else index - 1], *above] if index else above
            if index >= first_leaf:
                yield tree[index], path
            else:
                push((2 * index + 2, path))
                push((2 * index + 1, path))

    def multiproof(self, leaves: Sequence[bytes]) -> MultiProof:
        """OpenZeppelin's multiproof for several leaf hashes (for one-transaction revocation)."""
        indices = sorted((self._index_of(leaf) for leaf in leaves), reverse=True)
        if any(a == b for a, b in pairwise(indices)):
            raise MerkleError("cannot prove the same leaf twice")
        stack = list(indices)
        proof: list[bytes] = []
        flags: list[bool] = []
        head = 0  # the stack is consumed from the front; keep an offset instead of popping
        while head < len(stack) and stack[head] > 0:
            j = stack[head]
            head += 1
            sibling = j + 1 if j & 1 else j - 1
            if head < len(stack) and stack[head] == sibling:
                flags.append(True)
                head += 1
            else:
                flags.append(False)
                proof.append(self._tree[sibling])
            stack.append((j - 1) >> 1)
        if not indices:
            proof.append(self._tree[0])
        return MultiProof(tuple(self._tree[i] for i in indices), tuple(proof), tuple(flags))


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root ``proof`` leads to from ``leaf`` (OpenZeppelin ``MerkleProof.processProof``)."""
    computed = leaf
    k = keccak_256  # hash_pair, inlined: this loop runs ~log2(n) times for every verification
    for sibling in proof:
        computed = k(computed + sibling).digest() if computed < sibling else k(sibling + computed).digest()
    return computed


def verify_proof(leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether ``proof`` leads from the leaf hash ``leaf`` to ``root`` (``MerkleProof.verify``)."""
    return process_proof(leaf, proof) == root
