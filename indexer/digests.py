"""Per-block rolling digests of the mirror: two nodes compare their mirrors without trusting either.

For every block that carried events::

    digest(block) = keccak256(digest(previous event block) ‖ uint256(number) ‖ block hash ‖ leaf₁ ‖ …)
    leaf = keccak256(table ‖ for each column, by name: name ‖ value)   (every part length-prefixed)

with the events in log-index order and 32 zero bytes before the first block. Digests are derived
data: they are filled in after the sync steps commit (:func:`update_digests`, run by the node's
loop and by ``finvault sync``), outside the indexer's hot path. A crash leaves some blocks without
a digest, and the next update fills them; a reorg deletes blocks together with their digests.

Because each digest covers everything before it, two mirrors agree up to block B exactly when
their digests *as of* B agree, so the first divergent block is found by bisection
(:func:`first_divergence`) with one lookup per side and step.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Engine, Row, select, update
from sqlalchemy.orm import Session

from chain.core.encoding import hex0x
from chain.core.hashing import keccak256
from chain.service.db import BEGIN_MODE
from indexer.schema import EVENT_TABLES, BlockRow, EventRow

ZERO = bytes(32)
#: Blocks digested per transaction.
DIGEST_CHUNK = 500
#: Digests are written after reading the rows they cover: no other writer (a ``finvault resync``
#: rewinding the mirror) may change those rows in between.
WRITER = {BEGIN_MODE: "IMMEDIATE"}


def _part(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _value(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return b"b" + _part(bytes(value))
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, int):
        return b"i" + value.to_bytes(32, "big", signed=True)
    if isinstance(value, str):
        return b"s" + _part(value.encode("utf-8"))
    raise TypeError(f"cannot digest a {type(value).__name__}")


@cache
def _labels(table: str, names: tuple[str, ...]) -> tuple[bytes, tuple[tuple[int, bytes], ...]]:
    """A table's length-prefixed name, and for each column in name order its position in ``names``
    and its length-prefixed name: computed once per table, not once per row."""
    ordered = sorted(range(len(names)), key=names.__getitem__)
    return _part(table.encode()), tuple((i, _part(names[i].encode())) for i in ordered)


def row_leaf(table: str, names: tuple[str, ...], values: Sequence[Any]) -> bytes:
    """The leaf of one event row of ``table`` whose columns ``names`` hold ``values``."""
    head, labels = _labels(table, names)
    parts = [head]
    for i, label in labels:  # inline for the two common types: this runs once per column and row
        value = values[i]
        kind = type(value)
        if kind is bytes:
            parts += (label, b"b", len(value).to_bytes(4, "big"), value)
        elif kind is int:
            parts += (label, b"i", value.to_bytes(32, "big", signed=True))
        else:
            parts += (label, _value(value))
    return keccak256(b"".join(parts))


def fold(previous: bytes, number: int, block_hash: bytes, leaves: Sequence[bytes]) -> bytes:
    """The rolling digest after one block's events."""
    return keccak256(previous + number.to_bytes(32, "big") + bytes(block_hash) + b"".join(leaves))


def _columns(model: type[EventRow]) -> list[str]:
    return [column.key for column in model.__table__.columns]  # type: ignore[attr-defined]


def block_events(session: Session, first: int, last: int) -> dict[int, list[tuple[int, str, dict[str, Any]]]]:
    """Event rows of blocks ``first..last``: block -> [(log index, table, row)] in log order."""
    return {
        number: [
            (log_index, table, dict(zip(names, values, strict=True)))
            for log_index, table, names, values in rows
        ]
        for number, rows in _block_rows(session, first, last).items()
    }


def _block_rows(
    session: Session, first: int, last: int
) -> dict[int, list[tuple[int, str, tuple[str, ...], Row[Any]]]]:
    """:func:`block_events` as (log index, table, column names, values) tuples: no dict per row."""
    events: dict[int, list[tuple[int, str, tuple[str, ...], Row[Any]]]] = defaultdict(list)
    for model in EVENT_TABLES:
        table = model.__table__  # type: ignore[attr-defined]
        names = tuple(_columns(model))
        number_at, log_index_at = names.index("block_number"), names.index("log_index")
        query = select(*(table.c[name] for name in names)).where(
            table.c.block_number >= first, table.c.block_number <= last
        )
        for values in session.execute(query):
            events[values[number_at]].append((values[log_index_at], table.name, names, values))
    for rows in events.values():
        rows.sort(key=lambda item: item[0])
    return events


