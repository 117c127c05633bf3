"""Verification node latency, throughput and memory, against two peers measured in the same run.

    .venv/bin/python bench/node.py [--seconds S] [--rate R] [--workers W] [--certificates N] ...

On a fresh anvil: one real batch of N certificates (default 10,000: W3C-VC-shaped
``finvault-receipt/2`` receipts, each credential an SD-JWT signed with Ed25519, every claim of the
subject disclosable and all disclosed, decoys included; one Merkle tree, one anchor transaction;
``--receipt-format 1`` builds legacy salted, signed /1 receipts instead, to compare), made final;
the mirror is synced, then K synthetic anchors (default 100,000) are inserted straight into its
table so lookups run against a realistically full mirror. Then a real ``finvault node`` (default
``FINVAULT_WORKERS=2``, forked after import, live sync loop) is measured with ``bench/loadgen.js``
(Node.js, its own process, keep-alive HTTP/1.1, every answer checked VALID):

- closed loop: 50 connections back to back for 15 s after a warm-up: the peak, and the node's CPU
  a verification (warm-up included: CPU time is read for the process tree as a whole);
- open loop: R verifications a second (default 2,000) for S seconds (default 60) after a warm-up,
  wrk2-style: latency from each request's due time (coordinated omission corrected); p50, p99,
  max, errors, the rate achieved;
- memory: PSS (and RSS) summed over the node's process tree (``/proc/PID/smaps_rollup``);
- bulk: the same receipts through ``POST /verify/bulk``, 1,000 a request (informational);
- direct RPC: the same ``verify()`` with facts read through the registry's views (``RpcFacts``),
  what ``finvault verify --rpc`` does, one receipt after another;
- oa-verify: OpenAttestation's verifier (``bench/peers/oa-verify``, pinned; ``npm ci`` on first
  use, skipped with a message without npm) on documents wrapped and issued on OpenAttestation's
  DocumentStore on the same anvil; integrity and issuance status only, DNS identity checks off.

Scale-out (``--replicas N --postgres ADMIN_URL``): the mirror is a fresh PostgreSQL database; one
node writes it (its sync loop, one process) and N replica nodes (``FINVAULT_NODE_REPLICA``, each
with ``--workers`` workers) serve from it; the load generator spreads its connections over the
replicas in turn, as a layer-4 balancer would, and memory is summed over every node's tree.

The node keeps a cache of signature checks (``FINVAULT_SIGNATURE_CACHE_ENTRIES``): the closed
loop comes first and sends every receipt several times at the default sizes, so the open loop sees
them again, as a node that verifies the same certificates repeatedly would.
``--signature-cache-entries 0`` measures every signature checked every time. Everything shares the
same 2 cores. Informational only: prints ratios against the targets and exits 0 whether or not
they are met.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
from sqlalchemy import func, insert, select

# This file's own name would shadow the node package, and the workload builders live in the repo's
# tests package: the repo root goes first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers.npm import peer
from chain.accounts import LocalSigner
from chain.contract import load_artifact
from chain.core.signing import PublicKeyInfo
from chain.core.verify import Status, verify
from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.registry import RegistryReader, RegistryWriter, deploy_registry
from chain.rpc import RetryPolicy, RpcClient
from chain.rpc_facts import RpcFacts
from chain.tx import TxSender
from indexer.db import open_mirror
from indexer.schema import AnchorRow
from indexer.sync import Indexer
from tests.factories import make_secured_batch
from tests.integration.indexer_fixtures import postgres_database
from tests.tools.memory import TreeMemory, tree_memory
from tests.tools.node_process import NodeProcess

TARGET_RATE = 2_000
TARGET_P99_MS = 25.0
TARGET_PEAK = 4_000
TARGET_RPC_RATIO = 20.0
TARGET_OA_RATIO = 30.0
TARGET_PSS_MB = 250
FINALITY_DEPTH = 64
SLOW = RetryPolicy(rounds=2, timeout=600.0)


# -- the workload ------------------------------------------------------------------------------------


def build_chain(rpc: RpcClient, certificates: int, receipt_format: str) -> tuple[str, int, list[bytes]]:
    """Registry, issuer, key and one anchored, final batch; returns (registry, deploy block, receipts).

    ``receipt_format`` ``"2"``: ``finvault-receipt/2`` receipts whose credentials are SD-JWTs (what
    the issuer writes by default; :func:`chain.core.secured.secure_sd_jwt`, every claim of the
    subject disclosable, decoys included); ``"1"``: legacy receipts (salted documents with a Data
    Integrity proof and a receipt signature), for comparison on the same machine."""
    artifact = load_artifact()

    def sender(account: int) -> TxSender:
        return TxSender(
            rpc, LocalSigner.dev(account), chain_id=DEV_CHAIN_ID, abi=artifact.abi, poll_interval=0.01
        )

    deployed = deploy_registry(sender(0), artifact=artifact)
    assert deployed.contract_address is not None
    registry = deployed.contract_address.lower()
    owner, issuer = (
        RegistryWriter(sender(0), registry, artifact),
        RegistryWriter(sender(1), registry, artifact),
    )
    owner.register_issuer(issuer.sender.signer.address, "Bench University", "https://bench.example")
    started = time.perf_counter()
    if receipt_format == "1":
        receipts, root, info, finish = _legacy_receipts(certificates)
    else:
        batch = make_secured_batch(certificates, seed="bench-node")
        root, info = batch.tree.root, batch.key_info
        finish = None
    issuer.add_key(info.key_id, int(info.algorithm), info.der)
    anchored = issuer.anchor(root, certificates, "ipfs://bench")
    address = issuer.sender.signer.address
    if finish is not None:
        receipts = finish(registry, address, anchored.tx_hash, anchored.block_number)
    else:
        receipts = [
            batch.receipt(i, chain_id=DEV_CHAIN_ID, registry=registry, issuer=address)
            .to_json(indent=None)
            .encode()
            for i in range(certificates)
        ]
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    print(
        f"chain: {certificates:,} certificates (finvault-receipt/{receipt_format}) in one batch, anchored "
        f"in block {anchored.block_number}; receipts built in {time.perf_counter() - started:.1f}s "
        f"({len(receipts[0]):,} bytes each)"
    )
    return registry, deployed.block_number, receipts


def _legacy_receipts(
    certificates: int,
) -> tuple[list[bytes], bytes, PublicKeyInfo, Callable[[str, str, str, int], list[bytes]]]:
    """A legacy /1 batch: its root and key now, its receipts once the anchor is known."""
    from chain.core.issuance import batch_receipts, sign_document
    from chain.core.receipt import Anchor
    from tests.factories import make_batch

    batch = make_batch(certificates, seed="bench-node")

    def finish(registry: str, issuer: str, tx_hash: str, block_number: int) -> list[bytes]:
        anchor = Anchor(
            chainId=DEV_CHAIN_ID, registry=registry, issuer=issuer, txHash=tx_hash, blockNumber=block_number
        )
        signed = [sign_document(document, batch.key) for document in batch.documents]
        return [r.to_json(indent=None).encode() for r in batch_receipts(batch.tree, signed, anchor)]

    return [], batch.tree.root, batch.key_info, finish


def fill_mirror(rpc: RpcClient, database_url: str, registry: str, start: int, synthetic: int) -> None:
    """Syncs the real chain, then adds ``synthetic`` anchor rows below the checkpoint."""
    indexer = Indexer(
        open_mirror(database_url), rpc, chain_id=DEV_CHAIN_ID, registry=registry, start_block=start
    )
    indexer.check_startup()
    indexer.sync()
    indexer.close()
    started = time.perf_counter()
    issuer = bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8")
    with indexer.engine.begin() as connection:
        for offset in range(0, synthetic, 10_000):
            rows = []
            for i in range(offset, min(synthetic, offset + 10_000)):
                seed = hashlib.sha256(f"bench/synthetic/{i}".encode()).digest()
                rows.append(
                    {
                        "tx_hash": hashlib.sha256(b"tx" + seed).digest(),
                        "log_index": 0,
                        "block_number": 1 + i % max(1, start - 1),
                        "block_hash": hashlib.sha256(b"block" + seed).digest(),
                        "root": seed,
                        "issuer": issuer,
                        "count": 1 + i % 5_000,
                        "timestamp": 1_780_000_000 + i,
                        "accumulator": hashlib.sha256(b"acc" + seed).digest(),
                        "manifest_uri": f"ipfs://bafy-synthetic-{i}",
                    }
                )
            connection.execute(insert(AnchorRow), rows)
    with indexer.engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(AnchorRow)).scalar_one()
    indexer.engine.dispose()
    print(
        f"mirror: synced, plus {synthetic:,} synthetic anchors ({total:,} anchor rows) "
        f"in {time.perf_counter() - started:.1f}s"
    )


# -- the load generator, the node's CPU and the peers ---------------------------------------------


LOADGEN = Path(__file__).resolve().parent / "loadgen.js"


def load(
    url: str, bodies_path: Path, *, rate: float, seconds: float, warmup: float, connections: int
) -> dict[str, Any]:
    """``bench/loadgen.js`` (Node.js, its own process): open loop at ``rate``/s, or closed loop at 0."""
    command = ["node", str(LOADGEN), url, str(bodies_path), "--rate", str(rate), "--seconds", str(seconds)]
    command += ["--warmup", str(warmup), "--connections", str(connections)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"loadgen failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def wait_ready(url: str) -> None:
    """Waits (up to a minute) until the node at ``url`` is ready and its mirror folds into the
    contract's accumulators."""
    with httpx.Client(base_url=url) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get("/status").json()["accumulators_match"] is True


