"""A node never vouches beyond its mirror: halts, divergence, staleness, and recovery, on anvil.

Each test starts a real node (``finvault node``) on a real mirror, breaks what the mirror stands
on (the chain reorganises past finality, a row is deleted or altered in the live database, the
RPC endpoint goes away), and checks that verification answers 503 with the condition's code
rather than a verdict, then comes back by itself once the cause is repaired.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, delete, select, update
from sqlalchemy.pool import NullPool

from chain.dev.devchain import DevChain
from chain.rpc import RpcClient
from indexer.schema import AnchorRow
from tests.integration.conftest import Deployed, on_both_backends, run_finvault
from tests.integration.node_fixtures import (
    FINALITY_DEPTH,
    Issued,
    issue,
    register_issuer,
    start_node,
    verdict_when,
    verify_response,
    wait_for,
)
from tests.tools.rpc_proxy import Fault, FaultKind, RpcProxy

MIRROR_CODES = ("mirror_halted", "mirror_diverged", "mirror_drift", "mirror_stale")


def answer(client: httpx.Client, issued: Issued, index: int = 0) -> tuple[int, dict[str, Any]]:
    response = verify_response(client, issued.receipts[index])
    return response.status_code, response.json()


def refusal(client: httpx.Client, issued: Issued, code: str) -> dict[str, Any]:
    """Waits for verification to answer 503 ``code``; checks the refusal's whole shape."""
    response = wait_for(
        lambda: verify_response(client, issued.receipts[0]),
        lambda r: r.status_code == 503 and r.json()["error"]["code"] == code,
        what=f"503 {code}",
    )
    body: dict[str, Any] = response.json()
    assert "status" not in body
    assert "checks" not in body
    assert int(response.headers["retry-after"]) == body["retry_after"] > 0
    assert [check["name"] for check in body["document_checks"]] == [
        "well_formed",
        "digest",
        "data_integrity",
        "proof",
    ]
    assert all(check["outcome"] == "pass" for check in body["document_checks"])
    assert body["error"]["message"]
    assert body["error"]["correlation_id"]
    status = client.get("/status").json()
    assert status["vouching"] is False
    assert status["cannot_vouch"]["code"] == code
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["reasons"][0].startswith(code)
    bulk = client.post(
        "/verify/bulk",
        content='{"receipts": [' + issued.receipts[0].to_json() + "]}",
        headers={"Content-Type": "application/json"},
    )
    assert bulk.status_code == 503
    assert bulk.json()["error"]["code"] == code
    return body


def block_hash(rpc: RpcClient, number: int) -> str:
    return str(rpc.call("eth_getBlockByNumber", [hex(number), False])["hash"])


def resync(anvil: DevChain, registry: str, database_url: str, from_block: int) -> None:
    done = run_finvault(
        "resync", "--from", str(from_block), "--db", database_url, "--rpc", anvil.rpc_url,
        "--registry", registry, env={"FINVAULT_CHAIN_ID": "31337"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.slow(seconds=10)
def test_a_reorg_past_finality_halts_verdicts_until_an_operator_resyncs(
    anvil: DevChain, registry: Deployed, rpc: RpcClient, tmp_path: Path
) -> None:
    register_issuer(registry.owner, registry.issuer)
    before = rpc.call("evm_snapshot")
    issued = issue(registry.owner, registry.issuer, register=False, seed="deep-reorg")
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH + 36)])
    database_url = f"sqlite:///{tmp_path / 'mirror.db'}"
    with (
        start_node(anvil.rpc_url, registry.address, tmp_path) as node,
        httpx.Client(base_url=node.url, timeout=30) as client,
    ):
        valid = verdict_when(client, issued.receipts[0], "VALID")
        # The verdict names the state it was judged at, with the chain's own block hash.
        as_of = valid["as_of"]
        assert as_of["block_number"] >= issued.block + FINALITY_DEPTH
        assert as_of["block_hash"] == block_hash(rpc, as_of["block_number"])
        assert as_of["lag_seconds"] is not None
        assert as_of["lag_seconds"] < 60
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", as_of["block_time"])

        # The anchor's block, and everything final after it, is replaced by a longer branch.
        assert rpc.call("evm_revert", [before]) is True
        rpc.call("anvil_mine", [hex(FINALITY_DEPTH + 60)])
        reorged_at = time.monotonic()
        answers: list[tuple[float, int, dict[str, Any]]] = []
        while time.monotonic() - reorged_at < 30:
            code, body = answer(client, issued)
            answers.append((time.monotonic() - reorged_at, code, body))
            if code == 503:
                break
        first_refusal, code, body = answers[-1]
        assert code == 503, body
        assert body["error"]["code"] == "mirror_halted", body
        print(f"mirror_halted {first_refusal:.2f} s after the reorg; {len(answers) - 1} answers before it")
        assert first_refusal < 5.0  # the node polls every 0.1 s
        for _, _, early in answers[:-1]:  # answered before the node's next poll: honest about it
            assert early["as_of"]["block_hash"] != block_hash(rpc, early["as_of"]["block_number"])

        halted = refusal(client, issued, "mirror_halted")
        assert "reorg_beyond_finality" in halted["error"]["message"]
        for _ in range(20):  # it stays halted: never a verdict, let alone VALID
            assert answer(client, issued)[0] == 503
        from_block = int(re.search(r"resync --from (\d+)", halted["error"]["message"]).group(1))  # type: ignore[union-attr]
        assert from_block <= issued.block

        cli = run_finvault("verify", "--node", node.url, str(save(issued, tmp_path)))
        assert cli.returncode == 3, cli.stdout + cli.stderr
        assert "cannot vouch" in cli.stdout
        assert "mirror_halted" in cli.stdout
        direct = run_finvault(
            "verify", "--rpc", anvil.rpc_url, "--registry", registry.address, str(save(issued, tmp_path)),
            env={"FINVAULT_CHAIN_ID": "31337"},
        )  # fmt: skip
        assert direct.returncode == 1
        assert "NOT_ANCHORED" in direct.stdout

        resync(anvil, registry.address, database_url, from_block)
        # No restart: the loop notices the logged repair and resumes; the anchor is gone.
        verdict = verdict_when(client, issued.receipts[0], "INVALID")
        assert "NOT_ANCHORED" in verdict["reasons"]
        assert verdict["as_of"]["block_hash"] == block_hash(rpc, verdict["as_of"]["block_number"])
        wait_for(lambda: client.get("/ready").status_code, lambda s: s == 200, what="ready again")


