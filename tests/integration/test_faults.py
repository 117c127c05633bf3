"""The issuer and the node behind a misbehaving provider: the fault-injecting proxy in front of anvil.

- The issuer anchors through a provider that drops, truncates, rate-limits and errors on the very
  calls that matter (the broadcast among them, after forwarding it): exactly one anchor on-chain.
- A node whose only endpoint fails a third of all calls still mirrors the chain exactly and
  answers VALID; its ``/status`` counts the failed steps.
- A node with ``--quorum-rpc`` pointing at a consistent liar commits nothing the two endpoints
  disagree on, reports the disagreement in ``/status`` and ``/metrics``, and catches up once the
  liar tells the truth again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chain.accounts import LocalSigner
from chain.contract import Artifact
from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.registry import RegistryWriter, RevocationReason
from chain.rpc import RpcClient
from chain.tx import TxSender
from issuer.service import IssuerConfig, IssuerService
from tests.integration.conftest import ISSUER, Deployed
from tests.integration.indexer_fixtures import FAST_RETRY
from tests.integration.issuer_fixtures import NODE_URL, IssuerEnv
from tests.integration.node_fixtures import FINALITY_DEPTH, issue, start_node, verdict_when, wait_for
from tests.integration.test_issuer_anchoring import assert_anchored_once
from tests.tools.rpc_proxy import Fault, FaultKind, Lie, RpcProxy

pytestmark = pytest.mark.slow  # each test here takes a second or more

#: Every kind of transport fault, each on a fraction of the calls it matches.
FLAKY = tuple(
    Fault(kind, probability=0.07)
    for kind in (
        FaultKind.DROP,
        FaultKind.RATE_LIMITED,
        FaultKind.SERVER_ERROR,
        FaultKind.TRUNCATED,
        FaultKind.INVALID_JSON,
    )
)
#: The node gives up on a held request after a second, and retries with short pauses.
NODE_ENV = {"FINVAULT_RPC_TIMEOUT": "1", "FINVAULT_RPC_ROUNDS": "8"}


@pytest.fixture
def proxy(anvil: DevChain) -> Iterator[RpcProxy]:
    with RpcProxy(anvil.rpc_url, seed=11) as proxy:
        yield proxy


def test_anchoring_through_a_flaky_provider_anchors_exactly_once(
    registry: Deployed, rpc: RpcClient, artifact: Artifact, proxy: RpcProxy, tmp_path: Path
) -> None:
    env = IssuerEnv(registry, rpc, tmp_path)
    env.ingest_csv(3)
    proxy.set_faults("eth_sendRawTransaction", Fault(FaultKind.TRUNCATED, first=1))  # sent, answer lost
    proxy.set_faults("eth_getTransactionCount", Fault(FaultKind.DROP, first=1))
    proxy.set_faults("eth_estimateGas", Fault(FaultKind.RATE_LIMITED, first=2))
    proxy.set_faults("eth_getTransactionReceipt", Fault(FaultKind.SERVER_ERROR, status=502, first=3))
    proxy.set_faults("*", Fault(FaultKind.TIMEOUT, hold=2.0, first=1), *FLAKY)
    with RpcClient([proxy.url], policy=FAST_RETRY) as flaky:
        sender = TxSender(
            flaky, LocalSigner.dev(ISSUER), chain_id=DEV_CHAIN_ID, abi=artifact.abi, poll_interval=0.02
        )
        service = IssuerService(
            env.store,
            RegistryWriter(sender, registry.address, artifact),
            env.key,
            IssuerConfig(out_dir=env.out, node_url=NODE_URL),
        )
        [batch] = service.run_once()
    assert proxy.injected[FaultKind.TRUNCATED] >= 1
    assert proxy.calls["eth_sendRawTransaction"] >= 1
    assert_anchored_once(env, batch, 3)


@pytest.mark.slow(seconds=5)
def test_a_node_behind_a_flaky_provider_mirrors_the_chain_exactly(
    registry: Deployed, rpc: RpcClient, proxy: RpcProxy, tmp_path: Path
) -> None:
    issued = issue(registry.owner, registry.issuer, seed="faults")
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    proxy.set_faults("*", *FLAKY)
    with (
        start_node(proxy.url, registry.address, tmp_path, env=NODE_ENV) as node,
        httpx.Client(base_url=node.url, timeout=10) as client,
    ):
        verdict = verdict_when(client, issued.receipts[0], "VALID", timeout=60)
        assert verdict["anchor"]["block_number"] == issued.block
        tree, leaf = issued.batch.tree, issued.leaf(1)
        issued.writer.revoke_leaf(leaf, tree.root, tree.proof(leaf), RevocationReason.SUPERSEDED)
        rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
        verdict_when(client, issued.receipts[1], "REVOKED", timeout=60)

        status = wait_for(
            lambda: client.get("/status").json(),
            lambda s: s["indexed_block"] >= rpc.block_number() - 1 and s["accumulators_match"] is True,
            timeout=60,
            what="the mirror at the head with matching accumulators",
        )
        assert status["counts"]["anchors"] == 1
        assert status["counts"]["revocations"] == 1
        assert sum(proxy.injected[kind] for kind in FaultKind) > 0

        proxy.behave()
        wait_for(lambda: client.get("/ready").status_code, lambda code: code == 200, what="ready")


def test_a_node_with_quorum_refuses_a_lying_endpoint_and_reports_it(
    anvil: DevChain, registry: Deployed, rpc: RpcClient, proxy: RpcProxy, tmp_path: Path
) -> None:
    proxy.lie_block_hashes = proxy.consistent_lies = True
    issued = issue(registry.owner, registry.issuer, seed="quorum")
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    args = ("--quorum-rpc", proxy.url)
    with (
        start_node(anvil.rpc_url, registry.address, tmp_path, args=args, env=NODE_ENV) as node,
        httpx.Client(base_url=node.url, timeout=10) as client,
    ):
        status = wait_for(
            lambda: client.get("/status").json(),
            lambda s: s["quorum_disagreements"] >= 2,
            what="quorum disagreements in /status",
        )
        assert status["indexed_block"] < issued.block  # nothing the endpoints disagree on is committed
        refused = client.post(
            "/verify", content=issued.receipts[0].to_json(), headers={"Content-Type": "application/json"}
        )
        assert refused.status_code == 503  # the mirror never reached the head: no verdict at all
        assert refused.json()["error"]["code"] == "mirror_stale"
        metrics = client.get("/metrics").text
        assert "finvault_node_quorum_disagreements_total" in metrics
        assert proxy.injected[Lie.BLOCK_HASH] > 0

        proxy.behave()
        verdict_when(client, issued.receipts[0], "VALID", timeout=60)
        assert client.get("/status").json()["accumulators_match"] is True
