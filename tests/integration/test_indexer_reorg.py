"""Reorgs on anvil: ``evm_snapshot``, blocks the mirror reads, ``evm_revert``, different blocks.

Each orphaned and each replacement block carries its own anchor, so the two branches differ in
every block. After the repair the mirror must equal an independent read of the new chain, and
its accumulators the contract's; a reorg below the mirror's finalized block must be refused.
Every test runs on a SQLite and on a PostgreSQL mirror.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from chain.rpc import RpcClient
from indexer.errors import ReorgBeyondFinality
from indexer.schema import AnchorRow
from indexer.sync import Indexer
from tests.integration.conftest import Deployed, on_both_backends
from tests.integration.indexer_fixtures import (
    ISSUER_A,
    OWNER,
    BlockBuilder,
    assert_accumulators_match_the_contract,
    chain_logs,
    checkpoint,
    digest,
    manual_mining,
    mirror_rows,
    mirror_state,
    new_indexer,
    reference_rows,
)

pytestmark = on_both_backends

#: anvil reports `finalized` at head - 64; a small depth makes that tag the binding one.
CONFIRMATIONS = 2


@dataclass
class Fork:
    """A registry with one active issuer, a mirror of it, and a way to write anchor blocks."""

    rpc: RpcClient
    registry: Deployed
    indexer: Indexer
    builder: BlockBuilder

    def anchors(self, count: int, tag: str) -> list[bytes]:
        """``count`` blocks, each with one anchor whose root depends on ``tag``."""
        roots = [digest(f"{tag}/{i}") for i in range(count)]
        for root in roots:
            self.builder.send(ISSUER_A, "anchor", root, 1, tag)
            self.builder.mine()
        return roots

    def snapshot(self) -> str:
        return str(self.rpc.call("evm_snapshot"))

    def revert(self, snapshot: str) -> None:
        assert self.rpc.call("evm_revert", [snapshot]) is True
        self.builder = BlockBuilder(
            self.rpc, self.registry.address, self.registry.owner.abi
        )  # nonces went back

    def mirrored_roots(self) -> list[bytes]:
        with Session(self.indexer.engine) as session:
            query = select(AnchorRow.root).order_by(AnchorRow.block_number, AnchorRow.log_index)
            return list(session.scalars(query))

    def assert_mirror_equals_the_chain(self) -> None:
        head = checkpoint(self.indexer.engine)["block_number"]
        logs = chain_logs(self.rpc, self.registry.address, self.registry.block, head)
        assert mirror_rows(self.indexer.engine) == reference_rows(self.registry.owner.abi, logs)
        assert_accumulators_match_the_contract(self.rpc, self.registry.address, self.indexer.engine)


@pytest.fixture
def fork(rpc: RpcClient, registry: Deployed, mirror_url: str) -> Iterator[Fork]:
    with manual_mining(rpc):
        builder = BlockBuilder(rpc, registry.address, registry.owner.abi)
        builder.send(OWNER, "registerIssuer", builder.address(ISSUER_A), "Example University", "https://u")
        builder.mine()
        indexer = new_indexer(mirror_url, rpc, registry.address, registry.block, confirmations=CONFIRMATIONS)
        try:
            yield Fork(rpc, registry, indexer, builder)
        finally:
            indexer.close()
            indexer.engine.dispose()


@pytest.mark.parametrize(
    ("depth", "replacement"),
    [(1, 1), (3, 5), (20, 24)],
    ids=["depth 1, same height", "depth 3, longer", "depth 20, longer"],
)
def test_reorg_is_repaired(fork: Fork, depth: int, replacement: int) -> None:
    common = fork.anchors(3, "common")
    fork_point = fork.indexer.sync().indexed_block
    snapshot = fork.snapshot()
    orphaned = fork.anchors(depth, "orphaned")
    fork.indexer.sync()
    assert fork.mirrored_roots() == common + orphaned

    fork.revert(snapshot)
    canonical = fork.anchors(replacement, "canonical")
    first = fork.indexer.step()
    assert first.last_block == fork_point  # rolled back to the fork point before reading on
    assert fork.indexer.status.reorgs == [(fork_point + depth, fork_point)]
    status = fork.indexer.sync()

    assert status.indexed_block == fork_point + replacement
    assert fork.mirrored_roots() == common + canonical
    fork.assert_mirror_equals_the_chain()


def test_a_same_height_reorg_is_reported_by_the_step(fork: Fork) -> None:
    fork_point = fork.indexer.sync().indexed_block
    snapshot = fork.snapshot()
    fork.anchors(1, "orphaned")
    fork.indexer.sync()
    fork.revert(snapshot)
    fork.anchors(1, "canonical")
    assert fork.indexer.step().reorged_to == fork_point


def test_a_reorg_below_the_mirrors_finalized_block_is_refused(fork: Fork) -> None:
    snapshot = fork.snapshot()
    fork.anchors(3, "orphaned")
    fork.rpc.call("anvil_mine", [hex(100)])  # anvil finalizes head - 64: the anchors become final
    fork.indexer.sync()
    before = mirror_state(fork.indexer.engine)
    assert before["checkpoint"]["finalized_block"] > fork.registry.block + 10

    fork.revert(snapshot)
    fork.anchors(3, "canonical")
    fork.rpc.call("anvil_mine", [hex(110)])
    with pytest.raises(ReorgBeyondFinality):
        fork.indexer.step()
    with pytest.raises(ReorgBeyondFinality):
        fork.indexer.sync()  # not a transient error: never retried
    assert mirror_state(fork.indexer.engine) == before  # nothing repaired silently


def test_a_shallow_reorg_right_after_a_long_catch_up_is_repaired(fork: Fork) -> None:
    common = fork.anchors(1, "common")
    fork.rpc.call("anvil_mine", [hex(100)])
    snapshot = fork.snapshot()
    fork_point = fork.rpc.block_number()
    fork.anchors(1, "orphaned")
    fork.indexer.sync()  # one step from the deployment to the head
    fork.revert(snapshot)
    canonical = fork.anchors(1, "canonical")
    fork.indexer.sync()
    [(orphaned_tip, repaired_from)] = fork.indexer.status.reorgs
    assert orphaned_tip == fork_point + 1
    assert repaired_from <= fork_point  # the stored block it found; re-reading a little more is fine
    assert fork.mirrored_roots() == common + canonical
    fork.assert_mirror_equals_the_chain()


def test_a_shallow_reorg_after_short_steps_is_repaired_not_refused(fork: Fork) -> None:
    """After a long step (a catch-up), short steps move finality on. A reorg above the finalized
    block but below every block those short steps stored must still be repaired, not refused as
    one beyond finality: each step keeps the block at the new finalized height as a fork point."""
    common = fork.anchors(1, "common")
    fork.rpc.call("anvil_mine", [hex(190)])
    snapshot = fork.snapshot()
    fork_point = fork.rpc.block_number()
    fork.rpc.call("anvil_mine", [hex(10)])
    fork.indexer.sync()  # one long step
    for _ in range(3):
        fork.rpc.call("anvil_mine", [hex(10)])
        fork.indexer.sync()  # short steps: finality moves on past the long step's final block
    state = checkpoint(fork.indexer.engine)
    assert state["finalized_block"] < fork_point < state["block_number"] - 30
    fork.revert(snapshot)
    canonical = fork.anchors(1, "canonical")  # a block unlike the orphaned one, then more
    fork.rpc.call("anvil_mine", [hex(45)])
    fork.indexer.sync()
    [(orphaned_tip, repaired_from)] = fork.indexer.status.reorgs
    assert orphaned_tip == state["block_number"]
    assert state["finalized_block"] <= repaired_from <= fork_point
    assert fork.mirrored_roots() == common + canonical
    fork.assert_mirror_equals_the_chain()


def shorter_chain(fork: Fork) -> tuple[int, list[bytes]]:
    """Orphans three mirrored blocks and replaces them with one: the head is below the checkpoint."""
    common = fork.anchors(2, "common")
    fork_point = fork.indexer.sync().indexed_block
    snapshot = fork.snapshot()
    fork.anchors(3, "orphaned")
    fork.indexer.sync()
    fork.revert(snapshot)
    return fork_point, common + fork.anchors(1, "canonical")


def test_a_reorg_to_a_shorter_chain_is_repaired_at_once(fork: Fork) -> None:
    fork_point, roots = shorter_chain(fork)
    step = fork.indexer.step()  # the checkpoint block no longer exists: roll back at once
    assert (step.last_block, step.reorged_to) == (fork_point, fork_point)
    assert fork.mirrored_roots() == roots[:-1]  # the new branch's anchor comes with the next step
    fork.indexer.sync()
    assert fork.mirrored_roots() == roots
