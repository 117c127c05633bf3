"""Merkle tree throughput: chain.core.merkle against a naive baseline measured in the same run.

    .venv/bin/python bench/merkle.py [--leaves N] [--baseline-leaves M]

Times building ``MerkleTree`` over N random digests (default 1,000,000) and then streaming every
proof with ``proofs()``. The baseline is the obvious implementation (eth-hash ``keccak``, one
loop iteration per node, one loop over the levels per proof) on M leaves (default 100,000), scaled
per leaf. Its proofs cost grows with log2(M), so the scaled baseline slightly flatters itself: the
printed speedup is a lower bound. Informational only: exits 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import sys
import time
from collections.abc import Iterator

from eth_hash.auto import keccak
from eth_hash.utils import auto_choose_backend

from chain.core.merkle import MerkleTree

TARGET_LEAVES = 1_000_000
TARGET_SECONDS = 5.0


class NaiveTree:
    """The textbook OpenZeppelin ``StandardMerkleTree`` (bytes32 leaves), as a first draft would be."""

    def __init__(self, digests: list[bytes]) -> None:
        leaves = sorted(keccak(keccak(d)) for d in digests)
        n = len(leaves)
        self.tree: list[bytes] = [b""] * (2 * n - 1)
        for i, leaf in enumerate(leaves):
            self.tree[len(self.tree) - 1 - i] = leaf
        for i in range(len(self.tree) - 1 - n, -1, -1):
            left, right = self.tree[2 * i + 1], self.tree[2 * i + 2]
            self.tree[i] = keccak(left + right) if left < right else keccak(right + left)
        self.n = n

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def proofs(self) -> Iterator[tuple[bytes, list[bytes]]]:
        for index in range(len(self.tree) - self.n, len(self.tree)):
            proof = []
            i = index
            while i > 0:
                proof.append(self.tree[i + 1 if i % 2 == 1 else i - 1])
                i = (i - 1) // 2
            yield self.tree[index], proof


def maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if platform.system() == "Darwin" else rss * 1024  # Linux reports KiB


def drain(proofs: Iterator[tuple[bytes, list[bytes]]]) -> int:
    count = 0
    for _leaf, _proof in proofs:
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--leaves", type=int, default=TARGET_LEAVES, help="leaves in the timed tree")
    parser.add_argument(
        "--baseline-leaves", type=int, default=100_000, help="leaves for the naive baseline (scaled)"
    )
    args = parser.parse_args(argv)
    n: int = args.leaves
    m: int = min(args.baseline_leaves, n)
    if n < 1 or m < 1:
        parser.error("--leaves and --baseline-leaves must be positive")

    print(f"python {platform.python_version()} on {platform.machine()}, {n:,} leaves")
    digests = [os.urandom(32) for _ in range(n)]
    gc.collect()
    rss_before = maxrss_bytes()

    # chain.core.merkle first, so the baseline's allocations do not hide its peak.
    start = time.perf_counter()
    tree = MerkleTree(digests)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    count = drain(tree.proofs())
    proofs_s = time.perf_counter() - start
    assert count == n
    peak_delta = maxrss_bytes() - rss_before
    total_s = build_s + proofs_s
    print(f"build:            {build_s:8.3f} s   {n / build_s:12,.0f} leaves/s")
    print(f"all proofs:       {proofs_s:8.3f} s   {n / proofs_s:12,.0f} proofs/s")
    print(f"build + proofs:   {total_s:8.3f} s")
    print(f"peak memory:      {peak_delta / 2**20:8.1f} MiB above the input (ru_maxrss delta)")

    naive_input = digests[:m]
    del tree
    gc.collect()
    start = time.perf_counter()
    naive = NaiveTree(naive_input)
    naive_build_s = time.perf_counter() - start
    start = time.perf_counter()
    naive_count = drain(naive.proofs())
    naive_proofs_s = time.perf_counter() - start
    assert naive_count == m
    if naive.root != MerkleTree(naive_input).root:
        print("WARNING: the naive baseline disagrees with chain.core.merkle on the root", file=sys.stderr)
    backend = type(auto_choose_backend()).__module__.rsplit(".", 1)[-1]
    naive_per_leaf = (naive_build_s + naive_proofs_s) / m
    ours_per_leaf = total_s / n
    print(
        f"naive baseline:   {naive_build_s + naive_proofs_s:8.3f} s for {m:,} leaves "
        f"(build {naive_build_s:.3f} s, proofs {naive_proofs_s:.3f} s, eth-hash backend "
        f"{backend}); scaled to {n:,}: {naive_per_leaf * n:.2f} s"
    )
    print(f"speedup vs naive baseline: {naive_per_leaf / ours_per_leaf:.1f}×")  # noqa: RUF001

    if n == TARGET_LEAVES:
        met = total_s <= TARGET_SECONDS
        verdict = "met" if met else "NOT met"
        print(
            f"target: tree + all proofs for 1M leaves in ≤ {TARGET_SECONDS:g} s: {verdict} ({total_s:.2f} s)"
        )
    else:
        estimate = total_s * TARGET_LEAVES / n
        print(
            f"target: tree + all proofs for 1M leaves in ≤ {TARGET_SECONDS:g} s: not measured "
            f"(--leaves {n:,}; linear estimate {estimate:.2f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
