"""One following indexer per mirror: the claim a writer holds for as long as it runs.

Two indexers following the chain into one database would each trust their own checkpoint, and a
node replica reading that mirror could not tell whose view it serves. So an indexer (``finvault
sync``, a node's sync loop) claims the mirror before it writes, and a second one refuses at once
with :class:`MirrorWriterBusy`, naming what to do instead:

- PostgreSQL: a session-level advisory lock on a connection held for the claim's life (the server
  drops it with the session, so a crashed writer never blocks the next one);
- SQLite: an exclusive ``flock`` on ``<database>.writer`` (0600), dropped by the kernel when the
  process ends.

``finvault resync`` takes no claim: an operator runs it beside a running node, which notices the
rewrite and waits (docs/operations.md). Readers never take one.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from chain.service.files import private_file
from indexer.errors import IndexerError

#: The session-level advisory lock of the mirror's one writer: ASCII "fvwriter" (the
#: transaction-scoped write lock of chain.service.db is another key).
POSTGRES_WRITER_CLAIM = 0x6676777269746572


class MirrorWriterBusy(IndexerError):
    """Another indexer already writes this mirror."""

    code = "mirror_writer_busy"


class WriterClaim:
    """This process's claim to be the mirror's only following writer; :meth:`release` drops it."""

    def __init__(self, engine: Engine) -> None:
        self._connection: Connection | None = None
        self._file: int | None = None
        where = engine.url.render_as_string(hide_password=True)
        if engine.dialect.name == "postgresql":
            connection = engine.connect()
            claimed = connection.exec_driver_sql(
                "SELECT pg_try_advisory_lock(%(key)s)", {"key": POSTGRES_WRITER_CLAIM}
            ).scalar()
            connection.commit()
            if not claimed:
                connection.close()
                raise _busy(where)
            self._connection = connection
        elif engine.url.database and engine.url.database != ":memory:":
            path = Path(f"{engine.url.database}.writer")
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            private_file(path)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                raise _busy(where) from None
            self._file = descriptor

    def release(self) -> None:
        """Drops the claim (idempotent)."""
        if self._connection is not None:
            try:  # the connection goes back to the pool: its session must not keep the lock
                self._connection.exec_driver_sql(
                    "SELECT pg_advisory_unlock(%(key)s)", {"key": POSTGRES_WRITER_CLAIM}
                )
                self._connection.commit()
            except SQLAlchemyError:
                self._connection.invalidate()  # closes the session, and the lock with it
            self._connection.close()
            self._connection = None
        if self._file is not None:
            os.close(self._file)  # and the flock with its file
            self._file = None

    def __enter__(self) -> WriterClaim:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _busy(where: str) -> MirrorWriterBusy:
    return MirrorWriterBusy(
        f"another indexer is already writing the mirror {where}: a mirror has one writer. Stop it, "
        "or read this mirror without writing: run the node as a replica (FINVAULT_NODE_REPLICA=true)"
    )
