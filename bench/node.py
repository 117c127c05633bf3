"""Verification node throughput and latency, against direct RPC verification in the same run.

    .venv/bin/python bench/node.py [--certificates N] [--anchors K] [--seconds S] [--connections C]

On a fresh anvil: one real batch of N certificates (default 10,000: W3C-VC-shaped, salted, signed
with Ed25519, one Merkle tree, one anchor transaction), made final; the mirror is synced, then K
synthetic anchors (default 100,000) are inserted straight into its table so lookups run against
a realistically full mirror. Then:

- node: a real ``finvault node`` subprocess (uvicorn, live sync loop) takes ``POST /verify`` from
  C concurrent keep-alive HTTP/1.1 connections (default 50) for S seconds (default 15), cycling
  through the N receipts; throughput, p50 and p99 latency, and the node's RSS. The client shares
  the same 2 cores, so it is the lightest one available: ``wrk`` (Debian's package, one thread,
  a Lua script cycling through the receipts and checking each answer says VALID) when
  ``/usr/bin/wrk`` exists, else ``--client python``, a minimal asyncio HTTP/1.1 client in its
  own process, which costs the node about a third of a core;
- bulk: the same receipts through ``POST /verify/bulk``, 1,000 a request (informational);
- direct RPC: the same ``verify()`` with facts read through the registry's views (``RpcFacts``),
  what ``finvault verify --rpc`` does, one receipt after another, as verifications per second.

Informational only: prints ratios against the targets and exits 0 whether or not they are met.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
from sqlalchemy import func, insert, select

# This file's own name would shadow the node package, and the workload builders live in the repo's
# tests package: the repo root goes first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chain.accounts import LocalSigner
from chain.contract import load_artifact
from chain.core.verify import Status, verify
from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.registry import RegistryReader, RegistryWriter, deploy_registry
from chain.rpc import RetryPolicy, RpcClient
from chain.rpc_facts import RpcFacts
from chain.tx import TxSender
from indexer.db import open_mirror
from indexer.schema import AnchorRow
from indexer.sync import Indexer
from tests.tools.memory import tree_memory
from tests.tools.node_process import NodeProcess

TARGET_RATE = 2_000
TARGET_P99_MS = 25.0
TARGET_RPC_RATIO = 20.0
TARGET_RSS_MB = 250
FINALITY_DEPTH = 64
SLOW = RetryPolicy(rounds=2, timeout=600.0)


# -- the workload ------------------------------------------------------------------------------------


def build_chain(rpc: RpcClient, certificates: int) -> tuple[str, int, list[bytes]]:
    """Registry, issuer, key and one anchored, final batch; returns (registry, deploy block, receipts)."""
    from chain.core.issuance import batch_receipts, sign_document
    from chain.core.receipt import Anchor
    from tests.factories import make_batch

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
    batch = make_batch(certificates, seed="bench-node")
    info = batch.key_info
    issuer.add_key(info.key_id, int(info.algorithm), info.der)
    anchored = issuer.anchor(batch.tree.root, certificates, "ipfs://bench")
    anchor = Anchor(
        chainId=DEV_CHAIN_ID,
        registry=registry,
        issuer=issuer.sender.signer.address,
        txHash=anchored.tx_hash,
        blockNumber=anchored.block_number,
    )
    signed = [sign_document(document, batch.key) for document in batch.documents]
    receipts = [r.to_json(indent=None).encode() for r in batch_receipts(batch.tree, signed, anchor)]
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    print(
        f"chain: {certificates:,} certificates in one batch, anchored in block {anchored.block_number}; "
        f"receipts built in {time.perf_counter() - started:.1f}s ({len(receipts[0]):,} bytes each)"
    )
    return registry, deployed.block_number, receipts


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


# -- the load generator (a separate process) -----------------------------------------------------------


async def _connection(
    host: str,
    port: int,
    requests: list[bytes],
    start: int,
    stop_at: float,
    warm_until: float,
    out: list[float],
) -> tuple[int, int]:
    """One keep-alive connection sending requests back to back; latencies after warm-up into ``out``."""
    reader, writer = await asyncio.open_connection(host, port)
    sent = errors = 0
    index = start
    try:
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                break
            writer.write(requests[index % len(requests)])
            index += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            took = time.perf_counter() - began
            if not head.startswith(b"HTTP/1.1 200") or b'"status":"VALID"' not in body:
                errors += 1
            if began >= warm_until:
                out.append(took)
                sent += 1
    finally:
        writer.close()
    return sent, errors


async def _load(
    url: str, bodies: list[bytes], connections: int, seconds: float, warmup: float
) -> dict[str, Any]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    requests = [
        b"POST /verify HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        for body in bodies
    ]
    latencies: list[float] = []
    now = time.perf_counter()
    warm_until, stop_at = now + warmup, now + warmup + seconds
    step = max(1, len(requests) // connections)
    results = await asyncio.gather(
        *(
            _connection(host, int(port), requests, i * step, stop_at, warm_until, latencies)
            for i in range(connections)
        )
    )
    return {
        "requests": sum(r[0] for r in results),
        "errors": sum(r[1] for r in results),
        "seconds": seconds,
        "latencies": sorted(latencies),
    }


def run_load(
    url: str, bodies: list[bytes], connections: int, seconds: float, warmup: float
) -> dict[str, Any]:
    """Runs in a spawned process: the client's CPU is not the node's."""
    return asyncio.run(_load(url, bodies, connections, seconds, warmup))


WRK_SCRIPT = r"""
bodies, threads, index, bad = {}, {}, 0, 0  -- globals: done() reads "bad" per thread
function setup(thread) table.insert(threads, thread) end
function init(args)
  for line in io.lines(args[1]) do table.insert(bodies, line) end
  index = tonumber(args[2]) or 0
