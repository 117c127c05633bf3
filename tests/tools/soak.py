"""Soak: a verification node under sustained load, on a live chain with reorgs, behind a faulty RPC.

    ./scripts/soak [--minutes 5] [--rate 300] [--connections 8] [--report PATH]

Everything runs on 127.0.0.1 and stops by itself after ``--minutes``:

- a fresh anvil; a registry; a fixed receipt set from one final batch (VALID receipts, two revoked
  leaves, two tampered copies: their expected verdicts are known);
- a chain driver: an anchor lands every second, and every 30 s a shallow reorg replaces the last
  three blocks (``evm_snapshot``, three anchoring blocks, ``evm_revert``, four other blocks);
- the fault-injecting proxy between the node and anvil: dropped connections, 429s, 5xxs, truncated
  and invalid JSON, held requests past the node's RPC timeout, each on a few percent of calls;
- a real ``finvault node`` reading the chain through the proxy;
- a load client in its own process sending ``POST /verify`` at ``--rate`` per second over
  ``--connections`` keep-alive connections, checking each answer says VALID;
- every 10 s the whole fixed set through ``POST /verify/bulk``, compared with the expected verdicts.

Then the faults stop, the node catches up, and the mirror is reconciled against anvil directly.
Last, ``--oracle-minutes`` of :mod:`tests.tools.oracle`: a node under deep and shallow reorgs,
RPC faults and mirror tampering, every answer re-checked on the chain at the block it names.
The report: requests, answers by HTTP status, p50/p99 latency, the node's RSS after warm-up and at
the end, the reconciliation, the fixed verdicts and the oracle's counts. Exit 0 only when there
was no 5xx, RSS grew less than 15%, the mirror equals the chain, every fixed verdict was right and
the oracle found no wrong answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx

from chain.accounts import LocalSigner
from chain.contract import Artifact, load_artifact
from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.registry import RegistryWriter, RevocationReason
from chain.rpc import RetryPolicy, RpcClient
from chain.service.db import make_engine
from indexer.reconcile import Reconciler
from tests.integration.node_fixtures import FINALITY_DEPTH, issue
from tests.tools.devnet import ISSUER, OWNER, deploy, node_process, writer
from tests.tools.memory import tree_memory
from tests.tools.oracle import run as run_oracle
from tests.tools.rpc_proxy import Fault, FaultKind, RpcProxy

DRIVER = 2
RSS_GROWTH_LIMIT = 0.15
#: Transport faults on every method, as a fraction of calls each.
FAULTS = (
    Fault(FaultKind.DROP, probability=0.02),
    Fault(FaultKind.RATE_LIMITED, probability=0.02),
    Fault(FaultKind.SERVER_ERROR, probability=0.02),
    Fault(FaultKind.TRUNCATED, probability=0.01),
    Fault(FaultKind.INVALID_JSON, probability=0.01),
    Fault(FaultKind.TIMEOUT, probability=0.005, hold=3.0),
)
NODE_ENV = {
    "FINVAULT_CHAIN_ID": str(DEV_CHAIN_ID),
    "FINVAULT_POLL_INTERVAL": "0.5",
    "FINVAULT_RPC_TIMEOUT": "2",
    "FINVAULT_RPC_ROUNDS": "6",
    "FINVAULT_LOG_LEVEL": "warning",
}


def say(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the chain ------------------------------------------------------------------------------------


@dataclass
class FixedSet:
    """Receipts whose verdicts are known in advance."""

    bodies: list[bytes]
    expected: list[str]
    valid: list[bytes]

    @classmethod
    def build(cls, owner: RegistryWriter, issuer: RegistryWriter, rpc: RpcClient, size: int = 20) -> FixedSet:
        issued = issue(owner, issuer, size=size, seed="soak")
        tree = issued.batch.tree
        revoked = (3, 7)
        for index in revoked:
            leaf = issued.leaf(index)
            issued.writer.revoke_leaf(leaf, tree.root, tree.proof(leaf), RevocationReason.SUPERSEDED)
        rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
        bodies, expected = [], []
        for index, receipt in enumerate(issued.receipts):
            bodies.append(receipt.to_json(indent=None).encode())
            expected.append("REVOKED" if index in revoked else "VALID")
        for index in (0, 1):
            tampered = issued.receipts[index].to_json_dict()
            tampered["credential"]["credentialSubject"]["grade"] = "A+"
            bodies.append(json.dumps(tampered).encode())
            expected.append("INVALID")
        valid = [body for body, verdict in zip(bodies, expected, strict=True) if verdict == "VALID"]
        return cls(bodies, expected, valid)


@dataclass
class ChainDriver:
    """An anchor a second; every ``reorg_every`` seconds a reorg of ``depth`` blocks."""

    rpc: RpcClient
    artifact: Artifact
    registry: str
    reorg_every: float = 30.0
    depth: int = 3
    anchors: int = 0
    reorgs: int = 0
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def anchor(self) -> None:
        writer(self.rpc, self.artifact, self.registry, DRIVER).anchor(secrets.token_bytes(32), 1, "")
        self.anchors += 1

    def run(self) -> None:
        next_reorg = time.monotonic() + self.reorg_every
        try:
            while not self.stop.wait(1.0):
                if time.monotonic() < next_reorg:
                    self.anchor()
                    continue
                snapshot = self.rpc.call("evm_snapshot")
                for _ in range(self.depth):  # blocks the node may read, then lose
                    self.anchor()
                    if self.stop.wait(1.0):
                        break
                if self.rpc.call("evm_revert", [snapshot]) is not True:
                    raise RuntimeError("evm_revert refused")
                for _ in range(self.depth + 1):  # a longer, different branch
                    self.anchor()
                self.reorgs += 1
                next_reorg = time.monotonic() + self.reorg_every
        except Exception as exc:  # reported, and fails the soak
            self.errors.append(f"{type(exc).__name__}: {exc}")


# -- the load client (a separate process) -------------------------------------------------------------


async def _connection(
    url: str, bodies: list[bytes], start: int, interval: float, stop_at: float
) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    wrong = 0
    index = start
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        next_send = time.perf_counter()
        while (now := time.perf_counter()) < stop_at:
            if now < next_send:
                await asyncio.sleep(next_send - now)
            next_send += interval
            body = bodies[index % len(bodies)]
            index += 1
            began = time.perf_counter()
            try:
                response = await client.post(
                    "/verify", content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - began)
            statuses[str(response.status_code)] += 1
            if response.status_code == 200 and b'"status":"VALID"' not in response.content:
                wrong += 1
    return {"statuses": statuses, "latencies": latencies, "wrong": wrong}


async def _load(
    url: str, bodies: list[bytes], rate: float, connections: int, seconds: float
) -> dict[str, Any]:
    stop_at = time.perf_counter() + seconds
    interval = connections / rate
    parts = await asyncio.gather(
        *(_connection(url, bodies, i, interval, stop_at) for i in range(connections))
    )
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    for part in parts:
        statuses.update(part["statuses"])
        latencies += part["latencies"]
    return {
        "statuses": dict(statuses),
        "latencies": sorted(latencies),
        "wrong": sum(p["wrong"] for p in parts),
    }


def run_load(url: str, bodies: list[bytes], rate: float, connections: int, seconds: float) -> dict[str, Any]:
    return asyncio.run(_load(url, bodies, rate, connections, seconds))


# -- observing the node ---------------------------------------------------------------------------


def check_verdicts(client: httpx.Client, fixed: FixedSet) -> list[str]:
    """The fixed set through POST /verify/bulk: a line per wrong verdict (none when all are right)."""
    payload = b'{"receipts":[' + b",".join(fixed.bodies) + b"]}"
    response = client.post("/verify/bulk", content=payload, headers={"Content-Type": "application/json"})
    if response.status_code != 200:
        return [f"/verify/bulk answered {response.status_code}"]
    results = response.json()["results"]
    return [
        f"receipt {i}: {got['status']}, expected {want}"
        for i, (got, want) in enumerate(zip(results, fixed.expected, strict=True))
        if got["status"] != want
    ]


def every(seconds: float, stop: threading.Event, action: Callable[[], None]) -> threading.Thread:
    def loop() -> None:
        while not stop.wait(seconds):
            action()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(fraction * len(values)))] * 1000 if values else float("nan")


# -- the soak -------------------------------------------------------------------------------------


def soak(minutes: float, rate: float, connections: int, warmup: float) -> dict[str, Any]:
    artifact = load_artifact()
    pool = multiprocessing.get_context("spawn").Pool(1)  # spawned while this process is small
    with (
        pool,
        DevChain() as chain,
        RpcClient([chain.rpc_url], policy=RetryPolicy(rounds=3, timeout=30.0)) as rpc,
        TemporaryDirectory() as tmp,
        RpcProxy(chain.rpc_url, seed=int.from_bytes(os.urandom(4))) as proxy,
    ):
        registry, deployed_in = deploy(rpc, artifact)
        owner = writer(rpc, artifact, registry, OWNER)
        fixed = FixedSet.build(owner, writer(rpc, artifact, registry, ISSUER), rpc)
        owner.register_issuer(LocalSigner.dev(DRIVER).address, "Soak driver", "")
        say(f"registry {registry}; fixed set of {len(fixed.bodies)} receipts anchored and final")

        node = node_process(proxy.url, registry, Path(tmp), NODE_ENV)
        with node, httpx.Client(base_url=node.url, timeout=30.0) as client:
            assert node.pid is not None
            wait_until(lambda: client.get("/ready").status_code == 200, 60, "the node ready")
            say(f"node {node.url} ready; faults on, load {rate:g}/s over {connections} connections")
            proxy.set_faults("*", *FAULTS)
            driver = ChainDriver(rpc, artifact, registry)
            stop = threading.Event()
            drive = threading.Thread(target=driver.run, daemon=True)
            drive.start()
            seconds = minutes * 60
            load = pool.apply_async(run_load, (node.url, fixed.valid, rate, connections, seconds))
            wrong_verdicts: list[str] = []
            checks = 0

            def check() -> None:
                nonlocal checks
                checks += 1
                wrong_verdicts.extend(check_verdicts(client, fixed))

            samples: list[float] = []
            checker = every(10.0, stop, check)
            sampler = every(5.0, stop, lambda: samples.append(tree_memory(node.pid or 0).rss))
            time.sleep(warmup)
            rss_start = tree_memory(node.pid).rss
            say(f"RSS after {warmup:g}s of load: {rss_start:.0f} MB")
            loaded = load.get(timeout=seconds + 120)
            rss_end = tree_memory(node.pid).rss
            stop.set()
            driver.stop.set()
            drive.join(timeout=30)
            checker.join(timeout=30)
            sampler.join(timeout=30)
            proxy.behave()
            say(f"load done ({driver.anchors} anchors, {driver.reorgs} reorgs); faults off; catching up")

            head = rpc.block_number()

            def caught_up() -> dict[str, Any] | None:
                status: dict[str, Any] = client.get("/status").json()
                return status if status["indexed_block"] >= head and status["accumulators_match"] else None

            status = wait_until(caught_up, 120, "the node at the chain's head")
            final_wrong = check_verdicts(client, fixed)
            node_metrics = client.get("/metrics").text

        engine = make_engine(f"sqlite:///{tmp}/mirror.db")
        try:
            report = Reconciler(engine, rpc, registry, DEV_CHAIN_ID).run(deployed_in, status["indexed_block"])
        finally:
            engine.dispose()
        injected = dict(proxy.injected)

    latencies = loaded["latencies"]
    statuses = loaded["statuses"]
    server_errors = sum(n for code, n in statuses.items() if code.startswith("5"))
    growth = (rss_end - rss_start) / rss_start
    return {
        "minutes": minutes,
        "requests": sum(statuses.values()),
        "rate": sum(statuses.values()) / (minutes * 60),
        "by_status": statuses,
        "server_errors": server_errors,
        "wrong_load_verdicts": loaded["wrong"],
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "rss_peak_mb": max([*samples, rss_end]),
        "rss_growth": growth,
        "anchors_sent": driver.anchors,
        "reorgs": driver.reorgs,
        "reorgs_repaired": status["reorgs_repaired"],
        "driver_errors": driver.errors,
        "faults_injected": injected,
        "node_rpc_errors": metric(node_metrics, "finvault_node_rpc_errors_total"),
        "indexed_block": status["indexed_block"],
        "mirror_counts": status["counts"],
        "reconciliation": {
            "clean": report.clean,
            "chain_events": report.chain_events,
            "drifts": len(report.drifts),
        },
        "fixed_checks": checks + 1,
        "fixed_wrong": wrong_verdicts + final_wrong,
        "passed": {
            "zero 5xx": server_errors == 0,
            "RSS growth under 15%": growth < RSS_GROWTH_LIMIT,
            "mirror equals the chain": report.clean,
            "fixed verdicts all correct": not wrong_verdicts and not final_wrong and loaded["wrong"] == 0,
            "chain driver ran clean": not driver.errors,
        },
    }


def metric(text: str, name: str) -> int | None:
    """A counter's value from Prometheus text, or None when it is not there."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return None


