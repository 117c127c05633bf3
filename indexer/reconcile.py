"""Reconciliation: prove that a mirror is exactly the chain over a block range, or show where not.

The chain side is an independent read: the registry's logs for the range, fetched afresh with
``eth_getLogs`` and decoded by the same pure decoder the indexer uses, plus block headers; nothing
of the mirror's state (checkpoint, stored hashes) is consulted to interpret them. Both sides are
keyed by ``(table, tx_hash, log_index)`` and compared field by field:

- ``missing``: on chain, not in the mirror;
- ``extra``: in the mirror, not on chain;
- ``mismatch``: a field differs (one drift per field);
- ``block_hash``: a ``blocks`` row whose hash is not the chain's hash at that height;
- ``accumulator``: the mirror's anchor or revocation accumulator at the last block of the range
  differs from the contract's ``accumulator()``/``revocationAccumulator()`` read by ``eth_call``
  at that block.

``--quick`` reads no logs and no rows: it compares the contract's accumulators and event counts at
the last block with the accumulators the mirror's newest rows carry and its row counts (four
``eth_call``s in one batch and four indexed lookups, however big the mirror). A missing or extra
event changes the counts, a wrong newest row its accumulator; an older row altered in place needs
the full run, which folds every row.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from chain.core.accumulators import fold_anchor, fold_revocation, genesis_accumulators
from chain.core.encoding import hex0x
from chain.errors import ConfigError
from chain.registry import BlockId, RegistryReader
from chain.rpc import RpcClient
from chain.service.db import BEGIN_MODE
from indexer.decode import MIRRORED_TOPICS, DecodedBatch
from indexer.digests import block_events, event_view
from indexer.fetch import AdaptiveRange, LogFetcher, read_headers
from indexer.rewind import rewind
from indexer.schema import (
    EVENT_TABLES,
    AnchorRow,
    AuditLogRow,
    BlockRow,
    CheckpointRow,
    EventRow,
    IssuerRow,
    IssuerStatusRow,
    KeyRevocationRow,
    KeyRow,
    RevocationRow,
)
from indexer.sync import Indexer
from indexer.writer import MirrorWriterBusy

log = logging.getLogger(__name__)

DriftKind = Literal["missing", "extra", "mismatch", "block_hash", "accumulator", "status"]

#: DecodedBatch attribute -> mirror table.
TABLES: dict[str, type[EventRow]] = {
    "issuers": IssuerRow,
    "issuer_status": IssuerStatusRow,
    "keys": KeyRow,
    "key_revocations": KeyRevocationRow,
    "anchors": AnchorRow,
    "revocations": RevocationRow,
}
#: Block headers read per JSON-RPC batch while checking stored block hashes.
HEADER_BATCH = 200

RowKey = tuple[str, bytes, int]


def render(value: Any) -> str:
    """A field value as reports show it: bytes as 0x-hex, everything else as text."""
    if isinstance(value, bytes | bytearray | memoryview):
        return hex0x(bytes(value))
    return str(value)


#: Event coordinates: where a row is, not what it says (reports name them apart).
_COORDINATES = frozenset(("table", "tx_hash", "block_number", "block_hash", "log_index"))
#: Left out of the one-line text (the JSON report has everything): long and derived.
_TEXT_OMITS = frozenset(("accumulator", "timestamp", "public_key"))


@dataclass(frozen=True)
class Drift:
    """One difference between the mirror and the chain, with both sides where they exist.

    ``chain_event`` is the chain's decoded event (``missing`` and ``mismatch``), ``mirror_row`` the
    mirror's row (``extra`` and ``mismatch``), both with bytes as 0x-hex. For a ``mismatch``,
    ``field``, ``chain`` and ``mirror`` name the one field that differs; for ``block_hash`` and
    ``accumulator`` drifts, ``chain`` and ``mirror`` are the two values. For a ``status`` drift
    (a published status list, indexer/status_audit.py), ``field`` is the list entry, ``mirror``
    what the list says and ``chain`` what the chain (through the mirror) says.
    """

    kind: DriftKind
    table: str
    block_number: int
    tx_hash: str | None = None
    log_index: int | None = None
    field: str | None = None
    chain: str | None = None
    mirror: str | None = None
    chain_event: Mapping[str, Any] | None = None
    mirror_row: Mapping[str, Any] | None = None

    def describe(self) -> str:
        """One line for people."""
        if self.kind == "status":  # a status list entry (indexer/status_audit.py): what it says, the truth
            return f"status: {self.field}: {self.mirror}, {self.chain}"
        where = f"{self.table} block {self.block_number}"
        if self.tx_hash is not None:
            where += f" tx {self.tx_hash} log {self.log_index}"
        if self.kind == "missing":
            return f"missing: {where} is on chain but not in the mirror: {_what(self.chain_event)}"
        if self.kind == "extra":
            return f"extra: {where} is in the mirror but not on chain: {_what(self.mirror_row)}"
        line = f"{self.kind}: {where} {self.field}: chain {self.chain}, mirror {self.mirror}"
        return f"{line} (chain: {_what(self.chain_event)})" if self.chain_event is not None else line


def _what(view: Mapping[str, Any] | None) -> str:
    """What an event says, as ``name=value`` pairs (its coordinates are in the line already)."""
    if view is None:
        return "(nothing)"
    shown = (
        f"{name}={value!r}" if isinstance(value, str) and not value.startswith("0x") else f"{name}={value}"
        for name, value in view.items()
        if name not in _COORDINATES and name not in _TEXT_OMITS
    )
    return " ".join(shown)


@dataclass(frozen=True)
class Report:
    """What one reconciliation found over blocks ``first..last``."""

    first_block: int
    last_block: int
    quick: bool
    chain_events: int
    mirror_events: int
    blocks_checked: int
    drifts: tuple[Drift, ...]
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """Whether the mirror matched the chain over the whole range (no drift found)."""
        return not self.drifts

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (seconds to the ms), as ``finvault reconcile --json`` prints it."""
        return {
            "first_block": self.first_block,
            "last_block": self.last_block,
            "quick": self.quick,
            "clean": self.clean,
            "chain_events": self.chain_events,
            "mirror_events": self.mirror_events,
            "blocks_checked": self.blocks_checked,
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
            "drifts": [asdict(d) for d in self.drifts],
        }


