"""The indexer against a real chain with 10,000+ events of every kind, read back independently.

One history is written per module (:func:`populated_chain`) and synced once, uninterrupted, into a
reference mirror (SQLite) and into a PostgreSQL mirror. Each is checked row by row against raw
``eth_getLogs`` decoded by eth_abi, and against the contract's own accumulators and counts; then
every other way of syncing (through injected faults, with a refusing provider, killed with SIGKILL
and restarted, on either backend) must end in exactly the reference.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import ProgrammingError

from chain.contract import Artifact
from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.registry import RegistryReader
from chain.rpc import RpcClient
from chain.rpc_facts import RpcFacts
from chain.service.db import make_engine
from indexer.fetch import AdaptiveRange
from indexer.reader import MirrorFacts
from indexer.schema import SCHEMA_VERSION, CheckpointRow
from tests.integration.conftest import MirrorBackend, on_both_backends
from tests.integration.indexer_fixtures import (
    FAST_RETRY,
    PopulatedChain,
    assert_accumulators_match_the_contract,
    chain_logs,
    checkpoint,
    digest,
    mirror_rows,
    mirror_state,
    populated_chain,
    reference_rows,
    sqlite_url,
)
from tests.tools.rpc_proxy import Fault, FaultKind, Lie, RpcProxy

FINVAULT = str(Path(sys.executable).with_name("finvault"))
EVENT_KINDS = {"IssuerRegistered", "IssuerStatusChanged", "KeyAdded", "KeyRevoked", "Anchored", "RootRevoked",
               "LeafRevoked"}  # fmt: skip


@pytest.fixture(scope="module")
def chain(anvil: DevChain, rpc: RpcClient, artifact: Artifact) -> Iterator[PopulatedChain]:
    with populated_chain(rpc, anvil.rpc_url, artifact, leaf_revocations=10_000) as populated:
        yield populated


def synced_mirror(chain: PopulatedChain, url: str) -> Engine:
    """The mirror at ``url`` after one uninterrupted sync, straight from anvil."""
    indexer = chain.indexer(url)
    indexer.check_startup()
    status = indexer.sync(chain.head)
    indexer.close()
    assert status.indexed_block == chain.head
    assert status.events_indexed == chain.population.event_count
    return indexer.engine


@pytest.fixture(scope="module")
def reference(chain: PopulatedChain, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The mirror of one uninterrupted sync into SQLite: what every other way must end in."""
    return synced_mirror(chain, sqlite_url(tmp_path_factory.mktemp("reference")))


@pytest.fixture(scope="module")
def synced(
    chain: PopulatedChain,
    reference: Engine,
    mirror_backend: MirrorBackend,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Engine]:
    """The mirror of one uninterrupted sync on the backend under test (on SQLite, the reference)."""
    if mirror_backend.name == "sqlite":
        yield reference
        return
    with mirror_backend.database(tmp_path_factory.mktemp("mirror")) as url:
        engine = synced_mirror(chain, url)
        yield engine
        engine.dispose()


@pytest.fixture
def proxy(anvil: DevChain) -> Iterator[RpcProxy]:
    with RpcProxy(anvil.rpc_url, seed=20261123) as running:
        yield running


# -- the reference against the chain ------------------------------------------------------------------


@on_both_backends
@pytest.mark.slow
def test_mirror_equals_an_independent_read_of_the_chain(
    chain: PopulatedChain, synced: Engine, rpc: RpcClient, artifact: Artifact
) -> None:
    logs = chain_logs(rpc, chain.registry, chain.deployment_block, chain.head)
    expected = reference_rows(artifact.abi, logs)
    mirrored = mirror_rows(synced)
    assert {t: len(rows) for t, rows in mirrored.items()} == {t: len(rows) for t, rows in expected.items()}
    for table in expected:
        assert mirrored[table] == expected[table], table

    emitted = Counter(decoded[0] for log in logs if (decoded := artifact.abi.decode_event(log)))
    assert {kind: emitted[kind] for kind in EVENT_KINDS} == dict(chain.population.events)
    assert all(emitted[kind] > 0 for kind in EVENT_KINDS)
    assert sum(len(rows) for rows in mirrored.values()) >= 10_000

    state = checkpoint(synced)
    assert state["block_number"] == chain.head
    assert state["schema_version"] == SCHEMA_VERSION
    assert state["chain_id"] == DEV_CHAIN_ID
    assert state["registry"] == bytes.fromhex(chain.registry[2:])
    assert_accumulators_match_the_contract(rpc, chain.registry, synced)


