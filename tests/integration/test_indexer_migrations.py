"""The mirror's schema under Alembic, on real SQLite files: created on first open, untouched after,
equal to the SQLAlchemy models, and recorded in the checkpoint; an older mirror upgraded in place
(on both backends)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session

from chain.core.verify import ChainHead
from chain.rpc import RpcClient
from chain.service.db import make_engine
from indexer.db import MIGRATIONS, open_mirror
from indexer.reader import checkpoint_head
from indexer.schema import SCHEMA_VERSION, Base, BlockRow
from tests.integration.conftest import Deployed, on_both_backends
from tests.integration.indexer_fixtures import checkpoint, new_indexer, sqlite_url


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def stored_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_sql(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        )
        return [(str(name), str(sql)) for name, sql in rows]


def test_first_open_creates_the_schema_the_models_describe(tmp_path: Path) -> None:
    path = tmp_path / "new" / "mirror.db"
    engine = open_mirror(f"sqlite:///{path}")
    assert path.is_file()
    assert set(inspect(engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}
    assert stored_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_a_second_open_changes_nothing(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    first = open_mirror(url)
    with Session(first) as session, session.begin():
        session.add(
            BlockRow(number=7, hash=b"\x01" * 32, parent_hash=b"\x02" * 32, timestamp=1, event_count=0)
        )
    before = schema_sql(first)
    first.dispose()

    second = open_mirror(url)
    assert schema_sql(second) == before
    assert stored_revision(second) == head_revision()
    with second.connect() as connection:
        assert connection.execute(text("SELECT number FROM blocks")).scalars().all() == [7]


def test_schema_version_follows_the_migrations() -> None:
    assert int(head_revision()) == SCHEMA_VERSION  # bump both together


def test_the_checkpoint_records_the_schema_version(
    rpc: RpcClient, registry: Deployed, tmp_path: Path
) -> None:
    indexer = new_indexer(sqlite_url(tmp_path), rpc, registry.address, registry.block)
    indexer.check_startup()
    indexer.step()
    assert checkpoint(indexer.engine)["schema_version"] == SCHEMA_VERSION


@on_both_backends
def test_an_older_mirror_gets_its_checkpoints_chain_head_from_its_own_block(mirror_url: str) -> None:
    """0004 adds the chain head and finalized block to the checkpoint: a mirror written before has
    its checkpoint's own block as the head, its own finalized block as the chain's."""
    engine = make_engine(mirror_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        connection.execute(
            text(
                "INSERT INTO checkpoint (id, chain_id, registry, schema_version, block_number, "
                "block_hash, finalized_block, anchor_accumulator, revocation_accumulator, anchor_count, "
                "revocation_count) VALUES (1, 31337, :registry, 3, 120, :hash, 100, :hash, :hash, 4, 2)"
            ),
            {"registry": b"\x01" * 20, "hash": b"\x02" * 32},
        )
    engine.dispose()

    upgraded = open_mirror(mirror_url)
    assert stored_revision(upgraded) == head_revision()
    row = checkpoint(upgraded)
    assert (row["block_number"], row["chain_head_block"], row["chain_finalized_block"]) == (120, 120, 100)
    with upgraded.connect() as connection:
        assert checkpoint_head(connection) == ChainHead(120, 100)
    upgraded.dispose()
