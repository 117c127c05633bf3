"""What the node reads from its mirror: verification facts (cached) and the API's listings.

A verification reads the mirror's state (:mod:`node.state`: the checkpoint and the writer's
published state) and its facts in one read transaction, one snapshot of the database (REPEATABLE
READ on PostgreSQL; SQLite's WAL gives every read transaction one). So every fact it uses belongs
to the mirror state it reports (``as_of``), and no verdict mixes facts from before and after a
write. Facts are cached per revision of the mirror (the checkpoint's ``revision``, which every
transaction that changes a fact increments), and only facts read in a snapshot of that revision.

A verification whose facts are all cached needs no transaction at all: the state read by a
verification less than :data:`STATE_SECONDS` ago and the facts cached under its revision are one
consistent state of the mirror, and the verdict names it (``as_of``). Anything else takes the read
transaction. (Reading the state for every verification cost a third of a cold verification's CPU:
the database call itself, and the GIL handed over and back around it.)

The queries themselves, and the rule for whether an issuer is active, are the indexer's one
mirror reader (:mod:`indexer.reader`); this module adds the cache and the consistency check.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from chain.core.accumulators import NO_LEAF
from chain.core.signing import SignatureCache
from chain.core.verify import (
    AnchorFact,
    ChainHead,
    Examined,
    IssuerFact,
    KeyFact,
    Policy,
    RevocationFact,
    Verdict,
    examine,
    verify,
)
from indexer import reader
from node.state import SyncSnapshot

#: Entries per cache before it is emptied (bounded memory; a refill costs one query an entry).
CACHE_ENTRIES = 100_000
#: A root with at most this many revocations has them all read at its first lookup, so a receipt
#: of that batch whose leaf is not among them needs no query of its own (most leaves are new to
#: the node: each receipt is usually verified once). Roots with more are looked up leaf by leaf.
PRELOAD_REVOCATIONS = 64
#: Preloaded revoked leaves, across roots, before that cache is emptied (bounded memory).
PRELOAD_BUDGET = 100_000


def head_of(snapshot: SyncSnapshot) -> ChainHead:
    """The chain as the mirror's writer last saw it: what verification judges finality against."""
    return ChainHead(max(snapshot.head, snapshot.indexed_block), snapshot.finalized_block)


@dataclass
class _Cache:
    generation: int | None  # None: no generation seen yet
    anchors: dict[bytes, AnchorFact | None] = field(default_factory=dict)
    revocations: dict[tuple[bytes, bytes], RevocationFact | None] = field(default_factory=dict)
    #: Every revoked leaf of a root (NO_LEAF for the root itself), or None: too many to preload.
    revoked_leaves: dict[bytes, frozenset[bytes] | None] = field(default_factory=dict)
    preloaded: int = 0
    issuers: dict[str, IssuerFact | None] = field(default_factory=dict)
    keys: dict[bytes, KeyFact | None] = field(default_factory=dict)


class _NeedsRead(Exception):
    """A fact a verification needs is not cached: it must be read in a transaction."""


#: How long a reading of the mirror's state is used before it is read again (verdicts name the
#: state they were judged at, so a verdict from a reading this old is as honest as any other).
STATE_SECONDS = 0.02


@dataclass(frozen=True)
class _Known:
    """The view's last reading of the mirror's state, and when it was taken."""

    state: SyncSnapshot
    read_at: float


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= CACHE_ENTRIES:
        cache.clear()
    cache[key] = value


