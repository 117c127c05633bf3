"""Verification node throughput, latency and memory, cold and warm, against two peers measured in
the same run.

    .venv/bin/python bench/node.py [--runs N] [--seconds S] [--rate R] [--workers W] [--profile] ...

On a fresh anvil: one real batch of N certificates (default 10,000: W3C-VC-shaped
``finvault-receipt/2`` receipts, each credential an SD-JWT signed with Ed25519, every claim of the
subject disclosable and all disclosed, decoys included; one Merkle tree, one anchor transaction;
``--receipt-format 1`` builds legacy salted, signed /1 receipts instead, to compare), made final;
the mirror is synced, then K synthetic anchors (default 100,000) are inserted straight into its
table so lookups run against a realistically full mirror. The chain, the receipts and the mirror
are built once; then ``--runs`` runs (default 3) each start a real ``finvault node`` twice
(``FINVAULT_WORKERS=2`` by default: the processes that serve HTTP; live sync loop), measured with
``bench/loadgen.js`` (Node.js, its own process, keep-alive HTTP/1.1, every answer checked VALID):

1. **cold** (the headline): ``FINVAULT_SIGNATURE_CACHE_ENTRIES=0``, so every request checks its
   signatures (the facts read from the mirror are cached per mirror revision, as in service):
   - closed loop: 50 connections back to back for 15 s after a warm-up: the peak, and the node's
     CPU a verification (warm-up included: CPU time is read for the process tree as a whole);
   - open loop: R verifications a second (default 2,000) for S seconds (default 60) after a
     warm-up, wrk2-style: latency from each request's due time (coordinated omission corrected);
     p50, p99, max, errors, the rate achieved;
   - memory: PSS (and RSS) summed over the node's process tree (``/proc/PID/smaps_rollup``);
   - bulk: the same receipts through ``POST /verify/bulk``, 1,000 a request (informational);
2. **warm**: a new node with the default signature cache; a warm-up pass sends every receipt
   4 times per serving process (requests reach processes by connection, not by receipt, so a
   process misses a given receipt with probability about (1 - 1/W)^(4W), under 2%), then the
   closed-loop peak and CPU a verification as above: a node verifying certificates it has seen;
3. the baselines: direct RPC, the same ``verify()`` with facts read through the registry's views
   (``RpcFacts``), what ``finvault verify --rpc`` does, one receipt after another; and
   oa-verify, OpenAttestation's verifier (``bench/peers/oa-verify``, pinned; ``npm ci`` on first
   use, skipped with a message without npm) on documents wrapped and issued on OpenAttestation's
   DocumentStore on the same anvil; integrity and issuance status only, DNS identity checks off.

Each run prints one line, with the 1-minute load average at its start and end: the machine is
shared, and a run that starts above 1.5 is flagged "not quiet". Before each run the bench waits
(up to ``--settle-seconds``) for the load average to fall back under 1.5, since the previous run's
own load decays from it in about half a minute; it prints the cores other processes kept busy
meanwhile. Then the medians of the runs, and the targets judged on them (the ratios to the
baselines on the cold median peak).

``--profile``: after the runs, a fresh cold node serves a closed loop while py-spy (a sampling
profiler, in the dev extra; installed by ``scripts/setup --dev``, or ``pip install py-spy``)
records every Python process of its tree for ``--profile-seconds``; prints where the samples were
(by process) and the 25 functions with the most samples of their own, the cold path's bounds;
``--profile-output PATH`` keeps the stacks (collapsed, for flamegraph.pl or speedscope).
Without py-spy, or where it may not attach (ptrace), it says so and the bench goes on.

Scale-out (``--replicas N --postgres ADMIN_URL``): the mirror is a fresh PostgreSQL database; one
node writes it (its sync loop) and N replica nodes (``FINVAULT_NODE_REPLICA``, each with
``--workers`` serving processes) serve from it; the load generator spreads its connections over
the replicas in turn, as a layer-4 balancer would, and memory and CPU are summed over every node's
tree.

Everything shares the same 2 cores. Informational only: prints ratios against the targets and
exits 0 whether or not they are met.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
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
from tests.tools.memory import TreeMemory, tree_memory, tree_pids
from tests.tools.node_process import NodeProcess

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATE = 2_000
#: The cold node's open loop at TARGET_RATE.
TARGET_P99_MS = 20.0
#: The cold node's closed-loop peak, and its CPU a verification summed over its processes.
TARGET_PEAK = 3_500
TARGET_CPU_US = 550
TARGET_WARM_PEAK = 4_500
#: Per document, the cold median peak against the baselines' medians.
TARGET_RPC_RATIO = 20.0
TARGET_OA_RATIO = 30.0
TARGET_PSS_MB = 250
#: A run whose 1-minute load average is above this at its start is "not quiet": the node needs
#: most of the two cores, and another job's load shows in the tails first.
QUIET_LOAD_AVERAGE = 1.5
#: The warm node's warm-up sends every receipt this many times per serving process, for at most
#: this long.
WARM_PASSES_PER_PROCESS = 4
WARM_UP_MAX_SECONDS = 300.0
PROFILE_RATE = 100
PROFILE_TOP = 25
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


# -- the load generator, the node's CPU and the machine --------------------------------------------


LOADGEN = Path(__file__).resolve().parent / "loadgen.js"


def loadgen_command(
    url: str, bodies_path: Path, *, rate: float, seconds: float, warmup: float, connections: int
) -> list[str]:
    """The command line of ``bench/loadgen.js``: open loop at ``rate``/s, or closed loop at 0."""
    command = ["node", str(LOADGEN), url, str(bodies_path), "--rate", str(rate), "--seconds", str(seconds)]
    return [*command, "--warmup", str(warmup), "--connections", str(connections)]


def loadgen_result(returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The one JSON line ``bench/loadgen.js`` prints last, or the bench stops with its stderr."""
    if returncode != 0:
        raise SystemExit(f"loadgen failed: {stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def load(
    url: str, bodies_path: Path, *, rate: float, seconds: float, warmup: float, connections: int
) -> dict[str, Any]:
    """``bench/loadgen.js`` (Node.js, its own process) run to its end: its figures."""
    command = loadgen_command(
        url, bodies_path, rate=rate, seconds=seconds, warmup=warmup, connections=connections
    )
    done = subprocess.run(command, capture_output=True, text=True)
    return loadgen_result(done.returncode, done.stdout, done.stderr)


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
    """User + system CPU seconds of ``pid`` and its live descendants, from ``/proc``."""
    total = 0.0
    for process in tree_pids(pid):
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cores_busy(seconds: float) -> float:
    """Cores kept busy, machine-wide, over the next ``seconds`` (``/proc/stat``)."""

    def sample() -> tuple[int, int]:
        fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle, iowait
        return sum(fields[:8]) - idle, sum(fields[:8])  # guest time is already in user

    busy_before, total_before = sample()
    time.sleep(seconds)
    busy_after, total_after = sample()
    return (os.cpu_count() or 1) * (busy_after - busy_before) / max(1, total_after - total_before)


