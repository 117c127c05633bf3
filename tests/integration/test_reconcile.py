"""`finvault reconcile` and `finvault resync` against a synced mirror tampered with directly in its
database: SQLite, and PostgreSQL for the tests marked :data:`on_both_backends`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, func, insert, select, update

from chain.contract import Artifact
from chain.dev.devchain import DevChain
from chain.rpc import RpcClient
from indexer.schema import Base
from tests.integration.conftest import MirrorBackend, on_both_backends
from tests.integration.indexer_fixtures import PopulatedChain, populated_chain

FINVAULT = str(Path(sys.executable).with_name("finvault"))


@pytest.fixture(scope="module")
def chain(anvil: DevChain, rpc: RpcClient, artifact: Artifact) -> Iterator[PopulatedChain]:
    with populated_chain(rpc, anvil.rpc_url, artifact, leaf_revocations=400) as populated:
        yield populated


@pytest.fixture(scope="module")
def synced(
    chain: PopulatedChain, mirror_backend: MirrorBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A mirror synced to the chain's head, kept as a pristine copy for each test; its URL."""
    with mirror_backend.database(tmp_path_factory.mktemp("synced")) as url:
        indexer = chain.indexer(url)
        indexer.check_startup()
        indexer.sync(chain.head)
        indexer.close()
        indexer.engine.dispose()
        yield url


@pytest.fixture
def mirror(synced: str, mirror_backend: MirrorBackend, tmp_path: Path) -> Iterator[str]:
    """A copy of the pristine mirror for one test; its URL."""
    with mirror_backend.database(tmp_path, copy_of=synced) as url:
        yield url


ANCHORS, REVOCATIONS, BLOCKS, AUDIT_LOG = (
    Base.metadata.tables[name] for name in ("anchors", "revocations", "blocks", "audit_log")
)


