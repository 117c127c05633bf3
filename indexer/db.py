"""Database plumbing shared by the indexer and the node: engines, migrations, idempotent inserts.

SQLite gets WAL mode, foreign keys and a busy timeout; any other SQLAlchemy URL (PostgreSQL)
works unchanged. The schema is managed by Alembic, run programmatically on start-up, so an older
mirror is upgraded automatically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from indexer.schema import Base

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_MIRROR_URL = "sqlite:///.finvault/mirror.db"
#: Rows per INSERT statement: well under SQLite's 32,766 bound parameters for our widest table.
INSERT_CHUNK = 2_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; creates the SQLite file's directory if needed."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def migrate(engine: Engine) -> None:
    """Brings the schema to the newest version (creating it on an empty database)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_mirror(url: str) -> Engine:
    engine = make_engine(url)
    migrate(engine)
    return engine


def insert_ignore(session: Session, model: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: replaying rows already stored changes nothing."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for start in range(0, len(rows), INSERT_CHUNK):
        session.execute(insert(model).on_conflict_do_nothing(), list(rows[start : start + INSERT_CHUNK]))
