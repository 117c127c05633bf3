"""One following indexer per mirror: the claim a writer holds for as long as it runs.

Two indexers following the chain into one database would each trust their own checkpoint, and a
node replica reading that mirror could not tell whose view it serves. So an indexer (``finvault
sync``, a node's sync loop) claims the mirror before it writes, and a second one refuses at once
with :class:`MirrorWriterBusy`, naming what to do instead:

- PostgreSQL: a session-level advisory lock on a connection held for the claim's life (the server
  drops it with the session, so a crashed writer never blocks the next one);
- SQLite: an exclusive ``flock`` on ``<database>.writer`` (0600), dropped by the kernel when the
  process ends.

A claim can be lost while its writer lives: a database restart (or ``pg_terminate_backend``) ends
the session that held the lock; someone deletes or replaces ``<database>.writer``. So the writer
checks its claim before every write step (:meth:`WriterClaim.ensure`, which :meth:`Indexer.step
<indexer.sync.Indexer.step>` calls): a claim found lost is taken again on a fresh connection, or
the lock file anew; if another writer holds it by then, this one stops writing for good with
:class:`WriterClaimLost`.

``finvault resync`` takes no claim: an operator runs it beside a running node, which notices the
rewrite and waits (docs/operations.md). Readers never take one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from chain.service.failures import failure_reason
from chain.service.files import private_file
from indexer.errors import IndexerError

log = logging.getLogger(__name__)

#: The session-level advisory lock of the mirror's one writer: ASCII "fvwriter" (the
#: transaction-scoped write lock of chain.service.db is another key).
POSTGRES_WRITER_CLAIM = 0x6676777269746572
#: How long a writer whose claim's session was ended waits for that session's backend to exit
#: (and let go of the lock) before it tries again at a later step: the client can hear of the end
#: before the server has released the session's locks.
CLAIM_RELEASE_WAIT = 5.0
#: pg_locks shows a bigint advisory key as two oids, its high and low 32 bits (objsubid 1).
_CLAIM_KEY = {"high": POSTGRES_WRITER_CLAIM >> 32, "low": POSTGRES_WRITER_CLAIM & 0xFFFFFFFF}
#: Whether this session holds the claim.
_HOLDS_CLAIM = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' "
    "AND classid::bigint = %(high)s AND objid::bigint = %(low)s AND objsubid = 1 AND granted)"
)
#: The backends that hold the claim on this database (none or one).
_CLAIM_HOLDER = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = %(high)s "
    "AND objid::bigint = %(low)s AND objsubid = 1 AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class MirrorWriterBusy(IndexerError):
    """Another indexer already writes this mirror."""

    code = "mirror_writer_busy"


class WriterClaimLost(IndexerError):
    """This writer's claim on the mirror ended (a database restart, a deleted lock file) and another
    indexer claimed the mirror since: this one must not write again. Raised by every
    :meth:`WriterClaim.ensure` from then on."""

    code = "writer_claim_lost"


class WriterClaimPending(IndexerError):
    """This writer's claim ended, and the server has not yet let go of it (the backend that held it
    is still exiting): the claim is taken again at a later step. Transient."""

    code = "writer_claim_pending"


class WriterClaim:
    """This process's claim to be the mirror's only following writer; :meth:`ensure` checks it
    before a write, :meth:`release` drops it."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None
        self._backend: int | None = None  # the PostgreSQL backend (pid) whose session holds the claim
        self._file: int | None = None
        self._path: Path | None = None
        self._lost: WriterClaimLost | None = None
        self._where = engine.url.render_as_string(hide_password=True)
        if engine.dialect.name == "postgresql":
            self._connection = self._take_postgres()
        elif engine.url.database and engine.url.database != ":memory:":
            self._path = Path(f"{engine.url.database}.writer")
            self._file = self._take_file(self._path)

    # -- taking the claim -----------------------------------------------------------------------------

    def _take_postgres(self) -> Connection:
        connection = self._engine.connect()
        try:
            claimed, backend = connection.exec_driver_sql(
                "SELECT pg_try_advisory_lock(%(key)s), pg_backend_pid()", {"key": POSTGRES_WRITER_CLAIM}
            ).one()
            connection.commit()
        except BaseException:
            connection.close()
            raise
        if not claimed:
            connection.close()
            raise _busy(self._where)
        self._backend = backend
        return connection

    def _take_postgres_again(self, why: str) -> Connection:
        """The claim's session ended: takes the claim on a fresh one, waiting up to
        :data:`CLAIM_RELEASE_WAIT` for the ended session's backend to let go of it."""
        ended, deadline = self._backend, time.monotonic() + CLAIM_RELEASE_WAIT
        while True:
            try:
                return self._take_postgres()
            except MirrorWriterBusy:
                with self._engine.connect() as connection:
                    holders = set(connection.exec_driver_sql(_CLAIM_HOLDER, _CLAIM_KEY).scalars())
                if ended is None or not holders <= {ended}:
                    raise self._lose(why) from None  # another writer holds it now
                if time.monotonic() > deadline:
                    raise WriterClaimPending(
                        f"the mirror's writer claim was lost ({why}); the server still holds it for the "
                        f"ended session (backend {ended}): it is taken again at the next step"
                    ) from None
                time.sleep(0.02)

    def _take_file(self, path: Path) -> int:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        private_file(path)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise _busy(self._where) from None
        return descriptor

    # -- checking it ----------------------------------------------------------------------------------

    def ensure(self) -> None:
        """Makes sure this process still holds the claim before it writes; call it before every
        write step (:meth:`Indexer.step <indexer.sync.Indexer.step>` does).

        A claim found lost (the database session that held it ended; the lock file was deleted or
        replaced) is taken again. Raises :class:`WriterClaimLost` if another indexer holds it now,
        and from then on: this writer must stop writing (a second writer never starts writing
        while this one still could). Raises, transiently (the claim is taken again at the next
        call), :class:`sqlalchemy.exc.SQLAlchemyError` if the database cannot be reached to tell,
        and :class:`WriterClaimPending` if the server has not let go of the ended session's lock
        within :data:`CLAIM_RELEASE_WAIT`.
        """
        if self._lost is not None:
            raise self._lost
        if self._path is not None:
            self._ensure_file(self._path)
        elif self._engine.dialect.name == "postgresql":
            self._ensure_postgres()

    def _ensure_postgres(self) -> None:
        why = "no connection held it"
        if self._connection is not None:
            try:
                held = self._connection.exec_driver_sql(_HOLDS_CLAIM, _CLAIM_KEY).scalar()
                self._connection.commit()
            except SQLAlchemyError as exc:
                why = f"its database session ended ({failure_reason(exc)})"
                self._drop_connection()
            else:
                if held:
                    return
                why = "its database session no longer holds the lock"
                self._drop_connection()
        self._connection = self._take_postgres_again(why)
        log.warning("the mirror's writer claim was lost (%s) and is taken again", why)

    def _ensure_file(self, path: Path) -> None:
        assert self._file is not None
        held = os.fstat(self._file)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
            return
        why = f"{path} was {'deleted' if current is None else 'replaced'}"
        os.close(self._file)  # its lock guards a file no other writer looks at any more
        self._file = None
        try:
            self._file = self._take_file(path)
        except MirrorWriterBusy:
            raise self._lose(why) from None
        log.warning("the mirror's writer claim was lost (%s) and is taken again", why)

    def _lose(self, why: str) -> WriterClaimLost:
        self._lost = WriterClaimLost(
            f"this indexer lost its claim to write the mirror {self._where} ({why}), and another "
            "indexer has claimed it since: this one has stopped writing. Stop one of the two; restart "
            "this one only once the other has stopped (or run it as a replica, FINVAULT_NODE_REPLICA=true)"
        )
        log.error("%s", self._lost.diagnostics())
        return self._lost

    # -- dropping it ----------------------------------------------------------------------------------

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.invalidate()  # never back to the pool: its session is gone or suspect
            self._connection.close()
            self._connection = None

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
