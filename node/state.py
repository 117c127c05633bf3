"""The mirror's state as serving processes read it: the checkpoint, and what its writer published.

A node is one **writer** process (:mod:`node.writer`: the sync loop, the mirror's only writer) and
any number of **reader** processes that serve HTTP (:mod:`node.runtime`). They share nothing but
the mirror database. A reader judges whether the mirror can vouch (:mod:`node.health`) from two
things in it, read in the same read transaction as a verification's facts, one snapshot of the
database (:class:`node.mirror.MirrorView`):

- the **checkpoint**, which every sync step, reorg repair and ``finvault resync`` moves in the same
  transaction as the rows it covers. It names the block verdicts are judged at (``as_of``), the
  finalized block, the chain head the step read (confirmations count to it), and the mirror's
  ``revision``, which every transaction that changes a fact
  increments: facts are cached per revision. Whatever a writer did not commit, no reader sees;
- the **published state** (the ``loop_state`` row), which the writer rewrites after every poll
  (:class:`StatePublisher`): halted, diverged, drifted, being repaired, when the mirror last
  reached the chain head, the last failure. A writer that dies stops publishing, the mirror's last
  catch-up recedes, and readers refuse as ``mirror_stale`` after ``FINVAULT_MAX_STALENESS``.

On one machine the readers are the supervisor's children beside the writer; scaled out, they run
anywhere the database is reachable. Times cross processes and hosts as unix seconds: hosts' clocks
must agree to well within the staleness bound (NTP does).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, String, cast, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from indexer.schema import BlockRow, CheckpointRow, LoopStateRow

log = logging.getLogger(__name__)

#: Seconds between two publications of an unchanged state.
PUBLISH_EVERY = 1.0
#: A writer silent for longer than this is said not to be running (its last state may be stale).
SILENT_AFTER = 3 * PUBLISH_EVERY + 10


@dataclass(frozen=True)
class SyncSnapshot:
    """What a serving process knows of the mirror and its writer, at one moment."""

    #: The mirror's revision: facts read under one revision may be cached and reused under it.
    generation: int = 0
    head: int = 0
    indexed_block: int = 0
    finalized_block: int = 0
    events_indexed: int = 0
    rpc_errors: int = 0
    failures: int = 0
    reorgs: int = 0
    quorum_disagreements: int = 0
    last_success: float | None = None  # time.monotonic() of this process
    breaker_open: bool = False
    running: bool = False
    last_error: str | None = None
    fatal: str | None = None  # the writer halted: why, and what the operator should run
    repairing: str | None = None  # another writer (finvault resync) is rewriting the mirror
    chain_mismatch: str | None = None
    diverged: str | None = None  # the last accumulator check found the mirror unlike the contract
    drift: str | None = None  # a reconciliation found drift that no resync has repaired yet
    #: The mirror's newest block, as the mirror holds it: what a verdict is judged at (``as_of``).
    block_hash: bytes = bytes(32)
    block_time: int = 0
    #: When (time.monotonic()) the mirror last reached the chain head a sync step had just read.
    caught_up_at: float | None = None

    @property
    def lag(self) -> int:
        """Blocks between the chain head and the mirror's newest block (never negative)."""
        return max(0, self.head - self.indexed_block)


#: Fields of :class:`SyncSnapshot` that are ``time.monotonic()`` readings: unix seconds in the row.
_MONOTONIC = ("last_success", "caught_up_at")
#: Fields a reader takes from the checkpoint, never from the published state.
FROM_CHECKPOINT = ("generation", "head", "indexed_block", "finalized_block", "block_hash", "block_time")
#: Fields the writer publishes.
PUBLISHED = tuple(f.name for f in dataclasses.fields(SyncSnapshot) if f.name not in FROM_CHECKPOINT)


def state_row(snapshot: SyncSnapshot, now: float, monotonic_now: float) -> dict[str, Any]:
    """``snapshot``'s published fields as the ``loop_state`` row's JSON: monotonic readings as unix
    seconds."""
    state = {name: getattr(snapshot, name) for name in PUBLISHED}
    for name in _MONOTONIC:
        if state[name] is not None:
            state[name] = now - (monotonic_now - state[name])
    return state


@dataclass(frozen=True)
class Checkpoint:
    """The checkpoint's part of a reader's state: where the mirror stands, as committed."""

    revision: int
    block_number: int
    block_hash: bytes
    block_time: int
    finalized_block: int
    #: The chain head the step that wrote the checkpoint read: confirmations are counted to it.
    head: int


