"""The mirror's schema: one append-only table per registry event, plus blocks and the checkpoint.

Every event row keeps its chain coordinates (tx hash, log index, block number, block hash) and is
keyed by ``(tx_hash, log_index)``, so writes are idempotent. Because rows are only ever inserted,
a reorg is undone by deleting every row above the fork block; current state (is an issuer active,
is a key revoked) is derived from the events by queries. Hashes and addresses are stored as raw
bytes: an anchor row is ~200 bytes.

The same SQLAlchemy code runs on SQLite (the embedded default, WAL mode) and PostgreSQL.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Dialect,
    Float,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

if TYPE_CHECKING:
    from indexer.fetch import Header

#: Bumped with every Alembic migration; the checkpoint records which version wrote the mirror.
SCHEMA_VERSION = 5


class RawBytes(LargeBinary):
    """BLOB/BYTEA without SQLAlchemy's per-value wrapping: both sqlite3 and psycopg take ``bytes``
    as they are, and skipping the wrapper is ~25% of the indexer's insert time."""

    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        """No processor: values go to the driver as they are."""
        return None


Hash = RawBytes(32)
Address = RawBytes(20)

_NUL, _ESCAPE = "\x00", "\uffff"
_ESCAPED = re.compile(_ESCAPE + "(.)", re.DOTALL)


class NulSafeString(TypeDecorator[str]):
    """Text as the chain (or a provider) gave it, NUL characters included. PostgreSQL text cannot
    hold NUL, and any active issuer can put one in a manifest URI: there NUL is stored as U+FFFF
    "0" and U+FFFF as itself twice, so the value reads back exactly (rows, digests and reconciliation
    agree with SQLite) instead of the sync halting at that event."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        """On PostgreSQL, escapes NUL and the escape character itself; elsewhere the text as it is."""
        if value is None or dialect.name != "postgresql" or (_NUL not in value and _ESCAPE not in value):
            return value
        return value.replace(_ESCAPE, _ESCAPE * 2).replace(_NUL, _ESCAPE + "0")

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        """Undoes :meth:`process_bind_param`'s escaping."""
        if value is None or dialect.name != "postgresql" or _ESCAPE not in value:
            return value
        return _ESCAPED.sub(lambda found: _ESCAPE if found[1] == _ESCAPE else _NUL, value)


class Base(DeclarativeBase):
    """The mirror's tables; its metadata is what the Alembic migrations must produce."""

    pass


class EventRow:
    """Where a row came from: enough to find and re-check the log on any node."""

    tx_hash: Mapped[bytes] = mapped_column(Hash, primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger, index=True)
    block_hash: Mapped[bytes] = mapped_column(Hash)


class IssuerRow(EventRow, Base):
    """IssuerRegistered."""

    __tablename__ = "issuers"
    address: Mapped[bytes] = mapped_column(Address, unique=True)
    name: Mapped[str] = mapped_column(NulSafeString)
    uri: Mapped[str] = mapped_column(NulSafeString)


class IssuerStatusRow(EventRow, Base):
    """IssuerStatusChanged."""

    __tablename__ = "issuer_status"
    address: Mapped[bytes] = mapped_column(Address, index=True)
    active: Mapped[bool] = mapped_column(Boolean)


class KeyRow(EventRow, Base):
    """KeyAdded, with the full public key (the contract stores only what verification needs)."""

    __tablename__ = "issuer_keys"
    key_id: Mapped[bytes] = mapped_column(Hash, unique=True)
    issuer: Mapped[bytes] = mapped_column(Address, index=True)
    algorithm: Mapped[int] = mapped_column(Integer)
    public_key: Mapped[bytes] = mapped_column(RawBytes)


class KeyRevocationRow(EventRow, Base):
    """KeyRevoked."""

    __tablename__ = "key_revocations"
    key_id: Mapped[bytes] = mapped_column(Hash, unique=True)
    issuer: Mapped[bytes] = mapped_column(Address)


class AnchorRow(EventRow, Base):
    """Anchored. ``accumulator`` is the contract's value after this anchor (checked on apply)."""

    __tablename__ = "anchors"
    root: Mapped[bytes] = mapped_column(Hash, unique=True)
    issuer: Mapped[bytes] = mapped_column(Address)  # no index: keeps a row under 400 bytes
    count: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    accumulator: Mapped[bytes] = mapped_column(Hash)
    manifest_uri: Mapped[str] = mapped_column(NulSafeString)


