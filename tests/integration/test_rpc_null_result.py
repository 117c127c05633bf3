"""A provider that answers ``{"result": null}`` where a method always has a value (a node still
starting, a load balancer with no backend): an RpcError naming the method, retried and failed over
like any RPC fault, never a TypeError in whatever parses the head.

The provider is a tiny JSON-RPC server on 127.0.0.1 that answers every call with ``result: null``;
the second endpoint, where there is one, is the session's anvil.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.errors import RpcError
from chain.registry import RegistryReader
from chain.rpc import RpcClient
from chain.rpc_facts import RpcFacts
from indexer.db import open_mirror
from indexer.fetch import read_headers
from indexer.sync import TRANSIENT_ERRORS, Indexer
from tests.integration.conftest import Deployed
from tests.integration.indexer_fixtures import FAST_RETRY, sqlite_url


class NullProvider:
    """Answers every JSON-RPC call, single or batched, with ``result: null``; counts the requests."""

    def __init__(self) -> None:
        provider = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                provider.requests += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))

                def null(item: dict[str, Any]) -> dict[str, Any]:
                    return {"jsonrpc": "2.0", "id": item["id"], "result": None}

                answer = [null(item) for item in body] if isinstance(body, list) else null(body)
                raw = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def null_provider() -> Iterator[NullProvider]:
    provider = NullProvider()
    yield provider
    provider.close()


def test_a_null_head_is_an_rpc_error_naming_the_method_after_retries(null_provider: NullProvider) -> None:
    with RpcClient([null_provider.url], policy=FAST_RETRY) as rpc:
        with pytest.raises(
            RpcError, match=r"eth_blockNumber: the endpoint answered `result: null`"
        ) as raised:
            rpc.block_number()
        assert raised.value.method == "eth_blockNumber"
        assert null_provider.requests == FAST_RETRY.rounds  # retried, like any fault
        with pytest.raises(RpcError, match="eth_chainId"):
            rpc.chain_id()
        with pytest.raises(RpcError, match="eth_blockNumber"):  # in a batch too
            rpc.batch([("eth_blockNumber", []), ("eth_getBlockByNumber", ["latest", False])])
        # Where null is an answer (a block the chain does not have), it stays one.
        assert rpc.call("eth_getBlockByNumber", ["0x99999", False]) is None
        assert read_headers(rpc, [7]) == {}


def test_a_null_answer_fails_over_to_the_next_endpoint(null_provider: NullProvider, anvil: DevChain) -> None:
    with RpcClient([null_provider.url, anvil.rpc_url], policy=FAST_RETRY) as rpc:
        with RpcClient([anvil.rpc_url]) as honest:
            assert rpc.block_number() == honest.block_number()
        asked = null_provider.requests
        rpc.block_number()
        assert null_provider.requests == asked  # the endpoint that answered stays preferred


def test_a_sync_step_against_a_null_head_fails_as_a_transient_rpc_error(
    null_provider: NullProvider, registry: Deployed, tmp_path: Path
) -> None:
    with RpcClient([null_provider.url], policy=FAST_RETRY) as rpc:
        indexer = Indexer(
            open_mirror(sqlite_url(tmp_path)),
            rpc,
            chain_id=DEV_CHAIN_ID,
            registry=registry.address,
            start_block=registry.block,
        )
        try:
            with pytest.raises(RpcError, match="eth_blockNumber") as raised:
                indexer.step()
            assert isinstance(raised.value, TRANSIENT_ERRORS)
            assert indexer._finalized_tag  # a null head says nothing about the finalized tag
            assert indexer.failed(raised.value).startswith("rpc_error: eth_blockNumber: ")
            assert indexer.status.last_error == indexer.failed(raised.value)
        finally:
            indexer.close()
            indexer.engine.dispose()


def test_rpc_facts_head_against_a_null_head_is_an_rpc_error(null_provider: NullProvider) -> None:
    with RpcClient([null_provider.url], policy=FAST_RETRY) as rpc:
        facts = RpcFacts(RegistryReader(rpc, "0x" + "11" * 20), DEV_CHAIN_ID)
        with pytest.raises(RpcError, match="eth_blockNumber"):
            facts.head()
