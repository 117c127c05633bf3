"""Replica nodes: verdicts served from a mirror that another node's sync loop writes.

To scale out, one node follows the chain into a PostgreSQL mirror (the mirror's one writer:
:mod:`indexer.writer`) and any number of replicas (``FINVAULT_NODE_REPLICA=true``) read it behind
a load balancer. A replica runs no sync loop and never writes; it judges whether the mirror can
vouch exactly as the writer does (:mod:`node.health`), from two things in the mirror itself:

- the checkpoint, which every sync step, reorg repair and ``finvault resync`` moves in the same
  transaction as the rows it covers. It names the block verdicts are judged at, and it stands in
  for the writer's generation: a verification reads it in the same read transaction as its facts,
  one snapshot of the database (:class:`node.mirror.MirrorView`), so every fact belongs to the
  block its verdict names;
- the ``loop_state`` row, which the writer's loop rewrites on every poll (:class:`StatePublisher`):
  halted, diverged, drifted, being repaired, the chain head, when it last reached it. A writer that
  dies stops publishing, the mirror's last catch-up recedes, and replicas refuse as
  ``mirror_stale`` after ``FINVAULT_MAX_STALENESS``, as the writer itself would.

Times cross hosts as unix seconds: the hosts' clocks must agree to well within the staleness
bound (NTP does).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from indexer.schema import BlockRow, CheckpointRow, LoopStateRow
from node.shared import SyncSnapshot

log = logging.getLogger(__name__)

#: Fields of :class:`SyncSnapshot` that are ``time.monotonic()`` readings: unix seconds in the row.
_MONOTONIC = ("last_success", "caught_up_at")
#: Fields a replica takes from the checkpoint, never from the published row.
_FROM_CHECKPOINT = ("generation", "indexed_block", "block_hash", "block_time", "writing")
#: Seconds between two publications of an unchanged state.
PUBLISH_EVERY = 1.0


def state_row(snapshot: SyncSnapshot, now: float, monotonic_now: float) -> dict[str, Any]:
    """``snapshot`` as the ``loop_state`` row's JSON: monotonic readings as unix seconds."""
    state = dataclasses.asdict(snapshot)
    for name in _FROM_CHECKPOINT:
        del state[name]
    for name in _MONOTONIC:
        if state[name] is not None:
            state[name] = now - (monotonic_now - state[name])
    return state


def replica_snapshot(
    position: tuple[int, bytes, int],
    state: dict[str, Any] | None,
    published_at: float | None,
    now: float,
    monotonic_now: float,
) -> SyncSnapshot:
    """What a replica knows: the mirror's checkpoint ``position`` (number, hash, block time) and the
    writer's last published ``state``, its unix times back on this process's monotonic clock."""
    number, block_hash, block_time = position
    known = {field.name for field in dataclasses.fields(SyncSnapshot)} - set(_FROM_CHECKPOINT)
    values = {name: value for name, value in (state or {}).items() if name in known}
    for name in _MONOTONIC:
        if values.get(name) is not None:
            values[name] = monotonic_now - (now - float(values[name]))
    if published_at is None:
        values["last_error"] = "no node has published its sync loop's state to this mirror yet"
        values["running"] = False
    elif now - published_at > 3 * PUBLISH_EVERY + 10:
        values["last_error"] = (
            f"the mirror's writer has not published its state for {now - published_at:.0f} s"
        )
        values["running"] = False
    return SyncSnapshot(
        generation=hash((number, block_hash)),
        indexed_block=number,
        block_hash=block_hash,
        block_time=block_time,
        **values,
    )


#: The checkpoint and the published state in one statement (a replica reads it once a verification).
STATE_QUERY = (
    select(
        CheckpointRow.block_number,
        CheckpointRow.block_hash,
        BlockRow.timestamp,
        LoopStateRow.published_at,
        LoopStateRow.state,
    )
    .select_from(CheckpointRow)
    .outerjoin(BlockRow, BlockRow.number == CheckpointRow.block_number)
    .outerjoin(LoopStateRow, LoopStateRow.id == 1)
)


def read_replica_snapshot(engine: Engine) -> SyncSnapshot:
    """The mirror's checkpoint and its writer's last published state, read now."""
    with engine.connect() as connection:
        return replica_snapshot_on(connection)


def replica_snapshot_on(connection: Connection) -> SyncSnapshot:
    """:func:`read_replica_snapshot` on ``connection``, in whatever transaction it is in."""
    found = connection.execute(STATE_QUERY).first()
    if found is None:
        return SyncSnapshot(last_error="the mirror has no checkpoint")
    number, block_hash, block_time, published_at, state = found
    return replica_snapshot(
        (number, bytes(block_hash), block_time or 0), state, published_at, time.time(), time.monotonic()
    )


class StatePublisher:
    """The writer's side: puts its loop's state in the ``loop_state`` row, at most every
    :data:`PUBLISH_EVERY` seconds unless something an operator must see changed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._last: tuple[float, tuple[Any, ...]] | None = None

    def publish(self, snapshot: SyncSnapshot) -> None:
        """Writes ``snapshot`` (its own short transaction); a failure is logged and retried next time."""
        now, monotonic_now = time.time(), time.monotonic()
        alarms = (snapshot.fatal, snapshot.repairing, snapshot.diverged, snapshot.drift, snapshot.running)
        if (
            self._last is not None
            and self._last[1] == alarms
            and monotonic_now - self._last[0] < PUBLISH_EVERY
        ):
            return
        try:
            with Session(self.engine) as session, session.begin():
                session.merge(
                    LoopStateRow(id=1, published_at=now, state=state_row(snapshot, now, monotonic_now))
                )
        except SQLAlchemyError as exc:
            log.warning("could not publish the sync loop's state for replicas: %s", exc)
            return
        self._last = (monotonic_now, alarms)
