"""Regenerates tests/vectors/merkle-bytes32.json from @openzeppelin/merkle-tree (needs node).

    .venv/bin/python -m tests.vectors.generate_merkle_bytes32

The vectors are pinned: regenerate only on purpose (e.g. to add sizes); a changed answer from the
same library version means something is wrong. tests/integration/test_merkle_openzeppelin.py checks
that the file still matches the installed library.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from chain.dev.toolchain import REPO_ROOT
from tests.integration.test_merkle_openzeppelin import run_oz

PATH = REPO_ROOT / "tests" / "vectors" / "merkle-bytes32.json"
SIZES = (*range(1, 10), 16, 33)

DESCRIPTION = (
    "Known-answer vectors for chain.core.merkle, produced by @openzeppelin/merkle-tree "
    "StandardMerkleTree.of(digests.map(d => [d]), ['bytes32']) via scripts/lib/oz-merkle.js, written by "
    "`.venv/bin/python -m tests.vectors.generate_merkle_bytes32`. For each size n, digest i (0 <= i < n) "
    "is sha256(b'finvault-merkle-vector-%d' % i), in value order. 'root' is tree.root; 'proofs[i]' is "
    "tree.getProof(i) (sibling path for digest i); 'multiproof' is tree.getMultiProof(indices) with "
    "indices = [i for i in range(n) if i % 3 == 0], whose 'leaves' are the proven digests (not leaf "
    "hashes) in the order MerkleProof.multiProofVerify expects, i.e. ascending leaf hash "
    "keccak256(keccak256(digest)). All byte strings are 0x-prefixed lowercase hex."
)


def digest(i: int) -> bytes:
    return hashlib.sha256(b"finvault-merkle-vector-%d" % i).digest()


def build() -> dict[str, Any]:
    sets = [[digest(i) for i in range(n)] for n in SIZES]
    indices = [[i for i in range(n) if i % 3 == 0] for n in SIZES]
    answer = run_oz(sets, indices)
    vectors = [
        {
            "size": n,
            "digests": ["0x" + d.hex() for d in digests],
            "root": oz["root"],
            "proofs": oz["proofs"],
            "multiproof": {"indices": idx, **oz["multiproof"]},
        }
        for n, digests, idx, oz in zip(SIZES, sets, indices, answer["results"], strict=True)
    ]
    return {
        "description": DESCRIPTION,
        "library": answer["library"],
        "leafEncoding": ["bytes32"],
        "vectors": vectors,
    }


def main() -> None:
    PATH.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
