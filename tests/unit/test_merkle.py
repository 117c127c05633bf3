"""chain.core.merkle without node: pinned OpenZeppelin vectors, a straight port of OZ's core, properties.

The vectors (tests/vectors/merkle-bytes32.json) were produced by @openzeppelin/merkle-tree; the
integration test test_merkle_openzeppelin.py checks they still match the library.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import pytest
from eth_hash.auto import keccak
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chain.core.merkle import (
    MerkleError,
    MerkleTree,
    MultiProof,
    hash_pair,
    leaf_hash,
    process_proof,
    verify_proof,
)

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "merkle-bytes32.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
ZERO = bytes(32)

# --- a reference, ported line by line from @openzeppelin/merkle-tree core.js and MerkleProof.sol ---
# It hashes with eth-hash (pycryptodome), not chain.core.hashing, so the two share no code.


def ref_leaf_hash(digest: bytes) -> bytes:
    return keccak(keccak(digest))


def ref_node_hash(a: bytes, b: bytes) -> bytes:
    return keccak(b"".join(sorted([a, b])))


def ref_make_tree(digests: list[bytes]) -> list[bytes]:
    leaves = sorted(ref_leaf_hash(d) for d in digests)
    tree = [b""] * (2 * len(leaves) - 1)
    for i, leaf in enumerate(leaves):
        tree[len(tree) - 1 - i] = leaf
    for i in range(len(tree) - 1 - len(leaves), -1, -1):
        tree[i] = ref_node_hash(tree[2 * i + 1], tree[2 * i + 2])
    return tree


def sibling(i: int) -> int:
    return i - (1 if i % 2 == 0 else -1)  # i - (-1) ** (i % 2)


def parent(i: int) -> int:
    return (i - 1) // 2


def ref_get_proof(tree: list[bytes], index: int) -> list[bytes]:
    proof = []
    while index > 0:
        proof.append(tree[sibling(index)])
        index = parent(index)
    return proof


def ref_get_multiproof(tree: list[bytes], indices: list[int]) -> MultiProof:
    indices = sorted(indices, reverse=True)
    stack = list(indices)
    proof: list[bytes] = []
    flags: list[bool] = []
    while stack and stack[0] > 0:
        j = stack.pop(0)
        s, p = sibling(j), parent(j)
        if stack and s == stack[0]:
            flags.append(True)
            stack.pop(0)
        else:
            flags.append(False)
            proof.append(tree[s])
        stack.append(p)
    if not indices:
        proof.append(tree[0])
    return MultiProof(tuple(tree[i] for i in indices), tuple(proof), tuple(flags))


class InvalidMultiproof(Exception):
    """Where MerkleProof.processMultiProof reverts (custom error or out-of-bounds panic)."""


def process_multiproof(proof: list[bytes], proof_flags: list[bool], leaves: list[bytes]) -> bytes:
    """OpenZeppelin MerkleProof.processMultiProof (contracts 5.x), including its bounds behaviour."""
    leaves_len, flags_len = len(leaves), len(proof_flags)
    if leaves_len + len(proof) != flags_len + 1:
        raise InvalidMultiproof("MerkleProofInvalidMultiproof")
    if flags_len == 0:
        return leaves[0] if leaves_len > 0 else proof[0]
    hashes = [ZERO] * flags_len  # `new bytes32[](n)`: unwritten slots read as zero
    leaf_pos = hash_pos = proof_pos = 0

    def next_from_queue() -> bytes:
        nonlocal leaf_pos, hash_pos
        if leaf_pos < leaves_len:
            leaf_pos += 1
            return leaves[leaf_pos - 1]
        if hash_pos >= flags_len:
            raise InvalidMultiproof("panic: hashes index out of bounds")
        hash_pos += 1
        return hashes[hash_pos - 1]

    for i in range(flags_len):
        a = next_from_queue()
        if proof_flags[i]:
            b = next_from_queue()
        else:
            if proof_pos >= len(proof):
                raise InvalidMultiproof("panic: proof index out of bounds")
            b = proof[proof_pos]
            proof_pos += 1
        hashes[i] = ref_node_hash(a, b)
    if proof_pos != len(proof):
        raise InvalidMultiproof("MerkleProofInvalidMultiproof")
    return hashes[flags_len - 1]


def unhex(value: str) -> bytes:
    assert value.startswith("0x")
    return bytes.fromhex(value[2:])


def flip_bit(value: bytes, bit: int) -> bytes:
    bit %= 8 * len(value)
    changed = bytearray(value)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


# --- pinned OpenZeppelin vectors -------------------------------------------------------------------


def test_vectors_file_covers_the_pinned_sizes() -> None:
    assert VECTORS["library"] == "@openzeppelin/merkle-tree@1.0.8"
    assert VECTORS["leafEncoding"] == ["bytes32"]
    assert "sha256(b'finvault-merkle-vector-%d' % i)" in VECTORS["description"]
    assert [v["size"] for v in VECTORS["vectors"]] == [*range(1, 10), 16, 33]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: f"n={v['size']}")
def test_pinned_vector(vector: dict[str, Any]) -> None:
    digests = [unhex(d) for d in vector["digests"]]
    assert len(digests) == vector["size"]
    tree = MerkleTree(digests)
    assert tree.root == unhex(vector["root"])
    assert tree.leaves == sorted(leaf_hash(d) for d in digests)
    streamed = dict(tree.proofs())
    for digest, pinned in zip(digests, vector["proofs"], strict=True):
        expected = [unhex(h) for h in pinned]
        assert tree.proof_for_digest(digest) == expected
        assert streamed[leaf_hash(digest)] == expected
        assert verify_proof(leaf_hash(digest), expected, tree.root)

    pinned_mp = vector["multiproof"]
    ours = tree.multiproof([leaf_hash(digests[i]) for i in pinned_mp["indices"]])
    assert list(ours.leaves) == [leaf_hash(unhex(d)) for d in pinned_mp["leaves"]]
    assert list(ours.proof) == [unhex(h) for h in pinned_mp["proof"]]
    assert list(ours.proof_flags) == pinned_mp["proofFlags"]
    assert process_multiproof(list(ours.proof), list(ours.proof_flags), list(ours.leaves)) == tree.root


def test_single_leaf_tree_is_its_leaf() -> None:
    digest = unhex(VECTORS["vectors"][0]["digests"][0])
    tree = MerkleTree([digest])
    assert tree.root == leaf_hash(digest) == tree.leaves[0]
    assert tree.proof(tree.root) == []
    assert list(tree.proofs()) == [(tree.root, [])]
    assert tree.multiproof([tree.root]) == MultiProof((tree.root,), (), ())


@pytest.mark.parametrize("size", [*range(1, 18), 31, 32, 33, 63, 64, 65, 255, 256, 257, 1000])
def test_matches_reference_port(size: int) -> None:
    """Every level shape (full, one short, one over) against the line-by-line port of OZ core.js."""
    rng = random.Random(size)
    digests = [rng.randbytes(32) for _ in range(size)]
    tree = MerkleTree(digests)
    ref = ref_make_tree(digests)
    assert tree.root == ref[0]
    assert tree.leaves == ref[len(ref) - size :][::-1]  # leaves sit at the end, smallest last
    for position, leaf in enumerate(tree.leaves):
        assert tree.proof(leaf) == ref_get_proof(ref, len(ref) - 1 - position)


# --- properties ------------------------------------------------------------------------------------

digest_sets = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70, unique=True)
D1, D2 = bytes(32), b"\xff" * 32


@settings(max_examples=150, deadline=None)
@given(digests=digest_sets)
@example(digests=[D1])
@example(digests=[D1, D2])
def test_tree_equals_reference_port(digests: list[bytes]) -> None:
    tree = MerkleTree(digests)
    ref = ref_make_tree(digests)
    assert tree.root == ref[0]
    assert len(tree) == len(digests)
    for position, leaf in enumerate(tree.leaves):
        assert tree.proof(leaf) == ref_get_proof(ref, len(ref) - 1 - position)


@settings(max_examples=150, deadline=None)
@given(digests=digest_sets)
@example(digests=[D1])
@example(digests=[D1, D2])
def test_every_proof_verifies_and_proofs_yields_each_leaf_once(digests: list[bytes]) -> None:
    tree = MerkleTree(digests)
    streamed = list(tree.proofs())
    leaves = [leaf for leaf, _ in streamed]
    assert len(leaves) == len(set(leaves)) == len(digests)
    assert sorted(leaves) == tree.leaves == sorted(leaf_hash(d) for d in digests)
    for leaf, proof in streamed:
        assert proof == tree.proof(leaf)
        assert verify_proof(leaf, proof, tree.root)
        assert process_proof(leaf, proof) == tree.root
    for digest in digests:
        assert verify_proof(leaf_hash(digest), tree.proof_for_digest(digest), tree.root)


@settings(max_examples=100, deadline=None)
@given(digests=digest_sets)
@example(digests=[D1])
@example(digests=[D1, D2])
def test_a_pickled_tree_gives_the_same_root_leaves_and_proofs(digests: list[bytes]) -> None:
    tree = MerkleTree(digests)
    data = pickle.dumps(tree)
    assert len(data) < 64 * len(digests) + 100  # one string of hashes, not an object per node
    copy = pickle.loads(data)  # noqa: S301 - our own bytes
    assert (copy.root, copy.leaves, len(copy)) == (tree.root, tree.leaves, len(tree))
    assert [copy.proof(leaf) for leaf in tree.leaves] == [tree.proof(leaf) for leaf in tree.leaves]
    assert list(copy.proofs()) == list(tree.proofs())


def test_nodes_that_are_no_tree_do_not_unpickle() -> None:
    tree = MerkleTree([D1, D2])
    for nodes in (b"", bytes(64), bytes(95)):
        with pytest.raises(MerkleError, match="not the nodes"):
            tree.__setstate__(nodes)


@settings(max_examples=150, deadline=None)
@given(digests=digest_sets, pick=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=255))
@example(digests=[D1], pick=0, bit=0)
@example(digests=[D1, D2], pick=1, bit=255)
def test_tampering_is_detected(digests: list[bytes], pick: int, bit: int) -> None:
    tree = MerkleTree(digests)
    leaf = tree.leaves[pick % len(digests)]
    proof = tree.proof(leaf)
    assert verify_proof(leaf, proof, tree.root)

    assert not verify_proof(flip_bit(leaf, bit), proof, tree.root), "tampered leaf"
    assert not verify_proof(leaf, proof, flip_bit(tree.root, bit)), "tampered root"
    assert not verify_proof(leaf, [*proof, leaf], tree.root), "extra path element (leaf)"
    assert not verify_proof(leaf, [*proof, flip_bit(ZERO, bit)], tree.root), "extra path element"
    for position in range(len(proof)):
        tampered = list(proof)
        tampered[position] = flip_bit(proof[position], bit)
        assert not verify_proof(leaf, tampered, tree.root), f"tampered path element {position}"
        dropped = proof[:position] + proof[position + 1 :]
        assert not verify_proof(leaf, dropped, tree.root), f"dropped path element {position}"
    if len(digests) == 1:
        assert tree.root == leaf
        assert proof == []


@settings(max_examples=150, deadline=None)
@given(
    digests=digest_sets,
    picks=st.lists(st.integers(min_value=0, max_value=2**16), max_size=12),
    flip=st.integers(min_value=0),
    shuffle_seed=st.integers(min_value=0, max_value=2**32),
)
@example(digests=[D1], picks=[0], flip=0, shuffle_seed=0)
@example(digests=[D1, D2], picks=[0, 1], flip=0, shuffle_seed=0)
@example(digests=[D1, D2], picks=[1], flip=0, shuffle_seed=0)
def test_multiproof_verifies_with_openzeppelin_semantics(
    digests: list[bytes], picks: list[int], flip: int, shuffle_seed: int
) -> None:
    tree = MerkleTree(digests)
    chosen = sorted({tree.leaves[p % len(digests)] for p in picks})
    requested = list(chosen)
    random.Random(shuffle_seed).shuffle(requested)
    mp = tree.multiproof(requested)

    assert list(mp.leaves) == chosen  # ascending leaf hash, the order multiProofVerify expects
    ref = ref_make_tree(digests)
    ref_indices = [len(ref) - 1 - tree.leaves.index(leaf) for leaf in chosen]
    assert mp == ref_get_multiproof(ref, ref_indices)
    assert len(mp.leaves) + len(mp.proof) == len(mp.proof_flags) + 1
    assert process_multiproof(list(mp.proof), list(mp.proof_flags), list(mp.leaves)) == tree.root

    if mp.proof_flags:
        flags = list(mp.proof_flags)
        flags[flip % len(flags)] ^= True
        try:
            root = process_multiproof(list(mp.proof), flags, list(mp.leaves))
        except InvalidMultiproof:
            pass
        else:
            assert root != tree.root, f"flipped flag {flip % len(flags)} still verified"
    if mp.leaves:
        wrong = [flip_bit(mp.leaves[0], flip), *mp.leaves[1:]]
        assert process_multiproof(list(mp.proof), list(mp.proof_flags), wrong) != tree.root


def test_empty_multiproof_is_the_root() -> None:
    tree = MerkleTree([D1, D2])
    assert tree.multiproof([]) == MultiProof((), (tree.root,), ())
    assert process_multiproof([tree.root], [], []) == tree.root


@settings(max_examples=50, deadline=None)
@given(a=st.binary(min_size=32, max_size=32), b=st.binary(min_size=32, max_size=32))
def test_hash_pair_is_commutative_and_sorted(a: bytes, b: bytes) -> None:
    assert hash_pair(a, b) == hash_pair(b, a) == ref_node_hash(a, b)
    assert leaf_hash(a) == ref_leaf_hash(a)


# --- errors ----------------------------------------------------------------------------------------


def test_empty_tree_is_rejected() -> None:
    with pytest.raises(MerkleError, match="at least one leaf"):
        MerkleTree([])


@pytest.mark.parametrize("length", [0, 1, 20, 31, 33, 64])
def test_non_32_byte_digest_is_rejected(length: int) -> None:
    with pytest.raises(MerkleError, match="32 bytes"):
        MerkleTree([D1, bytes(length)])
    with pytest.raises(MerkleError, match="32 bytes"):
        leaf_hash(bytes(length))
    assert issubclass(MerkleError, ValueError)


def test_unknown_leaf_is_rejected() -> None:
    tree = MerkleTree([D1, D2])
    unknown = leaf_hash(b"\x01" * 32)
    with pytest.raises(MerkleError, match="not in this tree"):
        tree.proof(unknown)
    with pytest.raises(MerkleError, match="not in this tree"):
        tree.proof_for_digest(b"\x01" * 32)
    with pytest.raises(MerkleError, match="not in this tree"):
        tree.proof(D1)  # a digest is not its leaf hash
    with pytest.raises(MerkleError, match="not in this tree"):
        tree.multiproof([tree.leaves[0], unknown])
    with pytest.raises(MerkleError, match="not in this tree"):
        tree.proof(b"\xff" * 33)  # sorts after every leaf


def test_duplicate_leaf_in_multiproof_is_rejected() -> None:
    tree = MerkleTree([D1, D2, b"\x01" * 32])
    leaf = tree.leaves[1]
    with pytest.raises(MerkleError, match="same leaf twice"):
        tree.multiproof([leaf, tree.leaves[0], leaf])


def test_duplicate_digest_in_a_batch_is_rejected() -> None:
    digest = bytes([7]) * 32
    with pytest.raises(MerkleError, match="same digest appears twice"):
        MerkleTree([digest, bytes([8]) * 32, digest])
