"""The one reader of the mirror: verification facts, the chain head it knows, and the listings.

The mirror is event-sourced, so current state is the newest event: an issuer is active as
registered until its newest ``IssuerStatusChanged`` says otherwise (:func:`issuer_active`, the one
place that rule lives); a key is revoked once a ``KeyRevoked`` row exists. Every function takes an
open connection and reads by unique keys (root, ``(root, leaf)``, address, key id) through
SQLAlchemy Core, the same on SQLite and PostgreSQL.

:class:`MirrorFacts` is :class:`chain.core.verify.ChainFacts` over a mirror with no cache, for one-off
checks (the demo, the tests). The node wraps the same functions in its per-generation cache and
consistency check (:mod:`node.mirror`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, Engine, Integer, and_, bindparam, func, or_, select

from chain.core.accumulators import NO_LEAF
from chain.core.encoding import hex0x
from chain.core.signing import KeyAlgorithm
from chain.core.verify import AnchorFact, ChainHead, EventRef, IssuerFact, KeyFact, RevocationFact
from indexer.schema import (
    AnchorRow,
    CheckpointRow,
    IssuerRow,
    IssuerStatusRow,
    KeyRevocationRow,
    KeyRow,
    RevocationRow,
)

_anchors = AnchorRow.__table__
_revocations = RevocationRow.__table__
_issuers = IssuerRow.__table__
_issuer_status = IssuerStatusRow.__table__
_keys = KeyRow.__table__
_key_revocations = KeyRevocationRow.__table__
_checkpoint = CheckpointRow.__table__

_EVENT = ("tx_hash", "block_number", "block_hash", "log_index")
ANCHOR_BY_ROOT = select(
    _anchors.c.count.label("size"),  # `Row.count` is tuple.count
    *(_anchors.c[name] for name in ("root", "issuer", "timestamp", "manifest_uri", *_EVENT)),
).where(_anchors.c.root == bindparam("root"))
REVOCATION_BY_KEY = select(*(_revocations.c[name] for name in ("reason", "timestamp", *_EVENT))).where(
    _revocations.c.root == bindparam("root"), _revocations.c.leaf == bindparam("leaf")
)
ISSUER_BY_ADDRESS = select(_issuers).where(_issuers.c.address == bindparam("address"))
ISSUER_LATEST_STATUS = (
    select(_issuer_status.c.active)
    .where(_issuer_status.c.address == bindparam("address"))
    .order_by(_issuer_status.c.block_number.desc(), _issuer_status.c.log_index.desc())
    .limit(1)
)
REVOKED_LEAVES_OF_ROOT = (
    select(_revocations.c.leaf)
    .where(_revocations.c.root == bindparam("root"))
    .limit(bindparam("limit", type_=Integer))
)
KEY_BY_ID = select(_keys).where(_keys.c.key_id == bindparam("key_id"))
KEY_REVOKED_BLOCK = select(_key_revocations.c.block_number).where(
    _key_revocations.c.key_id == bindparam("key_id")
)


def issuer_active(newest_status: bool | None) -> bool:
    """Whether an issuer is active, given its newest status event (None: it has had none)."""
    return True if newest_status is None else bool(newest_status)


def event_ref(row: Any) -> EventRef:
    """Where the event behind a mirror row was logged."""
    return EventRef(hex0x(row.tx_hash), row.block_number, hex0x(row.block_hash), row.log_index)


def event_record(row: Any) -> dict[str, Any]:
    """:func:`event_ref` as the API's JSON object."""
    return {
        "tx_hash": hex0x(row.tx_hash),
        "block_number": row.block_number,
        "block_hash": hex0x(row.block_hash),
        "log_index": row.log_index,
    }


def _address_bytes(address: str) -> bytes:
    return bytes.fromhex(address.removeprefix("0x"))


# -- verification facts ---------------------------------------------------------------------------


def anchor_fact(connection: Connection, root: bytes) -> AnchorFact | None:
    """The anchor of ``root``, or None."""
    row = connection.execute(ANCHOR_BY_ROOT, {"root": root}).first()
    return (
        None
        if row is None
        else AnchorFact(row.root, hex0x(row.issuer), row.size, row.timestamp, event_ref(row))
    )


