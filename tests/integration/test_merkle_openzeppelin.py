"""chain.core.merkle against the real ``@openzeppelin/merkle-tree`` (npm), through scripts/lib/oz-merkle.js.

Random digest sets come from a seeded ``random.Random``; the seed is in every assertion message.
Rerun a failure with ``FINVAULT_MERKLE_SEED=<seed>``. Node runs once for all sets.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest

from chain.core.merkle import MerkleTree, leaf_hash
from chain.dev.toolchain import REPO_ROOT, node_binary, node_modules

OZ_SCRIPT = REPO_ROOT / "scripts" / "lib" / "oz-merkle.js"
SIZES = (1, 2, 3, 7, 8, 9, 100, 1000)
SEED = int(os.environ.get("FINVAULT_MERKLE_SEED") or random.SystemRandom().randrange(2**32))


def run_oz(sets: list[list[bytes]], multiproofs: list[list[int]]) -> dict[str, Any]:
    """Root, every proof and one multiproof per set, from StandardMerkleTree.of(sets[i], ["bytes32"])."""
    request = {
        "sets": [["0x" + d.hex() for d in digests] for digests in sets],
        "multiproofs": multiproofs,
    }
    modules = node_modules()
    completed = subprocess.run(
        [str(node_binary()), str(OZ_SCRIPT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NODE_PATH": str(modules), "FINVAULT_NODE_MODULES": str(modules)},
        cwd="/",  # the script must not depend on the cwd
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    answer: dict[str, Any] = json.loads(completed.stdout)
    assert len(answer["results"]) == len(sets)
    return answer


def unhex(value: str) -> bytes:
    assert value.startswith("0x")
    return bytes.fromhex(value[2:])


@dataclass(frozen=True)
class Case:
    digests: list[bytes]
    indices: list[int]  # value indices of the multiproof
    oz: dict[str, Any]


@pytest.fixture(scope="module")
def cases() -> dict[int, Case]:
    rng = random.Random(SEED)
    sets = [[rng.randbytes(32) for _ in range(n)] for n in SIZES]
    indices = [rng.sample(range(n), rng.randint(1, min(n, 10))) for n in SIZES]
    answer = run_oz(sets, indices)
    assert answer["library"] == "@openzeppelin/merkle-tree@1.0.8", answer["library"]
    return {
        n: Case(digests, idx, oz)
        for n, digests, idx, oz in zip(SIZES, sets, indices, answer["results"], strict=True)
    }


@pytest.mark.parametrize("size", SIZES)
def test_root_matches(cases: dict[int, Case], size: int) -> None:
    case = cases[size]
    tree = MerkleTree(case.digests)
    assert "0x" + tree.root.hex() == case.oz["root"], f"seed={SEED} size={size}"
    assert len(tree) == size


@pytest.mark.parametrize("size", SIZES)
def test_every_proof_matches(cases: dict[int, Case], size: int) -> None:
    case = cases[size]
    tree = MerkleTree(case.digests)
    streamed = dict(tree.proofs())
    assert len(streamed) == size, f"seed={SEED} size={size}"
    for i, (digest, oz_proof) in enumerate(zip(case.digests, case.oz["proofs"], strict=True)):
        expected = [unhex(h) for h in oz_proof]
        where = f"seed={SEED} size={size} value index={i} digest=0x{digest.hex()}"
        assert tree.proof_for_digest(digest) == expected, where
        assert streamed[leaf_hash(digest)] == expected, where


@pytest.mark.parametrize("size", SIZES)
def test_multiproof_matches(cases: dict[int, Case], size: int) -> None:
    case = cases[size]
    tree = MerkleTree(case.digests)
    ours = tree.multiproof([leaf_hash(case.digests[i]) for i in case.indices])
    theirs = case.oz["multiproof"]
    where = f"seed={SEED} size={size} indices={case.indices}"
    assert list(ours.leaves) == [leaf_hash(unhex(d)) for d in theirs["leaves"]], where
    assert list(ours.proof) == [unhex(h) for h in theirs["proof"]], where
    assert list(ours.proof_flags) == theirs["proofFlags"], where


def test_pinned_vectors_come_from_the_library() -> None:
    """tests/vectors/merkle-bytes32.json (checked without node by the unit tests) is what OZ answers."""
    vectors = json.loads((REPO_ROOT / "tests" / "vectors" / "merkle-bytes32.json").read_text())
    sets = [[unhex(d) for d in v["digests"]] for v in vectors["vectors"]]
    answer = run_oz(sets, [v["multiproof"]["indices"] for v in vectors["vectors"]])
    assert answer["library"] == vectors["library"]
    for vector, oz in zip(vectors["vectors"], answer["results"], strict=True):
        assert vector["root"] == oz["root"]
        assert vector["proofs"] == oz["proofs"]
        pinned = vector["multiproof"]
        assert {k: pinned[k] for k in ("leaves", "proof", "proofFlags")} == oz["multiproof"]