end
function request()
  index = index % #bodies + 1
  return wrk.format("POST", "/verify", {["Content-Type"] = "application/json"}, bodies[index])
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"status":"VALID"', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local not_valid = 0
  for _, thread in ipairs(threads) do not_valid = not_valid + thread:get("bad") end
  local e = summary.errors
  io.write(string.format('FINVAULT {"requests":%d,"micros":%d,"p50":%d,"p99":%d,"not_valid":%d,' ..
    '"socket_errors":%d}\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), not_valid, e.connect + e.read + e.write + e.timeout))
end
"""


def run_wrk(url: str, bodies: list[bytes], connections: int, seconds: float, warmup: float) -> dict[str, Any]:
    """``wrk`` with one thread: a warm-up run, then the measured one."""
    with TemporaryDirectory() as tmp:
        lines, script = Path(tmp) / "bodies.jsonl", Path(tmp) / "verify.lua"
        lines.write_bytes(
            b"".join(json.dumps(json.loads(b), separators=(",", ":")).encode() + b"\n" for b in bodies)
        )
        script.write_text(WRK_SCRIPT)

        def wrk(duration: float) -> dict[str, Any]:
            command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s"]
            done = subprocess.run(
                [*command, "-s", str(script), url, "--", str(lines)], capture_output=True, text=True
            )
            if done.returncode != 0:
                raise SystemExit(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
            out = done.stdout
            parsed: dict[str, Any] = json.loads(
                next(x for x in out.splitlines() if x.startswith("FINVAULT "))[9:]
            )
            return parsed

        wrk(warmup)
        result = wrk(seconds)
    return {
        "requests": result["requests"],
        "errors": result["not_valid"] + result["socket_errors"],
        "seconds": result["micros"] / 1e6,
        "p50": result["p50"] / 1e6,
        "p99": result["p99"] / 1e6,
    }


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


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
    parser.add_argument("--anchors", type=int, default=100_000, help="synthetic anchors added to the mirror")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="the node's FINVAULT_WORKERS")
    parser.add_argument("--rpc-seconds", type=float, default=10.0)
    parser.add_argument(
        "--client",
        choices=("wrk", "python"),
        default="wrk" if shutil.which("wrk") else "python",
        help="load generator (default wrk when installed: apt-get install wrk)",
    )
    args = parser.parse_args()

    # Spawned now, while this process is small.
    pool = multiprocessing.get_context("spawn").Pool(1)
    with (
        pool,
        DevChain() as chain,
        RpcClient([chain.rpc_url], policy=SLOW) as rpc,
        TemporaryDirectory() as tmp,
    ):
        registry, start, bodies = build_chain(rpc, args.certificates)
        database_url = f"sqlite:///{tmp}/mirror.db"
        fill_mirror(rpc, database_url, registry, start, args.anchors)

        node = NodeProcess(
            rpc_url=chain.rpc_url,
            registry=registry,
            database_url=database_url,
            env={
                "FINVAULT_LOG_LEVEL": "warning",
                "FINVAULT_CHAIN_ID": str(DEV_CHAIN_ID),
                "FINVAULT_WORKERS": str(args.workers),
            },
        )
        with node:
            assert node.pid is not None
            with httpx.Client(base_url=node.url) as client:
                deadline = time.monotonic() + 60
                while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert client.get("/status").json()["accumulators_match"] is True
            print(
                f"node: {node.url}, {args.workers} worker process(es), "
                f"RSS {tree_memory(node.pid).rss:.0f} MB after start (all its processes)"
            )
            load_args = (node.url, bodies, args.connections, args.seconds, args.warmup)
            load = run_wrk(*load_args) if args.client == "wrk" else pool.apply(run_load, load_args)
            memory = tree_memory(node.pid)
            bulk_count, bulk_seconds = bulk(node.url, bodies)
        rpc_count, rpc_seconds = direct_rpc(chain.rpc_url, registry, bodies, args.rpc_seconds)

    rate = load["requests"] / load["seconds"]
    if "latencies" in load:
        load["p50"], load["p99"] = percentile(load["latencies"], 0.50), percentile(load["latencies"], 0.99)
    p50, p99 = load["p50"] * 1000, load["p99"] * 1000
    rpc_rate = rpc_count / rpc_seconds
    print(
        f"POST /verify       {load['requests']:>8,} verifications in {load['seconds']:.1f}s = "
        f"{rate:>8,.0f}/s  "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {args.connections} connections, {load['errors']} not VALID "
        f"(client: {args.client})"
    )
    print(
        f"POST /verify/bulk  {bulk_count:>8,} verifications in {bulk_seconds:.1f}s = "
        f"{bulk_count / bulk_seconds:>8,.0f}/s  (1,000 a request, one connection)"
    )
    print(
        f"direct RPC         {rpc_count:>8,} verifications in {rpc_seconds:.1f}s = {rpc_rate:>8,.0f}/s  "
        "(RpcFacts through the registry's views, one after another)"
    )
    against("verifications/s", rate, ">=", TARGET_RATE)
    against("p99 latency (ms)", p99, "<=", TARGET_P99_MS)
    against("node / direct RPC", rate / rpc_rate, ">=", TARGET_RPC_RATIO)
    note = f"sum of peaks; {memory.rss:.0f} MB after the load; PSS {memory.pss:.0f} MB (shared pages split)"
    against("node RSS (MB)", memory.peak_rss, "<=", TARGET_RSS_MB, note)


def against(label: str, value: float, relation: str, target: float, note: str = "") -> None:
    met = value >= target if relation == ">=" else value <= target
    print(
        f"{label:<22} {value:10.1f}  target {relation} {target:g} ({value / target:.2f}x): "
        f"{'met' if met else 'MISSED'}  {note}"
    )


if __name__ == "__main__":
    main()
