"""The sync loop's state, shared with worker processes through a few KiB of shared memory.

With ``FINVAULT_WORKERS`` > 1 the sync loop runs in a sync process and HTTP is served by worker
processes (:mod:`node.worker`). They need what the loop knows (head, finalized block, the mirror's
generation for cache invalidation, readiness) and read it from a memory-mapped file that only the
loop writes (or, while no loop runs, the supervisor: a state that cannot vouch). A sequence lock
keeps reads consistent: the writer makes the counter odd, writes, makes it even again; a reader
retries while the counter is odd or changed under it.
"""

from __future__ import annotations

import math
import mmap
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from chain.errors import FinVaultError

_SEQ = struct.Struct("<Q")
_NUMBERS = struct.Struct("<qqqqqqqqqdBBBqdB32s")
_TEXT_MAX = 1000
_TEXT_SLOT = 1024
_TEXTS = ("last_error", "fatal", "chain_mismatch", "diverged", "drift", "repairing")
_TEXT_AT = tuple(256 + i * _TEXT_SLOT for i in range(len(_TEXTS)))
SIZE = 256 + len(_TEXTS) * _TEXT_SLOT
_LENGTH = struct.Struct("<H")


class MirrorBusy(FinVaultError):
    """No consistent reading of the mirror (or of the sync loop's state) in many tries: it is being
    written without a pause. Worth retrying a moment later."""

    code = "mirror_busy"


@dataclass(frozen=True)
class SyncSnapshot:
    """What the sync loop knows, at one moment."""

    generation: int = 0
    head: int = 0
    indexed_block: int = 0
    finalized_block: int = 0
    events_indexed: int = 0
    rpc_errors: int = 0
    failures: int = 0
    reorgs: int = 0
    quorum_disagreements: int = 0
    last_success: float | None = None  # time.monotonic() (system-wide on Linux)
    breaker_open: bool = False
    running: bool = False
    last_error: str | None = None
    fatal: str | None = None  # the sync loop halted: why, and what the operator should run
    repairing: str | None = None  # another process (finvault resync) is rewriting the mirror
    chain_mismatch: str | None = None
    diverged: str | None = None  # the last accumulator check found the mirror unlike the contract
    drift: str | None = None  # a reconciliation found drift that no resync has repaired yet
    #: The mirror's newest block, as the mirror holds it: what a verdict is judged at (``as_of``).
    block_hash: bytes = bytes(32)
    block_time: int = 0
    #: When (time.monotonic()) the mirror last reached the chain head a sync step had just read.
    caught_up_at: float | None = None
    #: True while the sync loop commits a step: facts read now may be newer than this snapshot.
    writing: bool = False

    @property
    def lag(self) -> int:
        """Blocks between the chain head and the mirror's newest block (never negative)."""
        return max(0, self.head - self.indexed_block)


class SharedState:
    """A small file, mapped shared: :meth:`write` from the loop, :meth:`read` anywhere."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        if create:
            path.write_bytes(bytes(SIZE))
            path.chmod(0o600)
        with path.open("r+b") as handle:
            self._map = mmap.mmap(handle.fileno(), SIZE)

    def close(self) -> None:
        """Unmaps the file; the file itself stays."""
        self._map.close()

    def write(self, snapshot: SyncSnapshot) -> None:
        """Publishes ``snapshot`` under the sequence lock (one writer at a time: the sync loop, or the
        supervisor while none runs); texts are cut at 1,000 bytes."""
        memory = self._map
        (seq,) = _SEQ.unpack_from(memory, 0)
        seq += seq & 1  # odd: a writer died mid-write (a sync process that crashed); start clean
        _SEQ.pack_into(memory, 0, seq + 1)
        _NUMBERS.pack_into(
            memory,
            8,
            snapshot.generation,
            snapshot.head,
            snapshot.indexed_block,
            snapshot.finalized_block,
            snapshot.events_indexed,
            snapshot.rpc_errors,
            snapshot.failures,
            snapshot.reorgs,
            snapshot.quorum_disagreements,
            math.nan if snapshot.last_success is None else snapshot.last_success,
            snapshot.breaker_open,
            snapshot.running,
            1,  # written at least once
            snapshot.block_time,
            math.nan if snapshot.caught_up_at is None else snapshot.caught_up_at,
            snapshot.writing,
            snapshot.block_hash,
        )
        for offset, name in zip(_TEXT_AT, _TEXTS, strict=True):
            text = getattr(snapshot, name)
            raw = b"" if text is None else text.encode("utf-8")[:_TEXT_MAX]
            _LENGTH.pack_into(memory, offset, 0 if text is None else len(raw) + 1)
            memory[offset + 2 : offset + 2 + len(raw)] = raw
        _SEQ.pack_into(memory, 0, seq + 2)

    def read(self) -> SyncSnapshot:
        """The snapshot last written, re-read while a write is under way; the default one before any write."""
        memory = self._map
        for _ in range(10_000):
            (before,) = _SEQ.unpack_from(memory, 0)
            if before & 1:
                time.sleep(0)
                continue
            numbers = _NUMBERS.unpack_from(memory, 8)
            texts: list[str | None] = []
            for offset in _TEXT_AT:
                (length,) = _LENGTH.unpack_from(memory, offset)
                raw = bytes(memory[offset + 2 : offset + 1 + length]) if length else b""
                texts.append(raw.decode("utf-8", "replace") if length else None)
            (after,) = _SEQ.unpack_from(memory, 0)
            if before == after:
                break
        else:
            raise MirrorBusy("the sync loop's state kept changing while it was read; retry in a moment")
        generation, head, indexed, finalized, events, rpc_errors, failures, reorgs, disagreements = numbers[
            :9
        ]
        last_success, breaker_open, running, written, block_time, caught_up_at, writing, block_hash = numbers[
            9:
        ]
        if not written:
            return SyncSnapshot()
        return SyncSnapshot(
            generation,
            head,
            indexed,
            finalized,
            events,
            rpc_errors,
            failures,
            reorgs,
            disagreements,
            last_success=None if math.isnan(last_success) else last_success,
            breaker_open=bool(breaker_open),
            running=bool(running),
            **dict(zip(_TEXTS, texts, strict=True)),
            block_hash=block_hash,
            block_time=block_time,
            caught_up_at=None if math.isnan(caught_up_at) else caught_up_at,
            writing=bool(writing),
        )
