"""Indexer throughput and footprint, against baselines measured in the same run on a fresh anvil.

    .venv/bin/python bench/indexer.py [--events N] [--naive-events M] [--anchors K]

Writes N+ registry events (default 100,000; ``revokeLeaves`` multiproof batches of 400 leaves are
the bulk, with every other event kind mixed in), then measures:

- whole process: ``finvault sync`` from start to exit (start-up, fetch, hand decoding, parent-hash
  and accumulator checks, SQLite, the per-block digests) into a fresh mirror, against the viem
  loop a developer would write instead (``bench/peers/viem-sync``: viem ``getLogs`` + decoding,
  better-sqlite3 inserts, one transaction a chunk, FinVault's chunk policy; no checks), also from
  start to exit; the best of R runs each (default 3), taken in turn;
- raw: ``eth_getLogs`` over HTTP with JSON parsing only, over the very block ranges the indexer used;
- indexer: ``Indexer.sync`` end to end (fetch, hand decoding, accumulator checks, SQLite) into a
  fresh mirror, in a separate process so that its peak RSS is its own;
- naive: web3.py ``contract.events.LeafRevoked.get_logs`` over the first M LeafRevoked events
  (default 10,000), as events per second, so the ratio compares rates;
- mirror bytes per anchor: K anchors (default 2,000, 100 per block, 66-byte manifest URIs) synced
  into the existing mirror, file size delta / K.

Informational only: prints ratios against the targets and exits 0 whether or not they are met.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
from sqlalchemy import text

# This file's own name would shadow the indexer package, and the workload generator lives in the
# repo's tests package: the repo root goes first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers.npm import peer
from chain.contract import load_artifact
from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.rpc import RetryPolicy, RpcClient
from chain.service.db import make_engine
from indexer.db import open_mirror
from indexer.decode import MIRRORED_TOPICS
from indexer.sync import Indexer

# The sync runs in a spawned process, which re-imports this module: web3 and the workload generator
# are imported where they are used, so that process holds no more than `finvault sync` would.

TARGET_RAW_RATIO = 0.6
TARGET_PEER_RATIO = 2.0
TARGET_NAIVE_RATIO = 5.0
TARGET_BYTES_PER_ANCHOR = 400
TARGET_PEAK_RSS_MB = 200
LEAVES_PER_TX = 400  # ~11.5M gas each
BLOCK_GAS_LIMIT = 200_000_000  # 4 of them a block stays under the 1559 target: the base fee falls
SLOW = RetryPolicy(rounds=2, timeout=600.0)
MANIFEST = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def sync_mirror(rpc_url: str, database_url: str, registry: str, start_block: int) -> dict[str, Any]:
    """Runs in a fresh (spawned) process: one timed ``Indexer.sync`` and the process's peak RSS."""
    baseline = peak_rss_mb()
    with RpcClient([rpc_url], policy=SLOW) as rpc:
        indexer = Indexer(
            open_mirror(database_url), rpc, chain_id=DEV_CHAIN_ID, registry=registry, start_block=start_block
        )
        ranges: list[tuple[int, int]] = []
        started = time.perf_counter()
        status = indexer.sync(on_step=lambda step: ranges.append((step.first_block, step.last_block)))
        elapsed = time.perf_counter() - started
    return {
        "elapsed": elapsed,
        "events": status.events_indexed,
        "ranges": ranges,
        "baseline_rss": baseline,
        "peak_rss": peak_rss_mb(),
    }


def whole_finvault_sync(
    rpc_url: str, registry: str, start: int, head: int, folder: Path
) -> tuple[int, float]:
    """``finvault sync`` into a fresh mirror, as a process from start to exit: (events, seconds)."""
    database_url = f"sqlite:///{folder}/finvault-{time.monotonic_ns()}.db"
    argv = [str(Path(sys.executable).with_name("finvault")), "sync", "--rpc", rpc_url, "--registry", registry]
    argv += ["--db", database_url, "--start-block", str(start), "--to", str(head)]
    stdout, elapsed = timed_process(argv)
    return int(stdout.split(": ")[1].split(" events")[0].replace(",", "")), elapsed