@on_both_backends
def test_mirror_blocks_are_the_chains_headers(chain: PopulatedChain, synced: Engine, rpc: RpcClient) -> None:
    blocks = mirror_state(synced)["blocks"]
    rows = [row for table in mirror_rows(synced).values() for row in table]
    per_block = Counter(row["block_number"] for row in rows)
    headers = rpc.batch([("eth_getBlockByNumber", [hex(b["number"]), False]) for b in blocks])
    for block, header in zip(blocks, headers, strict=True):
        assert block["hash"] == bytes.fromhex(header["hash"][2:])
        assert block["parent_hash"] == bytes.fromhex(header["parentHash"][2:])
        assert block["timestamp"] == int(header["timestamp"], 16)
        assert block["event_count"] == per_block[block["number"]]
    assert {b["number"] for b in blocks} == {*per_block, chain.head}


@on_both_backends
@pytest.mark.slow
def test_mirror_facts_answer_like_rpc_facts(chain: PopulatedChain, synced: Engine, rpc: RpcClient) -> None:
    population = chain.population
    assert population.leaf_tree is not None
    mirror = MirrorFacts(synced, DEV_CHAIN_ID, chain.registry)
    direct = RpcFacts(RegistryReader(rpc, chain.registry), DEV_CHAIN_ID)
    assert (mirror.chain_id, mirror.registry) == (direct.chain_id, direct.registry)

    revoked = set(population.revoked_roots)
    live_roots = [r for r in population.roots if r not in revoked]
    roots = [*live_roots[:4], *population.revoked_roots[:4], digest("never anchored")]
    for root in roots:
        assert mirror.anchor(root) == direct.anchor(root), root.hex()
        assert mirror.revocation(root, None) == direct.revocation(root, None), root.hex()
    assert mirror.anchor(roots[0]) is not None
    assert mirror.revocation(population.revoked_roots[0], None) is not None

    tree = population.leaf_tree
    unrevoked = [leaf for leaf in tree.leaves if leaf not in set(population.revoked_leaves)]
    sample = random.Random(5).sample(population.revoked_leaves, 6)
    for leaf in [*sample, population.revoked_leaves[-1], *unrevoked[:3]]:
        assert mirror.revocation(tree.root, leaf) == direct.revocation(tree.root, leaf), leaf.hex()
    assert mirror.revocation(tree.root, sample[0]) is not None
    assert mirror.revocation(tree.root, unrevoked[0]) is None

    for key in [*population.keys, digest("no such key")]:
        assert mirror.key(key) == direct.key(key), key.hex()
    assert {mirror.key(k).revoked_block is not None for k in population.keys} == {True, False}  # type: ignore[union-attr]

    for issuer in [*population.issuers, population.stranger]:
        assert mirror.issuer(issuer) == direct.issuer(issuer), issuer
    assert [mirror.issuer(i).active for i in population.issuers] == [True, True, False, False]  # type: ignore[union-attr]
    assert mirror.issuer(population.stranger) is None
    assert mirror.head().number == direct.head().number


# -- the same mirror, the hard way ----------------------------------------------------------------------

#: About one request in three fails, in every way a provider fails.
FAULT_MIX = (
    Fault(FaultKind.RATE_LIMITED, probability=0.08),
    Fault(FaultKind.SERVER_ERROR, probability=0.04, status=500),
    Fault(FaultKind.SERVER_ERROR, probability=0.04, status=502),
    Fault(FaultKind.SERVER_ERROR, probability=0.04, status=503),
    Fault(FaultKind.TRUNCATED, probability=0.08),
    Fault(FaultKind.INVALID_JSON, probability=0.05),
    Fault(FaultKind.DROP, probability=0.05),
)


@pytest.mark.slow(seconds=3)
def test_sync_through_injected_faults_equals_the_reference(
    chain: PopulatedChain, reference: Engine, proxy: RpcProxy, tmp_path: Path
) -> None:
    proxy.set_faults("*", *FAULT_MIX)
    proxy.set_faults(  # and for certain, early on: each timeout costs a client timeout, so only two
        "eth_getLogs",
        Fault(FaultKind.TIMEOUT, first=2, hold=3.0),
        *(Fault(kind, first=1) for kind in FaultKind if kind is not FaultKind.TIMEOUT),
    )
    with RpcClient([proxy.url], policy=FAST_RETRY) as client:
        indexer = chain.indexer(sqlite_url(tmp_path), client, window=AdaptiveRange(size=4, maximum=4))
        indexer.check_startup()
        status = indexer.sync(chain.head)
    assert status.indexed_block == chain.head
    assert mirror_state(indexer.engine) == mirror_state(reference)
    injected = {kind: proxy.injected[kind] for kind in FaultKind}
    assert all(injected.values()), injected
    assert injected[FaultKind.TIMEOUT] == 2