def update_digests(engine: Engine, *, rebuild: bool = False) -> int:
    """Fills in the digest of every event block that lacks one, oldest first; returns how many.

    ``rebuild`` first forgets every stored digest, so they are recomputed from the rows as they
    are now: what an auditor does before comparing a mirror it does not trust with another node.
    """
    done = 0
    if rebuild:
        with Session(engine) as session, session.begin():
            session.connection(execution_options=WRITER)
            session.execute(update(BlockRow).values(digest=None))
    while True:
        with Session(engine) as session, session.begin():
            session.connection(execution_options=WRITER)
            pending = session.execute(
                select(BlockRow.number, BlockRow.hash)
                .where(BlockRow.event_count > 0, BlockRow.digest.is_(None))
                .order_by(BlockRow.number)
                .limit(DIGEST_CHUNK)
            ).all()
            if not pending:
                return done
            previous = session.scalar(
                select(BlockRow.digest)
                .where(BlockRow.number < pending[0].number, BlockRow.event_count > 0)
                .order_by(BlockRow.number.desc())
                .limit(1)
            )
            digest = bytes(previous) if previous is not None else ZERO
            events = _block_rows(session, pending[0].number, pending[-1].number)
            for number, block_hash in pending:
                leaves = [
                    row_leaf(table, names, values) for _, table, names, values in events.get(number, [])
                ]
                digest = fold(digest, number, bytes(block_hash), leaves)
                session.execute(update(BlockRow).where(BlockRow.number == number).values(digest=digest))
            done += len(pending)


@dataclass(frozen=True)
class BlockDigest:
    """One event block's rolling digest, as ``GET /digests`` lists it (hashes as ``0x`` hex)."""

    number: int
    hash: str
    digest: str
    event_count: int


def digests(session: Session, first: int, last: int, limit: int) -> list[BlockDigest]:
    """The digests of event blocks ``first..last`` (at most ``limit``), in block order."""
    rows = session.execute(
        select(BlockRow.number, BlockRow.hash, BlockRow.digest, BlockRow.event_count)
        .where(BlockRow.number >= first, BlockRow.number <= last, BlockRow.digest.is_not(None))
        .order_by(BlockRow.number)
        .limit(limit)
    ).all()
    return [BlockDigest(n, hex0x(bytes(h)), hex0x(bytes(d or ZERO)), c) for n, h, d, c in rows]


def digest_as_of(session: Session, block: int) -> str:
    """The rolling digest covering every event up to and including ``block``."""
    found = session.scalar(
        select(BlockRow.digest)
        .where(BlockRow.number <= block, BlockRow.digest.is_not(None))
        .order_by(BlockRow.number.desc())
        .limit(1)
    )
    return hex0x(bytes(found)) if found is not None else hex0x(ZERO)


def event_view(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """An event row as JSON: bytes as 0x-hex."""
    view = {
        name: hex0x(bytes(value)) if isinstance(value, bytes | memoryview) else value
        for name, value in row.items()
    }
    return {"table": table, **view}


def first_divergence(digest_a: Callable[[int], str], digest_b: Callable[[int], str], last: int) -> int | None:
    """The first block up to ``last`` as of which the two mirrors' digests differ, or None.

    ``digest_x(block)`` is a mirror's :func:`digest_as_of`. Both mirrors agree before block 0, so
    bisection finds the block in about log2(last) lookups per side.
    """
    if digest_a(last) == digest_b(last):
        return None
    low, high = -1, last  # they agree as of `low` and differ as of `high`
    while high - low > 1:
        middle = (low + high) // 2
        if digest_a(middle) == digest_b(middle):
            low = middle
        else:
            high = middle
    return high