class RevocationRow(EventRow, Base):
    """RootRevoked (``leaf`` is 32 zero bytes) and LeafRevoked."""

    __tablename__ = "revocations"
    __table_args__ = (UniqueConstraint("root", "leaf"),)
    root: Mapped[bytes] = mapped_column(Hash)
    leaf: Mapped[bytes] = mapped_column(Hash)
    issuer: Mapped[bytes] = mapped_column(Address)
    reason: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    accumulator: Mapped[bytes] = mapped_column(Hash)


class BlockRow(Base):
    """Blocks the mirror has seen: those that carried events, and every checkpoint."""

    __tablename__ = "blocks"
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(Hash)
    parent_hash: Mapped[bytes] = mapped_column(Hash)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Rolling digest of the mirror's events up to this block (blocks with events only): see
    #: :mod:`indexer.digests`. Two mirrors of one registry agree on it block by block.
    digest: Mapped[bytes | None] = mapped_column(Hash, nullable=True)

    @classmethod
    def without_events(cls, header: Header) -> BlockRow:
        """A block kept for its hash alone: a checkpoint, or a fork point no repairable reorg goes below."""
        return cls(
            number=header.number,
            hash=header.hash,
            parent_hash=header.parent_hash,
            timestamp=header.timestamp,
            event_count=0,
        )


class CheckpointRow(Base):
    """The single sync state row, committed in the same transaction as the rows it covers.

    ``finalized_block`` is the mirror's: the newest of its blocks known final, never above
    ``block_number``. ``chain_head_block`` and ``chain_finalized_block`` are the chain's head and
    finalized block as the step that wrote the row read them: a reader judges confirmations and
    finality of the facts it reads in the same snapshot of the database.
    """

    __tablename__ = "checkpoint"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    registry_address: Mapped[bytes] = mapped_column("registry", Address)
    schema_version: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[bytes] = mapped_column(Hash)
    finalized_block: Mapped[int] = mapped_column(BigInteger)
    chain_head_block: Mapped[int] = mapped_column(BigInteger)
    chain_finalized_block: Mapped[int] = mapped_column(BigInteger)
    anchor_accumulator: Mapped[bytes] = mapped_column(Hash)
    revocation_accumulator: Mapped[bytes] = mapped_column(Hash)
    anchor_count: Mapped[int] = mapped_column(BigInteger)
    revocation_count: Mapped[int] = mapped_column(BigInteger)
    #: Incremented by every transaction that changes a fact (a step that wrote events, a rewind, a
    #: resync): readers cache facts per revision.
    revision: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ReconciliationRunRow(Base):
    """One reconciliation of the mirror against the chain (the node's scheduled runs)."""

    __tablename__ = "reconciliation_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[int] = mapped_column(BigInteger)  # unix seconds
    first_block: Mapped[int] = mapped_column(BigInteger)
    last_block: Mapped[int] = mapped_column(BigInteger)
    quick: Mapped[bool] = mapped_column(Boolean)
    chain_events: Mapped[int] = mapped_column(Integer)
    mirror_events: Mapped[int] = mapped_column(Integer)
    drift_count: Mapped[int] = mapped_column(Integer)
    drift_by_kind: Mapped[dict[str, int]] = mapped_column(JSON)
    seconds: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(NulSafeString, nullable=True)  # may quote a provider


class AuditLogRow(Base):
    """What an operator did to the mirror by hand (``finvault resync``), for the audit trail."""

    __tablename__ = "audit_log"
    #: The ``action`` of a ``finvault resync``: a drift found before it counts as repaired.
    RESYNC: ClassVar[str] = "resync"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[int] = mapped_column(BigInteger)  # unix seconds
    action: Mapped[str] = mapped_column(String)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class LoopStateRow(Base):
    """What the mirror's one writer (a node's sync loop) last said of itself, for the processes that
    serve from this mirror without writing it (``node/state.py``): one row, rewritten each poll."""

    __tablename__ = "loop_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    published_at: Mapped[float] = mapped_column(Float)  # unix seconds, by the writer's clock
    state: Mapped[dict[str, Any]] = mapped_column(JSON)


EVENT_TABLES: tuple[type[EventRow], ...] = (
    IssuerRow,
    IssuerStatusRow,
    KeyRow,
    KeyRevocationRow,
    AnchorRow,
    RevocationRow,
)