def reader_snapshot(
    checkpoint: Checkpoint,
    state: dict[str, Any] | None,
    published_at: float | None,
    now: float,
    monotonic_now: float,
) -> SyncSnapshot:
    """What a reader knows: the mirror's ``checkpoint`` and the writer's last published ``state``,
    its unix times back on this process's monotonic clock."""
    values = {name: value for name, value in (state or {}).items() if name in PUBLISHED}
    for name in _MONOTONIC:
        if values.get(name) is not None:
            values[name] = monotonic_now - (now - float(values[name]))
    if published_at is None:
        values["last_error"] = "no writer has published its sync loop's state to this mirror yet"
        values["running"] = False
    elif now - published_at > SILENT_AFTER:
        values["last_error"] = (
            f"the mirror's writer has not published its state for {now - published_at:.0f} s"
        )
        values["running"] = False
    return SyncSnapshot(
        generation=checkpoint.revision,
        head=checkpoint.head,
        indexed_block=checkpoint.block_number,
        finalized_block=checkpoint.finalized_block,
        block_hash=checkpoint.block_hash,
        block_time=checkpoint.block_time,
        **values,
    )


#: The checkpoint and the published state in one statement (read once a verification). The state
#: comes as text: parsed only when it changed (:class:`StateReader`).
STATE_QUERY = (
    select(
        CheckpointRow.revision,
        CheckpointRow.block_number,
        CheckpointRow.block_hash,
        BlockRow.timestamp,
        CheckpointRow.finalized_block,
        CheckpointRow.chain_head_block,
        LoopStateRow.published_at,
        cast(LoopStateRow.state, String),
    )
    .select_from(CheckpointRow)
    .outerjoin(BlockRow, BlockRow.number == CheckpointRow.block_number)
    .outerjoin(LoopStateRow, LoopStateRow.id == 1)
)


#: The published state alone, for a mirror with no checkpoint yet.
PUBLISHED_QUERY = select(LoopStateRow.published_at, cast(LoopStateRow.state, String)).where(
    LoopStateRow.id == 1
)
#: Where a mirror no step has written stands.
EMPTY = Checkpoint(revision=0, block_number=0, block_hash=bytes(32), block_time=0, finalized_block=0, head=0)


class StateReader:
    """Reads a reader's :class:`SyncSnapshot` on a connection (in whatever transaction it is in).
    The published state's JSON is parsed once per publication, not once per verification."""

    def __init__(self) -> None:
        self._parsed: tuple[str, dict[str, Any]] | None = None

    def read(self, connection: Connection) -> SyncSnapshot:
        """The mirror's checkpoint and its writer's last published state, on ``connection``."""
        found = connection.execute(STATE_QUERY).first()
        if found is None:  # no step has committed yet: what the writer says of its first tries
            published = connection.execute(PUBLISHED_QUERY).first()
            published_at, text = published if published is not None else (None, None)
            state = self._state(text) or {}
            state = {**state, "last_error": state.get("last_error") or "the mirror has no checkpoint"}
            return reader_snapshot(EMPTY, state, published_at, time.time(), time.monotonic())
        revision, number, block_hash, block_time, finalized, head, published_at, text = found
        return reader_snapshot(
            Checkpoint(revision, number, bytes(block_hash), block_time or 0, finalized, head),
            self._state(text),
            published_at,
            time.time(),
            time.monotonic(),
        )

    def read_now(self, engine: Engine) -> SyncSnapshot:
        """:meth:`read` on a connection of its own."""
        with engine.connect() as connection:
            return self.read(connection)

    def _state(self, text: str | None) -> dict[str, Any] | None:
        if text is None:
            return None
        parsed = self._parsed
        if parsed is None or parsed[0] != text:
            parsed = self._parsed = (text, json.loads(text))
        return parsed[1]


class StatePublisher:
    """The writer's side: puts its loop's state in the ``loop_state`` row, at most every
    :data:`PUBLISH_EVERY` seconds unless something an operator must see changed (an alarm, a
    failure starting or ending, events or reorgs written)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._last: tuple[float, tuple[Any, ...]] | None = None

    def publish(self, snapshot: SyncSnapshot, *, force: bool = False) -> bool:
        """Writes ``snapshot`` (its own short transaction); False if that failed (the caller's
        failure log says why; the next publication retries)."""
        now, monotonic_now = time.time(), time.monotonic()
        alarms = (
            snapshot.fatal,
            snapshot.repairing,
            snapshot.diverged,
            snapshot.drift,
            snapshot.running,
            snapshot.caught_up_at is None,
            snapshot.breaker_open,
            snapshot.last_error is None,
            snapshot.events_indexed,
            snapshot.reorgs,
        )
        last = self._last
        if not force and last is not None and last[1] == alarms and monotonic_now - last[0] < PUBLISH_EVERY:
            return True
        try:
            with Session(self.engine) as session, session.begin():
                session.merge(
                    LoopStateRow(id=1, published_at=now, state=state_row(snapshot, now, monotonic_now))
                )
        except SQLAlchemyError:
            return False
        self._last = (monotonic_now, alarms)
        return True