def wait_until(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = probe()
        except httpx.HTTPError:
            answer = None
        if answer:
            return answer
        time.sleep(0.5)
    raise SystemExit(f"soak: timed out waiting for {what}")


def render(result: dict[str, Any]) -> str:
    statuses = ", ".join(f"{code}: {n:,}" for code, n in sorted(result["by_status"].items()))
    injected = ", ".join(f"{kind} {n:,}" for kind, n in sorted(result["faults_injected"].items()))
    recon, rss = result["reconciliation"], result
    drifts = f"{recon['drifts']} drifts ({'equal' if recon['clean'] else 'DIFFERENT'})"
    lines = [
        f"soak: {result['minutes']:g} min, {result['requests']:,} POST /verify ({result['rate']:,.0f}/s)",
        f"  answers by status    {statuses}",
        f"  latency              p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms",
        f"  node RSS             {rss['rss_start_mb']:.0f} MB after warm-up, {rss['rss_end_mb']:.0f} MB "
        f"at the end ({rss['rss_growth']:+.1%}), peak {rss['rss_peak_mb']:.0f} MB",
        f"  chain                {result['anchors_sent']:,} anchors sent, {result['reorgs']} reorgs made, "
        f"{result['reorgs_repaired']} repaired by the node",
        f"  faults injected      {injected}; node sync steps failed on RPC: {result['node_rpc_errors']}",
        f"  mirror vs chain      blocks up to {result['indexed_block']:,}: "
        f"{recon['chain_events']:,} events on chain, {drifts}; counts {result['mirror_counts']}",
        f"  fixed verdicts       {result['fixed_checks']} checks of the fixed set, "
        f"{len(result['fixed_wrong'])} wrong; {result['wrong_load_verdicts']} wrong under load",
    ]
    if "oracle" in result:
        lines.append(f"  {result['oracle']}")
    lines += [f"  {'PASS' if ok else 'FAIL'}  {name}" for name, ok in result["passed"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=300.0, help="POST /verify per second (all connections)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--warmup", type=float, default=30.0, help="seconds of load before the first RSS reading"
    )
    parser.add_argument("--oracle-minutes", type=float, default=3.0, help="0 skips the oracle phase")
    parser.add_argument("--report", type=Path, default=Path(".finvault/soak/report.json"))
    args = parser.parse_args()
    if not 0 < args.warmup < args.minutes * 60:
        parser.error("--warmup must be shorter than the soak")
    result = soak(args.minutes, args.rate, args.connections, args.warmup)
    if args.oracle_minutes > 0:
        seed = secrets.randbelow(2**32)
        say(f"oracle for {args.oracle_minutes:g} min (seed {seed})")
        tally = run_oracle(args.oracle_minutes * 60, seed)
        result["oracle"] = tally.render()
        result["oracle_tally"] = {"seed": seed, **tally.to_dict()}
        result["passed"]["oracle: every answer agrees with the chain"] = not tally.violations
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(result, indent=2, default=str))
    print(render(result))
    print(f"report: {args.report}")
    sys.exit(0 if all(result["passed"].values()) else 1)


if __name__ == "__main__":
    main()
