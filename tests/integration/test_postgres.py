"""What a second database engine adds to the indexer, node and reconcile suites (which run on
PostgreSQL too, through ``on_both_backends``): the schemas Alembic builds there are the models;
strings PostgreSQL cannot store as text (NUL) still mirror exactly; writers queue behind each other
on both backends as the sync loop and ``finvault resync`` assume; and the node's scheduled
reconciliation stores, counts and clears its runs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from chain.dev.devchain import DEV_CHAIN_ID
from chain.rpc import RpcClient
from chain.service.db import BEGIN_MODE
from indexer.db import open_mirror
from indexer.digests import digest_as_of, update_digests
from indexer.reconcile import Reconciler, resync
from indexer.schema import AuditLogRow, Base, IssuerRow, ReconciliationRunRow
from issuer import store as issuer_store
from node.audit import AuditCollector, ReconciliationJob, drift_alert
from tests.integration.conftest import Deployed, on_both_backends
from tests.integration.indexer_fixtures import digest, mirror_rows, new_indexer, postgres_database, sqlite_url


def model_differences(engine: Engine, metadata: object) -> list[object]:
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))  # type: ignore[arg-type]


def test_migrations_build_the_models_on_postgresql(postgres_admin_url: str) -> None:
    with postgres_database(postgres_admin_url) as url:
        mirror = open_mirror(url)
        assert model_differences(mirror, Base.metadata) == []
        open_mirror(url).dispose()  # a second open finds nothing to do
        mirror.dispose()
    with postgres_database(postgres_admin_url) as url:
        store = issuer_store.Store.open(url)
        differences = model_differences(store.engine, issuer_store.Base.metadata)
        store.close()
    assert [(d[0], d[1].name) for d in differences] == [("remove_table", issuer_store.VERSION_TABLE)]  # type: ignore[index]


def test_strings_postgresql_cannot_hold_mirror_exactly(
    rpc: RpcClient, registry: Deployed, postgres_admin_url: str, tmp_path: Path
) -> None:
    """Any active issuer can anchor with a NUL in the manifest URI: a PostgreSQL mirror must keep
    it as the chain has it (and agree with SQLite row by row and digest by digest), not halt."""
    name, uri, manifest = "Uni\x00versity \uffff", "https://u.example/\x00", "ipfs://\uffff0\x00\uffff\uffff"
    registry.owner.register_issuer(registry.issuer.sender.signer.address, name, uri)
    registry.issuer.anchor(digest("nul"), 1, manifest)
    head = rpc.block_number()
    with postgres_database(postgres_admin_url) as url:
        engines = []
        for mirror in (sqlite_url(tmp_path), url):
            indexer = new_indexer(mirror, rpc, registry.address, registry.block)
            assert indexer.sync().indexed_block == head
            indexer.close()
            update_digests(indexer.engine)
            engines.append(indexer.engine)
        sqlite, postgres = (mirror_rows(engine) for engine in engines)
        assert (postgres["issuers"][0]["name"], postgres["issuers"][0]["uri"]) == (name, uri)
        assert postgres["anchors"][0]["manifest_uri"] == manifest
        assert postgres == sqlite
        digests = []
        for engine in engines:
            with Session(engine) as session:
                digests.append(digest_as_of(session, head))
        assert digests[0] == digests[1]
        assert Reconciler(engines[1], rpc, registry.address, DEV_CHAIN_ID).run(registry.block, head).clean
        for engine in engines:
            engine.dispose()


def count_audit_rows(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(AuditLogRow)) or 0)


@on_both_backends
def test_a_writer_waits_for_the_one_before_it_and_readers_never_wait(mirror_url: str) -> None:
    engine = open_mirror(mirror_url)
    writing, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def first() -> None:
        with Session(engine) as session, session.begin():
            session.connection(execution_options={BEGIN_MODE: "IMMEDIATE"})
            session.add(AuditLogRow(at=1, action="first", detail={}))
            session.flush()
            writing.set()
            release.wait(10)

    def second() -> None:
        with Session(engine) as session, session.begin():
            session.connection(execution_options={BEGIN_MODE: "IMMEDIATE"})
            seen.append(int(session.scalar(select(func.count()).select_from(AuditLogRow)) or 0))
            session.add(AuditLogRow(at=2, action="second", detail={}))

    writers = [threading.Thread(target=first), threading.Thread(target=second)]
    writers[0].start()
    try:
        assert writing.wait(10)
        assert count_audit_rows(engine) == 0  # a reader does not wait, and sees only what is committed
        writers[1].start()
        writers[1].join(0.5)
        assert writers[1].is_alive()  # queued behind the first writer...
    finally:
        release.set()
        for writer in writers:
            if writer.ident is not None:
                writer.join(10)
    assert seen == [1]  # ...so it read what the first one committed
    assert count_audit_rows(engine) == 2
    engine.dispose()


@on_both_backends
def test_scheduled_reconciliation_records_drift_until_resync(
    rpc: RpcClient, registry: Deployed, mirror_url: str
) -> None:
    registry.owner.register_issuer(registry.issuer.sender.signer.address, "Example University", "https://u")
    indexer = new_indexer(mirror_url, rpc, registry.address, registry.block)
    indexer.sync()
    engine = indexer.engine
    job = ReconciliationJob(engine, rpc, registry.address, DEV_CHAIN_ID, registry.block, 100, interval=0)
    job.run_once()
    with Session(engine) as session, session.begin():
        session.execute(update(IssuerRow).values(name="Forged University"))
    job.run_once()

    with Session(engine) as session:
        run = ReconciliationRunRow
        runs = session.execute(
            select(run.id, run.drift_count, run.drift_by_kind).where(run.error.is_(None)).order_by(run.id)
        ).all()
        assert [tuple(row) for row in runs] == [(1, 0, {}), (2, 1, {"mismatch": 1})]
        alert = drift_alert(session, threshold=0)
    assert alert is not None
    assert alert.startswith("reconciliation run 2 found 1 drift(s)")
    metrics = {m.name: m.samples[0].value for m in AuditCollector(engine, threshold=0).collect()}
    assert metrics["finvault_reconciliation_mismatches"] == 1
    assert metrics["finvault_reconciliation_drift_alert"] == 1

    resync(indexer, registry.block, now=int(time.time()) + 1)
    with Session(engine) as session:
        assert drift_alert(session, threshold=0) is None
        assert session.scalar(select(IssuerRow.name)) == "Example University"
    indexer.close()
    engine.dispose()
