"""RpcClient behaviour under provider faults a live anvil cannot produce (429, 5xx, bad JSON).

The provider side is an httpx MockTransport replaying recorded-style replies; the client is real.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from chain.errors import ChainMismatch, ConfigError, RpcError, RpcUnavailable
from chain.rpc import RetryPolicy, RpcClient, redact_url

Handler = Callable[[httpx.Request], httpx.Response]


def ok(result: object) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": result})

    return handle


class Provider:
    """Routes by host and records which host was asked, in order."""

    def __init__(self, routes: dict[str, list[Handler]]) -> None:
        self.routes = routes
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.asked.append(host)
        handlers = self.routes[host]
        handler = handlers.pop(0) if len(handlers) > 1 else handlers[0]
        return handler(request)


def client(provider: Provider, hosts: list[str], sleeps: list[float], rounds: int = 3) -> RpcClient:
    return RpcClient(
        [f"https://{h}/v3/SECRET-KEY" for h in hosts],
        policy=RetryPolicy(rounds=rounds, backoff_initial=0.1, backoff_max=5.0),
        sleep=sleeps.append,
        transport=httpx.MockTransport(provider),
    )


def status(code: int, headers: dict[str, str] | None = None) -> Handler:
    return lambda request: httpx.Response(code, headers=headers, text="busy")


def test_redact_url_hides_keys_in_path_query_and_userinfo() -> None:
    assert redact_url("https://polygon.example/v3/abc123") == "https://polygon.example/***"
    assert redact_url("https://user:pw@rpc.example:8443/?key=abc") == "https://rpc.example:8443/***"
    assert redact_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"


@pytest.mark.parametrize("fault", [status(503), status(502), status(500), status(429)])
def test_fails_over_to_next_endpoint_and_keeps_it_preferred(fault: Handler) -> None:
    provider = Provider({"a": [fault], "b": [ok("0x10")]})
    sleeps: list[float] = []
    rpc = client(provider, ["a", "b"], sleeps)
    assert rpc.block_number() == 16
    assert rpc.block_number() == 16
    assert provider.asked == ["a", "b", "b"]  # the healthy endpoint stays first
    assert sleeps == []


def test_retry_after_is_honoured_between_rounds() -> None:
    provider = Provider({"a": [status(429, {"Retry-After": "2"}), ok("0x1")]})
    sleeps: list[float] = []
    assert client(provider, ["a"], sleeps).block_number() == 1
    assert len(sleeps) == 1
    assert sleeps[0] >= 2.0


@pytest.mark.parametrize(
    "broken",
    [
        lambda r: httpx.Response(200, text="{not json"),
        lambda r: httpx.Response(200, json={"jsonrpc": "2.0", "id": 1}),
        lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=r)),
        lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)),
    ],
    ids=["invalid-json", "no-result", "timeout", "refused"],
)
def test_transient_faults_are_retried_with_backoff(broken: Handler) -> None:
    provider = Provider({"a": [broken, ok("0x2")]})
    sleeps: list[float] = []
    assert client(provider, ["a"], sleeps).block_number() == 2
    assert len(sleeps) == 1
    assert 0 < sleeps[0] <= 5.0


def test_json_rpc_error_is_raised_at_once_with_raw_code_and_data() -> None:
    def reverted(request: httpx.Request) -> httpx.Response:
        error = {"code": 3, "message": "execution reverted", "data": "0xdeadbeef"}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": 1, "error": error})

    provider = Provider({"a": [reverted], "b": [ok("0x1")]})
    with pytest.raises(RpcError) as caught:
        client(provider, ["a", "b"], []).call("eth_call", [{}])
    assert (caught.value.rpc_code, caught.value.data) == (3, "0xdeadbeef")
    assert provider.asked == ["a"]  # an answer is not an outage: no failover


def test_gives_up_after_all_rounds_without_leaking_the_url_secret() -> None:
    provider = Provider({"a": [status(503)], "b": [status(502)]})
    sleeps: list[float] = []
    with pytest.raises(RpcUnavailable) as caught:
        client(provider, ["a", "b"], sleeps, rounds=3).chain_id()
    assert provider.asked == ["a", "b"] * 3
    assert len(sleeps) == 2
    assert sleeps[1] >= sleeps[0] * 0.5  # exponential with jitter
    assert "SECRET-KEY" not in str(caught.value)
    assert "no RPC endpoint answered" in str(caught.value)


def test_chain_id_check() -> None:
    rpc = client(Provider({"a": [ok("0x89")]}), ["a"], [])
    assert rpc.require_chain_id(137) == 137
    with pytest.raises(ChainMismatch, match="serves chain id 137, but chain id 31337 is configured"):
        rpc.require_chain_id(31337)


@pytest.mark.parametrize("urls", [[], ["ws://127.0.0.1:8546"], ["127.0.0.1:8545"]])
def test_rejects_unusable_endpoint_lists(urls: list[str]) -> None:
    with pytest.raises(ConfigError):
        RpcClient(urls)


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(backoff_initial=1.0, backoff_max=4.0)
    delays = [policy.delay(i, None) for i in range(6)]
    assert all(0.5 <= d <= 4.0 for d in delays)
    assert policy.delay(10, None) >= 2.0  # at the cap, jitter keeps at least half
    assert policy.delay(0, 30.0) == 30.0  # a provider's Retry-After wins over our backoff
    assert policy.delay(0, 3600.0) == policy.retry_after_max
