"""The fault-injecting proxy in front of anvil: every fault and lie does what the indexer tests rely on.

Faults are checked twice: against a raw HTTP client (the exact symptom on the wire) and against
our RpcClient (which must ride each of them out).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import httpx
import pytest

from chain.dev.devchain import DevChain
from chain.rpc import RetryPolicy, RpcClient
from tests.integration.conftest import Deployed
from tests.integration.indexer_fixtures import ISSUER_A, OWNER, BlockBuilder, digest, manual_mining
from tests.tools.rpc_proxy import TOO_MANY_RESULTS, Fault, FaultKind, Lie, RpcProxy, fake_hash

CLIENT_TIMEOUT = 0.3
BLOCK_NUMBER = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
Symptom = Callable[[httpx.Client, str], None]


@pytest.fixture
def proxy(anvil: DevChain) -> Iterator[RpcProxy]:
    with RpcProxy(anvil.rpc_url, seed=20261123) as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One raw client for the module: a new httpx client per request costs ~30 ms of TLS setup."""
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        yield client


def raises(error: type[Exception]) -> Symptom:
    def check(http: httpx.Client, url: str) -> None:
        with pytest.raises(error):
            http.post(url, json=BLOCK_NUMBER)

    return check


def answers(status: int, *, json_ok: bool = True, retry_after: str | None = None) -> Symptom:
    def check(http: httpx.Client, url: str) -> None:
        response = http.post(url, json=BLOCK_NUMBER)
        assert response.status_code == status
        if retry_after is not None:
            assert response.headers["retry-after"] == retry_after
        if not json_ok:
            with pytest.raises(json.JSONDecodeError):
                response.json()

    return check


SYMPTOMS = {
    "timeout": (Fault(FaultKind.TIMEOUT, hold=2.0), raises(httpx.ReadTimeout)),
    "drop": (Fault(FaultKind.DROP), raises(httpx.RemoteProtocolError)),
    "429": (Fault(FaultKind.RATE_LIMITED, retry_after="7"), answers(429, retry_after="7")),
    "500": (Fault(FaultKind.SERVER_ERROR, status=500), answers(500)),
    "502": (Fault(FaultKind.SERVER_ERROR, status=502), answers(502)),
    "503": (Fault(FaultKind.SERVER_ERROR, status=503), answers(503)),
    "truncated": (Fault(FaultKind.TRUNCATED), raises(httpx.RemoteProtocolError)),
    "invalid json": (Fault(FaultKind.INVALID_JSON), answers(200, json_ok=False)),
}


@pytest.mark.parametrize(("fault", "symptom"), list(SYMPTOMS.values()), ids=list(SYMPTOMS))
def test_a_first_n_fault_shows_its_symptom_then_stops(
    proxy: RpcProxy, rpc: RpcClient, http: httpx.Client, fault: Fault, symptom: Symptom
) -> None:
    proxy.set_faults("eth_blockNumber", replace(fault, first=1))
    symptom(http, proxy.url)
    healthy = http.post(proxy.url, json=BLOCK_NUMBER)
    assert healthy.status_code == 200
    assert int(healthy.json()["result"], 16) == rpc.block_number()
    assert proxy.injected == {fault.kind: 1}


def test_rpc_client_rides_out_one_of_each_fault(proxy: RpcProxy, rpc: RpcClient) -> None:
    faults = [Fault(kind, first=1, hold=2.0) for kind in FaultKind]
    proxy.set_faults("eth_chainId", *faults)
    policy = RetryPolicy(
        rounds=len(faults) + 1, backoff_initial=0.001, backoff_max=0.01, timeout=CLIENT_TIMEOUT
    )
    with RpcClient([proxy.url], policy=policy) as client:
        assert client.chain_id() == rpc.chain_id()
    assert proxy.injected == dict.fromkeys(FaultKind, 1)
    assert proxy.calls["eth_chainId"] == len(faults) + 1


def statuses(http: httpx.Client, upstream: str, seed: int, calls: int = 40) -> list[int]:
    with RpcProxy(upstream, seed=seed) as proxy:
        proxy.set_faults("*", Fault(FaultKind.SERVER_ERROR, probability=0.5))
        return [http.post(proxy.url, json=BLOCK_NUMBER).status_code for _ in range(calls)]


def test_probabilistic_faults_are_reproducible_from_the_seed(anvil: DevChain, http: httpx.Client) -> None:
    first, again, other = (statuses(http, anvil.rpc_url, seed) for seed in (7, 7, 8))
    assert first == again
    assert first != other
    assert set(first) == {200, 503}


def test_faults_are_per_method_and_change_at_run_time(proxy: RpcProxy, http: httpx.Client) -> None:
    proxy.set_faults("eth_getLogs", Fault(FaultKind.SERVER_ERROR))
    assert http.post(proxy.url, json=BLOCK_NUMBER).status_code == 200
    get_logs = {**BLOCK_NUMBER, "method": "eth_getLogs", "params": [{"fromBlock": "0x0", "toBlock": "0x0"}]}
    assert http.post(proxy.url, json=get_logs).status_code == 503
    proxy.set_faults("eth_getLogs")
    assert http.post(proxy.url, json=get_logs).status_code == 200
    proxy.set_faults("*", Fault(FaultKind.RATE_LIMITED))
    assert http.post(proxy.url, json=BLOCK_NUMBER).status_code == 429
    proxy.behave()
    assert http.post(proxy.url, json=BLOCK_NUMBER).status_code == 200
    assert proxy.calls == {"eth_blockNumber": 3, "eth_getLogs": 2}


