"""ChainFacts read from the mirror: what a verification node answers from, in milliseconds.

The mirror is event-sourced, so current state is the latest event: an issuer's status is its
newest IssuerStatusChanged (or active, as registered); a key is revoked if a KeyRevoked row exists.
The chain head comes from the sync loop, which knows it better than the database does.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from chain.core.accumulators import NO_LEAF
from chain.core.signing import KeyAlgorithm
from chain.core.verify import AnchorFact, ChainHead, EventRef, IssuerFact, KeyFact, RevocationFact
from indexer.schema import (
    AnchorRow,
    CheckpointRow,
    EventRow,
    IssuerRow,
    IssuerStatusRow,
    KeyRevocationRow,
    KeyRow,
    RevocationRow,
)


def _ref(row: EventRow) -> EventRef:
    return EventRef("0x" + row.tx_hash.hex(), row.block_number, "0x" + row.block_hash.hex(), row.log_index)


def _address(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


class MirrorFacts:
    """Implements :class:`chain.core.verify.ChainFacts` over the mirror database."""

    def __init__(
        self, engine: Engine, chain_id: int, registry: str, head: Callable[[], ChainHead] | None = None
    ) -> None:
        self.engine = engine
        self._chain_id = chain_id
        self._registry = registry.lower()
        self._head = head

    @property
    def chain_id(self) -> int:
        return self._chain_id

    @property
    def registry(self) -> str:
        return self._registry

    def anchor(self, root: bytes) -> AnchorFact | None:
        with Session(self.engine) as session:
            row = session.scalars(select(AnchorRow).where(AnchorRow.root == root)).one_or_none()
            if row is None:
                return None
            return AnchorFact(row.root, "0x" + row.issuer.hex(), row.count, row.timestamp, _ref(row))

    def revocation(self, root: bytes, leaf: bytes | None) -> RevocationFact | None:
        with Session(self.engine) as session:
            row = session.scalars(
                select(RevocationRow).where(
                    RevocationRow.root == root, RevocationRow.leaf == (leaf or NO_LEAF)
                )
            ).one_or_none()
            return None if row is None else RevocationFact(row.reason, row.timestamp, _ref(row))

    def issuer(self, address: str) -> IssuerFact | None:
        raw = _address(address)
        with Session(self.engine) as session:
            row = session.scalars(select(IssuerRow).where(IssuerRow.address == raw)).one_or_none()
            if row is None:
                return None
            latest = session.scalars(
                select(IssuerStatusRow.active)
                .where(IssuerStatusRow.address == raw)
                .order_by(IssuerStatusRow.block_number.desc(), IssuerStatusRow.log_index.desc())
                .limit(1)
            ).first()
            return IssuerFact("0x" + raw.hex(), row.name, row.uri, True if latest is None else latest)

    def key(self, key_id: bytes) -> KeyFact | None:
        with Session(self.engine) as session:
            row = session.scalars(select(KeyRow).where(KeyRow.key_id == key_id)).one_or_none()
            if row is None:
                return None
            revoked = session.scalars(
                select(KeyRevocationRow.block_number).where(KeyRevocationRow.key_id == key_id)
            ).first()
            return KeyFact(
                row.key_id,
                "0x" + row.issuer.hex(),
                KeyAlgorithm(row.algorithm),
                row.public_key,
                row.block_number,
                revoked,
            )

    def head(self) -> ChainHead:
        """The live head from the sync loop when there is one, else what the checkpoint knows."""
        if self._head is not None:
            return self._head()
        with Session(self.engine) as session:
            checkpoint = session.get(CheckpointRow, 1)
            if checkpoint is None:
                return ChainHead(0, 0)
            return ChainHead(checkpoint.block_number, checkpoint.finalized_block)