CSV_COLUMNS = (
    "kind",
    "table",
    "block_number",
    "tx_hash",
    "log_index",
    "field",
    "chain",
    "mirror",
    "chain_event",
    "mirror_row",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "|", "%")


def _csv_cell(value: Any) -> str:
    """A cell a spreadsheet will not run: text that could start a formula is quoted with ``'``."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_value(value: Any) -> Any:
    """A cell's value: an event (a mapping) as compact JSON, anything else as it is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")) if isinstance(value, Mapping) else value


def drifts_csv(drifts: Sequence[Drift]) -> str:
    """The drifts as CSV, safe against formula injection (values come from the chain: untrusted)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for drift in drifts:
        writer.writerow([_csv_cell(_csv_value(getattr(drift, column))) for column in CSV_COLUMNS])
    return out.getvalue()


# -- the two sides ------------------------------------------------------------------------------


def mirror_rows(session: Session, first: int, last: int) -> dict[RowKey, dict[str, Any]]:
    """Every event row of blocks ``first..last`` in the mirror, keyed by (table, tx, log index)."""
    return {
        (table, bytes(row["tx_hash"]), int(row["log_index"])): row
        for rows in block_events(session, first, last).values()
        for _, table, row in rows
    }


def chain_rows(batch: DecodedBatch) -> dict[RowKey, dict[str, Any]]:
    """The decoded chain rows of one fetched range, keyed like :func:`mirror_rows`."""
    rows: dict[RowKey, dict[str, Any]] = {}
    for attribute, model in TABLES.items():
        name = model.__tablename__  # type: ignore[attr-defined]
        for row in getattr(batch, attribute):
            rows[(name, row["tx_hash"], row["log_index"])] = row
    return rows


def compare_rows(
    chain: Mapping[RowKey, Mapping[str, Any]], mirror: Mapping[RowKey, Mapping[str, Any]]
) -> list[Drift]:
    """Row-by-row differences, in (block, table, tx, log index) order."""
    drifts: list[Drift] = []
    for key in chain.keys() | mirror.keys():
        table, tx_hash, log_index = key
        on_chain, in_mirror = chain.get(key), mirror.get(key)
        where = {"table": table, "tx_hash": hex0x(tx_hash), "log_index": log_index}
        chain_event = None if on_chain is None else event_view(table, on_chain)
        mirror_row = None if in_mirror is None else event_view(table, in_mirror)
        if in_mirror is None:
            assert on_chain is not None
            drifts.append(
                Drift("missing", block_number=on_chain["block_number"], chain_event=chain_event, **where)  # type: ignore[arg-type]
            )
        elif on_chain is None:
            drifts.append(
                Drift("extra", block_number=in_mirror["block_number"], mirror_row=mirror_row, **where)  # type: ignore[arg-type]
            )
        else:
            for name, value in on_chain.items():
                stored = in_mirror.get(name)
                if _normal(stored) != _normal(value):
                    drifts.append(
                        Drift(
                            "mismatch",
                            block_number=on_chain["block_number"],
                            field=name,
                            chain=render(value),
                            mirror=render(stored),
                            chain_event=chain_event,
                            mirror_row=mirror_row,
                            **where,  # type: ignore[arg-type]
                        )
                    )
    return sorted(
        drifts, key=lambda d: (d.block_number, d.table, d.tx_hash or "", d.log_index or 0, d.field or "")
    )


def _normal(value: Any) -> Any:
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, bool):
        return int(value)
    return value


# -- accumulators -------------------------------------------------------------------------------


#: Rows read per round trip while folding the mirror's accumulators.
FOLD_BATCH = 5_000


def mirror_accumulators(session: Session, chain_id: int, registry: str, block: int) -> tuple[bytes, bytes]:
    """The mirror's (anchor, revocation) accumulators as of the end of ``block``, folded from its
    rows in chain order. Not read from the accumulator values the rows carry: a deleted, added or
    altered row changes the fold, so the check against the contract catches it."""
    anchor_acc, revocation_acc = genesis_accumulators(chain_id, registry)
    anchors = (
        select(AnchorRow.root, AnchorRow.issuer, AnchorRow.count, AnchorRow.block_number)
        .where(AnchorRow.block_number <= block)
        .order_by(AnchorRow.block_number, AnchorRow.log_index)
        .execution_options(yield_per=FOLD_BATCH)
    )
    for root, issuer, count, number in session.execute(anchors):
        anchor_acc = fold_anchor(anchor_acc, bytes(root), bytes(issuer), count, number)
    revocations = (
        select(
            RevocationRow.root,
            RevocationRow.leaf,
            RevocationRow.issuer,
            RevocationRow.reason,
            RevocationRow.block_number,
        )
        .where(RevocationRow.block_number <= block)
        .order_by(RevocationRow.block_number, RevocationRow.log_index)
        .execution_options(yield_per=FOLD_BATCH)
    )
    for root, leaf, issuer, reason, number in session.execute(revocations):
        revocation_acc = fold_revocation(
            revocation_acc, bytes(root), bytes(leaf), bytes(issuer), reason, number
        )
    return anchor_acc, revocation_acc


def stored_state(session: Session, chain_id: int, registry: str, block: int) -> tuple[bytes, bytes, int, int]:
    """What the mirror says of itself as of the end of ``block``, without folding anything: the
    accumulators its newest anchor and revocation rows carry, and its anchor and revocation rows."""
    anchor_acc, revocation_acc = genesis_accumulators(chain_id, registry)
    state: list[Any] = []
    for model, genesis in ((AnchorRow, anchor_acc), (RevocationRow, revocation_acc)):
        newest = session.scalar(
            select(model.accumulator)
            .where(model.block_number <= block)
            .order_by(model.block_number.desc(), model.log_index.desc())
            .limit(1)
        )
        rows = session.scalar(select(func.count()).select_from(model).where(model.block_number <= block))
        state.append((genesis if newest is None else bytes(newest), rows or 0))
    (anchor_acc, anchors), (revocation_acc, revocations) = state
    return anchor_acc, revocation_acc, anchors, revocations


def quick_drifts(session: Session, reader: RegistryReader, chain_id: int, block: int) -> list[Drift]:
    """The quick check at ``block``: the contract's accumulators and counts against
    :func:`stored_state` (see the module docstring for what it catches)."""
    on_chain = reader.totals(block)
    in_mirror = stored_state(session, chain_id, reader.address, block)
    names = (
        ("anchors", "accumulator"),
        ("revocations", "revocationAccumulator"),
        ("anchors", "anchorCount"),
        ("revocations", "revocationCount"),
    )
    return [
        Drift("accumulator", table, block, field=name, chain=_shown(c), mirror=_shown(m))
        for (table, name), c, m in zip(names, on_chain, in_mirror, strict=True)
        if c != m
    ]


def _shown(value: object) -> str:
    return hex0x(value) if isinstance(value, bytes) else str(value)


def accumulator_drifts(
    session: Session, reader: RegistryReader, chain_id: int, block: int, *, block_hash: bytes | None = None
) -> list[Drift]:
    """The accumulator check at ``block``: the contract's values against the mirror's fold.

    With ``block_hash``, the contract is read at exactly that block (EIP-1898), so a reorg since
    cannot pass for a divergence: the read fails instead.
    """
    at: BlockId = block if block_hash is None else {"blockHash": hex0x(block_hash), "requireCanonical": True}
    on_chain = reader.accumulators(at)
    in_mirror = mirror_accumulators(session, chain_id, reader.address, block)
    return [
        Drift("accumulator", table, block, field=name, chain=hex0x(c), mirror=hex0x(m))
        for table, name, c, m in zip(
            ("anchors", "revocations"),
            ("accumulator", "revocationAccumulator"),
            on_chain,
            in_mirror,
            strict=True,
        )
        if c != m
    ]


# -- the whole check ----------------------------------------------------------------------------


def _stored_blocks(session: Session, first: int, last: int) -> dict[int, bytes]:
    query = select(BlockRow.number, BlockRow.hash).where(BlockRow.number >= first, BlockRow.number <= last)
    return {number: bytes(block_hash) for number, block_hash in session.execute(query)}


def _chunks(numbers: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(numbers), size):
        yield numbers[start : start + size]


@dataclass
class Reconciler:
    """Compares one mirror with the chain behind ``rpc``."""

    engine: Engine
    rpc: RpcClient
    registry: str
    chain_id: int
    progress: Callable[[int, int], None] = lambda done, total: None

    def run(self, first: int, last: int, *, quick: bool = False) -> Report:
        """Reconciles blocks ``first..last`` (``quick``: the accumulators at ``last`` only)."""
        started = time.perf_counter()
        reader = RegistryReader(self.rpc, self.registry)
        with Session(self.engine) as session:
            if quick:
                drifts = quick_drifts(session, reader, self.chain_id, last)
                return Report(first, last, True, 0, 0, 0, tuple(drifts), time.perf_counter() - started)
            drifts = accumulator_drifts(session, reader, self.chain_id, last)
            stored = mirror_rows(session, first, last)
            blocks = _stored_blocks(session, first, last)
        on_chain: dict[RowKey, dict[str, Any]] = {}
        chain_blocks: dict[int, bytes] = {}
        fetcher = LogFetcher(self.rpc, self.registry, MIRRORED_TOPICS, AdaptiveRange(), prefetch=True)
        try:
            cursor = first
            while cursor <= last:
                fetched = fetcher.fetch_range(cursor, last)
                on_chain.update(chain_rows(fetched.batch))
                chain_blocks.update(fetched.batch.blocks)
                self.progress(fetched.last - first + 1, last - first + 1)
                cursor = fetched.last + 1
        finally:
            fetcher.close()
        row_drifts = compare_rows(on_chain, stored)
        block_drifts = self._block_drifts(blocks, chain_blocks)
        counts: dict[str, int] = {}
        for drift in (*row_drifts, *block_drifts, *drifts):
            counts[drift.kind] = counts.get(drift.kind, 0) + 1
        return Report(
            first,
            last,
            False,
            len(on_chain),
            len(stored),
            len(blocks),
            tuple(sorted((*row_drifts, *block_drifts), key=lambda d: d.block_number)) + tuple(drifts),
            time.perf_counter() - started,
            counts,
        )

    def _block_drifts(self, stored: Mapping[int, bytes], from_logs: Mapping[int, bytes]) -> list[Drift]:
        """Stored block hashes against the chain: from the logs' own block hashes where the range
        had events, from headers for the other stored blocks (checkpoints)."""
        needed = sorted(number for number in stored if number not in from_logs)
        chain = dict(from_logs)
        for chunk in _chunks(needed, HEADER_BATCH):
            headers = read_headers(self.rpc, chunk)
            chain.update({number: header.hash for number, header in headers.items()})
        drifts = []
        for number, block_hash in sorted(stored.items()):
            actual = chain.get(number)
            if actual != block_hash:
                drifts.append(
                    Drift(
                        "block_hash",
                        "blocks",
                        number,
                        field="hash",
                        chain=hex0x(actual) if actual else "(no such block)",
                        mirror=hex0x(block_hash),
                    )
                )
        return drifts


# -- repair -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resync:
    """What ``finvault resync`` did."""

    from_block: int
    previous_block: int
    deleted_rows: int
    indexed_block: int
    events_indexed: int


def resync(indexer: Indexer, from_block: int, *, now: int) -> Resync:
    """Re-reads the mirror from ``from_block`` on, from the chain, as the mirror's writer: claims it
    first (:class:`MirrorWriterBusy` if another writer follows it), holds the claim until the
    indexer is closed.

    One transaction deletes every row from ``from_block`` up, puts the checkpoint just below it
    and writes an ``audit_log`` entry; the indexer then syncs back up to where the mirror was (each
    of its steps is atomic too, so a crash midway leaves a consistent, shorter mirror).
    """
    try:
        indexer.claim_writer()
    except MirrorWriterBusy:
        raise MirrorWriterBusy(
            "another writer follows this mirror: a resync needs it to itself. A node's writer steps "
            "aside by itself while its mirror is halted, diverged or drifted; otherwise stop the node "
            "(or finvault sync) first"
        ) from None
    base = max(from_block, indexer.start_block) - 1
    header = read_headers(indexer.rpc, [base]).get(base)
    if header is None:
        raise ConfigError(f"the chain has no block {base}")
    with Session(indexer.engine) as session, session.begin():
        session.connection(execution_options={BEGIN_MODE: "IMMEDIATE"})  # a writer's transaction
        checkpoint = session.get(CheckpointRow, 1)
        if checkpoint is None:
            raise ConfigError("the mirror is empty: run `finvault sync` instead")
        previous = checkpoint.block_number
        if base >= previous:
            raise ConfigError(f"--from {from_block} is above the mirror's checkpoint ({previous})")
        stored = session.get(BlockRow, base)
        if stored is None:
            session.add(BlockRow.without_events(header))
        elif bytes(stored.hash) != header.hash:
            raise ConfigError(f"block {base} itself differs from the chain: resync from an earlier block")
        deleted = sum(
            session.execute(
                select(func.count()).select_from(table).where(table.block_number > base)
            ).scalar_one()
            for table in EVENT_TABLES
        )
        rewind(session, checkpoint, base)
        detail = {"from_block": base + 1, "previous_block": previous, "deleted_rows": deleted}
        session.add(AuditLogRow(at=now, action=AuditLogRow.RESYNC, detail=detail))
    log.warning("resync: deleted %d rows above block %d; re-reading up to block %d", deleted, base, previous)
    status = indexer.sync(previous)
    return Resync(base + 1, previous, deleted, status.indexed_block, status.events_indexed)
