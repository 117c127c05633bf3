"""The node's writer when its mirror cannot take a step's commit (a full disk), with a reader beside
it (in this process: the writer's loop in a thread, a reader's app under Starlette's TestClient).

The step's COMMIT fails with the driver's ``database or disk is full`` (injected: no test can fill a
disk safely). The writer's one-row state publication still commits, as it can on a full disk: a
WAL that was checkpointed is rewritten from its start, in blocks the file already has.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from chain.dev.devchain import DevChain
from chain.rpc import RpcClient
from chain.service.settings import load_settings
from node.app import create_app
from node.settings import NodeSettings
from node.writer import MirrorWriter
from tests.integration.conftest import Deployed
from tests.integration.node_fixtures import (
    FINALITY_DEPTH,
    issue,
    post_receipt,
    verdict_when,
    wait_for,
    writer_and_runtime,
)

POLL = 0.1


@pytest.fixture
def node(anvil: DevChain, registry: Deployed, tmp_path: Path) -> Iterator[tuple[MirrorWriter, TestClient]]:
    settings = load_settings(
        NodeSettings,
        rpc_urls=[anvil.rpc_url],
        registry=registry.address,
        database_url=f"sqlite:///{tmp_path / 'mirror.db'}",
        poll_interval=POLL,
    )
    with writer_and_runtime(settings) as (writer, runtime), TestClient(create_app(runtime)) as client:
        yield writer, client


class FullDisk:
    """Fails the COMMIT of every sync step the writer makes while ``full`` is set."""

    def __init__(self, writer: MirrorWriter) -> None:
        self.full = threading.Event()
        self.failed = 0
        self._in_step = threading.local()
        indexer = writer.indexer
        step = indexer.step

        def marked_step(*args: Any, **kwargs: Any) -> Any:
            self._in_step.on = True
            try:
                return step(*args, **kwargs)
            finally:
                self._in_step.on = False

        indexer.step = marked_step  # type: ignore[method-assign]
        event.listen(indexer.engine, "commit", self._commit)

    def _commit(self, connection: Any) -> None:
        if self.full.is_set() and getattr(self._in_step, "on", False):
            self.failed += 1
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full"))


def test_a_full_disk_changes_no_verdict_logs_twice_and_recovers_within_a_poll(
    node: tuple[MirrorWriter, TestClient],
    registry: Deployed,
    rpc: RpcClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="indexer.sync")
    writer, client = node
    disk = FullDisk(writer)
    issued = issue(registry.owner, registry.issuer, seed="full-disk")
    receipt = issued.receipts[0]
    pending = verdict_when(client, receipt, "PENDING")
    as_of = pending["as_of"]["block_number"]

    disk.full.set()
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH + 36)])  # enough to make the anchor final, if committed
    deadline = time.monotonic() + 2.0
    answers = 0
    while time.monotonic() < deadline:
        verdict = post_receipt(client, receipt)
        # No verdict contradicts its as_of: the mirror still stands where it stood.
        assert verdict["status"] == "PENDING", verdict
        assert verdict["as_of"]["block_number"] == as_of
        assert verdict["anchor"]["confirmations"] <= as_of - issued.block + 1
        answers += 1
    assert disk.failed >= 5, "the writer did not keep trying"
    status = client.get("/status").json()
    assert "database or disk is full" in status["last_error"], status
    assert status["indexed_block"] == as_of
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert any("database or disk is full" in reason for reason in ready.json()["reasons"]), ready.json()

    disk.full.clear()
    cleared = time.monotonic()
    verdict_when(client, receipt, "VALID", timeout=10)
    back = time.monotonic() - cleared
    assert back < 2.0, f"VALID came back {back:.1f} s after the disk was freed (poll {POLL} s)"
    wait_for(lambda: client.get("/status").json(), lambda s: s["last_error"] is None, what="a clear status")

    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "indexer.sync"]
    failing = [line for line in lines if "failing" in line[1]]
    recovered = [line for line in lines if "recovered" in line[1]]
    assert failing == [("WARNING", "sync step failing: database or disk is full")], lines
    assert len(recovered) == 1, lines
    assert recovered[0][0] == "INFO", lines
    assert f"{disk.failed} failed attempts" in recovered[0][1], lines
