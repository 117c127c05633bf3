"""Bitstring Status Lists as a stock verifier sees them: issued through the real issuer API, served
by it on 127.0.0.1, checked by @digitalbazaar/vc-bitstring-status-list (pinned, offline but for
that loopback fetch), before and after `finvault revoke` confirms on-chain."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.core.data_integrity import add_proof, did_key
from chain.core.receipt import ReceiptV2, parse_receipt
from chain.core.status_list import LIST_SIZE, encode_list, is_set, list_bits, read_entry, set_indexes
from chain.dev.devchain import DevChain
from chain.keys import generate_private_key
from chain.registry import RevocationReason
from chain.rpc import RpcClient
from issuer.api_keys import create_api_key
from issuer.intake import read_input
from issuer.ob3 import OB3_CRYPTOSUITE, ob3_template
from issuer.revoke import Revoker
from issuer.service import ingest
from issuer.store import CertificateStatus
from issuer.template import template_for
from tests.factories import disclosed
from tests.integration.conftest import Deployed, run_finvault
from tests.integration.issuer_fixtures import PASSPHRASE, TEMPLATE, IssuerEnv, write_badges_csv
from tests.integration.test_issuer_api import ROOT_DIR, _answers, student, wait_for
from tests.tools.stock_verifier import rdfc_peer, run_node_tool, stock_verifier

CHECKER = ROOT_DIR / "tests" / "tools" / "status_check.mjs"


def stock_status(credentials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``{"verified", "revoked", "error"}`` per credential, as @digitalbazaar/vc-bitstring-status-list
    says (the list fetched from where the credential points, its proof verified)."""
    return run_node_tool(CHECKER, credentials)


@pytest.fixture
def env(registry: Deployed, rpc: RpcClient, tmp_path: Path) -> IssuerEnv:
    return IssuerEnv(registry, rpc, tmp_path)


@pytest.fixture
def api(env: IssuerEnv, anvil: DevChain, reserved_port: int) -> Iterator[str]:
    """The issuer API, its status lists published under its own /status."""
    url = f"http://127.0.0.1:{reserved_port}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FINVAULT_")}
    environment |= {
        "FINVAULT_SIGNING_KEY_PASSPHRASE": PASSPHRASE,
        "FINVAULT_ISSUER_STATUS_URL": f"{url}/status",
    }
    args = [
        *("issuer-api", "serve", "--template", str(TEMPLATE), "--out", str(env.out)),
        *("--port", str(reserved_port), "--every", "0.5", "--key-dir", str(env.key_dir), "--db", env.db_url),
        *("--rpc", anvil.rpc_url, "--registry", env.deployed.address, "--dev", "--dev-account", "1"),
    ]
    process = subprocess.Popen(
        [sys.executable, "-c", "from chain.entry import main; main()", *args],
        cwd=ROOT_DIR, env=environment, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: _answers(url), process)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr


@pytest.mark.slow(seconds=8)
def test_a_stock_checker_sees_a_revocation_once_it_is_confirmed(
    env: IssuerEnv, api: str, anvil: DevChain
) -> None:
    issue = {"Authorization": f"Bearer {create_api_key(env.store, 'registrar', ['issue', 'read'])}"}
    with httpx.Client(base_url=api, timeout=30) as http:
        assert http.post("/certificates", json=[student(1), student(2)], headers=issue).status_code == 202
        wait_for(lambda: http.get("/certificates/api-002", headers=issue).json()["status"] == "anchored")
        receipts: list[ReceiptV2] = []
        for certificate_id in ("api-001", "api-002"):
            receipt = parse_receipt(
                json.dumps(http.get(f"/certificates/{certificate_id}", headers=issue).json()["receipt"])
            )
            assert isinstance(receipt, ReceiptV2)
            receipts.append(receipt)
        credentials = [dict(disclosed(r)) for r in receipts]
        entries = [read_entry(c) for c in credentials]
        assert all(e is not None and e[0] == f"{api}/status/1" for e in entries)  # signed into the credential
        assert len({e[1] for e in entries if e is not None}) == 2

        served = http.get("/status/1")  # public: no key
        assert served.status_code == 200
        assert served.headers["cache-control"] == "public, max-age=300"
        assert http.get("/status/1", headers={"If-None-Match": served.headers["etag"]}).status_code == 304
        assert set_indexes(list_bits(served.json())) == []
        leaves = http.get("/status/1.leaves").json()
        assert sorted(e["statusListIndex"] for e in leaves["entries"]) == sorted(e[1] for e in entries if e)
        assert http.get("/status/2").status_code == 404
        assert http.get("/status/..%2Fissuer.db").status_code in (404, 422)
        assert [(r["verified"], r["revoked"]) for r in stock_status(credentials)] == [(True, 0), (True, 0)]

        receipt_file = env.tmp / "first.json"
        receipt_file.write_text(receipts[0].to_json())
        revoked = run_finvault(
            "revoke", str(receipt_file), "--reason", "superseded", "--db", env.db_url,
            "--out", str(env.out), "--key-dir", str(env.key_dir),
            "--rpc", anvil.rpc_url, "--registry", env.deployed.address, "--dev", "--dev-account", "1",
            env={"FINVAULT_SIGNING_KEY_PASSPHRASE": PASSPHRASE},
        )  # fmt: skip
        assert revoked.returncode == 0, revoked.stderr
        bits = list_bits(http.get("/status/1").json())
        assert len(bits) * 8 == LIST_SIZE
        assert [is_set(bits, e[1]) for e in entries if e] == [True, False]
        assert [(r["verified"], r["revoked"]) for r in stock_status(credentials)] == [(True, 1), (True, 0)]