class _SnapshotFacts:
    """:class:`chain.core.verify.ChainFacts` for one verification: one connection in one read
    transaction, one cache generation; without a connection, cached facts only (a miss raises
    :class:`_NeedsRead`)."""

    def __init__(
        self, view: MirrorView, cache: _Cache, connection: Connection | None, head: ChainHead
    ) -> None:
        self._view = view
        self._cache = cache
        self._connection = connection
        self._head = head

    def _read(self) -> Connection:
        if self._connection is None:
            raise _NeedsRead
        return self._connection

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
        fact = reader.anchor_fact(self._read(), root)
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
        fact = reader.revocation_fact(self._read(), *key)
        _remember(self._cache.revocations, key, fact)
        return fact

    def _revoked_leaves(self, root: bytes) -> frozenset[bytes] | None:
        cache = self._cache
        leaves = cache.revoked_leaves.get(root, False)
        if leaves is not False:
            return leaves  # type: ignore[return-value]  # False only marks a miss
        found = reader.revoked_leaves(self._read(), root, PRELOAD_REVOCATIONS + 1)
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
        fact = reader.issuer_fact(self._read(), address)
        _remember(self._cache.issuers, address, fact)
        return fact

    def key(self, key_id: bytes) -> KeyFact | None:
        cached = self._cache.keys.get(key_id, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        fact = reader.key_fact(self._read(), key_id)
        _remember(self._cache.keys, key_id, fact)
        return fact

    def head(self) -> ChainHead:
        return self._head


class MirrorView:
    """Read access to the mirror behind ``engine`` for one chain and registry.

    ``state_in`` reads the mirror's state on a connection (:class:`node.state.StateReader`): its
    generation (the mirror's revision) tells which facts cached facts belong to, its block what a
    verdict is as of. ``signatures`` remembers signature checks across revisions (they do not
    depend on the mirror).
    """

    def __init__(
        self,
        engine: Engine,
        chain_id: int,
        registry: str,
        state_in: Callable[[Connection], SyncSnapshot],
        signatures: SignatureCache | None = None,
        state_seconds: float = STATE_SECONDS,
    ) -> None:
        self.engine = engine
        self.signatures = signatures
        self.chain_id = chain_id
        self.registry = registry.lower()
        self._state_in = state_in
        self._lock = threading.Lock()
        self._cache = _Cache(None)  # the first verification's generation replaces it
        self._state_seconds = state_seconds
        self._known: _Known | None = None

    def _current_cache(self, generation: int) -> _Cache:
        cache = self._cache
        if cache.generation != generation:
            with self._lock:
                if self._cache.generation != generation:
                    self._cache = _Cache(generation)
                cache = self._cache
        return cache

    # -- verification ---------------------------------------------------------------------------------

    def verify(self, receipt: Any, now: datetime, policy: Policy) -> tuple[Verdict, SyncSnapshot]:
        """:func:`chain.core.verify.verify` over the mirror, and the state it was judged at: the
        state and every fact read in one snapshot of the database."""
        examined = receipt if isinstance(receipt, Examined) else examine(receipt, self.signatures)
        known = self._known
        if known is not None and time.monotonic() - known.read_at < self._state_seconds:
            state = known.state
            facts = _SnapshotFacts(self, self._current_cache(state.generation), None, head_of(state))
            try:
                return verify(examined, facts, now, policy, signatures=self.signatures), state
            except _NeedsRead:
                pass  # a fact to read: in a transaction, with the state read again beside it
        read_at = time.monotonic()
        with self.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                state = self._state_in(connection)
                cache = self._current_cache(state.generation)
                facts = _SnapshotFacts(self, cache, connection, head_of(state))
                verdict = verify(examined, facts, now, policy, signatures=self.signatures)
        self.saw(state, read_at)
        return verdict, state

    def saw(self, state: SyncSnapshot, read_at: float) -> None:
        """Remembers ``state``, read from the mirror at ``read_at`` (``time.monotonic()`` when the
        read began), unless a later reading is remembered already. Every reading of this process
        comes here (``/status``, ``/ready``, a verification's): so a verification never goes by an
        older state than one this process has already shown, say a halt that ``/status`` reported."""
        with self._lock:
            known = self._known
            if known is None or read_at > known.read_at:
                self._known = _Known(state, read_at)

    # -- listings -------------------------------------------------------------------------------------

    def anchor(self, root: bytes) -> dict[str, Any] | None:
        """See :func:`indexer.reader.anchor_record`."""
        with self.engine.connect() as connection:
            return reader.anchor_record(connection, root)

    def issuers(self, address: str | None = None) -> list[dict[str, Any]]:
        """See :func:`indexer.reader.issuer_records`."""
        with self.engine.connect() as connection:
            return reader.issuer_records(connection, address)

    def revocations(
        self, after: tuple[int, int] | None, since_block: int, limit: int
    ) -> list[dict[str, Any]]:
        """See :func:`indexer.reader.revocation_records`."""
        with self.engine.connect() as connection:
            return reader.revocation_records(connection, after, since_block, limit)

    def checkpoint(self) -> dict[str, Any] | None:
        """See :func:`indexer.reader.checkpoint_record`."""
        with self.engine.connect() as connection:
            return reader.checkpoint_record(connection)
