"""Auditing through running nodes: digests compared across nodes, scheduled reconciliation, resync.

Two `finvault node` processes on different SQLite files follow the same registry on anvil. One
mirror is tampered with directly in SQLite; `finvault reconcile --against` finds the first block
where it diverges from the other node. A node whose scheduled reconciliation finds drift turns not
ready until `finvault resync` repairs the mirror.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.dev.devchain import DevChain
from chain.registry import RevocationReason
from chain.rpc import RpcClient
from tests.integration.conftest import Deployed
from tests.integration.node_fixtures import (
    FINALITY_DEPTH,
    Issued,
    issue,
    start_node,
    verify_response,
    wait_for,
)

FINVAULT = str(Path(sys.executable).with_name("finvault"))
ADMIN = "admin-token-for-the-audit-tests"


def finvault(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FINVAULT, *args], capture_output=True, text=True, timeout=120, check=False)


def revoked_history(registry: Deployed, rpc: RpcClient) -> tuple[Issued, int]:
    issued = issue(registry.owner, registry.issuer)
    tree = issued.batch.tree
    leaf = issued.leaf(1)
    revoked = registry.issuer.revoke_leaf(leaf, tree.root, tree.proof(leaf), int(RevocationReason.SUPERSEDED))
    second = issue(registry.owner, registry.issuer, seed="later", register=False)
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    assert second.block > revoked.block_number
    return issued, revoked.block_number


def digests(url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/digests", params={"limit": 100}, timeout=10).json())


@pytest.mark.slow(seconds=7)
def test_against_another_node_finds_the_first_divergent_block(
    anvil: DevChain, registry: Deployed, rpc: RpcClient, tmp_path: Path
) -> None:
    issued, revoked_block = revoked_history(registry, rpc)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with start_node(anvil.rpc_url, issued.registry, tmp_path / "a") as node_a:
        with start_node(anvil.rpc_url, issued.registry, tmp_path / "b") as node_b:
            wait_for(
                lambda: digests(node_b.url),
                lambda d: d["last_block"] is not None and d["last_block"] >= revoked_block + 1,
                what="node B's digests",
            )
            wait_for(
                lambda: digests(node_a.url)["as_of"],
                lambda d: d == digests(node_b.url)["as_of"],
                what="equal digests",
            )
            events = httpx.get(f"{node_a.url}/blocks/{revoked_block}/events", timeout=10).json()["events"]
            assert [e["table"] for e in events] == ["revocations"]
            assert events[0]["reason"] == int(RevocationReason.SUPERSEDED)
        mirror_b = tmp_path / "b" / "mirror.db"
        common = ["--db", f"sqlite:///{mirror_b}", "--rpc", anvil.rpc_url, "--registry", issued.registry]
        agreed = finvault("reconcile", "--against", node_a.url, *common)
        assert agreed.returncode == 0, agreed.stderr
        assert "mirrors agree" in agreed.stdout

        with sqlite3.connect(mirror_b) as db:
            db.execute("UPDATE revocations SET reason = 1 WHERE block_number = ?", (revoked_block,))
        diverged = finvault("reconcile", "--against", node_a.url, *common)
        assert diverged.returncode == 1, diverged.stderr
        assert f"mirrors diverge first at block {revoked_block}" in diverged.stdout
        assert "differs:    revocations tx" in diverged.stdout
        assert diverged.stdout.rstrip().endswith(": reason")
        unreachable = finvault("reconcile", "--against", "http://127.0.0.1:9", *common)
        assert unreachable.returncode == 2


@pytest.mark.slow(seconds=10)
def test_scheduled_reconciliation_drift_turns_the_node_not_ready_until_resync(
    anvil: DevChain, registry: Deployed, rpc: RpcClient, tmp_path: Path
) -> None:
    issued, revoked_block = revoked_history(registry, rpc)
    env = {"FINVAULT_RECONCILE_INTERVAL": "1", "FINVAULT_ADMIN_TOKEN": ADMIN}
    with (
        start_node(anvil.rpc_url, issued.registry, tmp_path, env=env) as node,
        httpx.Client(base_url=node.url, timeout=30) as http,
    ):
        admin = {"Authorization": f"Bearer {ADMIN}"}
        runs = wait_for(
            lambda: http.get("/reconciliation/runs", headers=admin).json()["runs"],
            lambda r: len(r) > 0,
            what="a run",
        )
        assert runs[0]["drift_count"] == 0
        assert runs[0]["error"] is None
        assert runs[0]["chain_events"] == runs[0]["mirror_events"] > 0
        assert http.get("/reconciliation/runs").status_code == 401
        assert (
            http.get(
                "/reconciliation/runs", headers={"Authorization": "Bearer wrong-token-0123456789"}
            ).status_code
            == 401
        )
        wait_for(lambda: http.get("/ready").status_code, lambda code: code == 200, what="ready")

        with sqlite3.connect(tmp_path / "mirror.db") as db:
            db.execute("UPDATE revocations SET reason = 1 WHERE block_number = ?", (revoked_block,))
        not_ready = wait_for(lambda: http.get("/ready"), lambda r: r.status_code == 503, what="not ready")
        assert not_ready.json()["reasons"][0].startswith("mirror_drift: reconciliation run")
        refused = verify_response(http, issued.receipts[0])  # and no verdict while it lasts
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "mirror_drift"
        assert "finvault resync" in refused.json()["error"]["message"]
        latest = http.get("/reconciliation/runs", params={"limit": 1}, headers=admin).json()
        # The changed row, and the revocation accumulator its fold no longer matches.
        assert latest["runs"][0]["drift_by_kind"] == {"mismatch": 1, "accumulator": 1}
        assert latest["next_before"] is not None
        metrics = http.get("/metrics").text
        assert "finvault_reconciliation_drift_alert 1.0" in metrics

        repaired = finvault(
            "resync", "--from", str(revoked_block), "--db", f"sqlite:///{tmp_path / 'mirror.db'}",
            "--rpc", anvil.rpc_url, "--registry", issued.registry,
        )  # fmt: skip
        assert repaired.returncode == 0, repaired.stderr
        wait_for(lambda: http.get("/ready").status_code, lambda code: code == 200, what="ready again")
        assert "finvault_reconciliation_drift_alert 0.0" in http.get("/metrics").text
        assert verify_response(http, issued.receipts[0]).status_code == 200
