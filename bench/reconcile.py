"""Reconciliation speed on a fresh anvil: a full row-by-row reconcile and the --quick check.

    .venv/bin/python bench/reconcile.py [--events N]

Writes N+ registry events (default 1,000,000; mostly ``revokeLeaves`` multiproof batches, with every
other event kind mixed in), syncs a mirror, then times, in the same run:

- baseline: the initial ``Indexer.sync`` of the same range (what building the mirror costs);
- ``Reconciler.run`` over the whole range (fresh eth_getLogs and headers, row-by-row compare);
- ``Reconciler.run(quick=True)``: accumulators and counts at the last block, no rows folded
  (median of 5);
- the deep accumulator check alone (every mirror row folded), what the full run and the node's
  periodic check do;
- ``update_digests``: the per-block rolling digests of the whole mirror.

Targets (issue 18): full reconcile of 1M events <= 60 s, quick check <= 50 ms; also prints the
process's peak RSS. Informational only: prints the figures and ratios and exits 0 either way.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.orm import Session

from chain.contract import load_artifact
from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.registry import RegistryReader
from chain.rpc import RetryPolicy, RpcClient
from indexer.db import open_mirror
from indexer.digests import update_digests
from indexer.reconcile import Reconciler, accumulator_drifts
from indexer.sync import Indexer

TARGET_FULL_SECONDS = 60.0
TARGET_QUICK_SECONDS = 0.05
LEAVES_PER_TX = 400
BLOCK_GAS_LIMIT = 200_000_000
SLOW = RetryPolicy(rounds=2, timeout=600.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    artifact = load_artifact()
    from tests.integration.indexer_fixtures import BlockBuilder, deploy, manual_mining, populate

    # Older blocks' states are dropped: with every state kept, anvil holds 16 GB at 1M events.
    with (
        DevChain(states_in_memory=16) as chain,
        RpcClient([chain.rpc_url], policy=SLOW) as rpc,
        TemporaryDirectory() as tmp,
    ):
        rpc.call("anvil_setBlockGasLimit", [hex(BLOCK_GAS_LIMIT)])
        registry, start = deploy(rpc, artifact)
        with manual_mining(rpc):
            population = populate(
                BlockBuilder(rpc, registry, artifact.abi),
                leaf_revocations=args.events,
                leaves_per_tx=LEAVES_PER_TX,
                leaf_txs_per_block=4,
                seed="bench-reconcile",
            )
        engine = open_mirror(f"sqlite:///{tmp}/mirror.db")
        indexer = Indexer(engine, rpc, chain_id=DEV_CHAIN_ID, registry=registry, start_block=start)
        started = time.perf_counter()
        status = indexer.sync(population.head)
        sync_seconds = time.perf_counter() - started
        indexer.close()

        started = time.perf_counter()
        digested = update_digests(engine)
        digest_seconds = time.perf_counter() - started

        reconciler = Reconciler(engine, rpc, registry, DEV_CHAIN_ID)
        full = reconciler.run(start, population.head)
        quicks = [reconciler.run(start, population.head, quick=True) for _ in range(5)]
        quick = quicks[0]
        quick_seconds = statistics.median(run.seconds for run in quicks)
        with Session(engine) as session:
            started = time.perf_counter()
            deep = accumulator_drifts(session, RegistryReader(rpc, registry), DEV_CHAIN_ID, population.head)
            deep_seconds = time.perf_counter() - started

    if not (full.clean and quick.clean) or deep:
        sys.exit(f"unexpected drift on a faithful mirror: {full.drifts + quick.drifts}, {deep}")
    events = status.events_indexed
    print(f"chain: {population.event_count:,} events in {population.head - start + 1:,} blocks")
    print(f"baseline: initial sync      {sync_seconds:7.2f} s  ({events / sync_seconds:,.0f} ev/s)")
    print(f"per-block digests           {digest_seconds:7.2f} s  ({digested:,} blocks)")
    print(
        f"full reconcile              {full.seconds:7.2f} s  ({full.chain_events:,} events; "
        f"{full.seconds / sync_seconds:.2f}x the sync)  target <= {TARGET_FULL_SECONDS:g} s: "
        f"{'met' if full.seconds <= TARGET_FULL_SECONDS else 'MISSED'}"
    )
    print(
        f"quick (accumulators, counts) {quick_seconds * 1000:6.1f} ms "
        f"target <= {TARGET_QUICK_SECONDS * 1000:g} ms: "
        f"{'met' if quick_seconds <= TARGET_QUICK_SECONDS else 'MISSED'}"
    )
    print(f"deep accumulator fold       {deep_seconds:7.2f} s  (every mirror row)")
    print(f"peak RSS of this process    {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:7.0f} MB")


if __name__ == "__main__":
    main()
