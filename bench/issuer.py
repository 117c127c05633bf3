"""The issuer end to end, CSV to signed, anchored receipts, against OpenAttestation's wrapDocuments.

    .venv/bin/python bench/issuer.py [--rows 100000] [--workers N] [--qr] [--peer-docs 10000] [--runs 3]
    .venv/bin/python bench/issuer.py --rows 1000000 --peer-docs 0 --runs 1  # the 1M-in-one-batch run

Runs on its own anvil. For each certificate count it times what ``finvault issue --now`` does,
phase by phase: intake (CSV -> checked credentials in the store), seal (each credential secured
once: an SD-JWT by default, or a Data Integrity proof with ``--securing data-integrity``; the
Merkle tree), anchor (one transaction, confirmed) and receipts (one ``finvault-receipt/2`` file per
certificate, synced), under ``--work-dir`` (default ``.finvault/bench`` in the checkout, where an
issuer run from it writes). Nothing a run writes is deleted before the bench ends: on an ext4 file
system without a journal (this VM's), an inode freed less than 60 s ago (360 s while its table
block is dirty) is skipped, one by one, by every allocation in its block group, so deleting one
run's 10,000 receipts made the next run's files cost 300-800 µs each instead of 25 (measured
here). A bench's own clean-up does the same to the next bench started within minutes, so before
the runs it waits (up to ``--settle-seconds``) until creating a file in its folder costs under
100 µs, as the node bench waits for the load average, and prints what it waited and the cost.

The verification link (node URL + ``/v/`` + leaf) is derived from a receipt, never stored in it;
QR code PNGs of it are rendered on demand by ``finvault qr`` (timed here on a
sample: the leaf recomputed from the receipt, then the PNG), or at issuance with ``--qr``. It
samples the peak memory of this process and its workers (anvil excluded): PSS summed over the tree
(shared pages split between the processes sharing them), and RSS summed (every shared page counted
in each process: an upper bound; the 1M target is on this one).

The peer, measured in the same run: OpenAttestation v2 ``wrapDocuments`` (salt every field, hash,
one Merkle tree; no signature, no chain, nothing written: less work than FinVault's) from
``bench/peers/openattestation-wrap`` (pinned, installed into its own node_modules on first use). It
grows worse than linearly (10k documents: ~5 s here; 100k: ~900 s), so by default it runs on 10,000
documents, FinVault runs on the same 10,000 too, and both ratios are printed: at the same count (the
target), and FinVault at ``--rows`` against the peer at its count. Without npm the peer is skipped
with a message. After a warm-up (1 and 100 certificates), each count is measured ``--runs`` times,
the peer after each run, every line with the load average at its start and end (the machine is
shared); the targets are judged on the medians. Gas per certificate of each batch is printed
against one transaction per certificate. Informational: always exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory, mkdtemp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test fixtures write the CSVs
#: Where the runs write their stores and receipts by default: where a checkout's issuer writes (the
#: demo's state is beside it), not the system's temporary directory.
WORK_DIR = ROOT / ".finvault" / "bench"

# Each issuer worker process imports this file again, as ``__mp_main__`` (multiprocessing does
# so for every start method but fork): it needs none of this (2 s of imports), and the
# `finvault` command's own main module is as light as what is left.
if __name__ != "__mp_main__":
    from bench.peers.npm import peer
    from chain.accounts import LocalSigner
    from chain.contract import load_artifact
    from chain.core.issuance import verification_link
    from chain.core.receipt import ReceiptV2, parse_receipt
    from chain.core.secured import SECURINGS, leaf_of
    from chain.core.signing import PrivateKey, public_key_info
    from chain.dev.devchain import DEV_CHAIN_ID, DevChain
    from chain.keys import generate_private_key
    from chain.qr import qr_png
    from chain.registry import RegistryWriter, deploy_registry
    from chain.rpc import RpcClient
    from chain.tx import TxSender
    from issuer.anchoring import Step
    from issuer.intake import read_input
    from issuer.pipeline import WorkerPool, default_workers
    from issuer.service import IssuerConfig, IssuerService, ProgressBar, ingest
    from issuer.store import Store
    from issuer.template import Template, load_template, template_for
    from tests.integration.issuer_fixtures import TEMPLATE, write_badges_csv, write_students_csv

TARGET_CERTS_PER_SECOND = 3_000
#: FinVault at the peer's count, against the peer, in the same run.
TARGET_PEER_RATIO = 1.5
TARGET_RSS_BYTES = 1.5 * 2**30
#: Open Badges 3.0 (``--template ob3``: eddsa-rdfc-2022, JSON-LD and RDFC-1.0 each) end to end.
TARGET_OB3_PER_SECOND = 300
NODE_URL = "https://verify.example"
QR_SAMPLE = 200


class TreeMemory:
    """Samples the memory of this process and its descendants (but ``exclude``) every 0.1 s: the
    sum of their proportional set sizes (PSS: a page shared by forked workers counts once, split
    between them) and, as an upper bound, of their resident set sizes (shared pages counted in
    every process)."""

    def __init__(self, exclude: set[int]) -> None:
        self.exclude = exclude
        self.peak_pss = 0
        self.peak_rss = 0
        #: The phase under way (set by :class:`Phases`), and the peak RSS summed seen in each.
        self.phase = "start"
        self.peak_rss_by_phase: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
        found, queue = [], [os.getpid()]
        while queue:
            pid = queue.pop()
            if pid not in self.exclude:
                found.append(pid)
                queue += children.get(pid, [])
        return found

    def sample(self) -> None:
        """Reads the tree's PSS and RSS now and keeps the peaks."""
        pss = rss = 0
        for pid in self._tree():
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            except OSError:
                continue
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in rollup[1:]}
            pss += fields.get("Pss", 0)
            rss += fields.get("Rss", 0)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_rss_by_phase[self.phase] = max(self.peak_rss_by_phase.get(self.phase, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.sample()

    def __enter__(self) -> TreeMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


@dataclass
class Phases:
    """Wall time per phase, filled by the service's progress and step hooks (intake is timed here).

    ``seal`` runs from the first chunk sent to the workers until the batch is committed (the
    tree and the batch's membership included: the ``sealed`` step); ``finish`` from the last
    receipt synced until the batch is marked anchored in the store (with its outbox events)."""

    seconds: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    memory: TreeMemory | None = None

    @contextmanager
    def progress(self, phase: str, total: int) -> Iterator[ProgressBar]:
        """An :data:`issuer.service.Progress` that times each phase instead of drawing it."""
        self.started[phase] = time.perf_counter()
        if self.memory is not None:
            self.memory.phase = phase
        bar = _Count()
        yield bar
        self.ended[phase] = time.perf_counter()
        if self.memory is not None:
            self.memory.phase = "between"
        self.seconds[phase] = self.seconds.get(phase, 0.0) + self.ended[phase] - self.started[phase]

    def hook(self, step: Step, root: str) -> None:
        """An :data:`issuer.anchoring.Hook`: the seal phase ends when its batch is committed."""
        if step is Step.SEALED and "seal" in self.started:
            self.seconds["seal"] = time.perf_counter() - self.started["seal"]


class _Count:
    def update(self, n: int = 1) -> None:
        """Progress is not drawn in a benchmark."""


@dataclass(frozen=True)
class Run:
    """One CSV -> receipts run."""

    certificates: int
    phases: dict[str, float]
    total: float
    gas: int
    peak_pss: int
    peak_rss: int
    receipts: Path
    peak_rss_by_phase: dict[str, int]


def verdict(met: bool) -> str:
    """How a target line ends."""
    return "MET" if met else "NOT MET"


def issue_all(
    work: Path,
    size: int,
    issuer: RegistryWriter,
    key: PrivateKey,
    template: Template,
    args: argparse.Namespace,
    write_csv: Callable[[Path, int], Path] | None = None,
) -> Run:
    """CSV of ``size`` rows (``write_csv``, default: the students') -> anchored receipts, as
    ``finvault issue --now`` does, timed by phase."""
    work.mkdir()
    csv_path = (write_csv or write_students_csv)(work / "in.csv", size)
    store = Store.open(f"sqlite:///{work / 'issuer.db'}")
    phases = Phases()
    config = IssuerConfig(
        out_dir=work / "receipts",
        node_url=NODE_URL,
        qr_codes=args.qr,
        securing=args.securing,
        max_batch_size=size,
        workers=args.workers,
    )
    service = IssuerService(store, issuer, key, config, progress=phases.progress, hook=phases.hook)
    with TreeMemory(exclude=args.exclude_pids) as memory:
        phases.memory = memory
        memory.phase = "intake"
        started = time.perf_counter()
        with service.workers() as pool:  # one pool for the run, as `finvault issue --now` has
            ingest(store, read_input(csv_path, template, pool=pool))
            phases.seconds["intake"] = time.perf_counter() - started
            batches = service.run_once()
        total = time.perf_counter() - started
    if "receipts" in phases.ended:
        phases.seconds["finish"] = started + total - phases.ended["receipts"]
    store.close()
    return Run(
        size,
        phases.seconds,
        total,
        sum(b.gas_used or 0 for b in batches),
        memory.peak_pss,
        memory.peak_rss,
        work / "receipts",
        memory.peak_rss_by_phase,
    )


def openattestation(documents: int) -> float | None:
    """Seconds OpenAttestation's wrapDocuments takes over ``documents``; None when npm is missing."""
    folder = peer("openattestation-wrap")
    if folder is None:
        return None
    out = subprocess.run(
        ["node", "wrap.js", str(documents)], cwd=folder, check=True, capture_output=True, text=True
    )
    return float(json.loads(out.stdout.splitlines()[-1])["seconds"])


def qr_on_demand(receipts: Path) -> float:
    """Milliseconds per QR code rendered from receipts afterwards (what ``finvault qr`` does)."""
    sample = sorted(receipts.glob("*.json"))[:QR_SAMPLE]
    started = time.perf_counter()
    for path in sample:
        receipt = parse_receipt(path.read_bytes())
        assert isinstance(receipt, ReceiptV2)
        qr_png(verification_link(NODE_URL, leaf_of(receipt.credential)))
    return (time.perf_counter() - started) * 1000 / len(sample)


def create_cost(parent: Path, files: int = 200) -> float:
    """Microseconds to create, write and close one 3 KB file in a new folder under ``parent`` (left
    in place: see the module's docstring): what the file system charges a receipt before FinVault
    does anything."""
    folder = Path(mkdtemp(dir=parent, prefix="probe-"))
    data = b"x" * 3000
    started = time.perf_counter()
    for number in range(files):
        (folder / f"{number}.json").write_bytes(data)
    return (time.perf_counter() - started) / files * 1e6


#: Microseconds to create a receipt-sized file above which the file system is still skipping the
#: inodes something freed in the last minutes (about 25 µs here when it is not).
SETTLED_CREATE_US = 100.0


def settle_files(folder: Path, seconds: float) -> tuple[float, float]:
    """Waits until creating a file in ``folder`` costs under :data:`SETTLED_CREATE_US` or
    ``seconds`` pass; returns (seconds waited, the last cost in µs)."""
    started = time.monotonic()
    while (cost := create_cost(folder)) >= SETTLED_CREATE_US and time.monotonic() - started < seconds:
        time.sleep(10)
    return time.monotonic() - started, cost


def _nothing(context: None, chunk: int) -> int:
    return chunk


def pool_start(workers: int) -> float:
    """Seconds until a new pool of ``workers`` has answered one chunk on each worker."""
    started = time.perf_counter()
    with WorkerPool(workers) as pool:
        list(pool.map(_nothing, None, range(workers)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="Certificates in the main run.")
    parser.add_argument("--workers", type=int, default=default_workers(), help="Worker processes.")
    parser.add_argument("--qr", action="store_true", help="Write QR code PNGs at issuance.")
    parser.add_argument(
        "--securing", choices=SECURINGS, default=SECURINGS[0], help="How each credential is secured."
    )
    parser.add_argument(
        "--peer-docs", type=int, default=10_000, help="Documents for the peer (0: skip the peer)."
    )
    parser.add_argument(
        "--template",
        choices=["default", "ob3"],
        default="default",
        help="ob3: Open Badges 3.0 (eddsa-rdfc-2022) at --rows, each run beside the default template "
        "at the same count.",
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="Runs of each measured count (and of the peer); medians judged."
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=WORK_DIR,
        help="Where each run's store and receipts go (a fresh folder inside, removed at the end).",
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=420.0,
        help="The longest to wait, before the runs, for files to be cheap to create in the work folder.",
    )
    args = parser.parse_args()
    artifact = load_artifact()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"bench/issuer.py: {args.workers} worker(s), {os.cpu_count()} CPUs visible, "
        f"securing {args.securing}, load average {os.getloadavg()[0]:.2f} at start, "
        f"QR codes {'at issuance' if args.qr else 'on demand'}"
    )
    if args.workers > 1:
        first, then = pool_start(args.workers), pool_start(args.workers)
        print(
            f"worker processes: the first pool {first * 1000:.0f} ms (it starts the forkserver, once per "
            f"process: each `finvault issue` command pays it), then {then * 1000:.0f} ms a run (below)"
        )
    with (
        DevChain() as chain,
        RpcClient([chain.rpc_url]) as rpc,
        TemporaryDirectory(dir=args.work_dir) as tmp,
    ):
        args.exclude_pids = {chain.process.pid} if chain.process is not None else set()
        waited, cost = settle_files(Path(tmp), args.settle_seconds)
        print(
            f"receipts written under {tmp}: a 3 KB file created there in {cost:.0f} us "
            f"(after waiting {waited:.0f} s for it to fall under {SETTLED_CREATE_US:.0f} us)"
        )

        def writer(account: int, address: str) -> RegistryWriter:
            sender = TxSender(
                rpc, LocalSigner.dev(account), chain_id=DEV_CHAIN_ID, abi=artifact.abi, poll_interval=0.01
            )
            return RegistryWriter(sender, address, artifact)

        deployed = deploy_registry(writer(0, "0x" + "00" * 20).sender, artifact=artifact)
        assert deployed.contract_address is not None
        registry = deployed.contract_address
        issuer = writer(1, registry)
        writer(0, registry).register_issuer(
            issuer.sender.signer.address, "Bench University", "https://bench.example"
        )
        key = generate_private_key("ed25519")
        info = public_key_info(key)
        issuer.add_key(info.key_id, int(info.algorithm), info.der)
        template = load_template(TEMPLATE)

        print(
            f"{'run':>4}  {'certificates':>12}  {'intake':>7}  {'seal':>7}  {'anchor':>7}  {'receipts':>8}  "
            f"{'finish':>7}  {'total':>7}  {'certs/s':>8}  {'peak PSS':>9}  {'(RSS sum)':>9}  load"
        )
        runs: dict[int, list[Run]] = {}
        peers: list[float] = []

        badges: list[Run] = []
        badge_template = template_for("ob3")

        def measure(label: str, size: int, *, badge: bool = False) -> Run:
            """One run of ``size`` certificates (``badge``: Open Badges from the ``ob3`` template),
            printed as a line; warm-ups (label ``-``) are printed and not judged."""
            load = os.getloadavg()[0]
            if badge:
                work = Path(tmp) / f"badges-{label}-{size}"
                run = issue_all(work, size, issuer, key, badge_template, args, write_badges_csv)
                if label != "-":
                    badges.append(run)
            else:
                run = issue_all(Path(tmp) / f"run-{label}-{size}", size, issuer, key, template, args)
                runs.setdefault(size, []).append(run)
            p = run.phases
            print(
                f"{label:>4}  {size:>12,}  {p['intake']:>6.1f}s  {p.get('seal', 0):>6.1f}s  "
                f"{p.get('anchor', 0):>6.1f}s  {p.get('receipts', 0):>7.1f}s  {p.get('finish', 0):>6.1f}s  "
                f"{run.total:>6.1f}s  {size / run.total:>8,.0f}  {run.peak_pss / 2**20:>7,.0f}MB  "
                f"{run.peak_rss / 2**20:>7,.0f}MB  {load:.2f} -> {os.getloadavg()[0]:.2f}"
                + ("  Open Badges 3.0" if badge else ""),
                flush=True,
            )
            return run

        for size in (1, 100):  # warm-up: the fork server, anvil, the database code
            measure("-", size)
            if args.template == "ob3":
                measure("-", size, badge=True)
        for number in range(1, args.runs + 1):
            label = str(number)
            if args.peer_docs and args.peer_docs != args.rows:
                measure(label, args.peer_docs)
            main_run = measure(label, args.rows)
            if args.template == "ob3":
                measure(label, args.rows, badge=True)
            if args.peer_docs and (seconds := openattestation(args.peer_docs)) is not None:
                peers.append(seconds)
                print(
                    f"{label:>4}  peer: OpenAttestation wrapDocuments, {args.peer_docs:,} documents: "
                    f"{seconds:.1f} s, {args.peer_docs / seconds:,.0f} docs/s",
                    flush=True,
                )
        by_phase = ", ".join(f"{name} {rss / 2**20:,.0f}" for name, rss in main_run.peak_rss_by_phase.items())
        print(f"\npeak RSS summed over the process tree, by phase, last run (MB): {by_phase}")
        if not args.qr:
            print(f"QR code on demand (finvault qr): {qr_on_demand(main_run.receipts):.2f} ms per receipt")

        totals = [run.total for run in runs[args.rows]]
        rate = args.rows / statistics.median(totals)
        print(
            f"\n{args.rows:,} certificates end to end, median of {len(totals)} run(s): {rate:,.0f} certs/s "
            f"(runs: {', '.join(f'{args.rows / t:,.0f}' for t in totals)}; "
            f"target >= {TARGET_CERTS_PER_SECOND:,}: {verdict(rate >= TARGET_CERTS_PER_SECOND)})"
        )
        if badges:
            badge_rate = args.rows / statistics.median(run.total for run in badges)
            each = ", ".join(f"{args.rows / run.total:,.0f}" for run in badges)
            print(
                f"{args.rows:,} Open Badges 3.0 (--template ob3, eddsa-rdfc-2022) end to end, median of "
                f"{len(badges)}: {badge_rate:,.0f} certs/s = {badge_rate / rate:.2f}x the default template's "
                f"{rate:,.0f} in the same runs (runs: {each}; "
                f"target >= {TARGET_OB3_PER_SECOND:,}: {verdict(badge_rate >= TARGET_OB3_PER_SECOND)})"
            )
        if args.rows >= 1_000_000:
            peak = max(run.peak_rss for run in runs[args.rows])
            within = peak < TARGET_RSS_BYTES
            print(
                f"{args.rows:,} in one batch: {statistics.median(totals):.0f} s wall, peak memory of the "
                f"process tree {peak / 2**30:.2f} GB RSS summed over its processes "
                f"({max(run.peak_pss for run in runs[args.rows]) / 2**30:.2f} GB PSS) "
                f"(target < 1.5 GB: {verdict(within)})"
            )
        if peers:
            peer_rate = args.peer_docs / statistics.median(peers)
            same = args.peer_docs / statistics.median(run.total for run in runs[args.peer_docs])
            ratio = same / peer_rate
            pairs = zip(runs[args.peer_docs], peers, strict=True)
            print(
                f"peer: OpenAttestation wrapDocuments, {args.peer_docs:,} documents, median of {len(peers)}: "
                f"{peer_rate:,.0f} docs/s\n"
                f"  FinVault at {args.peer_docs:,}, median: {same:,.0f} certs/s = {ratio:.2f}x the peer "
                f"(run by run: {', '.join(f'{peer / run.total:.2f}x' for run, peer in pairs)}; "
                f"target >= {TARGET_PEER_RATIO:g}x: {verdict(ratio >= TARGET_PEER_RATIO)})"
            )
            if args.rows != args.peer_docs:
                versus = rate / peer_rate
                print(f"  FinVault at {args.rows:,} vs the peer at {args.peer_docs:,}: {versus:.2f}x")

        started = time.perf_counter()
        baseline_gas = sum(issuer.anchor(os.urandom(32), 1).gas_used for _ in range(100))
        baseline_time = time.perf_counter() - started
        per_cert_baseline = baseline_gas / 100
        print(f"\nbaseline: 100 certificates, one anchor tx each: {baseline_gas:,} gas, {baseline_time:.1f}s")
        print(f"{'batch size':>12}  {'anchor gas':>10}  {'gas/certificate':>15}  {'vs per-certificate':>18}")
        for size, [run, *_] in sorted(runs.items()):
            print(
                f"{size:>12,}  {run.gas:>10,}  {run.gas / size:>15,.1f}  "
                f"{per_cert_baseline / (run.gas / size):>17,.0f}x"
            )


if __name__ == "__main__":
    main()
