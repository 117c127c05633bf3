"""The node (and its page) checks who issued a credential: a did:web issuer's published document
must name the account that anchored the batch. The document is served over HTTPS from 127.0.0.1
with a certificate from a test CA that is handed to the node (``FINVAULT_DID_WEB_CA_FILE``);
identity is reported beside the verdict and never changes its status."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from playwright.sync_api import Browser

from chain.core.data_integrity import multikey
from chain.core.identity import did_web_document
from chain.dev.devchain import DevChain
from chain.rpc import RpcClient
from tests.integration.conftest import Deployed
from tests.integration.did_web_fixtures import DidServer
from tests.integration.issuer_fixtures import FINALITY_DEPTH, IssuerEnv
from tests.integration.node_fixtures import start_node, verdict_when
from tests.integration.test_node_page import banner_says, choose_file, fact, open_page

OTHER_ACCOUNT = "0x90f79bf6eb2c4f870365e785982e1f101e93b906"


@pytest.mark.slow(seconds=5)
def test_identity_is_verified_mismatched_unreachable_or_not_configured_and_never_the_status(
    anvil: DevChain,
    registry: Deployed,
    rpc: RpcClient,
    tmp_path: Path,
    ca_and_server: tuple[Path, DidServer],
    browser: Browser,
) -> None:
    ca_file, did_server = ca_and_server
    env = IssuerEnv(registry, rpc, tmp_path)
    env.ingest_csv(2)
    env.service(issuer_did=did_server.did).run_once()
    by_did_web = next(env.receipts())
    assert by_did_web.credential["issuer"]["id"] == did_server.did
    env.ingest_csv(1, first=10)
    env.service().run_once()  # a did:key credential
    by_did_key = next(r for r in env.receipts() if r.credential["issuer"]["id"].startswith("did:key:"))
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])

    public = env.key.public_key()
    assert isinstance(public, ed25519.Ed25519PublicKey)
    key = multikey(public)
    published = did_web_document(
        f"127.0.0.1:{did_server.port}", chain_id=31337, registry=env.deployed.address, issuer=env.address,
        multikeys=[key],
    )  # fmt: skip
    settings = {
        "FINVAULT_DID_WEB_CA_FILE": str(ca_file),
        "FINVAULT_DID_WEB_TIMEOUT": "0.5",
        "FINVAULT_DID_WEB_CACHE_SECONDS": "0",
        "FINVAULT_DID_WEB_ALLOW_PRIVATE": "true",  # the test's issuer lives on 127.0.0.1
    }
    with (
        start_node(anvil.rpc_url, env.deployed.address, tmp_path, env=settings) as node,
        httpx.Client(base_url=node.url, timeout=30) as client,
    ):
        did_server.document = published
        verdict = verdict_when(client, by_did_web, "VALID")
        domain = f"127.0.0.1:{did_server.port}"
        assert verdict["identity"] == {
            "did": did_server.did,
            "domain": domain,
            "location": domain,
            "unicode_location": None,
            "url": f"https://{domain}/.well-known/did.json",
            "status": "verified",
            "reason": None,
        }
        page = browser.new_page(base_url=node.url)  # and the page shows the verified domain
        receipt_file = tmp_path / "by-did-web.json"
        receipt_file.write_text(by_did_web.to_json())
        open_page(page)
        choose_file(page, receipt_file)
        banner_says(page, "VALID")
        assert fact(page, "issuer-domain") == f"{domain}: verified (its did.json names this issuer's account)"
        page.close()

        did_server.document = {**published, "alsoKnownAs": [f"eip155:31337:{OTHER_ACCOUNT}"]}
        verdict = verdict_when(client, by_did_web, "VALID")
        assert (verdict["identity"]["status"], verdict["identity"]["reason"]) == ("mismatch", "not_named")

        did_server.document = b"[" * 30_000 + b"]" * 30_000  # nested past any parser: a status, not a 500
        verdict = verdict_when(client, by_did_web, "VALID")
        assert (verdict["identity"]["status"], verdict["identity"]["reason"]) == (
            "mismatch",
            "document_invalid",
        )
        did_server.document = published

        did_server.delay = 3.0  # slower than the node's bound: the verdict does not wait for it
        started = time.monotonic()
        verdict = verdict_when(client, by_did_web, "VALID")
        assert verdict["identity"]["status"] == "unreachable"
        assert time.monotonic() - started < 2.5
        did_server.delay = 0.0

        tampered = by_did_web.to_json_dict()
        tampered["credential"]["issuer"]["id"] = "did:web:attacker.example"  # an INVALID receipt
        answer = client.post("/verify", json=tampered).json()
        assert answer["status"] == "INVALID"
        assert answer["identity"] == {
            "did": "did:web:attacker.example",
            "domain": None,
            "location": None,
            "unicode_location": None,
            "url": None,
            "status": "not_configured",
            "reason": None,
        }

        did_server.close()  # gone altogether
        assert verdict_when(client, by_did_web, "VALID")["identity"]["status"] == "unreachable"

        verdict = verdict_when(client, by_did_key, "VALID")
        assert verdict["identity"]["status"] == "not_configured"
        assert verdict["identity"]["did"].startswith("did:key:")

        bulk = client.post(
            "/verify/bulk",
            json={"receipts": [by_did_web.to_json_dict(), by_did_key.to_json_dict()]},
        ).json()
        assert [r["status"] for r in bulk["results"]] == ["VALID", "VALID"]
        assert [r["identity"]["status"] for r in bulk["results"]] == ["unreachable", "not_configured"]
