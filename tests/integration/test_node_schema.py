"""Schemathesis against the /openapi.json of a running node: no 5xx, and every response (status,
content type, body) conforms to what the schema declares.

Positive mode checks conformance of answers to well-formed requests; negative mode (malformed
bodies, parameters of the wrong type) checks only that nothing is a server error, since the node
answers a body that is JSON but not a receipt with a verdict (200), by design.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chain.dev.devchain import DevChain
from chain.registry import RevocationReason
from chain.rpc import RpcClient
from tests.integration.conftest import Deployed
from tests.integration.node_fixtures import FINALITY_DEPTH, issue, start_node, verdict_when
from tests.tools.node_process import NodeProcess
from tests.tools.schemathesis_cli import negative, output, positive

ADMIN_TOKEN = "schema-test-admin-token"  # the admin route too, not just its 401


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


@pytest.mark.slow(seconds=30)
def test_schema_conformance(node: NodeProcess, tmp_path: Path) -> None:
    run = positive(node.url, ADMIN_TOKEN, tmp_path, max_examples=60)
    assert run.returncode == 0, output(run)
    run = negative(node.url, ADMIN_TOKEN, tmp_path, max_examples=40)
    assert run.returncode == 0, output(run)
    assert "Traceback" not in node.log()