def total_memory(pids: list[int]) -> TreeMemory:
    """Memory summed over the process trees of ``pids``."""
    trees = [tree_memory(pid) for pid in pids]
    return TreeMemory(*(sum(getattr(t, name) for t in trees) for name in ("rss", "peak_rss", "pss")))


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (live ones), from ``/proc``."""
    total, pids = 0.0, [pid]
    while pids:
        process = pids.pop()
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{process}/task").iterdir():
            pids += [int(child) for child in (task / "children").read_text().split()]
    return total


def oa_verify(rpc_url: str, documents: int, seconds: float) -> dict[str, Any] | None:
    """OpenAttestation's verifier on the same anvil (``bench/peers/oa-verify``), installed from its
    pinned lock file on first use; None, with the reason printed, when npm or Node.js is missing."""
    folder = peer("oa-verify")
    if folder is None:
        return None
    done = subprocess.run(
        ["node", "verify.js", rpc_url, str(documents), str(seconds)],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"oa-verify failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- the baselines -------------------------------------------------------------------------------------


def direct_rpc(rpc_url: str, registry: str, bodies: list[bytes], seconds: float) -> tuple[int, float]:
    """``verify()`` over RpcFacts, one receipt after another, for about ``seconds``."""
    with RpcClient([rpc_url]) as rpc:
        facts = RpcFacts(RegistryReader(rpc, registry), DEV_CHAIN_ID)
        now = datetime.now(UTC)
        done = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            verdict = verify(bodies[done % len(bodies)], facts, now)
            assert verdict.status is Status.VALID, verdict.to_dict()
            done += 1
        return done, time.perf_counter() - started


def bulk(url: str, bodies: list[bytes], per_request: int = 1_000) -> tuple[int, float]:
    """Every receipt through ``POST /verify/bulk``, ``per_request`` at a time: (count, seconds)."""
    chunks = [bodies[i : i + per_request] for i in range(0, len(bodies), per_request)]
    payloads = [b'{"receipts":[' + b",".join(chunk) + b"]}" for chunk in chunks]
    with httpx.Client(base_url=url, timeout=120) as client:
        started = time.perf_counter()
        for payload in payloads:
            response = client.post(
                "/verify/bulk", content=payload, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 200, response.text[:300]
            assert json.loads(response.content)["summary"] == {"VALID": payload.count(b'"format"')}
        return sum(len(c) for c in chunks), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--certificates", type=int, default=10_000)
    parser.add_argument(
        "--receipt-format",
        choices=("2", "1"),
        default="2",
        help="finvault-receipt/2 SD-JWT receipts (default), or legacy /1 receipts to compare with",
    )
    parser.add_argument("--anchors", type=int, default=100_000, help="synthetic anchors added to the mirror")
    parser.add_argument("--workers", type=int, default=2, help="the node's FINVAULT_WORKERS")
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="open loop: verifications a second")
    parser.add_argument("--seconds", type=float, default=60.0, help="open loop: seconds measured")
    parser.add_argument("--connections", type=int, default=64, help="open loop: keep-alive connections")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--peak-seconds", type=float, default=15.0, help="closed loop: seconds measured")
    parser.add_argument("--peak-connections", type=int, default=50, help="closed loop: connections")
    parser.add_argument("--rpc-seconds", type=float, default=10.0)
    parser.add_argument("--oa-documents", type=int, default=1_000, help="oa-verify: documents wrapped")
    parser.add_argument("--oa-seconds", type=float, default=10.0)
    parser.add_argument("--replicas", type=int, default=0, help="serve from N replica nodes (scale-out)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("FINVAULT_TEST_POSTGRES_URL"),
        help="with --replicas: a PostgreSQL admin URL (default: $FINVAULT_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--signature-cache-entries",
        type=int,
        default=None,
        help="the node's FINVAULT_SIGNATURE_CACHE_ENTRIES (0: every signature checked every time)",
    )
    args = parser.parse_args()
    if shutil.which("node") is None:
        raise SystemExit("bench/node.py needs Node.js for its load generator (bench/loadgen.js)")
    if args.replicas and not args.postgres:
        raise SystemExit(
            "--replicas needs a PostgreSQL server: --postgres URL (`scripts/postgres start` prints one)"
        )

    with (
        DevChain() as chain,
        RpcClient([chain.rpc_url], policy=SLOW) as rpc,
        TemporaryDirectory() as tmp,
        ExitStack() as stack,
    ):
        registry, start, bodies = build_chain(rpc, args.certificates, args.receipt_format)
        database_url = f"sqlite:///{tmp}/mirror.db"
        if args.replicas:
            database_url = stack.enter_context(postgres_database(args.postgres))
        fill_mirror(rpc, database_url, registry, start, args.anchors)
        bodies_path = Path(tmp) / "receipts.jsonl"
        bodies_path.write_bytes(b"".join(body + b"\n" for body in bodies))

        env = {
            "FINVAULT_LOG_LEVEL": "warning",
            "FINVAULT_CHAIN_ID": str(DEV_CHAIN_ID),
            "FINVAULT_WORKERS": str(args.workers),
            # The synthetic anchors are not on the chain, so the node's accumulator check would
            # (rightly) find the mirror diverged and refuse every verdict. The check runs in the
            # sync process once a minute, never on a request's path.
            "FINVAULT_ACCUMULATOR_CHECK_INTERVAL": "0",
        }
        if args.signature_cache_entries is not None:
            env["FINVAULT_SIGNATURE_CACHE_ENTRIES"] = str(args.signature_cache_entries)
        node = NodeProcess(
            rpc_url=chain.rpc_url,
            registry=registry,
            database_url=database_url,
            env={**env, "FINVAULT_WORKERS": "1"} if args.replicas else env,
        )
        with node, ExitStack() as nodes:
            served = [node]
            if args.replicas:
                replica_env = {
                    **env,
                    "FINVAULT_NODE_REPLICA": "true",
                    "FINVAULT_CURSOR_SECRET": "bench-" + "r" * 32,
                }
                served = [
                    nodes.enter_context(
                        NodeProcess(
                            rpc_url=chain.rpc_url,
                            registry=registry,
                            database_url=database_url,
                            env=replica_env,
                        )
                    )
                    for _ in range(args.replicas)
                ]
            for each in (node, *served):
                wait_ready(each.url)
            assert node.pid is not None
            pids = [each.pid for each in dict.fromkeys([node, *served]) if each.pid is not None]
            url = ",".join(each.url for each in served)
            started = total_memory(pids)
            cache = args.signature_cache_entries
            print(
                f"node: {url}, {args.workers} worker process(es) forked after import"
                + f", signature cache {'default' if cache is None else f'{cache:,} entries'}"
                + f", load average {os.getloadavg()[0]:.2f}"
                + (f" in each of {args.replicas} replicas, the writer apart" if args.replicas else "")
                + f"; PSS {started.pss:.0f} MB after start (RSS {started.rss:.0f} MB summed over processes)"
            )
            # The peak first: it also shows every worker the receipts (their caches fill), so the
            # open loop meets a warm node, as a node in service would be.
            cpu_before = sum(tree_cpu_seconds(pid) for pid in pids)
            peak = load(
                url,
                bodies_path,
                rate=0,
                seconds=args.peak_seconds,
                warmup=args.warmup,
                connections=args.peak_connections,
            )
            node_cpu = sum(tree_cpu_seconds(pid) for pid in pids) - cpu_before
            open_loop = load(
                url,
                bodies_path,
                rate=args.rate,
                seconds=args.seconds,
                warmup=args.warmup,
                connections=args.connections,
            )
            memory = total_memory(pids)
            bulk_count, bulk_seconds = bulk(served[0].url, bodies)
        rpc_count, rpc_seconds = direct_rpc(chain.rpc_url, registry, bodies, args.rpc_seconds)
        oa = oa_verify(chain.rpc_url, args.oa_documents, args.oa_seconds)

    lo = open_loop
    print(
        f"open loop   {lo['rate']:,.0f}/s for {lo['seconds']:g}s: achieved {lo['achieved']:,.0f}/s, "
        f"p50 {lo['p50_ms']:.1f} ms, p99 {lo['p99_ms']:.1f} ms, max {lo['max_ms']:.1f} ms "
        f"(from each request's due time), {lo['errors']} errors of {lo['measured']:,} ({lo['not_valid']} "
        f"not VALID, {lo['socket_errors']} socket errors, {lo['unanswered']} unanswered 10 s after the end); "
        f"{lo['connections']} connections; the generator used "
        f"{100 * lo['cpu_seconds'] / lo['wall_seconds']:.0f}% of a core"
    )
    peak_rate = peak["achieved"]
    print(
        f"closed loop {peak['connections']} connections for {peak['seconds']:g}s: {peak_rate:,.0f}/s, "
        f"p50 {peak['p50_ms']:.1f} ms, p99 {peak['p99_ms']:.1f} ms, {peak['errors']} errors; node CPU "
        f"{1e6 * node_cpu / max(1, peak['answered']):.0f} us a verification; the generator used "
        f"{100 * peak['cpu_seconds'] / peak['wall_seconds']:.0f}% of a core"
    )
    print(
        f"POST /verify/bulk  {bulk_count:>8,} verifications in {bulk_seconds:.1f}s = "
        f"{bulk_count / bulk_seconds:>8,.0f}/s  (1,000 a request, one connection)"
    )
    rpc_rate = rpc_count / rpc_seconds
    print(
        f"direct RPC  {rpc_count:,} verifications in {rpc_seconds:.1f}s = {rpc_rate:,.0f}/s, "
        f"{1000 / rpc_rate:.2f} ms a document (RpcFacts through the registry's views, one after another)"
    )
    if oa is not None:
        print(
            f"oa-verify   {oa['verified']:,} verifications in {oa['seconds']:.1f}s = "
            f"{oa['msPerDocument']:.2f} ms a document, {oa['invalid']} not valid "
            "(@govtechsg/oa-verify 9.4.0 against the same anvil: document integrity and "
            "DocumentStore issuance status; DNS identity checks off)"
        )
    against("open-loop p99 (ms)", open_loop["p99_ms"], "<=", TARGET_P99_MS, f"at {args.rate:,.0f}/s")
    against("open-loop errors", open_loop["errors"], "<=", 0)
    against("closed-loop peak (/s)", peak_rate, ">=", TARGET_PEAK, f"{args.workers} workers")
    against("node PSS (MB)", memory.pss, "<=", TARGET_PSS_MB, f"whole tree; RSS summed {memory.rss:.0f} MB")
    against("node / direct RPC", peak_rate / rpc_rate, ">=", TARGET_RPC_RATIO, "per document, at the peak")
    if oa is not None:
        against(
            "node / oa-verify",
            peak_rate * oa["msPerDocument"] / 1000,
            ">=",
            TARGET_OA_RATIO,
            "per document, at the peak",
        )


def against(label: str, value: float, relation: str, target: float, note: str = "") -> None:
    """Prints ``value`` against its target, and whether it is met."""
    met = value >= target if relation == ">=" else value <= target
    ratio = f" ({value / target:.2f}x)" if target else ""
    verdict = "met" if met else "MISSED"
    print(f"{label:<22} {value:10.1f}  target {relation} {target:g}{ratio}: {verdict}  {note}")


if __name__ == "__main__":
    main()