def whole_viem_sync(
    peer_dir: Path, rpc_url: str, registry: str, start: int, head: int, folder: Path
) -> tuple[int, float]:
    """The viem loop into a fresh SQLite file, as a process from start to exit: (events, seconds)."""
    argv = ["node", str(peer_dir / "sync.mjs"), "--rpc", rpc_url, "--registry", registry]
    argv += ["--from", str(start), "--to", str(head), "--db", f"{folder}/viem-{time.monotonic_ns()}.db"]
    stdout, elapsed = timed_process(argv)
    return int(json.loads(stdout)["events"]), elapsed


def timed_process(argv: list[str]) -> tuple[str, float]:
    """Runs ``argv`` to its exit: its stdout and wall seconds (its stderr, should it fail)."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout, elapsed


def raw_fetch(rpc_url: str, registry: str, ranges: list[tuple[int, int]]) -> tuple[int, float]:
    """The baseline: the same eth_getLogs the indexer sends, JSON-parsed and counted, nothing else."""
    count = 0
    with httpx.Client(timeout=600.0) as client:
        started = time.perf_counter()
        for first, last in (r for r in ranges if r[0] <= r[1]):
            query = {
                "address": registry,
                "fromBlock": hex(first),
                "toBlock": hex(last),
                "topics": [MIRRORED_TOPICS],
            }
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [query]}
            count += len(client.post(rpc_url, json=body).json()["result"])
        return count, time.perf_counter() - started


def naive_fetch(rpc_url: str, registry: str, first: int, wanted: int) -> tuple[int, float]:
    """web3.py's decoded LeafRevoked logs, ten blocks a call, until ``wanted`` events."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 600}))
    contract = w3.eth.contract(address=Web3.to_checksum_address(registry), abi=list(load_artifact().abi.abi))
    head = w3.eth.block_number
    count = 0
    started = time.perf_counter()
    block = first
    while count < wanted and block <= head:
        count += len(contract.events.LeafRevoked.get_logs(from_block=block, to_block=min(head, block + 9)))
        block += 10
    return count, time.perf_counter() - started


def settled_size(database_url: str) -> int:
    """The mirror file's size with the WAL folded in."""
    engine = make_engine(database_url)
    with engine.connect() as connection:
        connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    engine.dispose()
    return Path(database_url.removeprefix("sqlite:///")).stat().st_size


