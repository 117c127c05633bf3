"""Endpoints that lie: a second endpoint in quorum, and what the accumulators catch on their own.

The liar is the fault-injecting proxy in front of the same anvil, so the honest answers are real.
Nothing a lie touches may be committed: the mirror stays at its last checkpoint (or empty). A
*consistent* liar (every block hash faked, in headers and logs alike) passes a lone indexer's own
checks; quorum refuses it, and without quorum a reconciliation against an honest endpoint names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.rpc import RpcClient
from indexer.errors import ChainMoved, MirrorDivergence, QuorumDisagreement
from indexer.reconcile import Reconciler
from indexer.schema import CheckpointRow
from indexer.sync import Indexer
from tests.integration.conftest import Deployed
from tests.integration.indexer_fixtures import (
    FAST_RETRY,
    ISSUER_A,
    ISSUER_B,
    OWNER,
    BlockBuilder,
    assert_accumulators_match_the_contract,
    chain_logs,
    digest,
    manual_mining,
    mirror_rows,
    new_indexer,
    reference_rows,
    sqlite_url,
)
from tests.tools.rpc_proxy import Lie, RpcProxy


@dataclass
class Scene:
    rpc: RpcClient
    registry: Deployed
    liar: RpcClient
    proxy: RpcProxy
    tmp_path: Path

    def indexer(self, rpc: RpcClient, quorum: RpcClient | None = None, name: str = "m.db") -> Indexer:
        url = sqlite_url(self.tmp_path, name)
        return new_indexer(url, rpc, self.registry.address, self.registry.block, quorum=quorum)

    def assert_mirror_equals_the_chain(self, indexer: Indexer, head: int) -> None:
        logs = chain_logs(self.rpc, self.registry.address, self.registry.block, head)
        assert mirror_rows(indexer.engine) == reference_rows(self.registry.owner.abi, logs)
        assert_accumulators_match_the_contract(self.rpc, self.registry.address, indexer.engine)


def committed_block(indexer: Indexer) -> int | None:
    with Session(indexer.engine) as session:
        checkpoint = session.get(CheckpointRow, 1)
        return None if checkpoint is None else checkpoint.block_number


@pytest.fixture
def scene(anvil: DevChain, rpc: RpcClient, registry: Deployed, tmp_path: Path) -> Iterator[Scene]:
    """Two issuers anchoring in six blocks, and a proxy (honest until told otherwise)."""
    with manual_mining(rpc):
        builder = BlockBuilder(rpc, registry.address, registry.owner.abi)
        for account in (ISSUER_A, ISSUER_B):
            builder.send(OWNER, "registerIssuer", builder.address(account), f"Issuer {account}", "")
        builder.mine()
        for block in range(6):
            for account in (ISSUER_A, ISSUER_B):
                builder.send(account, "anchor", digest(f"lies/{block}/{account}"), 1, "")
            builder.mine()
    with RpcProxy(anvil.rpc_url, seed=7) as proxy, RpcClient([proxy.url], policy=FAST_RETRY) as liar:
        yield Scene(rpc, registry, liar, proxy, tmp_path)


def test_quorum_refuses_blocks_a_second_endpoint_disagrees_on(scene: Scene) -> None:
    scene.proxy.lie_block_hashes = True
    indexer = scene.indexer(scene.rpc, quorum=scene.liar)
    for attempt in (1, 2):
        with pytest.raises(QuorumDisagreement):
            indexer.step()
        assert indexer.status.quorum_disagreements == attempt
        assert committed_block(indexer) is None  # not even the initial checkpoint
        assert all(not rows for rows in mirror_rows(indexer.engine).values())
    assert scene.proxy.injected[Lie.BLOCK_HASH] > 0

    scene.proxy.lie_block_hashes = False  # the endpoints agree again
    status = indexer.sync()
    assert status.quorum_disagreements == 2
    scene.assert_mirror_equals_the_chain(indexer, status.indexed_block)


def test_quorum_disagreement_after_progress_keeps_the_last_checkpoint(scene: Scene) -> None:
    indexer = scene.indexer(scene.rpc, quorum=scene.liar)
    head = scene.rpc.block_number()
    indexer.sync(head - 3)
    before = mirror_rows(indexer.engine)
    scene.proxy.lie_block_hashes = True
    with pytest.raises(QuorumDisagreement):
        indexer.step()
    assert committed_block(indexer) == head - 3
    assert mirror_rows(indexer.engine) == before


def test_a_primary_lying_about_hashes_commits_nothing(scene: Scene) -> None:
    scene.proxy.lie_block_hashes = True
    indexer = scene.indexer(scene.liar, quorum=scene.rpc)
    with pytest.raises(ChainMoved):  # its headers contradict the block hashes its own logs carry
        indexer.step()
    assert committed_block(indexer) is None


def test_omitted_logs_break_the_accumulator_chain(scene: Scene) -> None:
    scene.proxy.omit_logs_every = 4
    indexer = scene.indexer(scene.liar)
    with pytest.raises(MirrorDivergence):
        indexer.step()
    assert scene.proxy.injected[Lie.OMITTED_LOG] > 0
    assert committed_block(indexer) is None


def test_a_stale_head_only_delays_the_mirror(scene: Scene) -> None:
    head = scene.rpc.block_number()
    scene.proxy.stale_head = 4
    indexer = scene.indexer(scene.liar)
    assert indexer.sync().indexed_block == head - 4
    assert committed_block(indexer) == head - 4
    scene.assert_mirror_equals_the_chain(indexer, head - 4)

    scene.proxy.stale_head = 0
    assert indexer.sync().indexed_block == head
    scene.assert_mirror_equals_the_chain(indexer, head)


def lie_consistently(proxy: RpcProxy) -> None:
    proxy.lie_block_hashes = proxy.consistent_lies = True


@pytest.mark.parametrize("liar_is", ["primary", "quorum"])
def test_quorum_keeps_the_mirror_correct_against_a_consistent_liar(scene: Scene, liar_is: str) -> None:
    lie_consistently(scene.proxy)
    primary, second = (scene.liar, scene.rpc) if liar_is == "primary" else (scene.rpc, scene.liar)
    indexer = scene.indexer(primary, quorum=second)
    with pytest.raises(QuorumDisagreement):
        indexer.step()
    assert indexer.status.quorum_disagreements == 1  # reported (the node shows it in /status, /metrics)
    assert committed_block(indexer) is None

    scene.proxy.behave()
    head = indexer.sync().indexed_block
    scene.assert_mirror_equals_the_chain(indexer, head)


def test_without_quorum_a_consistent_liar_is_caught_by_reconciliation(scene: Scene) -> None:
    lie_consistently(scene.proxy)
    indexer = scene.indexer(scene.liar)
    head = indexer.sync().indexed_block  # every check a lone indexer can make passes
    assert scene.proxy.injected[Lie.BLOCK_HASH] > 0

    lied = Reconciler(indexer.engine, scene.liar, scene.registry.address, DEV_CHAIN_ID).run(
        scene.registry.block, head
    )
    assert lied.clean  # the liar agrees with itself
    report = Reconciler(indexer.engine, scene.rpc, scene.registry.address, DEV_CHAIN_ID).run(
        scene.registry.block, head
    )
    assert not report.clean
    blocks = {drift.block_number for drift in report.drifts if drift.kind == "block_hash"}
    assert len(blocks) >= 7  # the issuers' registration block and six anchoring blocks, at least
    rows = [drift for drift in report.drifts if drift.kind != "block_hash"]
    assert rows
    assert {(drift.kind, drift.field) for drift in rows} == {("mismatch", "block_hash")}
