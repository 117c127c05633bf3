"""The node (and its page) checks who issued a credential: a did:web issuer's published document
must name the account that anchored the batch. The document is served over HTTPS from 127.0.0.1
with a certificate from a test CA that is handed to the node (``FINVAULT_DID_WEB_CA_FILE``);
identity is reported beside the verdict and never changes its status."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from playwright.sync_api import Browser, Page, expect

from chain.core.data_integrity import multikey
from chain.core.encoding import b64url
from chain.core.identity import did_web_document
from chain.core.receipt import ReceiptV2, parse_receipt
from chain.core.sd_jwt import b64url_decode
from chain.dev.devchain import DevChain
from chain.rpc import RpcClient
from tests.factories import disclosed
from tests.integration.conftest import Deployed, run_finvault
from tests.integration.did_web_fixtures import DidServer
from tests.integration.issuer_fixtures import FINALITY_DEPTH, IssuerEnv
from tests.integration.node_fixtures import start_node, verdict_when, wait_for
from tests.integration.test_node_page import banner_says, choose_file, fact, open_page

OTHER_ACCOUNT = "0x90f79bf6eb2c4f870365e785982e1f101e93b906"


def renamed_issuer(receipt: ReceiptV2, did: str) -> dict[str, Any]:
    """``receipt`` with the issuer its SD-JWT names rewritten (the signature kept, so it fails)."""
    assert isinstance(receipt.credential, str)
    jwt, tilde, disclosures = receipt.credential.partition("~")
    header, payload, signature = jwt.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["issuer"]["id"] = did
    forged = ".".join((header, b64url(json.dumps(claims).encode()), signature))
    return {**receipt.to_json_dict(), "credential": forged + tilde + disclosures}


def identity_when(client: httpx.Client, receipt: ReceiptV2, status: str) -> dict[str, Any]:
    """The receipt's VALID verdict once its identity is ``status``. The node waits only 0.5 s for a
    fetch here, and a TLS fetch on a loaded machine can take longer: the verdict then says
    ``unreachable`` (``slow``) while the fetch goes on, and asking again joins it."""
    return wait_for(
        lambda: verdict_when(client, receipt, "VALID"),
        lambda verdict: verdict["identity"]["status"] == status,
        timeout=10.0,
        what=f"identity {status}",
    )


def page_identity_when(page: Page, receipt_file: Path, status: str, timeout: float = 10.0) -> str | None:
    """Chooses ``receipt_file`` on the page until its banner reports identity ``status`` (each
    choice is a fresh fetch the verdict waits 0.5 s for), or ``timeout`` passes: the last one shown."""
    banner = page.locator("#banner")
    deadline = time.monotonic() + timeout
    while True:
        banner.evaluate("node => node.removeAttribute('data-identity')")  # no stale answer counts
        choose_file(page, receipt_file)
        expect(banner).to_have_attribute("data-identity", re.compile(r"^(?!none$)\w+$"))
        shown = banner.get_attribute("data-identity")
        if shown == status or time.monotonic() > deadline:
            return shown


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
    assert disclosed(by_did_web)["issuer"]["id"] == did_server.did
    env.ingest_csv(1, first=10)
    env.service().run_once()  # a did:key credential
    by_did_key = next(r for r in env.receipts() if disclosed(r)["issuer"]["id"].startswith("did:key:"))
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
        verdict = identity_when(client, by_did_web, "verified")
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
        assert page_identity_when(page, receipt_file, "verified") == "verified"
        banner_says(page, "VALID")
        assert fact(page, "issuer-domain") == f"{domain}: verified (its did.json names this issuer's account)"
        page.close()

        did_server.document = {**published, "alsoKnownAs": [f"eip155:31337:{OTHER_ACCOUNT}"]}
        verdict = identity_when(client, by_did_web, "mismatch")
        assert (verdict["identity"]["status"], verdict["identity"]["reason"]) == ("mismatch", "not_named")

        did_server.document = b"[" * 30_000 + b"]" * 30_000  # nested past any parser: a status, not a 500
        verdict = wait_for(  # mismatch before and after: wait for a fetch that ended, not a status
            lambda: verdict_when(client, by_did_web, "VALID"),
            lambda answer: answer["identity"]["reason"] != "slow",
            timeout=10.0,
            what="the nested document judged",
        )
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

        tampered = renamed_issuer(by_did_web, "did:web:attacker.example")  # its signature fails: INVALID
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


def font(page: Page, selector: str) -> tuple[str, str]:
    size, weight = page.locator(selector).evaluate(
        "node => [getComputedStyle(node).fontSize, getComputedStyle(node).fontWeight]"
    )
    return str(size), str(weight)


@pytest.mark.slow(seconds=20)
def test_identity_is_shown_truthfully_by_the_api_the_page_and_both_cli_paths(
    anvil: DevChain,
    registry: Deployed,
    rpc: RpcClient,
    tmp_path: Path,
    ca_and_server: tuple[Path, DidServer],
    browser: Browser,
) -> None:
    """A credential naming another institution's did:web is VALID (it is genuine) with a mismatch
    as loud as the verdict; a path DID shows its path; an IDN host its punycode; a bad DID says so."""
    ca_file, did_server = ca_and_server
    env = IssuerEnv(registry, rpc, tmp_path)
    look_alike = "did:web:\u0430pple.invalid"  # Cyrillic a: never resolves (RFC 6761 .invalid)
    bad = f"did:web:127.0.0.1%2F@{did_server.port}"  # only the port may be percent-encoded
    dids = {
        "mismatch": did_server.did_at("other"),
        "path": did_server.did_at("issuers", "ok"),
        "idn": look_alike,
        "bad": bad,
    }
    files: dict[str, Path] = {}
    for index, (name, did) in enumerate(dids.items()):
        env.ingest_csv(1, first=10 * index)
        env.service(issuer_did=did).run_once()
        receipt = next(r for r in env.receipts() if disclosed(r)["issuer"]["id"] == did)
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(receipt.to_json())
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    domain = did_server.domain
    for segments, account in ((("other",), OTHER_ACCOUNT), (("issuers", "ok"), env.address)):
        document = did_web_document(
            domain, chain_id=31337, registry=env.deployed.address, issuer=account, multikeys=[]
        )
        did_server.documents["/" + "/".join(segments) + "/did.json"] = {
            **document,
            "id": did_server.did_at(*segments),
        }
    did_web = {
        "FINVAULT_DID_WEB_CA_FILE": str(ca_file),
        "FINVAULT_DID_WEB_CACHE_SECONDS": "0",
        "FINVAULT_DID_WEB_FETCH_DEADLINE": "2",
        "FINVAULT_DID_WEB_ALLOW_PRIVATE": "true",
    }
    with (
        start_node(anvil.rpc_url, env.deployed.address, tmp_path, env=did_web) as node,
        httpx.Client(base_url=node.url, timeout=30) as client,
    ):
        answers = {
            name: verdict_when(client, parse_receipt(path.read_bytes()), "VALID")["identity"]
            for name, path in files.items()
        }
        assert (answers["mismatch"]["status"], answers["mismatch"]["location"]) == (
            "mismatch",
            f"{domain}/other",
        )
        assert answers["path"]["status"] == "verified"
        assert answers["path"]["location"] == f"{domain}/issuers/ok"
        assert answers["path"]["url"] == f"https://{domain}/issuers/ok/did.json"
        assert answers["idn"]["location"] == "xn--pple-43d.invalid"
        assert answers["idn"]["unicode_location"] == "\u0430pple.invalid"
        assert answers["idn"]["status"] == "unreachable"
        assert answers["bad"] == {
            **answers["bad"],
            "status": "refused",
            "reason": "did_invalid",
            "location": None,
        }

        page = browser.new_page(base_url=node.url)
        open_page(page)
        choose_file(page, files["mismatch"])
        banner_says(page, "VALID")
        expect(page.locator("#banner")).to_have_attribute("data-identity", "mismatch")
        identity_line = page.locator("#banner-identity")
        expect(identity_line).to_be_visible()
        expect(identity_line).to_contain_text(f"IDENTITY MISMATCH: {domain}/other")
        assert font(page, "#banner-identity") == font(page, "#banner-status")  # as loud as the verdict
        assert fact(page, "issuer-domain").startswith(f"{domain}/other: NOT verified")

        choose_file(page, files["path"])
        banner_says(page, "VALID")
        expect(identity_line).to_be_hidden()
        assert (
            fact(page, "issuer-domain")
            == f"{domain}/issuers/ok: verified (its did.json names this issuer's account)"
        )
        choose_file(page, files["idn"])
        banner_says(page, "VALID")
        shown = fact(page, "issuer-domain")
        assert shown.startswith("xn--pple-43d.invalid (in Unicode: \u0430pple.invalid; not plain ASCII")
        choose_file(page, files["bad"])
        banner_says(page, "VALID")
        assert fact(page, "issuer-domain").startswith(f"not a valid did:web: {bad}")
        page.close()

        by_node = run_finvault("verify", str(files["mismatch"]), "--node", node.url)
        assert by_node.returncode == 4, by_node.stdout + by_node.stderr  # VALID, but not from whom it says
        first, second = by_node.stdout.splitlines()[:2]
        assert first == f"{files['mismatch']}: VALID  !! IDENTITY MISMATCH"
        assert second == (
            f"  identity: did:web {domain}/other: MISMATCH: its did.json does NOT name the account "
            "that anchored this receipt [not_named]"
        )
        as_json = json.loads(
            run_finvault("verify", str(files["mismatch"]), "--node", node.url, "--json").stdout
        )
        assert as_json["identity"]["status"] == "mismatch"

        for name in ("empty", "not-json"):
            refused_file = tmp_path / f"{name}.json"
            refused_file.write_text("" if name == "empty" else "{oops")
            refused = run_finvault("verify", str(refused_file), "--node", node.url)
            assert refused.returncode == 1
            assert refused.stdout.splitlines()[0] == f"{refused_file}: NO VERDICT"
            assert "None" not in refused.stdout

    direct = ["--rpc", anvil.rpc_url, "--registry", env.deployed.address]
    by_rpc = run_finvault("verify", str(files["mismatch"]), *direct, env=did_web)
    assert by_rpc.returncode == 4, by_rpc.stdout + by_rpc.stderr
    assert by_rpc.stdout.splitlines()[:2] == [first, second]  # the same words as through the node
    verified = run_finvault("verify", str(files["path"]), *direct, env=did_web)
    assert verified.returncode == 0
    assert f"identity: did:web {domain}/issuers/ok: verified" in verified.stdout
    idn = run_finvault("verify", str(files["idn"]), *direct, env=did_web)
    assert idn.returncode == 0
    assert (
        "did:web xn--pple-43d.invalid (shown in Unicode as \u0430pple.invalid: not plain ASCII)" in idn.stdout
    )
    invalid = run_finvault("verify", str(files["bad"]), *direct, env=did_web)
    assert f"identity: {bad!r} is not a valid did:web (refused, not fetched)" in invalid.stdout
    # Without the allowance, --rpc keeps the node's outbound rules: 127.0.0.1 is never fetched.
    served = did_server.requests
    strict = run_finvault(
        "verify", str(files["mismatch"]), *direct, env={**did_web, "FINVAULT_DID_WEB_ALLOW_PRIVATE": "false"}
    )
    assert strict.returncode == 0
    assert "refused by the did:web fetch rules [address_forbidden]" in strict.stdout
    assert did_server.requests == served
