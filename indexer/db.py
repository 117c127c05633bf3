"""Where the mirror lives: its default URL, its migrations, opening it (upgraded on start), and
the bulk insert of decoded rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Dialect, Engine, Table
from sqlalchemy.orm import DeclarativeBase, Session

from chain.service.db import insert_ignore, make_engine, migrate

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_MIRROR_URL = "sqlite:///.finvault/mirror.db"


def open_mirror(url: str) -> Engine:
    """An engine on the mirror at ``url`` with its schema at the newest version.

    Transactions default to ``BEGIN DEFERRED`` so the node's readers run alongside the indexer.
    """
    engine = make_engine(url)
    migrate(engine, MIGRATIONS)
    return engine


#: Rows per INSERT statement on SQLite (fewer if the build binds fewer values): SQLite releases the
#: GIL while it runs a statement, and the fewer statements, the fewer times it waits to take it back.
SQLITE_ROWS_PER_INSERT = 500


@dataclass(frozen=True)
class _SqliteInsert:
    """Multi-row ``INSERT ... ON CONFLICT DO NOTHING`` of rows that all have the same keys."""

    table: str
    columns: tuple[str, ...]
    parameters: Callable[[Mapping[str, Any]], tuple[Any, ...]]

    @lru_cache(maxsize=64)  # noqa: B019 - a few statements per table, for the process's life
    def sql(self, rows: int) -> str:
        """The statement for ``rows`` rows: quoted schema identifiers, every value a parameter."""
        head = f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES "  # noqa: S608
        placeholders = "(" + ", ".join("?" * len(self.columns)) + ")"
        return head + ", ".join([placeholders] * rows) + " ON CONFLICT DO NOTHING"

    def execute(self, cursor: sqlite3.Cursor, rows: Sequence[Mapping[str, Any]]) -> None:
        bindable = cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        per_statement = max(1, min(SQLITE_ROWS_PER_INSERT, bindable // len(self.columns)))
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            values = chain.from_iterable(map(self.parameters, chunk))
            # sqlite3 (CPython 3.11) looks for an adapter for every bytes value, raising and
            # clearing an AttributeError each time; a bytearray is bound as the same BLOB without
            # that detour, and the insert's Python time halves.
            cursor.execute(self.sql(len(chunk)), [bytearray(v) if type(v) is bytes else v for v in values])


@lru_cache(maxsize=32)
def _sqlite_insert(table: Table, dialect: Dialect, keys: tuple[str, ...]) -> _SqliteInsert:
    quote = dialect.identifier_preparer.quote
    getter = itemgetter(*keys) if len(keys) > 1 else lambda row: (row[keys[0]],)
    return _SqliteInsert(quote(table.name), tuple(quote(table.c[key].name) for key in keys), getter)


def insert_rows(session: Session, model: type[DeclarativeBase], rows: Sequence[Mapping[str, Any]]) -> None:
    """:func:`chain.service.db.insert_ignore` for the sync loop's decoded rows (all with the same keys).

    On SQLite the rows go in multi-row statements straight to sqlite3. Its ``executemany`` would
    release and re-take the GIL for every row, each time waiting for the log prefetch thread
    (busy parsing and decoding JSON) to hand it back: inserts ran several times slower whenever
    the two threads overlapped.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect
    if dialect.name != "sqlite":
        insert_ignore(session, model, rows)
        return
    insert = _sqlite_insert(model.__table__, dialect, tuple(rows[0]))
    session.flush()  # pending ORM objects first, as insert_ignore does
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        insert.execute(cursor, rows)
    finally:
        cursor.close()
