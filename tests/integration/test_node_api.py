"""``finvault node`` end to end: a real node process (uvicorn, live sync loop, SQLite mirror; a
PostgreSQL mirror too for the tests marked :data:`on_both_backends`) against the session's anvil,
checked over HTTP.

Verdicts: valid, tampered, revoked (leaf and batch), another registry's root, wrong chain,
malformed, pending until final, and an anchor dropped by a reorg. Then the listings (anchors,
issuers, revocations with signed cursors, status, metrics) and the structured errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chain.core.encoding import hex0x
from chain.core.verify import CheckName
from chain.dev.devchain import DevChain
from chain.registry import RegistryWriter, RevocationReason, deploy_registry
from chain.rpc import RpcClient
from tests.factories import make_batch
from tests.integration.conftest import Deployed, on_both_backends
from tests.integration.node_fixtures import (
    FINALITY_DEPTH,
    Issued,
    assert_error,
    issue,
    post_receipt,
    register_issuer,
    start_node,
    verdict_when,
    wait_for,
)
from tests.tools.node_process import NodeProcess

pytestmark = pytest.mark.slow  # each test here takes a second or more


@pytest.fixture
def issued(registry: Deployed) -> Issued:
    return issue(registry.owner, registry.issuer)


@pytest.fixture
def node(anvil: DevChain, issued: Issued, tmp_path: Path, mirror_url: str) -> Iterator[NodeProcess]:
    env = {"FINVAULT_BULK_LIMIT": "8"}
    with start_node(anvil.rpc_url, issued.registry, tmp_path, env=env, database_url=mirror_url) as process:
        yield process


@pytest.fixture
def client(node: NodeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node.url, timeout=30) as http:
        yield http


@on_both_backends
def test_pending_until_final_then_valid_with_evidence(
    issued: Issued, client: httpx.Client, rpc: RpcClient
) -> None:
    receipt = issued.receipts[0]
    pending = verdict_when(client, receipt, "PENDING")
    assert pending["valid"] is False
    assert pending["reasons"] == ["NOT_FINAL"]
    assert pending["anchor"]["final"] is False

    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    verdict = verdict_when(client, receipt, "VALID")
    assert verdict["valid"] is True
    assert verdict["reasons"] == []
    assert [c["name"] for c in verdict["checks"]] == [str(name) for name in CheckName]
    assert {c["outcome"] for c in verdict["checks"]} == {"pass"}
    assert verdict["issuer"] == {
        "address": issued.issuer,
        "name": "Example University",
        "uri": "https://uni.example",
        "active": True,
    }
    anchor = verdict["anchor"]
    block = rpc.call("eth_getBlockByNumber", [hex(issued.block), False])
    assert anchor["tx_hash"] == issued.tx_hash
    assert anchor["block_number"] == issued.block
    assert anchor["block_hash"] == block["hash"]
    assert anchor["root"] == issued.root
    assert anchor["final"] is True
    assert anchor["confirmations"] >= FINALITY_DEPTH
    assert anchor["anchored_at"].endswith("Z")
    assert verdict["revocation"] is None
    assert verdict["evidence"]["leaf"] == receipt.proof.leaf
    assert verdict["evidence"]["proof"] == list(receipt.proof.path)
    assert verdict["evidence"]["registry"] == issued.registry


def test_tampered_wrong_chain_and_malformed_get_verdicts(issued: Issued, client: httpx.Client) -> None:
    verdict_when(client, issued.receipts[0], "PENDING")  # the node has the anchor

    tampered = issued.receipts[1].to_json_dict()
    tampered["credential"]["credentialSubject"]["grade"] = "A+"
    verdict = post_receipt(client, tampered)
    assert verdict["status"] == "INVALID"
    assert "DIGEST_MISMATCH" in verdict["reasons"]

    elsewhere = issued.receipts[1].to_json_dict()
    elsewhere["anchor"]["chainId"] = 137
    verdict = post_receipt(client, elsewhere)
    assert verdict["status"] == "INVALID"
    assert "WRONG_CHAIN" in verdict["reasons"]

    for malformed in ('{"format": "finvault-receipt/0"}', "[1, 2]", '"a string"', "null", "42"):
        verdict = post_receipt(client, malformed)
        assert verdict["status"] == "INVALID", malformed
        assert verdict["reasons"] == ["MALFORMED"], malformed


@on_both_backends
def test_revoked_leaf_and_revoked_batch(issued: Issued, client: httpx.Client, rpc: RpcClient) -> None:
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    verdict_when(client, issued.receipts[0], "VALID")
    tree = issued.batch.tree
    leaf = issued.leaf(0)
    revoked_in = issued.writer.revoke_leaf(leaf, tree.root, tree.proof(leaf), RevocationReason.SUPERSEDED)

    verdict = verdict_when(client, issued.receipts[0], "REVOKED")
    assert verdict["reasons"] == ["LEAF_REVOKED"]
    revocation = verdict["revocation"]
    assert revocation["scope"] == "leaf"
    assert revocation["reason"] == RevocationReason.SUPERSEDED
    assert revocation["block_number"] == revoked_in.block_number
    assert revocation["tx_hash"] == revoked_in.tx_hash
    assert revocation["revoked_at"].endswith("Z")
    assert post_receipt(client, issued.receipts[1])["status"] == "VALID"  # only that certificate

    issued.writer.revoke_root(tree.root, RevocationReason.KEY_COMPROMISE)
    verdict = verdict_when(client, issued.receipts[1], "REVOKED")
    assert verdict["reasons"] == ["ROOT_REVOKED"]
    assert verdict["revocation"]["scope"] == "root"
    assert verdict["revocation"]["reason"] == RevocationReason.KEY_COMPROMISE


def test_root_from_another_registry_is_invalid(
    issued: Issued, client: httpx.Client, registry: Deployed, rpc: RpcClient
) -> None:
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    verdict_when(client, issued.receipts[0], "VALID")
    # A second registry on the same chain, where the same account anchors another batch.
    other = deploy_registry(registry.owner.sender).contract_address
    assert other is not None
    foreign = issue(
        RegistryWriter(registry.owner.sender, other),
        RegistryWriter(registry.issuer.sender, other),
        seed="elsewhere",
    )
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])

    verdict = post_receipt(client, foreign.receipts[0])
    assert verdict["status"] == "INVALID"
    assert "WRONG_CHAIN" in verdict["reasons"]  # the receipt names the other registry

    claimed = foreign.receipts[0].to_json_dict()
    claimed["anchor"]["registry"] = issued.registry  # ...or lies about it
    verdict = post_receipt(client, claimed)
    assert verdict["status"] == "INVALID"
    assert "NOT_ANCHORED" in verdict["reasons"]

    never = make_batch(1, seed="never anchored").receipt(
        0, tx_hash=hex0x(bytes(32)), block_number=1, registry=issued.registry, issuer=issued.issuer
    )
    assert "NOT_ANCHORED" in post_receipt(client, never)["reasons"]


@on_both_backends
def test_reorg_that_drops_the_anchor(
    anvil: DevChain, registry: Deployed, rpc: RpcClient, tmp_path: Path, mirror_url: str
) -> None:
    register_issuer(registry.owner, registry.issuer)
    with (
        start_node(anvil.rpc_url, registry.address, tmp_path, database_url=mirror_url) as node,
        httpx.Client(base_url=node.url) as client,
    ):
        before = rpc.call("evm_snapshot")
        issued = issue(registry.owner, registry.issuer, register=False, seed="orphaned")
        pending = verdict_when(client, issued.receipts[0], "PENDING")
        assert pending["anchor"]["block_number"] == issued.block

        assert rpc.call("evm_revert", [before]) is True  # the anchor's blocks are gone...
        rpc.call("anvil_mine", [hex(5)])  # ...and other blocks took their place
        verdict = verdict_when(client, issued.receipts[0], "INVALID")
        assert "NOT_ANCHORED" in verdict["reasons"]
        status = client.get("/status").json()
        assert status["reorgs_repaired"] >= 1
        assert status["counts"]["anchors"] == 0
        assert status["accumulators_match"] is True
        assert client.get(f"/anchors/{issued.root}").status_code == 404


def test_bulk_verdicts_in_order(issued: Issued, client: httpx.Client, rpc: RpcClient) -> None:
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    verdict_when(client, issued.receipts[0], "VALID")
    tampered = issued.receipts[2].to_json_dict()
    tampered["salts"] = {}
    receipts = [issued.receipts[0].to_json_dict(), tampered, "junk", issued.receipts[3].to_json_dict()]
    response = client.post("/verify/bulk", json={"receipts": receipts})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 4
    assert [r["status"] for r in body["results"]] == ["VALID", "INVALID", "INVALID", "VALID"]
    assert body["results"][2]["reasons"] == ["MALFORMED"]
    assert body["summary"] == {"VALID": 2, "INVALID": 2}

    too_many = client.post("/verify/bulk", json={"receipts": receipts * 3})  # the node allows 8
    assert_error(too_many, 413, "too_many_receipts")
    shapes: list[object] = [
        {"receipts": []},
        {"receipts": "x"},
        [receipts[0]],
        {"receipts": receipts, "extra": 1},
    ]
    for shape in shapes:
        assert_error(client.post("/verify/bulk", json=shape), 422, "invalid_request")


@on_both_backends
def test_listings(issued: Issued, client: httpx.Client, rpc: RpcClient) -> None:
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    verdict_when(client, issued.receipts[0], "VALID")
    tree = issued.batch.tree
    leaves = sorted(tree.leaves)
    multi = tree.multiproof(leaves)
    issued.writer.revoke_leaves(
        multi.leaves, tree.root, multi.proof, multi.proof_flags, RevocationReason.AFFILIATION_CHANGED
    )
    wait_for(
        lambda: client.get("/status").json(), lambda s: s["counts"]["revocations"] == 4, what="revocations"
    )

    anchor = client.get(f"/anchors/{issued.root.upper().replace('0X', '0x')}").json()
    assert anchor["root"] == issued.root
    assert anchor["issuer"] == issued.issuer
    assert anchor["count"] == 4
    assert anchor["manifest_uri"] == "ipfs://node"
    assert anchor["event"]["tx_hash"] == issued.tx_hash
    assert anchor["final"] is True
    assert anchor["revocation"] is None
    assert_error(client.get("/anchors/0x" + "ab" * 32), 404, "not_found")
    assert_error(client.get("/anchors/0x1234"), 422, "invalid_request")

    issuers = client.get("/issuers").json()["issuers"]
    assert [i["address"] for i in issuers] == [issued.issuer]
    key = issuers[0]["keys"][0]
    assert key["key_id"] == hex0x(issued.batch.key_info.key_id)
    assert key["algorithm"] == "ed25519"
    assert key["public_key"] == hex0x(issued.batch.key_info.der)
    assert key["active"] is True
    assert client.get(f"/issuers/{issued.issuer.upper().replace('0X', '0x')}").json() == issuers[0]
    assert_error(client.get("/issuers/0x" + "12" * 20), 404, "not_found")

    seen: list[str] = []
    page = client.get("/revocations", params={"limit": 3}).json()
    assert len(page["revocations"]) == 3
    seen += [r["leaf"] for r in page["revocations"]]
    following = client.get("/revocations", params={"limit": 3, "cursor": page["next_cursor"]}).json()
    seen += [r["leaf"] for r in following["revocations"]]
    assert sorted(seen) == [hex0x(leaf) for leaf in leaves]
    assert following["next_cursor"] is None
    assert {r["reason"] for r in page["revocations"]} == {RevocationReason.AFFILIATION_CHANGED}
    later = client.get("/revocations", params={"since_block": 10**9}).json()
    assert later == {"revocations": [], "next_cursor": None}

    cursor = page["next_cursor"]
    payload, mac = cursor.split(".")
    forged = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + mac
    assert_error(client.get("/revocations", params={"cursor": forged}), 400, "invalid_cursor")
    assert_error(client.get("/revocations", params={"cursor": "garbage"}), 400, "invalid_cursor")

    status = client.get("/status").json()
    assert status["chain_id"] == 31337
    assert status["registry"] == issued.registry
    assert status["counts"] == {"anchors": 1, "revocations": 4, "issuers": 1, "keys": 1}
    assert status["accumulators_match"] is True
    assert status["mirror"]["anchor_accumulator"] == status["contract"]["anchor_accumulator"]
    assert status["lag"] <= 1
    assert status["ready"] is True
    assert client.get("/ready").json() == {"ready": True, "reasons": []}
    assert client.get("/health").json() == {"status": "ok"}

    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'finvault_node_verifications_total{status="VALID"}' in text
    assert "finvault_node_sync_lag_blocks" in text
    assert "finvault_node_events_indexed_total" in text
    assert "finvault_node_rpc_errors_total 0.0" in text
    assert (
        'finvault_node_request_duration_seconds_bucket{le="0.005",method="POST",route="/verify",status="200"}'
        in text
    )


def test_request_errors_are_structured(issued: Issued, client: httpx.Client) -> None:
    receipt = issued.receipts[0].to_json()
    json_headers = {"Content-Type": "application/json"}
    assert_error(
        client.post("/verify", content=receipt, headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    utf16 = {"Content-Type": "application/json; charset=utf-16"}
    assert_error(
        client.post("/verify", content=receipt.encode("utf-16"), headers=utf16), 415, "unsupported_media_type"
    )
    assert_error(client.post("/verify", content="{not json", headers=json_headers), 400, "invalid_json")
    assert_error(
        client.post("/verify", content='{"a": 1, "a": 2}', headers=json_headers), 400, "invalid_json"
    )
    assert_error(client.post("/verify", content="", headers=json_headers), 400, "invalid_json")
    assert_error(client.post("/verify", content='{"x": NaN}', headers=json_headers), 400, "invalid_json")
    huge = json.dumps({"credential": {"blob": "x" * 600_000}})  # over a receipt's 512 KiB
    assert_error(client.post("/verify", content=huge, headers=json_headers), 413, "payload_too_large")
    over_body_limit = json.dumps({"receipts": ["x" * 9_000_000]})  # over the node's 8 MiB
    assert_error(
        client.post("/verify/bulk", content=over_body_limit, headers=json_headers), 413, "payload_too_large"
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while the body streams
        yield b'{"receipts": ["'
        for _ in range(100):
            yield b"x" * 100_000
        yield b'"]}'

    assert_error(
        client.post("/verify/bulk", content=chunks(), headers=json_headers), 413, "payload_too_large"
    )
    assert_error(client.get("/verify"), 405, "method_not_allowed")
    assert_error(client.get("/no/such/path"), 404, "not_found")
    assert_error(client.get("/revocations", params={"limit": 0}), 422, "invalid_request")

    traced = client.post("/verify", content="{", headers={**json_headers, "X-Request-ID": "trace-me-42"})
    assert traced.headers["x-correlation-id"] == "trace-me-42"
    assert traced.json()["error"]["correlation_id"] == "trace-me-42"
    unsafe = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-correlation-id"] != "bad id\twith spaces"
    for path in ("/health", "/ready", "/status", "/issuers", "/openapi.json", "/metrics"):
        response = client.get(path)
        assert response.headers["x-correlation-id"], path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert "server" not in response.headers, path
    assert (
        "access-control-allow-origin"
        not in client.get("/health", headers={"Origin": "https://a.example"}).headers
    )


def test_rate_limit_applies_to_loopback_when_configured(
    anvil: DevChain, registry: Deployed, tmp_path: Path
) -> None:
    env = {
        "FINVAULT_RATE_LIMIT": "0.5",
        "FINVAULT_RATE_LIMIT_BURST": "3",
        "FINVAULT_RATE_LIMIT_LOOPBACK": "true",
    }
    with (
        start_node(anvil.rpc_url, registry.address, tmp_path, env=env) as node,
        httpx.Client(base_url=node.url) as client,
    ):
        answers = [client.get("/issuers") for _ in range(4)]
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        limited = assert_error(answers[3], 429, "rate_limited")
        assert int(answers[3].headers["retry-after"]) >= 1
        assert "retry" in limited["error"]["message"]
        assert_error(client.post("/verify", json={}), 429, "rate_limited")
        for _ in range(5):  # probes and scrapers are never limited
            assert client.get("/health").status_code == 200
            assert client.get("/ready").status_code in (200, 503)
            assert client.get("/metrics").status_code == 200


def test_ready_fails_when_the_rpc_goes_away(tmp_path: Path) -> None:
    from chain.accounts import LocalSigner
    from chain.contract import load_artifact
    from chain.registry import deploy_registry
    from chain.tx import TxSender

    env = {
        "FINVAULT_MAX_STALENESS": "2",
        "FINVAULT_RPC_ROUNDS": "1",
        "FINVAULT_RPC_TIMEOUT": "1",
    }
    with DevChain() as own_chain:
        with RpcClient([own_chain.rpc_url]) as rpc:
            sender = TxSender(
                rpc, LocalSigner.dev(0), chain_id=31337, abi=load_artifact().abi, poll_interval=0.02
            )
            address = deploy_registry(sender).contract_address
        assert address is not None
        with (
            start_node(own_chain.rpc_url, address, tmp_path, env=env) as node,
            httpx.Client(base_url=node.url) as client,
        ):
            wait_for(lambda: client.get("/ready"), lambda r: r.status_code == 200, what="ready")
            own_chain.stop()
            not_ready = wait_for(
                lambda: client.get("/ready"), lambda r: r.status_code == 503, what="not ready"
            )
            body = assert_error(not_ready, 503, "not_ready")
            assert body["ready"] is False
            assert any(
                reason.startswith("mirror_stale") or "circuit breaker open" in reason
                for reason in body["reasons"]
            ), body
            assert "rpc_unavailable" in body["error"]["message"]
            assert client.get("/health").status_code == 200  # alive, just not ready
            status = client.get("/status").json()
            assert status["ready"] is False
            assert "rpc_unavailable" in status["contract"]["error"]
            assert "finvault_node_rpc_errors_total 0.0" not in client.get("/metrics").text


@pytest.mark.slow(seconds=4)
def test_worker_processes_share_the_sync_state(
    issued: Issued, anvil: DevChain, rpc: RpcClient, tmp_path: Path
) -> None:
    """FINVAULT_WORKERS=2: the loop runs in the supervisor, two workers serve; a revocation the loop
    indexes reaches both workers' caches, and a cursor made by one is good at the other."""
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    with start_node(anvil.rpc_url, issued.registry, tmp_path, env={"FINVAULT_WORKERS": "2"}) as node:
        assert node.pid is not None
        workers = [int(pid) for pid in Path(f"/proc/{node.pid}/task/{node.pid}/children").read_text().split()]
        assert len(workers) >= 2
        started = {pid: _start_time(pid) for pid in workers}
        with httpx.Client(base_url=node.url) as client:
            verdict_when(client, issued.receipts[0], "VALID")
            for _ in range(6):  # fresh connections: the kernel spreads them over both workers
                with httpx.Client(base_url=node.url) as fresh:
                    assert post_receipt(fresh, issued.receipts[0])["status"] == "VALID"
                    assert fresh.get("/ready").json() == {"ready": True, "reasons": []}
            tree = issued.batch.tree
            for index in (0, 1, 2):
                leaf = issued.leaf(index)
                issued.writer.revoke_leaf(leaf, tree.root, tree.proof(leaf), RevocationReason.SUPERSEDED)
            verdict_when(client, issued.receipts[2], "REVOKED")  # the last of the three indexed
            for _ in range(6):
                with httpx.Client(base_url=node.url) as fresh:
                    assert post_receipt(fresh, issued.receipts[0])["reasons"] == ["LEAF_REVOKED"]
                    page = fresh.get("/revocations", params={"limit": 2}).json()
                with httpx.Client(base_url=node.url) as other:
                    rest = other.get("/revocations", params={"limit": 2, "cursor": page["next_cursor"]})
                    assert rest.status_code == 200, rest.text
                    assert len(rest.json()["revocations"]) == 1
            status = client.get("/status").json()
            assert status["counts"]["revocations"] == 3
            assert status["events_indexed"] > 0
            assert status["ready"] is True
    # Gone soon (a live process with the same pid but another start time is a reuse).
    wait_for(lambda: [p for p in workers if _alive(p, started[p])], lambda alive: not alive, timeout=10)


def _alive(pid: int, started: str | None) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return _start_time(pid) == started and "zombie" not in status


def _start_time(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]