def mirror_growth(rpc: RpcClient, registry: str, database_url: str, start: int) -> int:
    """Bytes the mirror file grows by when it syncs what the chain gained since the last sync."""
    before = settled_size(database_url)
    indexer = Indexer(
        open_mirror(database_url), rpc, chain_id=DEV_CHAIN_ID, registry=registry, start_block=start
    )
    indexer.sync()
    indexer.engine.dispose()
    return settled_size(database_url) - before


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--naive-events", type=int, default=10_000)
    parser.add_argument("--anchors", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3, help="Whole-process runs of each side.")
    args = parser.parse_args()
    artifact = load_artifact()
    from tests.integration.indexer_fixtures import (
        ISSUER_A,
        BlockBuilder,
        deploy,
        digest,
        manual_mining,
        populate,
    )

    # Spawned now, while this process is small: Linux carries the RSS high-water mark across exec.
    pool = multiprocessing.get_context("spawn").Pool(1)
    with (
        pool,
        DevChain() as chain,
        RpcClient([chain.rpc_url], policy=SLOW) as rpc,
        TemporaryDirectory() as tmp,
    ):
        rpc.call("anvil_setBlockGasLimit", [hex(BLOCK_GAS_LIMIT)])
        registry, start = deploy(rpc, artifact)
        started = time.perf_counter()
        with manual_mining(rpc):
            population = populate(
                BlockBuilder(rpc, registry, artifact.abi),
                leaf_revocations=args.events,
                leaves_per_tx=LEAVES_PER_TX,
                leaf_txs_per_block=4,
                seed="bench",
            )
        print(
            f"chain: {population.event_count:,} events in {population.head - start + 1} blocks, "
            f"written in {time.perf_counter() - started:.1f}s"
        )

        viem = peer("viem-sync")
        whole: list[tuple[int, float]] = []
        peers: list[tuple[int, float]] = []
        span = (start, population.head, Path(tmp))
        for _ in range(args.runs):
            whole.append(whole_finvault_sync(chain.rpc_url, registry, *span))
            if viem is not None:
                peers.append(whole_viem_sync(viem, chain.rpc_url, registry, *span))

        database_url = f"sqlite:///{tmp}/mirror.db"
        run = pool.apply(sync_mirror, (chain.rpc_url, database_url, registry, start))
        raw_events, raw_elapsed = raw_fetch(chain.rpc_url, registry, run["ranges"])
        naive_events, naive_elapsed = naive_fetch(chain.rpc_url, registry, start, args.naive_events)

        with manual_mining(rpc):
            builder = BlockBuilder(rpc, registry, artifact.abi)
            for i in range(args.anchors):
                builder.send(ISSUER_A, "anchor", digest(f"bench/anchor/{i}"), 1 + i % 1000, MANIFEST)
                if i % 100 == 99:
                    builder.mine()
            builder.mine()
        per_anchor = mirror_growth(rpc, registry, database_url, start) / args.anchors

    whole_events, whole_elapsed = min(whole, key=lambda run: run[1])
    rate("finvault sync (process)", whole_events, whole_elapsed, f"best of {len(whole)}")
    if peers:
        peer_events, peer_elapsed = min(peers, key=lambda run: run[1])
        rate("viem loop (process)", peer_events, peer_elapsed, f"best of {len(peers)}")
        against(
            "finvault / viem (process)", (whole_events / whole_elapsed) / (peer_events / peer_elapsed), ">=",
            TARGET_PEER_RATIO, f"medians: {median_rate(whole):,.0f} / {median_rate(peers):,.0f} ev/s",
        )  # fmt: skip
    indexer_rate = run["events"] / run["elapsed"]
    raw_rate, naive_rate = raw_events / raw_elapsed, naive_events / naive_elapsed
    rate("raw eth_getLogs + JSON", raw_events, raw_elapsed)
    rate("indexer sync -> SQLite", run["events"], run["elapsed"], f"{len(run['ranges'])} step(s)")
    rate("naive web3.py get_logs", naive_events, naive_elapsed)
    against("indexer / raw", indexer_rate / raw_rate, ">=", TARGET_RAW_RATIO)
    against("indexer / naive", indexer_rate / naive_rate, ">=", TARGET_NAIVE_RATIO)
    against(
        "mirror bytes per anchor", per_anchor, "<", TARGET_BYTES_PER_ANCHOR,
        f"{args.anchors:,} anchors, {len(MANIFEST)}-byte URI",
    )  # fmt: skip
    against(
        "peak RSS of the sync (MB)", run["peak_rss"], "<", TARGET_PEAK_RSS_MB,
        f"{run['baseline_rss']:.0f} MB after imports",
    )  # fmt: skip


def median_rate(runs: list[tuple[int, float]]) -> float:
    """The median events per second of ``runs``."""
    return statistics.median(events / seconds for events, seconds in runs)


def rate(label: str, events: int, seconds: float, note: str = "") -> None:
    print(f"{label:<24} {events:>9,} events in {seconds:6.2f}s = {events / seconds:>9,.0f} ev/s  {note}")


def against(label: str, value: float, relation: str, target: float, note: str = "") -> None:
    met = value >= target if relation == ">=" else value < target
    print(f"{label:<26} {value:8.2f}  target {relation} {target}: {'met' if met else 'MISSED'}  {note}")


if __name__ == "__main__":
    main()
