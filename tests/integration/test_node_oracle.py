"""The node's answers against an independent oracle, under reorgs, RPC faults and mirror tampering.

Bounded to about a minute and a half of driving (plus set-up); ``./scripts/soak`` runs the same
oracle for longer. See :mod:`tests.tools.oracle` for what is driven and what is checked.
"""

from __future__ import annotations

import pytest

from tests.tools.oracle import run

#: Seconds of driving: enough for the forced deep reorg and tampering, and dozens of random steps.
SECONDS = 90.0
#: Fixed, so that a failure here can be replayed with ``python -m tests.tools.oracle --seed``.
SEED = 20_261_204


@pytest.mark.slow(seconds=95)
def test_every_answer_agrees_with_the_chain_at_its_as_of_block() -> None:
    tally = run(SECONDS, SEED)
    print(tally.render())
    assert tally.violations == []
    # The run did what it is meant to: verdicts of every kind, re-checked on the chain, across
    # halts past finality and repaired tamperings, with the proxy injecting faults throughout.
    assert tally.checked >= 500, tally.render()
    assert {"VALID", "INVALID"} <= set(tally.verdicts), tally.render()
    assert tally.actions["halts"] >= 1, tally.render()
    assert tally.actions["divergences repaired"] >= 1, tally.render()
    assert tally.actions["reorgs"] >= 1, tally.render()
    assert tally.actions["RPC faults injected"] > 0, tally.render()
    assert tally.refusals["mirror_halted"] >= 1, tally.render()