def test_revoking_without_the_key_is_refused_before_anything_is_sent(env: IssuerEnv, anvil: DevChain) -> None:
    env.ingest_csv(1)
    env.service(status_base_url="http://127.0.0.1:9/status").run_once()
    receipt = next(env.out.glob("*.json"))
    refused = run_finvault(
        "revoke", str(receipt), "--reason", "superseded", "--db", env.db_url,
        "--rpc", anvil.rpc_url, "--registry", env.deployed.address, "--dev", "--dev-account", "1",
    )  # fmt: skip
    assert refused.returncode == 2
    assert "pass --out (the receipts folder) and --key-dir" in refused.stderr
    [certificate] = env.store.certificates(["cert-00000"])
    assert certificate.status is CertificateStatus.ANCHORED  # nothing was sent


def _resigned(path: Path, flip: int, key: Any) -> None:
    """The list at ``path`` with bit ``flip`` toggled, signed again by the issuer's own key: a list
    that verifies and lies (a bug, or an issuer's mistake)."""
    published = json.loads(path.read_text())
    bits = bytearray(list_bits(published))
    bits[flip // 8] ^= 0x80 >> (flip % 8)
    unsecured = {name: value for name, value in published.items() if name != "proof"}
    unsecured["credentialSubject"] = {
        **unsecured["credentialSubject"],
        "encodedList": encode_list(bytes(bits)),
    }
    controller = did_key(key.public_key())  # the issuer's own did:key, or an impostor's
    unsecured["issuer"] = controller
    created = published["proof"]["created"]
    path.write_text(json.dumps(add_proof(unsecured, key, controller=controller, created=created)))


@pytest.mark.slow(seconds=6)
def test_reconcile_names_a_flipped_bit_with_both_sides(
    env: IssuerEnv, anvil: DevChain, tmp_path: Path
) -> None:
    env.ingest_csv(3)
    service = env.service(status_base_url="https://uni.example/status")
    service.run_once()
    revoker = Revoker(env.store, env.writer(), status_lists=service.status_lists)
    revoker.revoke_certificates(["cert-00000"], RevocationReason.SUPERSEDED)
    by_id = {c.id: c for c in env.store.certificates(["cert-00000", "cert-00001", "cert-00002"])}
    mirror = f"sqlite:///{tmp_path / 'mirror.db'}"
    chain = ("--rpc", anvil.rpc_url, "--registry", env.deployed.address)
    assert run_finvault("sync", "--db", mirror, *chain).returncode == 0

    published = tmp_path / "published"
    shutil.copytree(env.out / "status", published)
    clean = run_finvault("reconcile", "--db", mirror, *chain, "--status-dir", str(published))
    assert clean.returncode == 0, clean.stdout + clean.stderr  # the lists as published tell the truth

    revoked_index, live_index = by_id["cert-00000"].status_index, by_id["cert-00001"].status_index
    assert revoked_index is not None
    assert live_index is not None
    for index in (revoked_index, live_index):
        _resigned(published / "1.json", index, env.key)
    drifted = run_finvault("reconcile", "--db", mirror, *chain, "--status-dir", str(published), "--json")
    assert drifted.returncode == 1, drifted.stderr
    drifts = {d["field"]: d for d in json.loads(drifted.stdout)["drifts"] if d["kind"] == "status"}
    assert set(drifts) == {f"https://uni.example/status/1#{i}" for i in (revoked_index, live_index)}
    revoked = drifts[f"https://uni.example/status/1#{revoked_index}"]
    assert (revoked["mirror"], revoked["chain"]) == ("listed not revoked", "revoked on-chain")
    assert revoked["tx_hash"].startswith("0x")  # where the chain says so
    live = drifts[f"https://uni.example/status/1#{live_index}"]
    assert (live["mirror"], live["chain"]) == ("listed revoked", "not revoked on-chain")
    text = run_finvault("reconcile", "--db", mirror, *chain, "--status-dir", str(published))
    assert (
        f"status: https://uni.example/status/1#{live_index}: listed revoked, not revoked on-chain"
        in text.stdout
    )

    _resigned(published / "1.json", live_index, generate_private_key("ed25519"))  # a key of its own
    impostor = run_finvault("reconcile", "--db", mirror, *chain, "--status-dir", str(published))
    assert "status: https://uni.example/status/1: signed by another key" in impostor.stdout

    (published / "1.json").write_text(
        (published / "1.json").read_text().replace('"proofValue": "z', '"proofValue": "z2')
    )
    forged = run_finvault("reconcile", "--db", mirror, *chain, "--status-dir", str(published))
    assert "status: https://uni.example/status/1: unreadable:" in forged.stdout


@pytest.mark.slow(seconds=6)
def test_a_list_published_after_the_mirrors_last_block_is_no_drift(
    env: IssuerEnv, anvil: DevChain, tmp_path: Path
) -> None:
    """The issuer publishes the moment an anchor or a revocation confirms; the mirror follows a
    poll later. A reconcile in between (the demo's VC-API credential anchored by the issuer API's
    scheduler while the README tour ran) must not call the list a liar; a lie the chain still
    contradicts stays a drift."""
    env.ingest_csv(2)
    service = env.service(status_base_url="https://uni.example/status")
    service.run_once()
    mirror = f"sqlite:///{tmp_path / 'mirror.db'}"
    chain = ("--rpc", anvil.rpc_url, "--registry", env.deployed.address)
    assert run_finvault("sync", "--db", mirror, *chain).returncode == 0
    env.ingest_csv(2, first=2)
    service.run_once()  # a batch the mirror has not seen, published
    Revoker(env.store, env.writer(), status_lists=service.status_lists).revoke_certificates(
        ["cert-00000", "cert-00003"], RevocationReason.SUPERSEDED
    )  # revocations it has not seen either, one of each batch
    published = tmp_path / "published"
    shutil.copytree(env.out / "status", published)
    ahead = run_finvault("reconcile", "--db", mirror, *chain, "--status-dir", str(published), "--json")
    assert ahead.returncode == 0, ahead.stdout + ahead.stderr

    live_index = env.store.certificates(["cert-00002"])[0].status_index
    assert live_index is not None
    _resigned(published / "1.json", live_index, env.key)
    lying = run_finvault("reconcile", "--db", mirror, *chain, "--status-dir", str(published), "--json")
    assert lying.returncode == 1, lying.stderr
    drifts = [d for d in json.loads(lying.stdout)["drifts"] if d["kind"] == "status"]
    assert [(d["field"], d["mirror"], d["chain"]) for d in drifts] == [
        (f"https://uni.example/status/1#{live_index}", "listed revoked", "not revoked on-chain")
    ]


@pytest.mark.slow(seconds=6)
def test_vc_api_issuance_returns_what_the_receipt_then_anchors(env: IssuerEnv, api: str) -> None:
    issue = {"Authorization": f"Bearer {create_api_key(env.store, 'platform', ['issue', 'read'])}"}
    credential = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "issuer": "did:example:replaced-by-the-issuers-own",
        "validFrom": "2026-07-01T00:00:00Z",
        "credentialSubject": {"id": "did:example:ada", "name": "Ada Lovelace"},
    }
    with httpx.Client(base_url=api, timeout=30) as http:
        assert http.post("/credentials/issue", json={"credential": credential}).status_code == 401
        answer = http.post(
            "/credentials/issue", json={"credential": credential, "options": {}}, headers=issue
        )
        assert answer.status_code == 201, answer.text
        issued = answer.json()["verifiableCredential"]
        assert issued["proof"]["cryptosuite"] == "eddsa-jcs-2022"
        assert issued["issuer"].startswith("did:key:z6Mk")
        assert issued["id"].startswith("urn:uuid:")
        assert read_entry(issued) is not None
        assert stock_verifier([issued]) == [{"verified": True, "error": None}]
        assert [r["verified"] for r in stock_status([issued])] == [True]

        certificate = f"vcapi-{issued['id'].removeprefix('urn:uuid:')}"
        assert answer.headers["location"] == f"/certificates/{certificate}"
        wait_for(
            lambda: http.get(f"/certificates/{certificate}", headers=issue).json()["status"] == "anchored"
        )
        receipt = http.get(f"/certificates/{certificate}", headers=issue).json()["receipt"]
        assert receipt["credential"] == issued  # the leaf commits to exactly what was handed out

        bad = http.post(
            "/credentials/issue",
            json={"credential": {**credential, "validUntil": "2020-01-01T00:00:00Z"}},
            headers=issue,
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["message"] == "VC 2.0 validity: validFrom is after validUntil"
        assert (
            http.post(
                "/credentials/issue", json={"credential": credential, "x": 1}, headers=issue
            ).status_code
            == 400
        )


@pytest.mark.slow(seconds=3)
def test_vc_api_issues_an_open_badge_whole_and_checks_its_structure(env: IssuerEnv, api: str) -> None:
    """An Open Badge 3.0 through ``POST /credentials/issue``: secured with the Open Badges suite and
    stamped by the issuer (its Profile kept); one lacking what OB 3.0 requires is a 400 naming it."""
    issue = {"Authorization": f"Bearer {create_api_key(env.store, 'platform', ['issue', 'read'])}"}
    badge = ob3_template().fill(
        {
            "issuer_name": "Example University",
            "issued": "2026-07-01",
            "achievement_id": "https://uni.example/achievements/python-101",
            "achievement_name": "Python 101",
            "achievement_description": "Writes and tests small Python programs.",
            "criteria_narrative": "Passed the final project.",
            "recipient_id": "did:example:ada",
        }
    )
    with httpx.Client(base_url=api, timeout=30) as http:
        answer = http.post("/credentials/issue", json={"credential": badge, "options": {}}, headers=issue)
        assert answer.status_code == 201, answer.text
        issued = answer.json()["verifiableCredential"]
        assert issued["proof"]["cryptosuite"] == OB3_CRYPTOSUITE
        assert issued["issuer"]["type"] == ["Profile"]
        assert issued["issuer"]["id"].startswith("did:key:z6Mk")
        assert issued["credentialSubject"]["achievement"] == badge["credentialSubject"]["achievement"]

        del badge["credentialSubject"]["achievement"]["criteria"]
        refused = http.post("/credentials/issue", json={"credential": badge}, headers=issue)
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == (
            "not an Open Badge 3.0: credentialSubject.achievement.criteria: missing (required: a Criteria)"
        )


def test_an_open_badge_carries_a_signed_status_entry_and_is_revoked_like_any_credential(
    env: IssuerEnv,
) -> None:
    """Open Badges from the ``ob3`` template get a ``credentialStatus`` entry at sealing, inside what
    their eddsa-rdfc-2022 proof signs (Digital Bazaar's verifier agrees), and revoking one flips its
    bit in the published list, and only its."""
    badges_csv = write_badges_csv(env.tmp / "badges.csv", 2)
    assert ingest(env.store, read_input(badges_csv, template_for("ob3"))).accepted == 2
    service = env.service(status_base_url="https://uni.example/status")
    service.run_once()
    credentials = [receipt.credential for receipt in env.receipts() if isinstance(receipt.credential, dict)]
    assert [c["proof"]["cryptosuite"] for c in credentials] == [OB3_CRYPTOSUITE] * 2
    entries = [read_entry(c) for c in credentials]
    assert [e[0] if e else None for e in entries] == ["https://uni.example/status/1"] * 2
    altered = json.loads(json.dumps(credentials[0]))
    altered["credentialStatus"]["statusListIndex"] = str(
        int(altered["credentialStatus"]["statusListIndex"]) + 1
    )
    judged = rdfc_peer("verify", [*credentials, altered])
    assert [r["verified"] for r in judged] == [True, True, False], judged

    Revoker(env.store, env.writer(), status_lists=service.status_lists).revoke_certificates(
        ["badge-0000"], RevocationReason.SUPERSEDED
    )
    bits = list_bits(json.loads((env.out / "status" / "1.json").read_text()))
    assert [is_set(bits, e[1]) for e in entries if e] == [True, False]
    [revoked] = env.store.certificates(["badge-0000"])
    assert revoked.status is CertificateStatus.REVOKED


def test_a_publication_a_crash_missed_is_made_on_resume(env: IssuerEnv) -> None:
    """A revocation committed but never published (the process died between the two) is owed:
    the next resume publishes it, before anything new."""
    env.ingest_csv(2)
    service = env.service(status_base_url="https://uni.example/status")
    service.run_once()
    published = env.out / "status" / "1.json"
    before = published.read_text()
    Revoker(env.store, env.writer()).revoke_certificates(["cert-00001"], RevocationReason.SUPERSEDED)
    assert published.read_text() == before  # committed on-chain and in the store, not published
    [certificate] = env.store.certificates(["cert-00001"])
    assert certificate.status_index is not None
    env.service(status_base_url="https://uni.example/status").resume()
    assert is_set(list_bits(json.loads(published.read_text())), certificate.status_index)
    assert env.service(status_base_url="https://uni.example/status").status_lists.publish_owed() == []  # type: ignore[union-attr]