@dataclass(frozen=True)
class Quiet:
    """The machine before a run: the 1-minute load average, the cores busy over the last 2 s
    (the bench itself idle: no node, the chain at rest), and how long the bench waited."""

    load_average: float
    others_busy: float
    waited: float

    @property
    def quiet(self) -> bool:
        """Whether the run starts quiet enough for its figures to be taken as the machine's."""
        return self.load_average <= QUIET_LOAD_AVERAGE


def settle(limit: float) -> Quiet:
    """Waits up to ``limit`` seconds for the load average to fall to QUIET_LOAD_AVERAGE. The
    previous run's own load (about two cores for minutes) takes half a minute to decay from it."""
    started = time.monotonic()
    while True:
        busy = cores_busy(2.0)
        load_average = os.getloadavg()[0]
        waited = time.monotonic() - started
        if load_average <= QUIET_LOAD_AVERAGE or waited >= limit:
            return Quiet(load_average, busy, waited)


# -- the node, cold and warm ---------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSetup:
    """How every node of the bench is started: its chain, mirror and ``FINVAULT_*`` environment."""

    rpc_url: str
    registry: str
    database_url: str
    env: dict[str, str]
    replicas: int


@dataclass(frozen=True)
class Serving:
    """A node (or a writer and its replicas) up and ready."""

    #: The served URLs, comma-separated, as ``bench/loadgen.js`` takes them.
    url: str
    first_url: str
    #: The roots of the process trees, each node's.
    pids: list[int]
    #: The tree the profiler records: the node's, or the first replica's.
    profiled: int

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by every process of every node."""
        return sum(tree_cpu_seconds(pid) for pid in self.pids)


@contextmanager
def serving(setup: NodeSetup, signature_cache_entries: int | None) -> Iterator[Serving]:
    """Starts the node (with ``--replicas``, a writer and its replicas), waits until each is ready,
    and stops them all at the end. ``signature_cache_entries`` None: the node's default."""
    env = dict(setup.env)
    if signature_cache_entries is not None:
        env["FINVAULT_SIGNATURE_CACHE_ENTRIES"] = str(signature_cache_entries)
    with ExitStack() as stack:

        def start(node_env: dict[str, str]) -> NodeProcess:
            return stack.enter_context(
                NodeProcess(
                    rpc_url=setup.rpc_url,
                    registry=setup.registry,
                    database_url=setup.database_url,
                    env=node_env,
                )
            )

        node = start({**env, "FINVAULT_WORKERS": "1"} if setup.replicas else env)
        served = [node]
        if setup.replicas:
            replica_env = {
                **env,
                "FINVAULT_NODE_REPLICA": "true",
                "FINVAULT_CURSOR_SECRET": "bench-" + "r" * 32,
            }
            served = [start(replica_env) for _ in range(setup.replicas)]
        nodes = list(dict.fromkeys([node, *served]))
        for each in nodes:
            wait_ready(each.url)
        pids = [each.pid for each in nodes if each.pid is not None]
        assert len(pids) == len(nodes)
        assert served[0].pid is not None
        yield Serving(",".join(each.url for each in served), served[0].url, pids, served[0].pid)


