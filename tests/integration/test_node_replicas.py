"""Scale-out: one node writes the mirror, replicas (FINVAULT_NODE_REPLICA) serve from it, on SQLite
and PostgreSQL. A replica vouches exactly when its writer would: it refuses while the writer finds
the mirror diverged, and goes stale when the writer stops; a second writer is refused at start."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection, create_engine, delete, func, select, update
from sqlalchemy.pool import NullPool

from chain.core.verify import Policy, Status
from chain.dev.devchain import DevChain
from chain.networks import DEV_CHAIN_ID
from chain.rpc import RpcClient
from indexer.db import open_mirror
from indexer.schema import AnchorRow, CheckpointRow
from node.mirror import MirrorView
from node.state import StatePublisher, StateReader, SyncSnapshot
from tests.integration.conftest import Deployed, MirrorBackend, on_both_backends, run_finvault
from tests.integration.indexer_fixtures import new_indexer
from tests.integration.node_fixtures import FINALITY_DEPTH, issue, start_node, verdict_when
from tests.integration.test_node_trust import block_hash, refusal, resync

#: Both nodes sign and check pagination cursors alike, as replicas behind one balancer must.
SHARED = {"FINVAULT_ACCUMULATOR_CHECK_INTERVAL": "0.5", "FINVAULT_CURSOR_SECRET": "replicas-" + "s" * 32}
REPLICA = {**SHARED, "FINVAULT_NODE_REPLICA": "true", "FINVAULT_MAX_STALENESS": "3"}
#: On PostgreSQL (the production topology) the replica forks two workers; on SQLite it serves alone.
REPLICA_WORKERS = {"sqlite": "1", "postgresql": "2"}


@on_both_backends
@pytest.mark.slow(seconds=25)
def test_a_replica_vouches_exactly_when_its_writer_does(
    anvil: DevChain,
    registry: Deployed,
    rpc: RpcClient,
    tmp_path: Path,
    mirror_url: str,
    mirror_backend: MirrorBackend,
) -> None:
    replica_env = {**REPLICA, "FINVAULT_WORKERS": REPLICA_WORKERS[mirror_backend.name]}
    issued = issue(registry.owner, registry.issuer, seed="replicas")
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    (tmp_path / "writer").mkdir()
    (tmp_path / "replica").mkdir()
    engine = create_engine(mirror_url, poolclass=NullPool)
    try:
        with (
            start_node(
                anvil.rpc_url, registry.address, tmp_path / "writer", env=SHARED, database_url=mirror_url
            ) as writer,
            httpx.Client(base_url=writer.url, timeout=30) as writer_client,
        ):
            verdict_when(writer_client, issued.receipts[0], "VALID")
            with (
                start_node(
                    anvil.rpc_url,
                    registry.address,
                    tmp_path / "replica",
                    env=replica_env,
                    database_url=mirror_url,
                ) as replica,
                httpx.Client(base_url=replica.url, timeout=30) as client,
            ):
                verdict = verdict_when(client, issued.receipts[1], "VALID")
                assert verdict["as_of"]["block_hash"] == block_hash(rpc, verdict["as_of"]["block_number"])
                assert client.get("/ready").status_code == 200

                second = run_finvault(
                    "node", "--db", mirror_url, "--rpc", anvil.rpc_url, "--registry", registry.address,
                    "--port", "0", env={"FINVAULT_CHAIN_ID": "31337"}, timeout=60,
                )  # fmt: skip
                assert second.returncode == 1
                assert "another indexer is already writing the mirror" in second.stderr

                root = bytes.fromhex(issued.root[2:])
                with engine.begin() as db:
                    assert db.execute(delete(AnchorRow).where(AnchorRow.root == root)).rowcount == 1
                refusal(client, issued, "mirror_diverged")  # the writer found it; the replica heeds it
                resync(anvil, registry.address, mirror_url, issued.block)
                verdict_when(client, issued.receipts[0], "VALID")
                verdict_when(writer_client, issued.receipts[0], "VALID")

                writer.stop()  # the writer is gone: the replica's mirror recedes into staleness
                body = refusal(client, issued, "mirror_stale")
                assert "last reached the chain head" in body["error"]["message"]
    finally:
        engine.dispose()


def test_a_replica_refuses_a_mirror_no_writer_has_made(
    anvil: DevChain, registry: Deployed, mirror_url: str
) -> None:
    done = run_finvault(
        "node", "--db", mirror_url, "--rpc", anvil.rpc_url, "--registry", registry.address, "--port", "0",
        env={"FINVAULT_CHAIN_ID": "31337", "FINVAULT_NODE_REPLICA": "true"}, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "start its writer" in done.stderr


@on_both_backends
def test_a_replica_reads_state_and_facts_in_one_snapshot(
    anvil: DevChain, registry: Deployed, rpc: RpcClient, mirror_url: str
) -> None:
    """A write that commits between a replica's reading of the state and of its facts is not seen:
    the anchor a verdict uses is the one of the block the verdict names."""
    issued = issue(registry.owner, registry.issuer, seed="snapshot")
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    indexer = new_indexer(mirror_url, rpc, registry.address, registry.block)
    indexer.sync()
    indexer.close()
    status = indexer.status
    writer = SyncSnapshot(
        head=status.head, finalized_block=status.finalized_block, running=True, caught_up_at=time.monotonic()
    )
    StatePublisher(indexer.engine).publish(writer)
    other = create_engine(mirror_url, poolclass=NullPool)
    root = bytes.fromhex(issued.root[2:])

    def state_then_a_write(connection: Connection) -> SyncSnapshot:
        state = StateReader().read(connection)
        with other.begin() as db:  # another process deletes the anchor and moves the checkpoint
            db.execute(delete(AnchorRow).where(AnchorRow.root == root))
            db.execute(update(CheckpointRow).values(block_number=CheckpointRow.block_number + 1))
        return state

    reader = open_mirror(mirror_url)
    try:
        view = MirrorView(reader, DEV_CHAIN_ID, registry.address, state_then_a_write)
        verdict, state = view.verify(issued.receipts[0].to_json(), datetime.now(UTC), Policy(confirmations=1))
        assert verdict.status is Status.VALID  # the anchor of the snapshot, not the deletion after it
        assert state.indexed_block == indexer.status.indexed_block
        with other.connect() as db:
            assert db.scalar(select(func.count()).select_from(AnchorRow).where(AnchorRow.root == root)) == 0
    finally:
        reader.dispose()
        other.dispose()
        indexer.engine.dispose()


def test_a_verdict_from_cached_facts_names_its_state_and_follows_the_next_reading(
    anvil: DevChain, registry: Deployed, rpc: RpcClient, tmp_path: Path
) -> None:
    """Verifications whose facts are all cached take no read transaction while the state they last
    read is fresh (``state_seconds``): such a verdict names that state. After a commit, the next
    reading of the state takes the new revision, and facts cached under the old one go unused."""
    mirror_url = f"sqlite:///{tmp_path / 'mirror.db'}"
    issued = issue(registry.owner, registry.issuer, seed="cached")
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    indexer = new_indexer(mirror_url, rpc, registry.address, registry.block)
    indexer.sync()
    indexer.close()
    StatePublisher(indexer.engine).publish(SyncSnapshot(running=True, caught_up_at=time.monotonic()))
    reads: list[int] = []
    states = StateReader()

    def counted(connection: Connection) -> SyncSnapshot:
        reads.append(1)
        return states.read(connection)

    reader = open_mirror(mirror_url)
    view = MirrorView(reader, DEV_CHAIN_ID, registry.address, counted, state_seconds=0.5)
    now, policy = datetime.now(UTC), Policy(confirmations=1)
    try:
        verdicts = [view.verify(receipt.to_json(), now, policy) for receipt in issued.receipts]
        assert {verdict.status for verdict, _ in verdicts} == {Status.VALID}
        assert len(reads) == 1  # the rest from the state just read and the cached facts
        as_of = verdicts[0][1].indexed_block
        root = bytes.fromhex(issued.root[2:])
        with indexer.engine.begin() as db:  # as a reorg's rewind would: facts change with the revision
            db.execute(delete(AnchorRow).where(AnchorRow.root == root))
            db.execute(
                update(CheckpointRow).values(
                    revision=CheckpointRow.revision + 1, block_number=CheckpointRow.block_number + 1
                )
            )
        verdict, state = view.verify(issued.receipts[0].to_json(), now, policy)
        assert (verdict.status, state.indexed_block) == (Status.VALID, as_of)  # named: the state it used
        time.sleep(0.6)
        verdict, state = view.verify(issued.receipts[0].to_json(), now, policy)
        assert (verdict.status, state.indexed_block) == (Status.INVALID, as_of + 1)
        assert len(reads) == 2

        # A reading the process made elsewhere (/status, /ready) is what the next verification
        # goes by: never an older state than one already shown, such as a halt.
        halted = replace(state, fatal="a reorg past finality")
        view.saw(halted, time.monotonic())
        assert view.verify(issued.receipts[0].to_json(), now, policy)[1] is halted
        view.saw(state, time.monotonic() - 10)  # a reading that began earlier does not replace it
        assert view.verify(issued.receipts[0].to_json(), now, policy)[1] is halted
        assert len(reads) == 2
    finally:
        reader.dispose()
        indexer.engine.dispose()
