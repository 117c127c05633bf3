"""Credentials an issuer secures with Data Integrity (``securing="data-integrity"``) are standard W3C
Verifiable Credentials: a stock verifier
(@digitalbazaar/vc with @digitalbazaar/eddsa-jcs-2022-cryptosuite, offline, tests/tools/di_verify.mjs)
accepts them unchanged and refuses tampered copies; FinVault's own verdict reports the same proof."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain.core.verify import CheckName, Status, verify
from chain.rpc import RpcClient
from tests.integration.conftest import Deployed
from tests.integration.issuer_fixtures import FINALITY_DEPTH, NOW, IssuerEnv
from tests.tools.stock_verifier import stock_verifier


@pytest.fixture
def env(registry: Deployed, rpc: RpcClient, tmp_path: Path) -> IssuerEnv:
    return IssuerEnv(registry, rpc, tmp_path)


def test_a_stock_verifier_accepts_issued_credentials_and_refuses_tampered_ones(env: IssuerEnv) -> None:
    env.ingest_csv(3)
    [batch] = env.service(securing="data-integrity").run_once()
    receipts = list(env.receipts())
    assert len(receipts) == 3
    credentials = [receipt.credential for receipt in receipts if isinstance(receipt.credential, dict)]
    assert len(credentials) == 3
    for credential in credentials:
        proof = credential["proof"]
        assert (proof["type"], proof["cryptosuite"], proof["proofPurpose"]) == (
            "DataIntegrityProof",
            "eddsa-jcs-2022",
            "assertionMethod",
        )
        controller, fragment = proof["verificationMethod"].split("#")
        assert controller == f"did:key:{fragment}"
        assert fragment.startswith("z6Mk")
        assert credential["issuer"]["id"] == controller  # the issuer is the proof's controller

    tampered = json.loads(json.dumps(credentials[0]))
    tampered["credentialSubject"]["name"] = "Mallory"
    moved = json.loads(json.dumps(credentials[1]))
    moved["proof"]["created"] = "2030-01-01T00:00:00Z"
    results = stock_verifier([*credentials, tampered, moved])
    assert [r["verified"] for r in results] == [True, True, True, False, False], results

    env.rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    verdict = verify(receipts[0], env.facts(), NOW)
    assert verdict.status is Status.VALID, verdict.to_dict()
    check = next(c for c in verdict.checks if c.name is CheckName.DATA_INTEGRITY)
    assert (check.outcome, check.detail) == ("pass", f"eddsa-jcs-2022 by {credentials[0]['issuer']['id']}")
    assert batch.leaf_count == 3