def revocation_fact(connection: Connection, root: bytes, leaf: bytes | None) -> RevocationFact | None:
    """The revocation of ``leaf`` in ``root`` (of the whole root when ``leaf`` is None), or None."""
    row = connection.execute(REVOCATION_BY_KEY, {"root": root, "leaf": leaf or NO_LEAF}).first()
    return None if row is None else RevocationFact(row.reason, row.timestamp, event_ref(row))


def revoked_leaves(connection: Connection, root: bytes, limit: int) -> list[bytes]:
    """Up to ``limit`` revoked leaves of ``root`` (:data:`NO_LEAF` for the root itself)."""
    return list(connection.execute(REVOKED_LEAVES_OF_ROOT, {"root": root, "limit": limit}).scalars())


def issuer_fact(connection: Connection, address: str) -> IssuerFact | None:
    """The issuer registered at ``address``, with whether it is active now, or None."""
    raw = _address_bytes(address)
    row = connection.execute(ISSUER_BY_ADDRESS, {"address": raw}).first()
    if row is None:
        return None
    newest = connection.execute(ISSUER_LATEST_STATUS, {"address": raw}).scalar()
    return IssuerFact(hex0x(raw), row.name, row.uri, issuer_active(newest))


def key_fact(connection: Connection, key_id: bytes) -> KeyFact | None:
    """The signing key ``key_id`` with the block it was revoked in, if it was, or None."""
    row = connection.execute(KEY_BY_ID, {"key_id": key_id}).first()
    if row is None:
        return None
    revoked = connection.execute(KEY_REVOKED_BLOCK, {"key_id": key_id}).scalar()
    return KeyFact(
        row.key_id, hex0x(row.issuer), KeyAlgorithm(row.algorithm), row.public_key, row.block_number, revoked
    )


def checkpoint_head(connection: Connection) -> ChainHead:
    """The chain head as the checkpoint knows it (block 0 before the first sync step): the head the
    step that wrote the checkpoint read, committed with the facts it covers, so confirmations are
    judged in the same snapshot of the database as the facts; finality is the mirror's own
    (never above its block)."""
    row = connection.execute(select(_checkpoint).where(_checkpoint.c.id == 1)).first()
    if row is None:
        return ChainHead(0, 0)
    return ChainHead(max(row.chain_head_block, row.block_number), row.finalized_block)


class MirrorFacts:
    """:class:`chain.core.verify.ChainFacts` over the mirror behind ``engine``, uncached.

    ``head`` supplies the live chain head when a sync loop knows it; otherwise the checkpoint's is used.
    """

    def __init__(
        self, engine: Engine, chain_id: int, registry: str, head: Callable[[], ChainHead] | None = None
    ) -> None:
        self.engine = engine
        self._chain_id = chain_id
        self._registry = registry.lower()
        self._head = head

    @property
    def chain_id(self) -> int:
        """The chain the mirror follows."""
        return self._chain_id

    @property
    def registry(self) -> str:
        """The registry contract the mirror follows (lowercase hex)."""
        return self._registry

    def anchor(self, root: bytes) -> AnchorFact | None:
        """See :func:`anchor_fact`."""
        with self.engine.connect() as connection:
            return anchor_fact(connection, root)

    def revocation(self, root: bytes, leaf: bytes | None) -> RevocationFact | None:
        """See :func:`revocation_fact`."""
        with self.engine.connect() as connection:
            return revocation_fact(connection, root, leaf)

    def issuer(self, address: str) -> IssuerFact | None:
        """See :func:`issuer_fact`."""
        with self.engine.connect() as connection:
            return issuer_fact(connection, address)

    def key(self, key_id: bytes) -> KeyFact | None:
        """See :func:`key_fact`."""
        with self.engine.connect() as connection:
            return key_fact(connection, key_id)

    def head(self) -> ChainHead:
        """The live head from the sync loop when there is one, else what the checkpoint knows."""
        if self._head is not None:
            return self._head()
        with self.engine.connect() as connection:
            return checkpoint_head(connection)


# -- listings for the node's API --------------------------------------------------------------------