@dataclass(frozen=True)
class Run:
    """One run's figures: a cold node, then a warm one, then the baselines."""

    quiet: Quiet
    load_at_end: float
    cold_started: TreeMemory
    cold_peak: dict[str, Any]
    cold_cpu_us: float
    open_loop: dict[str, Any]
    open_cpu_us: float
    cold_memory: TreeMemory
    bulk_rate: float
    warm_up: dict[str, Any]
    warm_peak: dict[str, Any]
    warm_cpu_us: float
    warm_memory: TreeMemory
    rpc_ms: float
    oa_ms: float | None

    @property
    def pss(self) -> float:
        """The larger PSS of the two nodes under load, MB."""
        return max(self.cold_memory.pss, self.warm_memory.pss)


def peak_and_cpu(node: Serving, bodies_path: Path, args: argparse.Namespace) -> tuple[dict[str, Any], float]:
    """The closed-loop peak and the node's CPU a verification (µs) over it, its warm-up included."""
    cpu_before = node.cpu_seconds()
    peak = load(
        node.url,
        bodies_path,
        rate=0,
        seconds=args.peak_seconds,
        warmup=args.warmup,
        connections=args.peak_connections,
    )
    return peak, 1e6 * (node.cpu_seconds() - cpu_before) / max(1, peak["answered"])


