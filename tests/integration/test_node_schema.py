"""Schemathesis against the /openapi.json of a running node: no 5xx, and every response (status,
content type, body) conforms to what the schema declares.

Positive mode checks conformance of answers to well-formed requests; negative mode (malformed
bodies, parameters of the wrong type) checks only that nothing is a server error, since the node
answers a body that is JSON but not a receipt with a verdict (200), by design.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chain.devchain import DevChain
from chain.registry import RevocationReason
from chain.rpc import RpcClient
from node.server import NodeProcess
from tests.integration.conftest import Deployed
from tests.integration.node_fixtures import FINALITY_DEPTH, issue, start_node, verdict_when

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
ADMIN_TOKEN = "schema-test-admin-token"
CONFORMANCE = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
)


@pytest.fixture
def node(anvil: DevChain, registry: Deployed, rpc: RpcClient, tmp_path: Path) -> Iterator[NodeProcess]:
    issued = issue(registry.owner, registry.issuer, seed="schema")
    tree = issued.batch.tree
    issued.writer.revoke_leaf(
        issued.leaf(1), tree.root, tree.proof(issued.leaf(1)), RevocationReason.SUPERSEDED
    )
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    env = {"FINVAULT_ADMIN_TOKEN": ADMIN_TOKEN, "FINVAULT_RECONCILE_INTERVAL": "2"}
    with start_node(anvil.rpc_url, registry.address, tmp_path, env=env) as process:
        with httpx.Client(base_url=process.url) as client:
            verdict_when(client, issued.receipts[0], "VALID")
        yield process


def schemathesis(node: NodeProcess, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{node.url}/openapi.json",
            "--seed=20261123",
            "--workers=1",
            "--request-timeout=20",
            "--generation-database=none",
            "--no-color",
            f"--header=Authorization: Bearer {ADMIN_TOKEN}",  # the admin route too, not just its 401
            f"--report-dir={tmp_path / 'schemathesis'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
        cwd=tmp_path,
    )


def test_schema_conformance(node: NodeProcess, tmp_path: Path) -> None:
    positive = schemathesis(
        node,
        tmp_path,
        "--mode=positive",
        f"--checks={CONFORMANCE}",
        "--max-examples=60",
        "--phases=examples,coverage,fuzzing",
    )
    assert positive.returncode == 0, positive.stdout[-6000:] + positive.stderr[-2000:]
    negative = schemathesis(
        node,
        tmp_path,
        "--mode=negative",
        "--checks=not_a_server_error",
        "--max-examples=40",
        "--phases=coverage,fuzzing",
    )
    assert negative.returncode == 0, negative.stdout[-6000:] + negative.stderr[-2000:]
    assert "Traceback" not in node.log()