def finvault(chain: PopulatedChain, mirror: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        FINVAULT,
        *args,
        "--db",
        mirror,
        "--rpc",
        chain.url,
        "--registry",
        chain.registry,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def reconcile_json(chain: PopulatedChain, mirror: str, *args: str) -> tuple[int, dict[str, Any]]:
    done = finvault(chain, mirror, "reconcile", "--json", *args)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


@on_both_backends
@pytest.mark.slow(seconds=3)
def test_a_faithful_mirror_has_no_drift(chain: PopulatedChain, mirror: str) -> None:
    code, report = reconcile_json(chain, mirror)
    assert code == 0
    assert report["clean"] is True
    assert report["chain_events"] == report["mirror_events"] == chain.population.event_count
    assert report["last_block"] == chain.head
    code, quick = reconcile_json(chain, mirror, "--quick")
    assert code == 0
    assert quick["quick"] is True


@on_both_backends
@pytest.mark.slow(seconds=8)
def test_each_tampering_is_named_and_resync_repairs_it(
    chain: PopulatedChain, mirror: str, tmp_path: Path
) -> None:
    engine = create_engine(mirror)
    with engine.begin() as db:
        a, r = ANCHORS.c, REVOCATIONS.c
        deleted = db.execute(
            select(a.tx_hash, a.log_index, a.block_number, a.root, a.issuer, a.count)
            .order_by(a.block_number.desc())
            .limit(1)
        ).one()
        db.execute(delete(ANCHORS).where(a.tx_hash == deleted[0], a.log_index == deleted[1]))
        changed = db.execute(
            select(r.tx_hash, r.log_index, r.block_number, r.reason).order_by(r.block_number).limit(1)
        ).one()
        db.execute(
            update(REVOCATIONS)
            .where(r.tx_hash == changed[0], r.log_index == changed[1])
            .values(reason=(changed[3] + 1) % 10)
        )
        fake = db.execute(select(ANCHORS).order_by(a.block_number).limit(1)).mappings().one()
        db.execute(insert(ANCHORS).values({**fake, "tx_hash": b"\xee" * 32, "root": b"\xfa" * 32}))
        block = db.execute(
            select(BLOCKS.c.number, BLOCKS.c.hash)
            .where(BLOCKS.c.event_count > 0)
            .order_by(BLOCKS.c.number)
            .limit(1)
            .offset(2)
        ).one()
        db.execute(update(BLOCKS).where(BLOCKS.c.number == block[0]).values(hash=b"\x0b" * 32))

    csv_path = tmp_path / "drift.csv"
    code, report = reconcile_json(chain, mirror, "--csv", str(csv_path))
    assert code == 1
    found = {(d["kind"], d["table"], d["tx_hash"], d["field"]) for d in report["drifts"]}
    assert ("missing", "anchors", "0x" + deleted[0].hex(), None) in found
    assert ("mismatch", "revocations", "0x" + changed[0].hex(), "reason") in found
    assert ("extra", "anchors", "0x" + "ee" * 32, None) in found
    assert ("block_hash", "blocks", None, "hash") in found
    # The mirror's rows, folded, no longer give the contract's accumulators at the head.
    assert ("accumulator", "anchors", None, "accumulator") in found
    assert ("accumulator", "revocations", None, "revocationAccumulator") in found
    assert len(report["drifts"]) == 6, report["drifts"]
    by_kind = {d["kind"]: d for d in report["drifts"]}
    assert by_kind["mismatch"]["chain"] == str(changed[3])
    assert by_kind["block_hash"]["block_number"] == block[0]
    assert by_kind["block_hash"]["mirror"] == "0x" + "0b" * 32
    # Both sides are named: the missing root with its issuer and count, the extra row, and a
    # changed row as the chain has it and as the mirror has it.
    root, issuer, count = "0x" + deleted[3].hex(), "0x" + deleted[4].hex(), deleted[5]
    missing = by_kind["missing"]
    assert missing["mirror_row"] is None
    assert (missing["chain_event"]["root"], missing["chain_event"]["issuer"]) == (root, issuer)
    assert missing["chain_event"]["count"] == count
    extra = by_kind["extra"]
    assert extra["chain_event"] is None
    assert extra["mirror_row"]["root"] == "0x" + "fa" * 32
    mismatch = by_kind["mismatch"]
    assert mismatch["chain_event"]["reason"] == changed[3]
    assert mismatch["mirror_row"]["reason"] == (changed[3] + 1) % 10
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    assert any(json.loads(row["chain_event"] or "null") == missing["chain_event"] for row in rows)
    text = finvault(chain, mirror, "reconcile")
    assert text.returncode == 1
    missing_line = next(line for line in text.stdout.splitlines() if line.startswith("missing:"))
    assert f"root={root}" in missing_line
    assert f"issuer={issuer}" in missing_line
    assert f"count={count}" in missing_line
    assert "root=0x" + "fa" * 32 in next(
        line for line in text.stdout.splitlines() if line.startswith("extra:")
    )

    quick = finvault(chain, mirror, "reconcile", "--quick")
    assert quick.returncode == 1
    assert "accumulator" in quick.stdout

    earliest = min(d["block_number"] for d in report["drifts"])
    repaired = finvault(chain, mirror, "resync", "--from", str(earliest))
    assert repaired.returncode == 0, repaired.stderr
    code, after = reconcile_json(chain, mirror)
    assert code == 0, after["drifts"]
    with engine.connect() as db:
        entries = db.scalar(select(func.count()).select_from(AUDIT_LOG).where(AUDIT_LOG.c.action == "resync"))
    engine.dispose()
    assert entries == 1


@on_both_backends
@pytest.mark.slow(seconds=3)
def test_quick_check_counts_rows_and_names_both_sides(chain: PopulatedChain, mirror: str) -> None:
    """--quick folds nothing, yet an old row deleted from the mirror shows: the counts differ."""
    engine = create_engine(mirror)
    with engine.begin() as db:
        r = REVOCATIONS.c
        oldest = db.execute(
            select(r.tx_hash, r.log_index).order_by(r.block_number, r.log_index).limit(1)
        ).one()
        db.execute(delete(REVOCATIONS).where(r.tx_hash == oldest[0], r.log_index == oldest[1]))
    engine.dispose()
    code, report = reconcile_json(chain, mirror, "--quick")
    assert code == 1
    assert [(d["table"], d["field"]) for d in report["drifts"]] == [("revocations", "revocationCount")]
    drift = report["drifts"][0]
    assert int(drift["chain"]) == int(drift["mirror"]) + 1
    events = chain.population.events
    assert int(drift["chain"]) == events["RootRevoked"] + events["LeafRevoked"]


def test_csv_cells_cannot_start_formulas() -> None:
    from indexer.reconcile import Drift, drifts_csv

    text = drifts_csv([Drift("mismatch", "issuers", 7, "0xab", 1, "name", '=HYPERLINK("x")', "+1")])
    row = next(csv.DictReader(text.splitlines()))
    assert row["chain"] == '\'=HYPERLINK("x")'
    assert row["mirror"] == "'+1"
    assert row["tx_hash"] == "0xab"


@pytest.mark.slow(seconds=6)
def test_usage_and_connectivity_errors_exit_2(chain: PopulatedChain, mirror: str) -> None:
    assert finvault(chain, mirror, "reconcile", "--from", "10", "--to", "5").returncode == 2
    assert finvault(chain, mirror, "reconcile", "--to", str(chain.head + 1000)).returncode == 2
    unreachable = subprocess.run(
        [
            FINVAULT,
            "reconcile",
            "--db",
            mirror,
            "--rpc",
            "http://127.0.0.1:9",
            "--registry",
            chain.registry,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert unreachable.returncode == 2
    assert "rpc_unavailable" in unreachable.stderr


@pytest.fixture
def other(mirror: str, mirror_backend: MirrorBackend, tmp_path: Path) -> Iterator[str]:
    """A second copy of the pristine mirror."""
    (tmp_path / "other").mkdir()
    with mirror_backend.database(tmp_path / "other", copy_of=mirror) as url:
        yield url


@on_both_backends
def test_digests_find_the_first_divergent_block(chain: PopulatedChain, mirror: str, other: str) -> None:
    from sqlalchemy.orm import Session

    from indexer.digests import digest_as_of, first_divergence, update_digests

    engines = [create_engine(url) for url in (mirror, other)]
    with engines[1].begin() as db:
        r = REVOCATIONS.c
        blocks = db.scalars(select(BLOCKS.c.number).where(BLOCKS.c.event_count > 0)).all()
        revoked = db.scalars(select(r.block_number).distinct().order_by(r.block_number)).all()
        target = revoked[len(revoked) // 2]
        db.execute(update(REVOCATIONS).where(r.block_number == target).values(reason=(r.reason + 1) % 10))
    assert update_digests(engines[0]) == update_digests(engines[1]) == len(blocks)
    assert update_digests(engines[0]) == 0  # already done: nothing to fill

    def as_of(engine: Any) -> Any:
        def lookup(block: int) -> str:
            with Session(engine) as session:
                return digest_as_of(session, block)

        return lookup

    assert first_divergence(as_of(engines[0]), as_of(engines[0]), chain.head) is None
    assert first_divergence(as_of(engines[0]), as_of(engines[1]), chain.head) == target
    assert first_divergence(as_of(engines[0]), as_of(engines[1]), target - 1) is None
    for engine in engines:
        engine.dispose()
