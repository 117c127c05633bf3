"""The issuer's local store: certificates (with their PII), batches and every signed transaction.

SQLAlchemy 2.0 with typed models. The default is a SQLite file in WAL mode with foreign keys on;
any other SQLAlchemy URL works too (PostgreSQL: ``postgresql+psycopg://...``), as the code uses
no SQLite-only SQL. Credentials never leave this store except inside a holder's receipt:
the chain only ever sees the batch root.

Crash safety rests on three tables besides the certificates:

- ``batches``: one row per sealed Merkle tree; ``status`` moves ``sealed`` -> ``sending`` (a signed
  transaction is stored, maybe not yet broadcast) -> ``sent`` -> ``anchored``, or ``failed``
  (reverted), or ``superseded`` (another account anchored the root first: the certificates were
  put back to ``pending``, to be secured afresh). ``tx_nonce``/``raw_tx``/``tx_hash`` are the current
  attempt.
- ``anchor_attempts``: every transaction ever signed for a batch, stored *before* it is broadcast.
  Replacements share the nonce, so at most one of a round can be mined; after a restart every
  stored hash is looked up, so a batch whose transaction was mined is never anchored again.
- ``revocations``: what was revoked on-chain, when and by which transaction.

The issuer API adds ``events`` (an outbox: ``certificate.anchored`` and ``certificate.revoked``,
written in the same transaction as the state change they report), ``webhook_deliveries`` and
``webhook_cursors`` (one delivery per event and endpoint, retried, then dead-lettered),
``api_keys`` (hashed) and ``idempotency_keys`` (stored responses for replays).

On SQLite every transaction starts with ``BEGIN IMMEDIATE``: pysqlite would otherwise defer the
write lock to the first write, and two sealers could read the same pending certificates.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Engine,
    Enum,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from chain.core.encoding import hex0x, to_bytes32
from chain.core.merkle import MerkleTree
from chain.service.db import BEGIN_MODE, database_url, make_engine, migrate, redact_db_url
from issuer.errors import StoreError
from issuer.intake import MAX_ID_LENGTH

HASH_LENGTH = 66  # "0x" + 64 hex digits
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "issuer_alembic_version"
#: Sealing rewrites a whole batch in one transaction; past SQLite's default 2 MiB page cache every
#: page spills to the WAL and is read back (100k updates: 4.9 s with 2 MiB, 3.1 s with 64 MiB).
SQLITE_CACHE_MIB = 64


def storable_text(text: str) -> str:
    """A message from elsewhere (an RPC error, an HTTP client) as plain text both backends hold:
    PostgreSQL text cannot contain U+0000, so it is written ``\\0``."""
    return text.replace("\x00", "\\0")


def utcnow() -> datetime:
    """The store's clock for row timestamps (services take it as a parameter for tests)."""
    return datetime.now(UTC)


class CertificateStatus(StrEnum):
    """``pending`` (stored) -> ``sealed`` (signed, in a batch) -> ``anchored`` -> maybe ``revoked``."""

    PENDING = "pending"
    SEALED = "sealed"
    ANCHORED = "anchored"
    REVOKED = "revoked"


class BatchStatus(StrEnum):
    """See the module docstring for the life of a batch."""

    SEALED = "sealed"
    SENDING = "sending"
    SENT = "sent"
    ANCHORED = "anchored"
    FAILED = "failed"
    #: Another account anchored this root first; its certificates went back to pending, to be
    #: secured afresh.
    SUPERSEDED = "superseded"


def _enum_column(cls: type[StrEnum]) -> Enum:
    """A VARCHAR holding the enum's values (portable: no native ENUM type)."""
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes everywhere, also on SQLite (which keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """The time in UTC (naive on SQLite); a naive datetime is refused with ValueError."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """An aware UTC datetime, whatever the database returned."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """The issuer store's tables."""

    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy's declarative configuration
        dict[str, Any]: JSON,
        dict[str, str]: JSON,
        datetime: UtcDateTime,
        bytes: LargeBinary,
    }