def anchor_record(connection: Connection, root: bytes) -> dict[str, Any] | None:
    """An anchor with its manifest URI, event coordinates and root revocation, or None."""
    row = connection.execute(ANCHOR_BY_ROOT, {"root": root}).first()
    if row is None:
        return None
    revoked = connection.execute(REVOCATION_BY_KEY, {"root": root, "leaf": NO_LEAF}).first()
    return {
        "root": hex0x(row.root),
        "issuer": hex0x(row.issuer),
        "count": row.size,
        "timestamp": row.timestamp,
        "manifest_uri": row.manifest_uri,
        "event": event_record(row),
        "revocation": None
        if revoked is None
        else {"reason": revoked.reason, "timestamp": revoked.timestamp, "event": event_record(revoked)},
    }


def _newest_statuses(connection: Connection, addresses: Iterable[bytes]) -> dict[bytes, bool]:
    query = (
        select(_issuer_status.c.address, _issuer_status.c.active)
        .where(_issuer_status.c.address.in_(list(addresses)))
        .order_by(_issuer_status.c.block_number, _issuer_status.c.log_index)
    )
    return {row.address: bool(row.active) for row in connection.execute(query)}  # the newest wins


def issuer_records(connection: Connection, address: str | None = None) -> list[dict[str, Any]]:
    """Issuers (all, or the one at ``address``) with their status and keys, in registration order."""
    query = select(_issuers).order_by(_issuers.c.block_number, _issuers.c.log_index)
    if address is not None:
        query = query.where(_issuers.c.address == _address_bytes(address))
    rows = connection.execute(query).all()
    if not rows:
        return []
    wanted = [row.address for row in rows]
    statuses = _newest_statuses(connection, wanted)
    keys: dict[bytes, list[dict[str, Any]]] = {raw: [] for raw in wanted}
    key_query = (
        select(_keys, _key_revocations.c.block_number.label("revoked_block"))
        .outerjoin(_key_revocations, _key_revocations.c.key_id == _keys.c.key_id)
        .where(_keys.c.issuer.in_(wanted))
        .order_by(_keys.c.block_number, _keys.c.log_index)
    )
    for key in connection.execute(key_query):
        keys[key.issuer].append(
            {
                "key_id": hex0x(key.key_id),
                "algorithm": KeyAlgorithm(key.algorithm).label,
                "public_key": hex0x(key.public_key),
                "added_block": key.block_number,
                "revoked_block": key.revoked_block,
                "active": key.revoked_block is None,
            }
        )
    return [
        {
            "address": hex0x(row.address),
            "name": row.name,
            "uri": row.uri,
            "active": issuer_active(statuses.get(row.address)),
            "registered": event_record(row),
            "keys": keys[row.address],
        }
        for row in rows
    ]


def revocation_records(
    connection: Connection, after: tuple[int, int] | None, since_block: int, limit: int
) -> list[dict[str, Any]]:
    """Revocations from ``since_block`` on, in chain order, after the position ``after``."""
    r = _revocations.c
    query = select(_revocations).where(r.block_number >= since_block)
    if after is not None:
        block, log_index = after
        query = query.where(
            or_(r.block_number > block, and_(r.block_number == block, r.log_index > log_index))
        )
    rows = connection.execute(query.order_by(r.block_number, r.log_index).limit(limit)).all()
    return [
        {
            "scope": "root" if row.leaf == NO_LEAF else "leaf",
            "root": hex0x(row.root),
            "leaf": None if row.leaf == NO_LEAF else hex0x(row.leaf),
            "issuer": hex0x(row.issuer),
            "reason": row.reason,
            "timestamp": row.timestamp,
            "event": event_record(row),
        }
        for row in rows
    ]


def checkpoint_record(connection: Connection) -> dict[str, Any] | None:
    """The sync checkpoint (block, accumulators, counts, and the chain's head and finalized block as
    the step that wrote it read them), or None before the first step."""
    row = connection.execute(select(_checkpoint).where(_checkpoint.c.id == 1)).first()
    if row is None:
        return None
    issuers = connection.execute(select(func.count()).select_from(_issuers)).scalar_one()
    keys = connection.execute(select(func.count()).select_from(_keys)).scalar_one()
    return {
        "block_number": row.block_number,
        "block_hash": hex0x(row.block_hash),
        "finalized_block": row.finalized_block,
        "chain_head_block": row.chain_head_block,
        "chain_finalized_block": row.chain_finalized_block,
        "anchor_accumulator": hex0x(row.anchor_accumulator),
        "revocation_accumulator": hex0x(row.revocation_accumulator),
        "anchors": row.anchor_count,
        "revocations": row.revocation_count,
        "issuers": issuers,
        "keys": keys,
    }