def measure(
    setup: NodeSetup,
    bodies: list[bytes],
    bodies_path: Path,
    oa_folder: Path | None,
    args: argparse.Namespace,
) -> Run:
    """One run: the cold node, the warm node, then direct RPC and oa-verify."""
    quiet = settle(args.settle_seconds)
    with serving(setup, signature_cache_entries=0) as cold:
        cold_started = total_memory(cold.pids)
        cold_peak, cold_cpu_us = peak_and_cpu(cold, bodies_path, args)
        cpu_before = cold.cpu_seconds()
        open_loop = load(
            cold.url,
            bodies_path,
            rate=args.rate,
            seconds=args.seconds,
            warmup=args.warmup,
            connections=args.connections,
        )
        open_cpu_us = 1e6 * (cold.cpu_seconds() - cpu_before) / max(1, open_loop["answered"])
        cold_memory = total_memory(cold.pids)
        bulk_count, bulk_seconds = bulk(cold.first_url, bodies)
    with serving(setup, signature_cache_entries=None) as warm:
        # Sized on the cold peak: the warm node is no slower, so it sees at least this many.
        processes = args.workers * max(1, args.replicas)
        passes = WARM_PASSES_PER_PROCESS * processes
        warm_up = load(
            warm.url,
            bodies_path,
            rate=0,
            seconds=min(WARM_UP_MAX_SECONDS, passes * len(bodies) / max(100.0, cold_peak["achieved"])),
            warmup=0,
            connections=args.peak_connections,
        )
        warm_peak, warm_cpu_us = peak_and_cpu(warm, bodies_path, args)
        warm_memory = total_memory(warm.pids)
    rpc_count, rpc_seconds = direct_rpc(setup.rpc_url, setup.registry, bodies, args.rpc_seconds)
    oa = oa_verify(oa_folder, setup.rpc_url, args.oa_documents, args.oa_seconds) if oa_folder else None
    return Run(
        quiet=quiet,
        load_at_end=os.getloadavg()[0],
        cold_started=cold_started,
        cold_peak=cold_peak,
        cold_cpu_us=cold_cpu_us,
        open_loop=open_loop,
        open_cpu_us=open_cpu_us,
        cold_memory=cold_memory,
        bulk_rate=bulk_count / bulk_seconds,
        warm_up=warm_up,
        warm_peak=warm_peak,
        warm_cpu_us=warm_cpu_us,
        warm_memory=warm_memory,
        rpc_ms=1000 * rpc_seconds / rpc_count,
        oa_ms=None if oa is None else float(oa["msPerDocument"]),
    )


# -- the profile of the cold path ------------------------------------------------------------------


def py_spy() -> str | None:
    """The py-spy executable: on PATH, or beside this interpreter (the venv's ``bin/``)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.is_file() else None)


def profile_cold(setup: NodeSetup, bodies_path: Path, args: argparse.Namespace) -> None:
    """A fresh cold node under a closed loop, its process tree sampled by py-spy; prints where
    the samples were, by process and by function."""
    spy = py_spy()
    if spy is None:
        print(
            "profile: skipped, py-spy is not installed (it is in the dev extra: scripts/setup --dev, "
            "or .venv/bin/pip install py-spy)"
        )
        return
    seconds = max(1, math.ceil(args.profile_seconds))
    with serving(setup, signature_cache_entries=0) as cold, TemporaryDirectory() as tmp:
        command = loadgen_command(
            cold.url,
            bodies_path,
            rate=0,
            seconds=seconds + 2,
            warmup=args.warmup,
            connections=args.peak_connections,
        )
        generator = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(args.warmup + 1)
        names = {pid: Path(f"/proc/{pid}/comm").read_text().strip() for pid in tree_pids(cold.profiled)}
        raw = Path(tmp) / "profile.txt"
        record = [spy, "record", "--pid", str(cold.profiled), "--subprocesses", "--duration", str(seconds)]
        record += ["--rate", str(PROFILE_RATE), "--format", "raw", "--nolineno", "--full-filenames"]
        spied = subprocess.run([*record, "--output", str(raw)], capture_output=True, text=True)
        stdout, stderr = generator.communicate()
        peak = loadgen_result(generator.returncode, stdout, stderr)
        if spied.returncode != 0 or not raw.is_file():
            print(f"profile: py-spy failed (exit {spied.returncode}): {spied.stderr.strip()[-500:]}")
            return
        stacks = raw.read_text()
    if args.profile_output is not None:
        args.profile_output.write_text(stacks)
    print_profile(stacks, names, seconds, peak)
    if args.profile_output is not None:
        print(f"  the stacks (collapsed, as flamegraph.pl and speedscope read them): {args.profile_output}")


_PROCESS_FRAME = re.compile(r'process (\d+):"[^"]*";')
_FRAME = re.compile(r"^(.*) \((.*)\)$")


def frame_label(frame: str) -> str:
    """``function (path)`` with the path made short: from the repo root, from ``site-packages``,
    or from the standard library's folder."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    name, path = match.groups()
    if "/site-packages/" in path:
        path = path.split("/site-packages/", 1)[1]
    elif path.startswith(str(ROOT) + "/"):
        path = path[len(str(ROOT)) + 1 :]
    elif "/lib/python3" in path:
        path = "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return f"{name} ({path})"


