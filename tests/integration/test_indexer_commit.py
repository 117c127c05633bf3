"""A sync step's commit is the one moment it takes effect: the checkpoint carries the chain head and
finalized block the step read, in the same transaction as the rows it covers, and a commit that
fails (a full disk, a database that went away) leaves the mirror and the indexer's status as they
were. Real anvil, real SQLite files and real PostgreSQL databases.

On SQLite the commit is failed the way a full disk fails it: the driver raises ``database or disk is
full`` (an injected ``sqlite3.OperationalError``: no test can fill a disk safely). On PostgreSQL the
failure is real: just before the COMMIT goes out, another connection terminates the step's backend.
"""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from chain.core.verify import ChainHead
from chain.rpc import RpcClient
from indexer.reader import checkpoint_head, checkpoint_record
from indexer.sync import Indexer, SyncStatus
from tests.integration.conftest import Deployed, on_both_backends
from tests.integration.indexer_fixtures import checkpoint, digest, new_indexer

pytestmark = on_both_backends


@contextmanager
def failing_commits(engine: Engine) -> Iterator[list[int]]:
    """Every COMMIT on ``engine`` fails while inside; yields the list of commits it failed."""
    failed: list[int] = []
    admin = create_engine(engine.url, poolclass=NullPool)

    def fail(connection: Any) -> None:
        failed.append(1)
        if engine.dialect.name == "sqlite":
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full"))
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with admin.connect() as other:  # the server goes away under this connection's COMMIT
            # With a timeout, it returns once the backend has exited (PostgreSQL 14 and later).
            ended = other.exec_driver_sql("SELECT pg_terminate_backend(%(pid)s, 10000)", {"pid": pid})
            assert ended.scalar()

    event.listen(engine, "commit", fail)
    try:
        yield failed
    finally:
        event.remove(engine, "commit", fail)
        admin.dispose()


def chain_finalized(rpc: RpcClient, confirmations: int) -> int:
    """What the indexer takes as final: by depth, and by the tag (anvil puts it at head - 64)."""
    head = rpc.block_number()
    tagged = int(rpc.call("eth_getBlockByNumber", ["finalized", False])["number"], 16)
    return min(head - confirmations + 1, tagged)


def snapshot(indexer: Indexer) -> tuple[SyncStatus, int, dict[str, Any]]:
    return copy.deepcopy(indexer.status), indexer.breaker.failures, checkpoint(indexer.engine)


@pytest.fixture
def indexer(mirror_url: str, rpc: RpcClient, registry: Deployed) -> Iterator[Indexer]:
    indexer = new_indexer(mirror_url, rpc, registry.address, registry.block)
    indexer.check_startup()
    yield indexer
    indexer.close()
    indexer.engine.dispose()


def test_the_checkpoint_carries_the_head_and_finality_the_step_read(
    indexer: Indexer, rpc: RpcClient, registry: Deployed
) -> None:
    registry.owner.register_issuer(registry.issuer.sender.signer.address, "Uni", "")
    rpc.call("anvil_mine", [hex(80)])
    result = indexer.step(to_block=registry.block + 1)  # stops short of the head it read
    head = rpc.block_number()
    row = checkpoint(indexer.engine)
    assert row["block_number"] == registry.block + 1
    assert result.head == registry.block + 1
    assert row["chain_head_block"] == head
    final = chain_finalized(rpc, indexer.confirmations)
    assert row["chain_finalized_block"] == final > registry.block + 1
    assert row["finalized_block"] == registry.block + 1  # the mirror's own: never above its block
    with indexer.engine.connect() as connection:
        assert checkpoint_head(connection) == ChainHead(head, registry.block + 1)
        record = checkpoint_record(connection)
    assert record is not None
    assert (record["chain_head_block"], record["chain_finalized_block"]) == (head, final)

    indexer.step()
    rpc.call("anvil_mine", [hex(3)])
    indexer.step()  # nothing new to read (or only empty blocks): the head still moves with it
    assert checkpoint(indexer.engine)["chain_head_block"] == rpc.block_number()


def test_a_commit_that_fails_changes_neither_the_status_nor_the_checkpoint(
    indexer: Indexer, rpc: RpcClient, registry: Deployed
) -> None:
    registry.owner.register_issuer(registry.issuer.sender.signer.address, "Uni", "")
    indexer.step()
    indexer.breaker.failures = 2  # earlier failures the failed step must not clear
    registry.issuer.anchor(digest("commit/1"), 1)
    rpc.call("anvil_mine", [hex(80)])
    before = snapshot(indexer)

    with failing_commits(indexer.engine) as failed, pytest.raises(OperationalError):
        indexer.step()  # rows, blocks and checkpoint written; only the COMMIT fails
    assert failed
    assert snapshot(indexer) == before

    rpc.call("anvil_mine", [hex(5)])
    with failing_commits(indexer.engine), pytest.raises(OperationalError):
        indexer.step()  # nothing new to read but the head: that commit fails too
    assert snapshot(indexer) == before

    result = indexer.step()  # the cause gone: the step commits, and only now the status moves
    status = indexer.status
    assert result.events == 1
    assert (status.head, status.indexed_block, status.events_indexed) == (
        result.head,
        result.last_block,
        before[0].events_indexed + 1,
    )
    assert status.finalized_block == checkpoint(indexer.engine)["finalized_block"] > before[0].finalized_block
    assert indexer.breaker.failures == 0
    assert checkpoint(indexer.engine)["chain_head_block"] == rpc.block_number()