class Batch(Base):
    """One sealed Merkle tree of certificates and the state of its ``anchor`` transaction."""

    __tablename__ = "batches"

    root: Mapped[str] = mapped_column(String(HASH_LENGTH), primary_key=True)
    leaf_count: Mapped[int]
    status: Mapped[BatchStatus] = mapped_column(_enum_column(BatchStatus), index=True)
    key_id: Mapped[str] = mapped_column(String(HASH_LENGTH))
    manifest_uri: Mapped[str] = mapped_column(String(2048), default="")
    tx_nonce: Mapped[int | None] = mapped_column(BigInteger)
    raw_tx: Mapped[bytes | None]
    tx_hash: Mapped[str | None] = mapped_column(String(HASH_LENGTH))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    sealed_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    anchored_at: Mapped[datetime | None]


class Certificate(Base):
    """One certificate: its credential (personal data, never sent anywhere but in its holder's
    receipt), the credential as secured at sealing, its leaf, and its status.

    ``secured`` is what a finvault-receipt/2 carries: the SD-JWT, or the JSON text of the credential
    with its Data Integrity proof; ``digest`` is what the leaf commits to. All three are set at
    sealing. ``salts`` and ``signature`` belong to certificates sealed under finvault-receipt/1."""

    __tablename__ = "certificates"

    id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), primary_key=True)
    credential: Mapped[dict[str, Any]]
    secured: Mapped[str | None] = mapped_column(Text)
    salts: Mapped[dict[str, str] | None]
    digest: Mapped[str | None] = mapped_column(String(HASH_LENGTH), unique=True)
    leaf: Mapped[str | None] = mapped_column(String(HASH_LENGTH), unique=True)
    signature: Mapped[str | None] = mapped_column(Text)
    key_id: Mapped[str | None] = mapped_column(String(HASH_LENGTH))
    algorithm: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[CertificateStatus] = mapped_column(_enum_column(CertificateStatus), index=True)
    batch_root: Mapped[str | None] = mapped_column(ForeignKey("batches.root"), index=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    #: Its entry in a Bitstring Status List (issuer/status.py), set at sealing when lists are on.
    status_list_id: Mapped[int | None] = mapped_column(ForeignKey("status_lists.id"))
    status_index: Mapped[int | None]

    __table_args__ = (
        UniqueConstraint("status_list_id", "status_index", name="uq_certificates_status_entry"),
    )


class StatusList(Base):
    """A Bitstring Status List the issuer publishes at ``url`` (issuer/status.py)."""

    __tablename__ = "status_lists"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    created_at: Mapped[datetime]
    #: When a change it must show was committed (a batch anchored, a revocation recorded), and when
    #: the snapshot of the newest publication was taken: owed while ``changed_at > published_at``.
    changed_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]


class AnchorAttempt(Base):
    """A signed ``anchor`` transaction, stored before it is broadcast."""

    __tablename__ = "anchor_attempts"

    tx_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), primary_key=True)
    batch_root: Mapped[str] = mapped_column(ForeignKey("batches.root"), index=True)
    nonce: Mapped[int] = mapped_column(BigInteger)
    raw_tx: Mapped[bytes]
    gas: Mapped[int] = mapped_column(BigInteger)
    max_fee_per_gas: Mapped[int] = mapped_column(BigInteger)
    max_priority_fee_per_gas: Mapped[int] = mapped_column(BigInteger)
    signed_at: Mapped[datetime]


class Revocation(Base):
    """A revocation seen on-chain: of one certificate, or (``certificate_id`` NULL) of a batch."""

    __tablename__ = "revocations"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    batch_root: Mapped[str] = mapped_column(ForeignKey("batches.root"), index=True)
    certificate_id: Mapped[str | None] = mapped_column(ForeignKey("certificates.id"), index=True)
    reason: Mapped[int]
    tx_hash: Mapped[str | None] = mapped_column(String(HASH_LENGTH))
    block_number: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime]


class Event(Base):
    """An outbox entry: something webhooks report, written with the change it describes."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class EventType(StrEnum):
    """The kinds of outbox event, by the name webhook bodies carry."""

    CERTIFICATE_ANCHORED = "certificate.anchored"
    CERTIFICATE_REVOKED = "certificate.revoked"


#: Certificate ids per event: a batch of 100,000 makes 100 events, not one 4 MB body.
EVENT_IDS = 1_000


def add_events(
    session: Session, type_: EventType, data: dict[str, Any], certificate_ids: Sequence[str], now: datetime
) -> None:
    """Writes the outbox entries for ``certificate_ids`` (in chunks) in the caller's transaction."""
    for start in range(0, len(certificate_ids), EVENT_IDS):
        chunk = list(certificate_ids[start : start + EVENT_IDS])
        session.add(Event(type=str(type_), data={**data, "certificate_ids": chunk}, created_at=now))


