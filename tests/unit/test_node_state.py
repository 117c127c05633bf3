"""What a serving process makes of its mirror's checkpoint and its writer's published state
(node/state.py)."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

import pytest

from node.health import cannot_vouch
from node.state import (
    FROM_CHECKPOINT,
    PUBLISHED,
    SILENT_AFTER,
    Checkpoint,
    SyncSnapshot,
    reader_snapshot,
    state_row,
)

CHECKPOINT = Checkpoint(
    revision=4,
    block_number=120,
    block_hash=b"\x07" * 32,
    block_time=1_700_000_000,
    finalized_block=100,
    head=130,
)
WRITER = SyncSnapshot(events_indexed=42, last_success=1_000.0, running=True, caught_up_at=995.0)


def roundtrip(
    snapshot: SyncSnapshot, *, age: float = 0.0, checkpoint: Checkpoint = CHECKPOINT
) -> SyncSnapshot:
    """The writer publishes at unix 5,000 (monotonic 1,000); a reader reads it ``age`` seconds later
    on a host whose monotonic clock reads 70,000."""
    row = json.loads(json.dumps(state_row(snapshot, 5_000.0, 1_000.0)))  # what the JSON column keeps
    return reader_snapshot(checkpoint, row, 5_000.0, 5_000.0 + age, 70_000.0 + age)


def _unlike_default(field: dataclasses.Field[Any], index: int) -> Any:
    """A value for ``field`` that no default has, distinct per field."""
    hints = typing.get_type_hints(SyncSnapshot)
    kinds = set(typing.get_args(hints[field.name])) or {hints[field.name]}
    kinds.discard(types.NoneType)
    kind = kinds.pop()
    values: dict[Any, Any] = {
        int: 1_000 + index,
        float: 900.0 + index,
        bool: True,
        str: f"text {index}: Université ✓",
        bytes: bytes([index]) * 32,
    }
    return values[kind]


def test_every_published_field_survives_the_round_trip() -> None:
    """Built from the dataclass's fields: a field added to SyncSnapshot is published and read back,
    or taken from the checkpoint, with no list to update by hand."""
    fields = dataclasses.fields(SyncSnapshot)
    assert {f.name for f in fields} == set(PUBLISHED) | set(FROM_CHECKPOINT)
    snapshot = SyncSnapshot(**{f.name: _unlike_default(f, i) for i, f in enumerate(fields)})
    read = roundtrip(snapshot)
    for field in fields:
        value = getattr(read, field.name)
        if field.name in FROM_CHECKPOINT:
            continue
        if field.name in ("last_success", "caught_up_at"):  # monotonic: moved onto the reader's clock
            assert value == 70_000.0 - (1_000.0 - getattr(snapshot, field.name)), field.name
        else:
            assert value == getattr(snapshot, field.name), field.name
    assert (
        read.generation,
        read.indexed_block,
        read.block_hash,
        read.block_time,
        read.finalized_block,
        read.head,
    ) == (
        CHECKPOINT.revision,
        CHECKPOINT.block_number,
        CHECKPOINT.block_hash,
        CHECKPOINT.block_time,
        CHECKPOINT.finalized_block,
        CHECKPOINT.head,
    )


@pytest.mark.parametrize("name", FROM_CHECKPOINT)
def test_what_a_verdict_is_judged_at_comes_from_the_checkpoint_only(name: str) -> None:
    """Position, finality and revision are committed with the facts: a published value (a writer
    whose commit failed after it read a newer head) is never used in their place."""
    field = next(f for f in dataclasses.fields(SyncSnapshot) if f.name == name)
    lying = dataclasses.replace(WRITER, **{name: _unlike_default(field, 99)})
    assert roundtrip(lying) == roundtrip(WRITER)


def test_the_writers_state_arrives_with_times_on_the_readers_clock() -> None:
    read = roundtrip(WRITER)
    assert (read.head, read.running, read.last_error) == (130, True, None)
    assert read.last_success == 70_000.0
    assert read.caught_up_at == 69_995.0


def test_a_halted_or_diverged_writer_stops_the_reader_vouching() -> None:
    halted = roundtrip(dataclasses.replace(WRITER, fatal="reorg below finality"))
    assert cannot_vouch(halted, 120.0, now=70_000.0).code == "mirror_halted"  # type: ignore[union-attr]
    diverged = roundtrip(dataclasses.replace(WRITER, diverged="accumulators differ"))
    assert cannot_vouch(diverged, 120.0, now=70_000.0).code == "mirror_diverged"  # type: ignore[union-attr]
    assert cannot_vouch(roundtrip(WRITER), 120.0, now=70_000.0) is None


def test_a_silent_writer_goes_stale_and_is_named() -> None:
    quiet = roundtrip(WRITER, age=SILENT_AFTER - 1)
    assert quiet.running is True  # a few missed publications: nothing to say yet
    silent = roundtrip(WRITER, age=300.0)
    assert silent.running is False
    assert "has not published its state for 300 s" in (silent.last_error or "")
    refusal = cannot_vouch(silent, 120.0, now=70_300.0)
    assert refusal is not None
    assert refusal.code == "mirror_stale"


def test_a_mirror_no_writer_published_to_cannot_vouch() -> None:
    nothing = reader_snapshot(CHECKPOINT, None, None, 5_000.0, 70_000.0)
    assert nothing.running is False
    assert "no writer has published" in (nothing.last_error or "")
    assert cannot_vouch(nothing, 120.0, now=70_000.0) is not None
