"""What the node reads from its mirror: verification facts (cached) and the API's listings.

The node's own sync loop is the mirror's only writer, so it knows exactly when the mirror changes.
Its published state (:class:`node.shared.SyncSnapshot`) carries a generation, bumped after every
step that wrote events or rolled back a reorg, and a ``writing`` flag, raised from the moment a
step starts to commit until its new generation and block are published. Facts are cached per
generation. A verification reads the state, then its facts, then the state again, and counts only
if both readings show the same generation and no write: then every fact it used belongs to the
mirror state it reports (``as_of``), and no verdict mixes facts from before and after a write.

Lookups go through SQLAlchemy Core by unique keys (root, ``(root, leaf)``, address, key id), on
the same code for SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, or_, select

from chain.core.accumulators import NO_LEAF
from chain.core.encoding import hex0x
from chain.core.signing import KeyAlgorithm
from chain.core.verify import (
    AnchorFact,
    ChainHead,
    EventRef,
    IssuerFact,
    KeyFact,
    Policy,
    RevocationFact,
    Verdict,
    verify,
)
from chain.errors import FinVaultError
from indexer.schema import (
    AnchorRow,
    CheckpointRow,
    IssuerRow,
    IssuerStatusRow,
    KeyRevocationRow,
    KeyRow,
    RevocationRow,
)
from node.shared import SyncSnapshot

#: Entries per cache before it is emptied (bounded memory; a refill costs one query an entry).
CACHE_ENTRIES = 100_000
#: A verification is tried at most this often when the mirror changes under it ...
CONSISTENCY_RETRIES = 50
#: ... waiting this long between tries while a sync step commits (a commit takes milliseconds).
WRITE_WAIT_SECONDS = 0.002
#: A root with at most this many revocations has them all read at its first lookup, so a receipt
#: of that batch whose leaf is not among them needs no query of its own (most leaves are new to
#: the node: each receipt is usually verified once). Roots with more are looked up leaf by leaf.
PRELOAD_REVOCATIONS = 64
#: Preloaded revoked leaves, across roots, before that cache is emptied (bounded memory).
PRELOAD_BUDGET = 100_000

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
REVOKED_LEAVES_OF_ROOT = (
    select(_revocations.c.leaf).where(_revocations.c.root == bindparam("root")).limit(PRELOAD_REVOCATIONS + 1)
)
ISSUER_BY_ADDRESS = select(_issuers).where(_issuers.c.address == bindparam("address"))
ISSUER_LATEST_STATUS = (
    select(_issuer_status.c.active)
    .where(_issuer_status.c.address == bindparam("address"))
    .order_by(_issuer_status.c.block_number.desc(), _issuer_status.c.log_index.desc())
    .limit(1)
)
KEY_BY_ID = select(_keys).where(_keys.c.key_id == bindparam("key_id"))
KEY_REVOKED_BLOCK = select(_key_revocations.c.block_number).where(
    _key_revocations.c.key_id == bindparam("key_id")
)


class MirrorBusy(FinVaultError):
    """No consistent reading of the mirror in :data:`CONSISTENCY_RETRIES` tries: it is being
    written without a pause. Worth retrying a moment later."""

    code = "mirror_busy"


def head_of(snapshot: SyncSnapshot) -> ChainHead:
    """The chain as the sync loop last saw it: what verification judges finality against."""
    return ChainHead(max(snapshot.head, snapshot.indexed_block), snapshot.finalized_block)


def _ref(row: Any) -> EventRef:
    return EventRef(hex0x(row.tx_hash), row.block_number, hex0x(row.block_hash), row.log_index)


def _address_bytes(address: str) -> bytes:
    return bytes.fromhex(address.removeprefix("0x"))


@dataclass
class _Cache:
    generation: int
    anchors: dict[bytes, AnchorFact | None] = field(default_factory=dict)
    revocations: dict[tuple[bytes, bytes], RevocationFact | None] = field(default_factory=dict)
    #: Every revoked leaf of a root (NO_LEAF for the root itself), or None: too many to preload.
    revoked_leaves: dict[bytes, frozenset[bytes] | None] = field(default_factory=dict)
    preloaded: int = 0
    issuers: dict[str, IssuerFact | None] = field(default_factory=dict)
    keys: dict[bytes, KeyFact | None] = field(default_factory=dict)


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= CACHE_ENTRIES:
        cache.clear()
    cache[key] = value


class _SnapshotFacts:
    """:class:`chain.core.verify.ChainFacts` for one verification: one connection, one cache generation."""

    def __init__(
        self, view: MirrorView, cache: _Cache, connection: Callable[[], Connection], head: ChainHead
    ) -> None:
        self._view = view
        self._cache = cache
        self._connection = connection
        self._head = head

    @property
    def chain_id(self) -> int:
        return self._view.chain_id

    @property
    def registry(self) -> str:
        return self._view.registry

    def anchor(self, root: bytes) -> AnchorFact | None:
        cached = self._cache.anchors.get(root, False)
        if cached is not False:
            return cached  # type: ignore[return-value]  # False only marks a miss
        row = self._connection().execute(ANCHOR_BY_ROOT, {"root": root}).first()
        fact = (
            None
            if row is None
            else AnchorFact(row.root, hex0x(row.issuer), row.size, row.timestamp, _ref(row))
        )
        _remember(self._cache.anchors, root, fact)
        return fact

    def revocation(self, root: bytes, leaf: bytes | None) -> RevocationFact | None:
        key = (root, leaf or NO_LEAF)
        cached = self._cache.revocations.get(key, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        revoked = self._revoked_leaves(root)
        if revoked is not None and key[1] not in revoked:
            return None
        row = self._connection().execute(REVOCATION_BY_KEY, {"root": key[0], "leaf": key[1]}).first()
        fact = None if row is None else RevocationFact(row.reason, row.timestamp, _ref(row))
        _remember(self._cache.revocations, key, fact)
        return fact

    def _revoked_leaves(self, root: bytes) -> frozenset[bytes] | None:
        cache = self._cache
        leaves = cache.revoked_leaves.get(root, False)
        if leaves is not False:
            return leaves  # type: ignore[return-value]  # False only marks a miss
        found = self._connection().execute(REVOKED_LEAVES_OF_ROOT, {"root": root}).scalars().all()
        leaves = frozenset(found) if len(found) <= PRELOAD_REVOCATIONS else None
        if cache.preloaded + len(found) > PRELOAD_BUDGET or len(cache.revoked_leaves) >= CACHE_ENTRIES:
            cache.revoked_leaves.clear()
            cache.preloaded = 0
        cache.revoked_leaves[root] = leaves
        cache.preloaded += len(found)
        return leaves

    def issuer(self, address: str) -> IssuerFact | None:
        address = address.lower()
        cached = self._cache.issuers.get(address, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        fact = self._view.read_issuer(self._connection(), address)
        _remember(self._cache.issuers, address, fact)
        return fact

    def key(self, key_id: bytes) -> KeyFact | None:
        cached = self._cache.keys.get(key_id, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        connection = self._connection()
        row = connection.execute(KEY_BY_ID, {"key_id": key_id}).first()
        fact = None
        if row is not None:
            revoked = connection.execute(KEY_REVOKED_BLOCK, {"key_id": key_id}).scalar()
            fact = KeyFact(
                row.key_id,
                hex0x(row.issuer),
                KeyAlgorithm(row.algorithm),
                row.public_key,
                row.block_number,
                revoked,
            )
        _remember(self._cache.keys, key_id, fact)
        return fact

    def head(self) -> ChainHead:
        return self._head


class MirrorView:
    """Read access to the mirror behind ``engine`` for one chain and registry.

    ``state()`` is the sync loop's published state: its generation tells which version of the
    mirror is current (cached facts belong to one generation), its block what a verdict is as of.
    """

    def __init__(
        self, engine: Engine, chain_id: int, registry: str, state: Callable[[], SyncSnapshot]
    ) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.registry = registry.lower()
        self._state = state
        self._lock = threading.Lock()
        self._cache = _Cache(state().generation)

    def _current_cache(self, generation: int) -> _Cache:
        cache = self._cache
        if cache.generation != generation:
            with self._lock:
                if self._cache.generation != generation:
                    self._cache = _Cache(generation)
                cache = self._cache
        return cache

    # -- verification ---------------------------------------------------------------------------------

    @contextmanager
    def facts(self, state: SyncSnapshot) -> Iterator[_SnapshotFacts]:
        """ChainFacts for one verification in ``state``; a connection is opened only on a cache miss."""
        opened: list[Connection] = []

        def connection() -> Connection:
            if not opened:
                opened.append(self.engine.connect())
            return opened[0]

        try:
            yield _SnapshotFacts(self, self._current_cache(state.generation), connection, head_of(state))
        finally:
            for conn in opened:
                conn.close()

    def verify(self, receipt: Any, now: datetime, policy: Policy) -> tuple[Verdict, SyncSnapshot]:
        """:func:`chain.core.verify.verify` over the mirror, and the state it was judged at: every fact
        from the generation that state shows. Raises :class:`MirrorBusy` if no try was consistent."""
        for _ in range(CONSISTENCY_RETRIES):
            before = self._state()
            if not before.writing:
                with self.facts(before) as facts:
                    verdict = verify(receipt, facts, now, policy)
                after = self._state()
                if after.generation == before.generation and not after.writing:
                    return verdict, after
                if not after.writing:
                    continue  # a write finished meanwhile: the next try reads its outcome
            time.sleep(WRITE_WAIT_SECONDS)
        raise MirrorBusy("the mirror is being written without a pause; retry in a moment")

    # -- listings -------------------------------------------------------------------------------------

    def read_issuer(self, connection: Connection, address: str) -> IssuerFact | None:
        raw = _address_bytes(address)
        row = connection.execute(ISSUER_BY_ADDRESS, {"address": raw}).first()
        if row is None:
            return None
        latest = connection.execute(ISSUER_LATEST_STATUS, {"address": raw}).scalar()
        return IssuerFact(hex0x(raw), row.name, row.uri, True if latest is None else bool(latest))

    def anchor(self, root: bytes) -> dict[str, Any] | None:
        """An anchor with its manifest URI and event coordinates, or None."""
        with self.engine.connect() as connection:
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
            "event": _event_dict(row),
            "revocation": None
            if revoked is None
            else {"reason": revoked.reason, "timestamp": revoked.timestamp, "event": _event_dict(revoked)},
        }

    def issuers(self, address: str | None = None) -> list[dict[str, Any]]:
        """Issuers (all, or the one at ``address``) with their status and keys, in registration order."""
        query = select(_issuers).order_by(_issuers.c.block_number, _issuers.c.log_index)
        if address is not None:
            query = query.where(_issuers.c.address == _address_bytes(address))
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
            if not rows:
                return []
            wanted = [row.address for row in rows]
            statuses: dict[bytes, bool] = {}
            status_query = (
                select(_issuer_status.c.address, _issuer_status.c.active)
                .where(_issuer_status.c.address.in_(wanted))
                .order_by(_issuer_status.c.block_number, _issuer_status.c.log_index)
            )
            for status in connection.execute(status_query):
                statuses[status.address] = bool(status.active)  # the newest wins
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
                "active": statuses.get(row.address, True),
                "registered": _event_dict(row),
                "keys": keys[row.address],
            }
            for row in rows
        ]

    def revocations(
        self, after: tuple[int, int] | None, since_block: int, limit: int
    ) -> list[dict[str, Any]]:
        """Revocations from ``since_block`` on, in chain order, after the position ``after``."""
        r = _revocations.c
        query = select(_revocations).where(r.block_number >= since_block)
        if after is not None:
            block, log_index = after
            query = query.where(
                or_(r.block_number > block, and_(r.block_number == block, r.log_index > log_index))
            )
        query = query.order_by(r.block_number, r.log_index).limit(limit)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            {
                "scope": "root" if row.leaf == NO_LEAF else "leaf",
                "root": hex0x(row.root),
                "leaf": None if row.leaf == NO_LEAF else hex0x(row.leaf),
                "issuer": hex0x(row.issuer),
                "reason": row.reason,
                "timestamp": row.timestamp,
                "event": _event_dict(row),
            }
            for row in rows
        ]

    def checkpoint(self) -> dict[str, Any] | None:
        """The sync checkpoint (block, accumulators, counts), or None before the first step."""
        with self.engine.connect() as connection:
            row = connection.execute(select(_checkpoint).where(_checkpoint.c.id == 1)).first()
            if row is None:
                return None
            issuers = connection.execute(select(func.count()).select_from(_issuers)).scalar_one()
            keys = connection.execute(select(func.count()).select_from(_keys)).scalar_one()
        return {
            "block_number": row.block_number,
            "block_hash": hex0x(row.block_hash),
            "finalized_block": row.finalized_block,
            "anchor_accumulator": hex0x(row.anchor_accumulator),
            "revocation_accumulator": hex0x(row.revocation_accumulator),
            "anchors": row.anchor_count,
            "revocations": row.revocation_count,
            "issuers": issuers,
            "keys": keys,
        }


def _event_dict(row: Any) -> dict[str, Any]:
    return {
        "tx_hash": hex0x(row.tx_hash),
        "block_number": row.block_number,
        "block_hash": hex0x(row.block_hash),
        "log_index": row.log_index,
    }