def print_profile(stacks: str, names: dict[int, str], seconds: int, peak: dict[str, Any]) -> None:
    """Samples by process, then the PROFILE_TOP functions by samples of their own (the function
    running, not a caller), each with its share including callees."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_process: Counter[int] = Counter()
    total = 0
    for line in stacks.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        processes = _PROCESS_FRAME.findall(stack)
        frames = [frame_label(f) for f in _PROCESS_FRAME.sub("", stack).split(";") if f]
        if not frames:
            continue
        total += count
        by_process[int(processes[-1]) if processes else 0] += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        print("profile: py-spy recorded no samples of Python running")
        return
    print(
        f"profile of the cold path: py-spy at {PROFILE_RATE}/s for {seconds} s over the node's "
        f"processes, a cold closed loop of {peak['connections']} connections answering "
        f"{peak['achieved']:,.0f}/s meanwhile; {total:,} samples of Python running (idle excluded)"
    )
    print(
        "  by process: "
        + ", ".join(
            f"{names.get(pid, '?')} ({pid}) {100 * n / total:.1f}%" for pid, n in by_process.most_common()
        )
    )
    print(f"  {'own':>6} {'with callees':>13}  function (file)")
    for frame, count in own.most_common(PROFILE_TOP):
        print(f"  {100 * count / total:5.1f}% {100 * inclusive[frame] / total:12.1f}%  {frame}")


# -- the baselines -------------------------------------------------------------------------------------


def oa_verify(folder: Path, rpc_url: str, documents: int, seconds: float) -> dict[str, Any]:
    """OpenAttestation's verifier on the same anvil (``bench/peers/oa-verify``, installed)."""
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


# -- the report ----------------------------------------------------------------------------------------


def run_line(number: int, runs: int, run: Run) -> str:
    """One run's figures on one line."""
    quiet = run.quiet
    peak, lo, warm = run.cold_peak, run.open_loop, run.warm_peak
    waited = f", after waiting {quiet.waited:.0f}s" if quiet.waited >= 5 else ""
    return (
        f"run {number}/{runs}{'' if quiet.quiet else ' NOT QUIET'}: load average "
        f"{quiet.load_average:.2f} at start (others busy {quiet.others_busy:.2f} cores{waited}), "
        f"{run.load_at_end:.2f} at end | cold: peak {peak['achieved']:,.0f}/s (p99 {peak['p99_ms']:.1f} ms), "
        f"{run.cold_cpu_us:.0f} us a verification; open loop {lo['achieved']:,.0f}/s: p99 "
        f"{lo['p99_ms']:.1f} ms, max {lo['max_ms']:.1f} ms, {lo['errors']} errors; PSS "
        f"{run.cold_memory.pss:.0f} MB | warm: peak {warm['achieved']:,.0f}/s (p99 {warm['p99_ms']:.1f} ms), "
        f"{run.warm_cpu_us:.0f} us a verification; PSS {run.warm_memory.pss:.0f} MB | direct RPC "
        f"{run.rpc_ms:.2f} ms, oa-verify "
        + ("-" if run.oa_ms is None else f"{run.oa_ms:.2f} ms")
        + " a document"
    )


