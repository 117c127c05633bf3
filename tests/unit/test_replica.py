"""What a replica node makes of its mirror's published loop state (node/replica.py)."""

from __future__ import annotations

import dataclasses
import json

from node.health import cannot_vouch
from node.replica import PUBLISH_EVERY, replica_snapshot, state_row
from node.shared import SyncSnapshot

POSITION = (120, b"\x07" * 32, 1_700_000_000)
WRITER = SyncSnapshot(
    generation=5,
    head=130,
    indexed_block=120,
    finalized_block=100,
    events_indexed=42,
    last_success=1_000.0,
    running=True,
    block_hash=b"\x07" * 32,
    block_time=1_700_000_000,
    caught_up_at=995.0,
)


def roundtrip(snapshot: SyncSnapshot, *, age: float = 0.0) -> SyncSnapshot:
    """The writer publishes at unix 5,000 (monotonic 1,000); a replica reads it ``age`` seconds later
    on a host whose monotonic clock reads 70,000."""
    row = json.loads(json.dumps(state_row(snapshot, 5_000.0, 1_000.0)))  # what the JSON column keeps
    return replica_snapshot(POSITION, row, 5_000.0, 5_000.0 + age, 70_000.0 + age)


def test_the_writers_state_arrives_with_times_on_the_replicas_clock() -> None:
    replica = roundtrip(WRITER)
    assert replica.head == 130
    assert replica.finalized_block == 100
    assert replica.running is True
    assert replica.last_error is None
    assert replica.last_success == 70_000.0
    assert replica.caught_up_at == 69_995.0
    assert (replica.indexed_block, replica.block_hash, replica.block_time) == POSITION
    assert replica.writing is False


def test_position_and_generation_come_from_the_checkpoint_only() -> None:
    replica = roundtrip(dataclasses.replace(WRITER, indexed_block=1, block_hash=bytes(32), generation=9))
    assert (replica.indexed_block, replica.block_hash) == POSITION[:2]
    moved = replica_snapshot((121, b"\x08" * 32, 0), None, None, 0.0, 0.0)
    assert moved.generation != replica.generation  # a moved checkpoint drops cached facts


def test_a_halted_or_diverged_writer_stops_the_replica_vouching() -> None:
    halted = roundtrip(dataclasses.replace(WRITER, fatal="reorg below finality"))
    assert cannot_vouch(halted, 120.0, now=70_000.0).code == "mirror_halted"  # type: ignore[union-attr]
    diverged = roundtrip(dataclasses.replace(WRITER, diverged="accumulators differ"))
    assert cannot_vouch(diverged, 120.0, now=70_000.0).code == "mirror_diverged"  # type: ignore[union-attr]
    assert cannot_vouch(roundtrip(WRITER), 120.0, now=70_000.0) is None


def test_a_silent_writer_goes_stale_and_is_named() -> None:
    quiet = roundtrip(WRITER, age=3 * PUBLISH_EVERY + 5)
    assert quiet.running is True  # a few missed publications: nothing to say yet
    silent = roundtrip(WRITER, age=300.0)
    assert silent.running is False
    assert "has not published its state for 300 s" in (silent.last_error or "")
    refusal = cannot_vouch(silent, 120.0, now=70_300.0)
    assert refusal is not None
    assert refusal.code == "mirror_stale"


def test_a_mirror_no_writer_published_to_cannot_vouch() -> None:
    nothing = replica_snapshot(POSITION, None, None, 5_000.0, 70_000.0)
    assert nothing.running is False
    assert "no node has published" in (nothing.last_error or "")
    assert cannot_vouch(nothing, 120.0, now=70_000.0) is not None