def test_latency_beyond_the_client_timeout_is_a_timeout(proxy: RpcProxy, http: httpx.Client) -> None:
    proxy.set_latency("eth_blockNumber", 2.0)
    with pytest.raises(httpx.ReadTimeout):
        http.post(proxy.url, json=BLOCK_NUMBER)
    proxy.set_latency("eth_blockNumber", 0.0)
    assert http.post(proxy.url, json=BLOCK_NUMBER).status_code == 200


def test_batches_get_limits_and_lies_item_by_item(
    proxy: RpcProxy, rpc: RpcClient, http: httpx.Client
) -> None:
    rpc.call("anvil_mine", ["0x5"])
    head = rpc.block_number()
    proxy.stale_head = 3
    proxy.max_log_range = 2
    batch = [
        {
            "jsonrpc": "2.0",
            "id": 10,
            "method": "eth_getLogs",
            "params": [{"fromBlock": "0x1", "toBlock": "0x3"}],
        },
        {"jsonrpc": "2.0", "id": 11, "method": "eth_blockNumber", "params": []},
        {
            "jsonrpc": "2.0",
            "id": 12,
            "method": "eth_getLogs",
            "params": [{"fromBlock": "0x1", "toBlock": "0x2"}],
        },
        {"jsonrpc": "2.0", "id": 13, "method": "eth_chainId", "params": []},
    ]
    answer = http.post(proxy.url, json=batch).json()
    assert [item["id"] for item in answer] == [10, 11, 12, 13]
    assert answer[0]["error"] == TOO_MANY_RESULTS
    assert int(answer[1]["result"], 16) == head - 3
    assert answer[2]["result"] == []
    assert int(answer[3]["result"], 16) == rpc.chain_id()
    assert [(r.first, r.last, r.refused) for r in proxy.log_ranges] == [(1, 3, True), (1, 2, False)]
    assert proxy.injected == {Lie.TOO_MANY_RESULTS: 1, Lie.STALE_HEAD: 1}

    proxy.set_faults("eth_chainId", Fault(FaultKind.SERVER_ERROR, status=502))
    assert http.post(proxy.url, json=batch).status_code == 502  # one faulty method fails the whole exchange


def test_lies_about_block_hashes(proxy: RpcProxy, rpc: RpcClient, clean_chain: None) -> None:
    rpc.call("anvil_mine", ["0x1"])  # block 1, whatever ran before on this worker's anvil
    proxy.lie_block_hashes = True
    with RpcClient([proxy.url]) as liar:
        told = liar.call("eth_getBlockByNumber", ["0x1", False])
        both = liar.batch([("eth_getBlockByNumber", ["0x1", False]), ("eth_blockNumber", [])])
    real = rpc.call("eth_getBlockByNumber", ["0x1", False])
    assert told["hash"] == fake_hash(real["hash"]) != real["hash"]
    assert {k: v for k, v in told.items() if k != "hash"} == {k: v for k, v in real.items() if k != "hash"}
    assert both[0] == told
    assert proxy.injected == {Lie.BLOCK_HASH: 2}


def test_omits_logs(proxy: RpcProxy, rpc: RpcClient, registry: Deployed) -> None:
    builder = BlockBuilder(rpc, registry.address, registry.owner.abi)
    with manual_mining(rpc):
        builder.send(OWNER, "registerIssuer", builder.address(ISSUER_A), "A", "a")
        builder.mine()
        for i in range(6):
            builder.send(ISSUER_A, "anchor", digest(f"proxy/{i}"), 1, "")
        last = builder.mine()
    query = {"address": registry.address, "fromBlock": hex(registry.block), "toBlock": hex(last)}
    real = rpc.call("eth_getLogs", [query])
    proxy.omit_logs_every = 3
    with RpcClient([proxy.url]) as liar:
        told = liar.call("eth_getLogs", [query])
    assert len(real) == 8  # OwnershipTransferred, IssuerRegistered, 6 x Anchored
    assert told == [log for i, log in enumerate(real, start=1) if i % 3]
    assert proxy.injected == {Lie.OMITTED_LOG: 2}


def test_stop_ends_requests_being_held(anvil: DevChain, http: httpx.Client) -> None:
    proxy = RpcProxy(anvil.rpc_url)
    proxy.set_faults("*", Fault(FaultKind.TIMEOUT, hold=600.0))
    outcome: list[str] = []

    def held() -> None:
        try:
            httpx.post(proxy.url, json=BLOCK_NUMBER, timeout=60.0)
            outcome.append("answered")
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    client = threading.Thread(target=held, daemon=True)
    client.start()
    for _ in range(3_000):  # bounded: the request reaches the proxy within milliseconds
        if proxy.injected[FaultKind.TIMEOUT]:
            break
        time.sleep(0.01)
    proxy.stop()
    client.join(timeout=30.0)
    assert not client.is_alive()
    assert outcome == ["RemoteProtocolError"]
    with pytest.raises(httpx.ConnectError):
        http.post(proxy.url, json=BLOCK_NUMBER)
    proxy.stop()  # idempotent