class DeliveryStatus(StrEnum):
    """Where one webhook delivery stands: still to (re)try, delivered, or given up on."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up after the last attempt: the dead letters


class WebhookDelivery(Base):
    """One event to one webhook endpoint."""

    __tablename__ = "webhook_deliveries"

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    status: Mapped[DeliveryStatus] = mapped_column(_enum_column(DeliveryStatus), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]


class WebhookCursor(Base):
    """The last event queued for an endpoint: a new endpoint starts at the present, not at history."""

    __tablename__ = "webhook_cursors"

    url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger)


class ApiKey(Base):
    """An issuer API key: only its SHA-256 is stored; ``id`` is the public part of the token."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(200))  # space-separated
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class IdempotencyKey(Base):
    """A request made with an ``Idempotency-Key``; ``status_code`` is NULL while it runs."""

    __tablename__ = "idempotency_keys"

    api_key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]
    response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)


class Store:
    """Engine, schema and transactions of one issuer database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> Store:
        """Connects to ``url`` (see :func:`database_url`) and migrates its schema to the newest."""
        url = database_url(url)
        try:
            engine = make_engine(
                url, default_begin="IMMEDIATE", private=True, durable=True, cache_mib=SQLITE_CACHE_MIB
            )
            migrate(engine, MIGRATIONS)
        except (ArgumentError, SQLAlchemyError, ImportError, OSError) as exc:
            detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise StoreError(f"cannot open the issuer store {redact_db_url(url)}: {detail}") from None
        return cls(engine)

    def close(self) -> None:
        """Closes the store's connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed at the end of the block, or rolled back on error."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only: on SQLite it never waits for a writer."""
        with self._sessions.begin() as session:
            session.connection(execution_options={BEGIN_MODE: "DEFERRED"})
            yield session

    # -- queries more than one part needs ------------------------------------------------------

    def pending_count(self) -> int:
        """How many certificates wait to be sealed."""
        with self.reading() as session:
            count = (
                select(func.count())
                .select_from(Certificate)
                .where(Certificate.status == CertificateStatus.PENDING)
            )
            return int(session.scalar(count) or 0)

    def batch(self, root: str) -> Batch:
        """The batch with ``root`` (a detached snapshot)."""
        with self.reading() as session:
            found = session.get(Batch, root)
            if found is None:
                raise StoreError(f"no batch with root {root}")
            return found

    def batch_tree(self, root: str) -> MerkleTree:
        """A batch's Merkle tree, rebuilt from its certificates' digests and checked against ``root``."""
        with self.reading() as session:
            digests = session.scalars(select(Certificate.digest).where(Certificate.batch_root == root))
            tree = MerkleTree([to_bytes32(d) for d in digests if d is not None])
        if hex0x(tree.root) != root:
            raise StoreError(f"batch {root}: its stored certificates make root {hex0x(tree.root)}")
        return tree

    def batch_ids(self, root: str) -> list[str]:
        """The ids of a batch's certificates, in id order."""
        with self.reading() as session:
            query = select(Certificate.id).where(Certificate.batch_root == root).order_by(Certificate.id)
            return list(session.scalars(query))

    def certificates(self, ids: Collection[str]) -> list[Certificate]:
        """The certificates among ``ids`` that the store holds."""
        with self.reading() as session:
            return list(session.scalars(select(Certificate).where(Certificate.id.in_(ids))))

    def has_status_lists(self) -> bool:
        """Whether the issuer has started any status list."""
        with self.reading() as session:
            return session.scalar(select(StatusList.id).limit(1)) is not None

    def certificate_by_leaf(self, leaf: str) -> Certificate | None:
        """The certificate whose Merkle leaf is ``leaf`` (as a receipt names it), if any."""
        with self.reading() as session:
            return session.scalar(select(Certificate).where(Certificate.leaf == leaf))

    def batches(self, statuses: Sequence[BatchStatus]) -> list[Batch]:
        """Batches in one of ``statuses``, oldest first (their nonces are in that order too)."""
        with self.reading() as session:
            query = select(Batch).where(Batch.status.in_(statuses)).order_by(Batch.sealed_at, Batch.root)
            return list(session.scalars(query))
