"""Database plumbing shared by the issuer store and the indexer's mirror.

One SQLAlchemy URL picks the engine: a SQLite file by default, PostgreSQL for operators who
outgrow it. On SQLite every connection gets WAL mode, foreign keys and a busy timeout, and every
transaction opens with an explicit ``BEGIN``: ``IMMEDIATE`` takes the write lock up front (two
writers can then never both read the same rows and collide later), ``DEFERRED`` lets readers run
alongside a writer. On PostgreSQL an ``IMMEDIATE`` transaction takes a transaction-scoped advisory
lock before anything else, so writers queue the same way (waiting at most as long as SQLite's busy
timeout) and each reads what the one before it committed; readers never wait. Schemas are managed
by Alembic, run programmatically, so an older database is upgraded on start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Session

from chain.errors import DatabaseMissing
from chain.service.files import private_dir, private_file

BeginMode = Literal["IMMEDIATE", "DEFERRED"]
#: Execution option naming the BEGIN mode of one transaction (on PostgreSQL: whether it takes the
#: write lock).
BEGIN_MODE = "finvault_begin_mode"
SQLITE_BUSY_TIMEOUT = 15.0
#: The PostgreSQL advisory lock an ``IMMEDIATE`` transaction holds: ASCII "finvault".
POSTGRES_WRITE_LOCK = 0x66696E7661756C74
#: Rows per INSERT statement: well under SQLite's 32,766 bound parameters for the widest table.
INSERT_CHUNK = 2_000


def database_url(value: str) -> str:
    """A SQLAlchemy URL; a plain path means a SQLite file."""
    return value if "://" in value else f"sqlite:///{Path(value).expanduser()}"


def require_existing_database(url: str, what: str, hint: str) -> None:
    """Raises :class:`DatabaseMissing` if ``url`` names a SQLite file that does not exist.

    For the commands whose job is to read a database another command made: opening a missing
    SQLite file would create it (and its folders) empty, and the command would then answer as if
    nothing had happened (an empty mirror, an unknown certificate). ``what`` names the database
    ("the mirror"), ``hint`` the command that makes it. A server database is not checked: whether
    it exists is for the server to say when the engine connects.
    """
    try:
        parsed = make_url(database_url(url))
    except ArgumentError:
        return  # opening it says what is wrong with the URL
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    path = Path(parsed.database)
    if not path.exists():
        raise DatabaseMissing(f"{what} {path} does not exist: {hint}")


def redact_db_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def make_engine(
    url: str,
    *,
    default_begin: BeginMode = "DEFERRED",
    private: bool = False,
    durable: bool = False,
    cache_mib: int | None = None,
) -> Engine:
    """An engine for ``url``; on SQLite, creates the file's directory and sets the pragmas.

    ``private`` (a SQLite file holding personal data): the folder is created 0700 and the file 0600
    before SQLite opens it, so its ``-wal`` and ``-shm`` are 0600 too (SQLite gives them the
    database's mode). ``durable``: every commit is synced (``synchronous=FULL``), where ``NORMAL``
    may lose the last commits (never consistency) to a power cut. ``cache_mib``: SQLite's page cache
    per connection (default 2 MiB), for transactions that write more than that.
    """
    parsed = make_url(database_url(url))
    if parsed.get_backend_name() == "postgresql":
        return _postgres_engine(create_engine(parsed, pool_pre_ping=True), default_begin)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        if private:
            if not path.parent.exists():
                private_dir(path.parent)
            for existing in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                if existing is path or existing.exists():
                    private_file(existing)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})
    synchronous = "PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not BEGIN behind our back
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(synchronous)
        cursor.execute("PRAGMA foreign_keys=ON")
        if cache_mib is not None:
            cursor.execute(f"PRAGMA cache_size=-{int(cache_mib) * 1024}")  # negative: KiB
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(BEGIN_MODE, default_begin)
        connection.exec_driver_sql(f"BEGIN {'IMMEDIATE' if mode == 'IMMEDIATE' else 'DEFERRED'}")

    return engine


def _postgres_engine(engine: Engine, default_begin: BeginMode) -> Engine:
    """READ COMMITTED lets two writers read the same checkpoint and both write after it: an
    ``IMMEDIATE`` transaction first takes the one write lock, as ``BEGIN IMMEDIATE`` does on SQLite."""

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(BEGIN_MODE, default_begin) != "IMMEDIATE":
            return
        timeout = {"timeout": f"{round(SQLITE_BUSY_TIMEOUT * 1000)}ms"}
        connection.exec_driver_sql("SELECT set_config('lock_timeout', %(timeout)s, true)", timeout)
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%(key)s)", {"key": POSTGRES_WRITE_LOCK})

    return engine


def migrate(engine: Engine, script_location: Path) -> None:
    """Brings the schema under ``script_location`` to its newest version (creating it if empty)."""
    from alembic import command  # lazily: read-only processes (node workers) never migrate
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def insert_ignore(session: Session, model: type[DeclarativeBase], rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: replaying rows already stored changes nothing."""
    if not rows:
        return
    dialect = session.get_bind().dialect
    from sqlalchemy.dialects import postgresql, sqlite  # PostgreSQL's dialect package loads asyncpg's

    insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    statement = insert(model.__table__).on_conflict_do_nothing()  # type: ignore[arg-type]
    session.flush()  # pending ORM objects first, so the two paths never collide
    connection = session.connection()
    if dialect.name != "sqlite":
        for start in range(0, len(rows), INSERT_CHUNK):
            connection.execute(statement, list(rows[start : start + INSERT_CHUNK]))
        return
    # The indexer's hot path: SQLAlchemy compiles the statement once, and the rows go to sqlite3's
    # executemany as plain tuples (values are already bytes/int/str), skipping per-value
    # processing that costs more than SQLite itself.
    compiled = statement.compile(dialect=dialect, column_keys=list(rows[0]))
    keys = compiled.positiontup or []
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(compiled.string, [tuple(row[k] for k in keys) for row in rows])
    finally:
        cursor.close()
