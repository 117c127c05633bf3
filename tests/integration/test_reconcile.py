"""`finvault reconcile` and `finvault resync` against a synced mirror tampered with directly in SQLite."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chain.contract import Artifact
from chain.devchain import DevChain
from chain.rpc import RpcClient
from tests.integration.indexer_fixtures import PopulatedChain, populated_chain, sqlite_url

FINVAULT = str(Path(sys.executable).with_name("finvault"))


@pytest.fixture(scope="module")
def chain(anvil: DevChain, rpc: RpcClient, artifact: Artifact) -> Iterator[PopulatedChain]:
    with populated_chain(rpc, anvil.rpc_url, artifact, leaf_revocations=400) as populated:
        yield populated


@pytest.fixture(scope="module")
def synced(chain: PopulatedChain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mirror synced to the chain's head, kept as a pristine copy for each test."""
    directory = tmp_path_factory.mktemp("synced")
    indexer = chain.indexer(sqlite_url(directory))
    indexer.check_startup()
    indexer.sync(chain.head)
    indexer.close()
    indexer.engine.dispose()
    return directory / "m.db"


@pytest.fixture
def mirror(synced: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "m.db"
    shutil.copy(synced, copy)
    return copy


def finvault(chain: PopulatedChain, mirror: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        FINVAULT,
        *args,
        "--db",
        sqlite_url(mirror.parent),
        "--rpc",
        chain.url,
        "--registry",
        chain.registry,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def reconcile_json(chain: PopulatedChain, mirror: Path, *args: str) -> tuple[int, dict[str, Any]]:
    done = finvault(chain, mirror, "reconcile", "--json", *args)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_a_faithful_mirror_has_no_drift(chain: PopulatedChain, mirror: Path) -> None:
    code, report = reconcile_json(chain, mirror)
    assert code == 0
    assert report["clean"] is True
    assert report["chain_events"] == report["mirror_events"] == chain.population.event_count
    assert report["last_block"] == chain.head
    code, quick = reconcile_json(chain, mirror, "--quick")
    assert code == 0
    assert quick["quick"] is True


def test_each_tampering_is_named_and_resync_repairs_it(
    chain: PopulatedChain, mirror: Path, tmp_path: Path
) -> None:
    with sqlite3.connect(mirror) as db:
        deleted = db.execute(
            "SELECT tx_hash, log_index, block_number FROM anchors ORDER BY block_number DESC LIMIT 1"
        ).fetchone()
        db.execute("DELETE FROM anchors WHERE tx_hash = ? AND log_index = ?", deleted[:2])
        changed = db.execute(
            "SELECT tx_hash, log_index, block_number, reason FROM revocations ORDER BY block_number LIMIT 1"
        ).fetchone()
        db.execute(
            "UPDATE revocations SET reason = ? WHERE tx_hash = ? AND log_index = ?",
            ((changed[3] + 1) % 10, changed[0], changed[1]),
        )
        fake = db.execute("SELECT * FROM anchors ORDER BY block_number LIMIT 1").fetchone()
        columns = [c[1] for c in db.execute("PRAGMA table_info(anchors)")]
        row = dict(zip(columns, fake, strict=True)) | {"tx_hash": b"\xee" * 32, "root": b"\xfa" * 32}
        db.execute(
            f"INSERT INTO anchors ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",  # noqa: S608 - test-owned names
            [row[c] for c in columns],
        )
        block = db.execute(
            "SELECT number, hash FROM blocks WHERE event_count > 0 ORDER BY number LIMIT 1 OFFSET 2"
        ).fetchone()
        db.execute("UPDATE blocks SET hash = ? WHERE number = ?", (b"\x0b" * 32, block[0]))

    csv_path = tmp_path / "drift.csv"
    code, report = reconcile_json(chain, mirror, "--csv", str(csv_path))
    assert code == 1
    found = {(d["kind"], d["table"], d["tx_hash"], d["field"]) for d in report["drifts"]}
    assert ("missing", "anchors", "0x" + deleted[0].hex(), None) in found
    assert ("mismatch", "revocations", "0x" + changed[0].hex(), "reason") in found
    assert ("extra", "anchors", "0x" + "ee" * 32, None) in found
    assert ("block_hash", "blocks", None, "hash") in found
    # The deleted anchor also leaves the mirror's anchor accumulator short at the head.
    assert ("accumulator", "anchors", None, "accumulator") in found
    assert len(report["drifts"]) == 5, report["drifts"]
    by_kind = {d["kind"]: d for d in report["drifts"]}
    assert by_kind["mismatch"]["chain"] == str(changed[3])
    assert by_kind["block_hash"]["block_number"] == block[0]
    assert by_kind["block_hash"]["mirror"] == "0x" + "0b" * 32
    with csv_path.open() as handle:
        assert len(list(csv.DictReader(handle))) == 5

    quick = finvault(chain, mirror, "reconcile", "--quick")
    assert quick.returncode == 1
    assert "accumulator" in quick.stdout

    earliest = min(d["block_number"] for d in report["drifts"])
    repaired = finvault(chain, mirror, "resync", "--from", str(earliest))
    assert repaired.returncode == 0, repaired.stderr
    code, after = reconcile_json(chain, mirror)
    assert code == 0, after["drifts"]
    with sqlite3.connect(mirror) as db:
        (entries,) = db.execute("SELECT count(*) FROM audit_log WHERE action = 'resync'").fetchone()
    assert entries == 1


def test_csv_cells_cannot_start_formulas() -> None:
    from indexer.reconcile import Drift, drifts_csv

    text = drifts_csv([Drift("mismatch", "issuers", 7, "0xab", 1, "name", '=HYPERLINK("x")', "+1")])
    row = next(csv.DictReader(text.splitlines()))
    assert row["chain"] == '\'=HYPERLINK("x")'
    assert row["mirror"] == "'+1"
    assert row["tx_hash"] == "0xab"


def test_usage_and_connectivity_errors_exit_2(chain: PopulatedChain, mirror: Path) -> None:
    assert finvault(chain, mirror, "reconcile", "--from", "10", "--to", "5").returncode == 2
    assert finvault(chain, mirror, "reconcile", "--to", str(chain.head + 1000)).returncode == 2
    unreachable = subprocess.run(
        [
            FINVAULT,
            "reconcile",
            "--db",
            sqlite_url(mirror.parent),
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


def test_digests_find_the_first_divergent_block(chain: PopulatedChain, mirror: Path, tmp_path: Path) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from indexer.digests import digest_as_of, first_divergence, update_digests

    other = tmp_path / "other" / "m.db"
    other.parent.mkdir()
    shutil.copy(mirror, other)
    with sqlite3.connect(other) as db:
        blocks = [n for (n,) in db.execute("SELECT number FROM blocks WHERE event_count > 0 ORDER BY number")]
        revoked = [n for (n,) in db.execute("SELECT DISTINCT block_number FROM revocations ORDER BY 1")]
        target = revoked[len(revoked) // 2]
        db.execute("UPDATE revocations SET reason = (reason + 1) % 10 WHERE block_number = ?", (target,))
    engines = [create_engine(sqlite_url(path.parent)) for path in (mirror, other)]
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