def report(runs: list[Run], args: argparse.Namespace) -> None:
    """The medians of the runs, then the targets judged on them."""
    median = statistics.median

    def of(phase: str, key: str) -> float:
        return float(median([getattr(run, phase)[key] for run in runs]))

    quiet = sum(run.quiet.quiet for run in runs)
    print(
        f"\nmedians of {len(runs)} run(s); {quiet} quiet (load average <= {QUIET_LOAD_AVERAGE:g} at "
        f"the start){'' if quiet == len(runs) else ': the others ran while the machine was busy'}"
    )
    cold_peak, cold_cpu = of("cold_peak", "achieved"), median([run.cold_cpu_us for run in runs])
    generator = median([100 * r.cold_peak["cpu_seconds"] / r.cold_peak["wall_seconds"] for r in runs])
    print(
        f"cold  closed loop {args.peak_connections} connections for {args.peak_seconds:g}s: "
        f"{cold_peak:,.0f}/s, p50 {of('cold_peak', 'p50_ms'):.1f} ms, "
        f"p99 {of('cold_peak', 'p99_ms'):.1f} ms; node CPU {cold_cpu:.0f} us a verification "
        f"(FINVAULT_SIGNATURE_CACHE_ENTRIES=0: every signature checked); "
        f"{sum(run.cold_peak['errors'] for run in runs)} errors over all runs; the generator used "
        f"{generator:.0f}% of a core"
    )
    open_loop = {
        key: sum(run.open_loop[key] for run in runs)
        for key in ("errors", "measured", "not_valid", "socket_errors", "unanswered")
    }
    print(
        f"cold  open loop {args.rate:,.0f}/s for {args.seconds:g}s: achieved "
        f"{of('open_loop', 'achieved'):,.0f}/s, p50 {of('open_loop', 'p50_ms'):.1f} ms, "
        f"p99 {of('open_loop', 'p99_ms'):.1f} ms, max {of('open_loop', 'max_ms'):.1f} ms (from each "
        f"request's due time); {open_loop['errors']} errors of {open_loop['measured']:,} over all runs "
        f"({open_loop['not_valid']} not VALID, {open_loop['socket_errors']} socket errors, "
        f"{open_loop['unanswered']} unanswered 10 s after the end); node CPU "
        f"{median([run.open_cpu_us for run in runs]):.0f} us a verification; {args.connections} connections"
    )
    bulk_rate = median([run.bulk_rate for run in runs])
    print(f"cold  POST /verify/bulk {bulk_rate:,.0f}/s (1,000 a request, one connection)")
    warm_peak = of("warm_peak", "achieved")
    passes = median([run.warm_up["answered"] / max(1, args.certificates) for run in runs])
    print(
        f"warm  closed loop {args.peak_connections} connections for {args.peak_seconds:g}s: "
        f"{warm_peak:,.0f}/s, p50 {of('warm_peak', 'p50_ms'):.1f} ms, "
        f"p99 {of('warm_peak', 'p99_ms'):.1f} ms; node CPU {median([run.warm_cpu_us for run in runs]):.0f} "
        f"us a verification (default signature cache, after a warm-up sending each receipt "
        f"{passes:.1f} times); {sum(run.warm_peak['errors'] + run.warm_up['errors'] for run in runs)} "
        "errors over all runs, warm-ups included"
    )
    pss = median([run.pss for run in runs])
    cold_pss, warm_pss = median([r.cold_memory.pss for r in runs]), median([r.warm_memory.pss for r in runs])
    print(
        f"node  PSS {pss:.1f} MB under load, the larger of cold ({cold_pss:.1f}) and warm ({warm_pss:.1f}); "
        f"{median([r.cold_started.pss for r in runs]):.1f} MB after start; RSS summed over processes "
        f"{median([r.cold_memory.rss for r in runs]):.0f} MB"
    )
    rpc_ms = median([run.rpc_ms for run in runs])
    print(
        f"direct RPC  {rpc_ms:.2f} ms a document = {1000 / rpc_ms:,.0f}/s "
        "(RpcFacts through the registry's views, one after another)"
    )
    oa_runs = [run.oa_ms for run in runs if run.oa_ms is not None]
    oa_ms = median(oa_runs) if oa_runs else None
    if oa_ms is not None:
        print(
            f"oa-verify   {oa_ms:.2f} ms a document (@govtechsg/oa-verify 9.4.0 against the same anvil: "
            "document integrity and DocumentStore issuance status; DNS identity checks off)"
        )
    topology = f"FINVAULT_WORKERS={args.workers}" + (f", {args.replicas} replicas" if args.replicas else "")
    print(f"\ntargets, judged on the medians ({topology}):")
    against("cold peak (/s)", cold_peak, ">=", TARGET_PEAK, "closed loop, every signature checked")
    against("cold CPU (us)", cold_cpu, "<=", TARGET_CPU_US, "a verification, all the node's processes")
    against("cold open p99 (ms)", of("open_loop", "p99_ms"), "<=", TARGET_P99_MS, f"at {args.rate:,.0f}/s")
    against("cold open errors", open_loop["errors"], "<=", 0, "summed over the runs")
    against("warm peak (/s)", warm_peak, ">=", TARGET_WARM_PEAK, "closed loop, receipts seen before")
    against("node PSS (MB)", pss, "<=", TARGET_PSS_MB, "whole tree, under load")
    against("node / direct RPC", cold_peak * rpc_ms / 1000, ">=", TARGET_RPC_RATIO, "per document, cold peak")
    if oa_ms is not None:
        against(
            "node / oa-verify", cold_peak * oa_ms / 1000, ">=", TARGET_OA_RATIO, "per document, cold peak"
        )


