"""Whether this node's mirror can vouch for a verdict now: one judgement, for readiness and verdicts.

A verdict is only as good as the mirror it is read from. The mirror cannot vouch while:

- ``mirror_halted``: the sync loop halted (a reorg below the mirror's finalized block, a lost
  ancestor, events that do not fold into the contract's accumulators), or paused while another
  process (``finvault resync``) rewrites the mirror. Only an operator can repair a halt; the loop
  resumes by itself once the repair is done;
- ``mirror_diverged``: the last accumulator check folded the mirror's rows and did not get the
  contract's accumulators at the mirror's block (a deleted or altered row);
- ``mirror_drift``: a scheduled reconciliation found drift that no resync has repaired yet;
- ``mirror_stale``: the mirror last reached the chain head more than ``max_staleness`` seconds ago
  (the RPC endpoint is down, or the node is still catching up).

While one holds, every verification surface answers 503 with its code, and ``GET /ready`` fails
with the same reason. Every verdict names the state it was judged at (:func:`as_of`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from chain.core.encoding import iso_utc
from node.state import SyncSnapshot

#: Seconds a client should wait before asking again, by code: a halt waits for an operator, a
#: divergence or drift for the next check, a stale mirror only for the next successful poll.
RETRY_AFTER = {"mirror_halted": 60, "mirror_diverged": 30, "mirror_drift": 30, "mirror_stale": 5}
#: ... and a halt whose repair is under way, for the repair to finish.
REPAIRING_RETRY_AFTER = 10


@dataclass(frozen=True)
class CannotVouch:
    """Why the mirror cannot vouch for verdicts right now: a stable code, a reason for people, and
    the seconds to wait before asking again (the ``Retry-After`` header)."""

    code: str
    reason: str
    retry_after: int


def lag_seconds(snapshot: SyncSnapshot, now: float | None = None) -> float:
    """Seconds since the mirror last reached the chain head (infinite if it never has)."""
    if snapshot.caught_up_at is None:
        return math.inf
    now = time.monotonic() if now is None else now
    return max(0.0, now - snapshot.caught_up_at)


def cannot_vouch(
    snapshot: SyncSnapshot, max_staleness: float, now: float | None = None
) -> CannotVouch | None:
    """The first condition, in order of gravity, that stops the mirror vouching; None if none holds."""
    if snapshot.fatal:
        return _refusal("mirror_halted", f"sync halted: {snapshot.fatal}")
    if snapshot.repairing:
        return CannotVouch("mirror_halted", snapshot.repairing, REPAIRING_RETRY_AFTER)
    if snapshot.diverged:
        return _refusal("mirror_diverged", snapshot.diverged)
    if snapshot.drift:
        return _refusal("mirror_drift", snapshot.drift)
    lag = lag_seconds(snapshot, now)
    if lag > max_staleness:
        why = f" (last error: {snapshot.last_error})" if snapshot.last_error else ""
        if math.isinf(lag):
            return _refusal("mirror_stale", f"the mirror has not reached the chain head yet{why}")
        return _refusal(
            "mirror_stale",
            f"the mirror last reached the chain head {lag:.0f} s ago; the bound is {max_staleness:g} s{why}",
        )
    return None


def _refusal(code: str, reason: str) -> CannotVouch:
    return CannotVouch(code, reason, RETRY_AFTER[code])


def as_of(snapshot: SyncSnapshot, now: float | None = None) -> dict[str, Any]:
    """The mirror state a verdict was judged at: its newest block, that block's hash and time as the
    mirror holds them, and how far behind the chain head the mirror may be."""
    lag = lag_seconds(snapshot, now)
    return {
        "block_number": snapshot.indexed_block,
        "block_hash": "0x" + snapshot.block_hash.hex(),
        "block_time": iso_utc(snapshot.block_time),
        "lag_seconds": None if math.isinf(lag) else round(lag, 1),
    }
