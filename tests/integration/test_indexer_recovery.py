"""The live loop (:meth:`Indexer.run`) is back within one poll of its endpoint: an open breaker is
reported, not waited out (its 30 s cooldown kept nodes refusing long after the cause was gone), and
the outage is logged in two lines, not one per poll. Real anvil behind the fault-injecting proxy."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.rpc import RpcClient
from indexer.db import open_mirror
from indexer.sync import CircuitBreaker, Indexer
from tests.integration.conftest import Deployed
from tests.integration.indexer_fixtures import FAST_RETRY, sqlite_url
from tests.tools.rpc_proxy import Fault, FaultKind, RpcProxy

POLL = 0.1


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until ``condition`` holds (fails the test after ``timeout``)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"still not so after {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - started


def test_the_loop_recovers_within_a_poll_of_the_endpoint_coming_back(
    anvil: DevChain, registry: Deployed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="indexer.sync")
    with RpcProxy(anvil.rpc_url, seed=5) as proxy, RpcClient([proxy.url], policy=FAST_RETRY) as rpc:
        indexer = Indexer(
            open_mirror(sqlite_url(tmp_path)),
            rpc,
            chain_id=DEV_CHAIN_ID,
            registry=registry.address,
            start_block=registry.block,
            breaker=CircuitBreaker(threshold=2, cooldown=60.0),
        )
        stop = threading.Event()
        loop = threading.Thread(target=indexer.run, args=(stop, POLL), daemon=True)
        loop.start()
        try:
            wait_for(lambda: indexer.status.indexed_block >= registry.block)
            proxy.set_faults("*", Fault(FaultKind.SERVER_ERROR, status=503))
            wait_for(lambda: indexer.breaker.open and indexer.breaker.failures >= 5)
            assert indexer.status.last_error is not None
            assert indexer.status.last_error.startswith("rpc_unavailable: ")

            proxy.behave()  # the endpoint is back
            back = wait_for(lambda: not indexer.breaker.open and indexer.status.last_error is None)
            assert back < 5.0  # a poll and a step, not the 60 s cooldown
        finally:
            stop.set()
            loop.join(timeout=10)
            indexer.close()
            indexer.engine.dispose()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "indexer.sync"]
    assert [level for level, _ in lines] == ["WARNING", "INFO"], lines
    assert lines[0][1].startswith("sync step failing: rpc_unavailable: ")
    assert lines[1][1].startswith("sync step recovered after ")