def against(label: str, value: float, relation: str, target: float, note: str = "") -> None:
    """Prints ``value`` against its target, and whether it is met."""
    met = value >= target if relation == ">=" else value <= target
    ratio = f" ({value / target:.2f}x)" if target else ""
    verdict = "met" if met else "MISSED"
    print(f"{label:<22} {value:10.1f}  target {relation} {target:g}{ratio}: {verdict}  {note}")


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
    parser.add_argument(
        "--workers", type=int, default=2, help="the node's FINVAULT_WORKERS: its processes serving HTTP"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of the node measurements; medians judged")
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=60.0,
        help=f"before each run, wait up to this long for the load average to fall to {QUIET_LOAD_AVERAGE:g}",
    )
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="open loop: verifications a second")
    parser.add_argument("--seconds", type=float, default=60.0, help="open loop: seconds measured")
    parser.add_argument("--connections", type=int, default=64, help="open loop: keep-alive connections")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--peak-seconds", type=float, default=15.0, help="closed loop: seconds measured")
    parser.add_argument("--peak-connections", type=int, default=50, help="closed loop: connections")
    parser.add_argument("--rpc-seconds", type=float, default=10.0)
    parser.add_argument("--oa-documents", type=int, default=1_000, help="oa-verify: documents wrapped")
    parser.add_argument("--oa-seconds", type=float, default=10.0)
    parser.add_argument(
        "--profile", action="store_true", help="after the runs, profile a cold node with py-spy (dev extra)"
    )
    parser.add_argument("--profile-seconds", type=float, default=10.0, help="--profile: seconds sampled")
    parser.add_argument(
        "--profile-output", type=Path, default=None, help="--profile: also write the sampled stacks here"
    )
    parser.add_argument("--replicas", type=int, default=0, help="serve from N replica nodes (scale-out)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("FINVAULT_TEST_POSTGRES_URL"),
        help="with --replicas: a PostgreSQL admin URL (default: $FINVAULT_TEST_POSTGRES_URL)",
    )
    args = parser.parse_args()
    if shutil.which("node") is None:
        raise SystemExit("bench/node.py needs Node.js for its load generator (bench/loadgen.js)")
    if args.replicas and not args.postgres:
        raise SystemExit(
            "--replicas needs a PostgreSQL server: --postgres URL (`scripts/postgres start` prints one)"
        )
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")

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
        oa_folder = peer("oa-verify")
        setup = NodeSetup(
            rpc_url=chain.rpc_url,
            registry=registry,
            database_url=database_url,
            env={
                "FINVAULT_LOG_LEVEL": "warning",
                "FINVAULT_CHAIN_ID": str(DEV_CHAIN_ID),
                "FINVAULT_WORKERS": str(args.workers),
                # The synthetic anchors are not on the chain, so the node's accumulator check would
                # (rightly) find the mirror diverged and refuse every verdict. The check runs in the
                # writer process once a minute, never on a request's path.
                "FINVAULT_ACCUMULATOR_CHECK_INTERVAL": "0",
            },
            replicas=args.replicas,
        )
        print(
            f"node: FINVAULT_WORKERS={args.workers}"
            + (f" in each of {args.replicas} replicas, the writer apart" if args.replicas else "")
            + f"; {args.runs} run(s), each: a cold node (FINVAULT_SIGNATURE_CACHE_ENTRIES=0), then a "
            "warm one (default cache, warmed up), then the baselines"
        )
        runs = []
        for number in range(1, args.runs + 1):
            runs.append(measure(setup, bodies, bodies_path, oa_folder, args))
            print(run_line(number, args.runs, runs[-1]), flush=True)
        report(runs, args)
        if args.profile:
            print()
            profile_cold(setup, bodies_path, args)


if __name__ == "__main__":
    main()
