"""The node's app in this process, for what a loopback subprocess cannot show: clients at other
addresses (metrics token, default rate limits), CORS, and the in-thread server the demo uses.

The runtime is real (anvil, the registry's code check, a SQLite mirror); only the client address
is chosen by the test, through Starlette's TestClient.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from chain.dev.devchain import DevChain
from chain.service.settings import load_settings
from node.app import create_app
from node.runtime import Runtime
from node.server import start_node_thread
from node.settings import NodeSettings
from node.writer import MirrorWriter
from tests.integration.conftest import Deployed
from tests.integration.node_fixtures import (
    FINALITY_DEPTH,
    assert_error,
    issue,
    post_receipt,
    verdict_when,
    writer_and_runtime,
)

REMOTE = ("203.0.113.7", 40000)  # TEST-NET-3: never loopback
LOCAL = ("127.0.0.1", 40001)
TOKEN = "metrics-token-0123456789abcdef"


def settings(anvil: DevChain, registry: Deployed, tmp_path: Path, **overrides: Any) -> NodeSettings:
    return load_settings(
        NodeSettings,
        rpc_urls=[anvil.rpc_url],
        registry=registry.address,
        database_url=f"sqlite:///{tmp_path / 'mirror.db'}",
        poll_interval=0.1,
        **overrides,
    )


@pytest.fixture
def runtime_factory(anvil: DevChain, registry: Deployed, tmp_path: Path) -> Iterator[Any]:
    opened = ExitStack()
    writers: list[MirrorWriter] = []

    def make(**overrides: Any) -> Runtime:
        own = tmp_path / f"node-{len(writers)}"  # a mirror of its own: a mirror has one writer
        own.mkdir()
        writer, runtime = opened.enter_context(
            writer_and_runtime(settings(anvil, registry, own, **overrides))
        )
        writers.append(writer)
        return runtime

    make.writers = writers  # type: ignore[attr-defined]
    with opened:
        yield make


def test_metrics_need_loopback_or_the_token(runtime_factory: Any) -> None:
    without_token = create_app(runtime_factory())
    assert TestClient(without_token, client=LOCAL).get("/metrics").status_code == 200
    assert_error(TestClient(without_token, client=REMOTE).get("/metrics"), 403, "forbidden")

    with_token = create_app(runtime_factory(metrics_token=TOKEN))
    remote = TestClient(with_token, client=REMOTE)
    missing = assert_error(remote.get("/metrics"), 401, "unauthorized")
    assert missing["error"]["message"]
    assert remote.get("/metrics").headers["www-authenticate"] == "Bearer"
    assert_error(
        remote.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}),
        401,
        "unauthorized",
    )
    assert_error(remote.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}), 401, "unauthorized")
    allowed = remote.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code == 200
    assert "finvault_node_sync_lag_blocks" in allowed.text
    assert TestClient(with_token, client=LOCAL).get("/metrics").status_code == 200  # loopback needs none
    # Each app has its own registry: both exported their metrics without clashing.
    assert "finvault_node_request_duration_seconds" in allowed.text


def test_rate_limits_spare_loopback_by_default(runtime_factory: Any) -> None:
    app = create_app(runtime_factory(rate_limit=1, rate_limit_burst=2))
    remote, local = TestClient(app, client=REMOTE), TestClient(app, client=LOCAL)
    assert [remote.get("/issuers").status_code for _ in range(2)] == [200, 200]
    limited = remote.get("/issuers")
    assert_error(limited, 429, "rate_limited")
    assert limited.headers["retry-after"] == "1"
    assert all(local.get("/issuers").status_code == 200 for _ in range(10))
    assert remote.get("/health").status_code == 200


def test_cors_only_for_listed_origins(runtime_factory: Any) -> None:
    app = create_app(runtime_factory(cors_origins=["https://hr.example.com"]))
    client = TestClient(app, client=REMOTE)
    allowed = client.get("/health", headers={"Origin": "https://hr.example.com"})
    assert allowed.headers["access-control-allow-origin"] == "https://hr.example.com"
    assert "x-correlation-id" in allowed.headers["access-control-expose-headers"].lower()
    other = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = client.options(
        "/verify",
        headers={
            "Origin": "https://hr.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["x-correlation-id"]
    refused = client.options(
        "/verify", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in refused.headers

    closed = TestClient(create_app(runtime_factory()), client=REMOTE)
    assert (
        "access-control-allow-origin"
        not in closed.get("/health", headers={"Origin": "https://hr.example.com"}).headers
    )


def test_the_writer_thread_feeds_the_app(runtime_factory: Any, registry: Deployed, rpc: Any) -> None:
    runtime = runtime_factory()
    with TestClient(create_app(runtime), client=LOCAL) as client:  # runs the lifespan
        issued = issue(registry.owner, registry.issuer, seed="lifespan")
        rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
        verdict_when(client, issued.receipts[0], "VALID")
        assert client.get("/ready").json()["ready"] is True
    writer = runtime_factory.writers[0]
    writer.stop()
    assert writer.health.running is False
    assert runtime.snapshot().running is False  # it said so in the mirror as it stopped


def test_node_in_a_thread(anvil: DevChain, registry: Deployed, tmp_path: Path, rpc: Any) -> None:
    """What the demo uses: the whole node (uvicorn included) in a thread of the caller."""
    issued = issue(registry.owner, registry.issuer, seed="thread")
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    with start_node_thread(settings(anvil, registry, tmp_path, port=0)) as node:
        assert node.url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=node.url) as client:
            verdict = verdict_when(client, issued.receipts[1], "VALID")
            assert post_receipt(client, issued.receipts[2])["status"] == "VALID"
        assert verdict["issuer"]["address"] == issued.issuer
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{node.url}/health", timeout=2)
