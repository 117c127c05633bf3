"""The issuer store on real SQLite files: pragmas, migrations, intake transactions; PostgreSQL DDL."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.schema import CreateIndex, CreateTable

import chain.service.db
from chain.errors import ConfigError
from chain.keys import generate_private_key
from chain.service.db import database_url
from chain.service.files import sync_files
from issuer import service, status
from issuer.errors import IntakeRejected, StoreError
from issuer.intake import read_input
from issuer.service import IssuerConfig, IssuerService, ingest
from issuer.store import MIGRATIONS, VERSION_TABLE, Base, Certificate, CertificateStatus, Store, storable_text
from issuer.template import load_template

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "issuer"
TEMPLATE = load_template(FIXTURES / "degree-template.json")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(str(tmp_path / "nested" / "issuer.db"))


def certificates(store: Store) -> list[Certificate]:
    with store.transaction() as session:
        return list(session.scalars(select(Certificate).order_by(Certificate.id)))


def test_sqlite_file_uses_wal_and_foreign_keys(store: Store, tmp_path: Path) -> None:
    assert (tmp_path / "nested" / "issuer.db").is_file()
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(IntegrityError), store.transaction() as session:
        session.add(
            Certificate(
                id="orphan",
                credential={"a": 1},
                salts={},
                digest="0x01",
                leaf="0x02",
                status=CertificateStatus.SEALED,
                batch_root="0x" + "00" * 32,
                created_at=datetime.now(UTC),
            )
        )


def test_migrations_match_the_models_and_reopening_is_a_no_op(store: Store, tmp_path: Path) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []
        tables = set(inspect(connection).get_table_names())
    assert tables == {
        *("certificates", "batches", "anchor_attempts", "revocations", VERSION_TABLE),
        *("events", "webhook_deliveries", "webhook_cursors", "api_keys", "idempotency_keys", "status_lists"),
    }
    Store.open(str(tmp_path / "nested" / "issuer.db")).close()


def _store_at_0002(path: Path) -> str:
    """A SQLite issuer store as version 0002 (receipts /1) left it, with a /1 batch sealed and not
    anchored, and one pending certificate with its salts."""
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{path}"
    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        connection.execute(
            text(
                "INSERT INTO batches (root, leaf_count, status, key_id, manifest_uri, sealed_at) "
                "VALUES (:root, 1, 'sealed', :key, '', '2026-11-01 00:00:00')"
            ),
            {"root": "0x" + "ab" * 32, "key": "0x" + "cd" * 32},
        )
        connection.execute(
            text(
                "INSERT INTO certificates (id, credential, salts, digest, leaf, status, created_at) "
                "VALUES ('old-1', '{}', '{\"/a\": \"0x00\"}', :d, :l, 'pending', '2026-11-01 00:00:00')"
            ),
            {"d": "0x" + "01" * 32, "l": "0x" + "02" * 32},
        )
    engine.dispose()
    return url


def test_upgrading_to_receipts_v2_waits_for_unanchored_v1_batches(tmp_path: Path) -> None:
    """Migration 0003 refuses, with a one-line error naming what to do, while a batch sealed under
    /1 is not anchored; once it is, pending certificates lose their /1 salts, digest and leaf."""
    url = _store_at_0002(tmp_path / "issuer.db")
    with pytest.raises(
        StoreError, match=r"1 batch\(es\) sealed under finvault-receipt/1 are not .*`finvault anchor`"
    ):
        Store.open(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE batches SET status = 'anchored'"))
    engine.dispose()
    with Store.open(url) as store, store.reading() as session:
        [certificate] = session.scalars(select(Certificate))
        assert (certificate.salts, certificate.digest, certificate.leaf, certificate.secured) == (None,) * 4
        assert certificate.status is CertificateStatus.PENDING


def test_ingest_stores_pending_certificates(store: Store) -> None:
    moment = datetime(2026, 11, 23, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    report = ingest(store, read_input(FIXTURES / "students.csv", TEMPLATE), now=lambda: moment)
    assert (report.accepted, report.rejected) == (3, ())
    stored = certificates(store)
    assert [c.id for c in stored] == ["cert-0001", "cert-0002", "cert-0003"]
    for certificate in stored:
        assert certificate.status is CertificateStatus.PENDING
        assert certificate.credential["credentialSubject"]["credits"] in (120, 180, 240)
        # Nothing is secured before sealing: no leaf to commit to yet.
        assert certificate.secured is certificate.digest is certificate.leaf is None
        assert certificate.created_at == moment
        assert certificate.created_at.tzinfo is UTC
        assert certificate.signature is None
        assert certificate.batch_root is None
    assert store.pending_count() == 3


def test_ids_already_stored_are_rejected(store: Store) -> None:
    ingest(store, read_input(FIXTURES / "students.csv", TEMPLATE))
    again = ingest(store, read_input(FIXTURES / "students.csv", TEMPLATE))
    assert again.accepted == 0
    assert [str(r) for r in again.rejected] == [
        f"line {n}: certificate id 'cert-000{n - 1}' is already in the store" for n in (2, 3, 4)
    ]


@pytest.mark.parametrize("chunk", [1, 2, 500])
def test_strict_stores_nothing_even_after_earlier_chunks(
    store: Store, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(service, "INGEST_CHUNK", chunk)
    with pytest.raises(IntakeRejected, match="line 3: missing column 'name'"):
        ingest(store, read_input(FIXTURES / "bad-rows.csv", TEMPLATE), strict=True)
    assert certificates(store) == []
    lenient = ingest(store, read_input(FIXTURES / "bad-rows.csv", TEMPLATE))
    assert (lenient.accepted, len(lenient.rejected)) == (3, 5)
    assert [r.line for r in lenient.rejected] == [3, 4, 5, 6, 9]


def test_schema_compiles_for_postgresql() -> None:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    for table in Base.metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=dialect))
        assert "CREATE TABLE" in ddl
        for index in table.indexes:
            assert "CREATE INDEX" in str(CreateIndex(index).compile(dialect=dialect))
    pending = (
        select(Certificate.id)
        .where(Certificate.status == CertificateStatus.PENDING)
        .limit(10)
        .with_for_update(skip_locked=True)
    )
    assert "FOR UPDATE SKIP LOCKED" in str(pending.compile(dialect=dialect))
    assert "BYTEA" in str(CreateTable(Base.metadata.tables["anchor_attempts"]).compile(dialect=dialect))


def test_unreachable_database_is_one_error_without_its_password() -> None:
    with pytest.raises(StoreError) as caught:
        Store.open("postgresql://issuer:s3cret-pw@127.0.0.1:1/issuer")
    assert "s3cret-pw" not in caught.value.message
    assert "issuer:***@127.0.0.1:1/issuer" in caught.value.message


def test_database_url_accepts_a_path() -> None:
    assert database_url("issuer.db") == "sqlite:///issuer.db"
    assert database_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"


def test_pending_count_and_batches_on_an_empty_store(store: Store) -> None:
    assert store.pending_count() == 0
    assert store.batches(["sealed"]) == []  # type: ignore[list-item]
    with store.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Certificate)) == 0
    with pytest.raises(StoreError, match="no batch"):
        store.batch("0x" + "00" * 32)


def test_writers_take_the_lock_up_front_and_readers_never_wait(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chain.service.db, "SQLITE_BUSY_TIMEOUT", 0.1)
    other = Store.open(str(tmp_path / "nested" / "issuer.db"))
    with store.transaction() as first:
        first.execute(select(1))  # BEGIN IMMEDIATE: the write lock, before anything is written
        assert other.pending_count() == 0  # a reader does not wait
        with pytest.raises(OperationalError, match="database is locked"), other.transaction() as second:
            second.execute(select(1))  # a second writer waits (here: gives up after 0.1 s)
    with other.transaction() as second:
        second.execute(select(1))  # free again


def test_the_store_and_its_wal_are_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        folder = tmp_path / "state" / "issuer"
        with Store.open(f"sqlite:///{folder / 'issuer.db'}") as opened:
            with opened.transaction() as session:
                session.execute(select(func.count()).select_from(Certificate))
            files = sorted(folder.iterdir())
            assert [path.name for path in files] == ["issuer.db", "issuer.db-shm", "issuer.db-wal"]
            assert {path.stat().st_mode & 0o777 for path in files} == {0o600}
        assert folder.stat().st_mode & 0o777 == 0o700

        os.chmod(folder / "issuer.db", 0o644)  # written by an older version
        Store.open(f"sqlite:///{folder / 'issuer.db'}").close()
        assert (folder / "issuer.db").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(previous)


def test_exactly_the_files_written_and_their_folders_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    fsync = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    paths = []
    for i in range(40):
        folder = tmp_path / f"d{i % 3}"
        folder.mkdir(exist_ok=True)
        paths.append(folder / f"{i}.json")
        paths[-1].write_bytes(b"{}")
    (tmp_path / "untouched.json").write_bytes(b"{}")
    sync_files(paths)
    folders = [str(tmp_path / f"d{i}") for i in range(3)]
    assert sorted(synced) == sorted([*map(str, paths), *folders])
    assert synced[-3:] == folders  # the folders' entries after the files' contents
    with pytest.raises(FileNotFoundError):
        sync_files([tmp_path / "missing.json"])


def test_foreign_messages_are_stored_without_nul() -> None:
    assert storable_text("revert: bad\x00data") == "revert: bad\\0data"
    assert storable_text("plain") == "plain"


def test_data_integrity_securing_with_an_rsa_key_is_refused_before_anything_is_stored(
    store: Store, tmp_path: Path
) -> None:
    """eddsa-jcs-2022 has no RSA form: the service refuses to start (one line, exit 2) rather than
    fail at sealing once the rows are in."""
    config = IssuerConfig(out_dir=tmp_path, securing="data-integrity")
    with pytest.raises(ConfigError, match="needs an Ed25519 signing key"):
        IssuerService(store, registry=None, signing_key=generate_private_key("rsa-2048"), config=config)  # type: ignore[arg-type]
    assert store.pending_count() == 0


def test_status_entries_are_random_unique_and_a_full_list_starts_the_next(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(status, "LIST_FILL", 3)
    with store.transaction() as session:
        allocator = status.Allocator(session, "https://uni.example/status/")
        drawn = [allocator.entry() for _ in range(7)]
    assert [list_id for list_id, _, _ in drawn] == [1, 1, 1, 2, 2, 2, 3]
    assert drawn[0][2]["statusListCredential"] == "https://uni.example/status/1"
    assert drawn[3][2]["id"] == f"https://uni.example/status/2#{drawn[3][1]}"
    assert len({index for list_id, index, _ in drawn if list_id == 1}) == 3
    with store.transaction() as session:  # a later seal goes on with the newest list, not yet full
        assert status.Allocator(session, "https://uni.example/status").entry()[0] == 3