def save(issued: Issued, directory: Path) -> Path:
    path = directory / "receipt-0.json"
    path.write_text(issued.receipts[0].to_json())
    return path


@on_both_backends
@pytest.mark.slow(seconds=15)
def test_a_tampered_mirror_stops_vouching_until_resync(
    anvil: DevChain, registry: Deployed, rpc: RpcClient, tmp_path: Path, mirror_url: str
) -> None:
    issued = issue(registry.owner, registry.issuer, seed="tampered")
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    env = {"FINVAULT_ACCUMULATOR_CHECK_INTERVAL": "0.5"}
    engine = create_engine(mirror_url, poolclass=NullPool)
    root = bytes.fromhex(issued.root[2:])
    try:
        with (
            start_node(anvil.rpc_url, registry.address, tmp_path, env=env, database_url=mirror_url) as node,
            httpx.Client(base_url=node.url, timeout=30) as client,
        ):
            verdict_when(client, issued.receipts[0], "VALID")
            tamperings = {
                "deleted": delete(AnchorRow).where(AnchorRow.root == root),
                "altered": update(AnchorRow).where(AnchorRow.root == root).values(count=AnchorRow.count + 1),
            }
            for what, statement in tamperings.items():
                with engine.begin() as db:
                    assert db.execute(statement).rowcount == 1, what
                body = refusal(client, issued, "mirror_diverged")
                assert f"at block {body['as_of']['block_number']}" in body["error"]["message"]
                assert "finvault resync" in body["error"]["message"]
                resync(anvil, registry.address, mirror_url, issued.block)
                verdict = verdict_when(client, issued.receipts[0], "VALID")
                assert verdict["as_of"]["block_hash"] == block_hash(rpc, verdict["as_of"]["block_number"])
                with engine.connect() as db:
                    assert db.scalar(select(AnchorRow.count).where(AnchorRow.root == root)) == 4
    finally:
        engine.dispose()


@pytest.mark.slow(seconds=35)
def test_an_unreachable_rpc_is_tolerated_up_to_max_staleness(
    anvil: DevChain, registry: Deployed, rpc: RpcClient, tmp_path: Path
) -> None:
    """Two worker processes, so the judgement also travels through the shared state."""
    issued = issue(registry.owner, registry.issuer, seed="stale")
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    env = {
        "FINVAULT_MAX_STALENESS": "4",
        "FINVAULT_RPC_ROUNDS": "1",
        "FINVAULT_RPC_TIMEOUT": "1",
        "FINVAULT_WORKERS": "2",
    }
    with (
        RpcProxy(anvil.rpc_url) as proxy,
        start_node(proxy.url, registry.address, tmp_path, env=env) as node,
        httpx.Client(base_url=node.url, timeout=30) as client,
    ):
        verdict_when(client, issued.receipts[0], "VALID")
        proxy.set_faults("*", Fault(FaultKind.DROP))
        down = time.monotonic()
        time.sleep(1.5)
        code, body = answer(client, issued)
        if time.monotonic() - down < 3.5:  # shorter than max_staleness: a verdict, with its lag
            assert code == 200, body
            assert body["status"] == "VALID"
            assert body["as_of"]["lag_seconds"] >= 1.0
        stale = refusal(client, issued, "mirror_stale")
        assert "bound is 4 s" in stale["error"]["message"]
        assert stale["as_of"]["lag_seconds"] >= 4.0
        proxy.behave()
        back = verdict_when(client, issued.receipts[0], "VALID")
        assert back["as_of"]["lag_seconds"] < 4.0