@pytest.mark.slow
def test_range_shrinks_on_too_many_results_and_grows_back(
    chain: PopulatedChain,
    reference: Engine,
    proxy: RpcProxy,
    rpc: RpcClient,
    tmp_path: Path,
    clean_chain: None,
) -> None:
    rpc.call("anvil_mine", [hex(100)])  # room to grow after the limit is lifted (reverted afterwards)
    head = rpc.block_number()
    proxy.max_log_range = 4
    window = AdaptiveRange(size=32, grow_after=1)
    with RpcClient([proxy.url], policy=FAST_RETRY) as client:
        # No prefetch: the exact sequence of ranges asked for is what this test checks.
        indexer = chain.indexer(sqlite_url(tmp_path), client, window=window, prefetch=False)
        for _ in range(100):
            if indexer.step().last_block >= chain.deployment_block + 24:
                break
        limited, at_lift = list(proxy.log_ranges), window.size
        proxy.max_log_range = None  # the provider relents
        for _ in range(100):
            if indexer.step().caught_up:
                break
    relented = proxy.log_ranges[len(limited) :]

    refused = [r.size for r in limited if r.refused]
    assert refused[:3] == [32, 16, 8]  # halved until the provider accepts
    assert {r.size for r in limited if not r.refused} == {4}
    assert set(refused[3:]) == {8}  # each success doubles, and 8 is refused again
    assert proxy.injected[Lie.TOO_MANY_RESULTS] == len(refused)
    accepted = [r.size for r in relented]
    assert not any(r.refused for r in relented)
    assert at_lift == 8  # doubled after the last success, not yet tried
    assert accepted[:3] == [8, 16, 32]  # grows back once the provider relents
    assert window.size > 32

    assert indexer.status.indexed_block == head
    assert mirror_rows(indexer.engine) == mirror_rows(reference)


# -- crashes ------------------------------------------------------------------------------------------------


def checkpoint_block(url: str, engine: Engine) -> int | None:
    """The crashed process's committed checkpoint, read without migrating or locking anything (on
    SQLite through a read-only connection, on PostgreSQL through ``engine``)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            return None
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)) as db:
                row = db.execute("SELECT block_number FROM checkpoint").fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return None
        return None if row is None else int(row[0])
    try:
        with engine.connect() as connection:
            return connection.scalar(select(CheckpointRow.block_number))
    except ProgrammingError:  # not migrated yet
        return None


def assert_prefix_of_reference(chain: PopulatedChain, engine: Engine, reference: Engine) -> None:
    """A mirror killed mid-sync is exactly the reference up to its committed checkpoint."""
    upto = checkpoint(engine)["block_number"]
    expected = {
        table: [row for row in rows if row["block_number"] <= upto]
        for table, rows in mirror_rows(reference).items()
    }
    assert mirror_rows(engine) == expected
    assert_accumulators_match_the_contract(chain.rpc, chain.registry, engine)


def wait_for_progress(process: subprocess.Popen[bytes], url: str, engine: Engine, since: int | None) -> None:
    deadline = time.monotonic() + 120.0
    while process.poll() is None and time.monotonic() < deadline:
        now = checkpoint_block(url, engine)
        if now is not None and (since is None or now > since):
            return
        time.sleep(0.005)


@pytest.mark.slow(seconds=11)
@on_both_backends
def test_sigkill_at_random_moments_then_resume_equals_the_reference(
    chain: PopulatedChain, reference: Engine, proxy: RpcProxy, mirror_url: str
) -> None:
    proxy.max_log_range = 2  # many small steps: kills land between and inside them
    proxy.set_latency("eth_getLogs", 0.03)
    url = mirror_url
    command = [FINVAULT, "sync", "--rpc", proxy.url, "--registry", chain.registry, "--db", url,
               "--chain-id", str(DEV_CHAIN_ID), "--to", str(chain.head)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINVAULT_")}
    rng = random.Random(20261123)
    engine = make_engine(url)
    kills = 0
    while kills < 5:
        since = checkpoint_block(url, engine)
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_progress(process, url, engine, since)
        time.sleep(rng.uniform(0.0, 0.12))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.communicate(timeout=30)
        assert process.returncode in (0, -signal.SIGKILL)
        if checkpoint_block(url, engine) is not None:
            assert_prefix_of_reference(chain, engine, reference)
    assert (checkpoint_block(url, engine) or 0) < chain.head  # the kills did interrupt the sync

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stderr
    assert f"synced to block {chain.head}" in finished.stdout
    assert mirror_state(engine) == mirror_state(reference)
    assert_accumulators_match_the_contract(chain.rpc, chain.registry, engine)
    engine.dispose()
