"""``finvault issue``, ``anchor`` and ``revoke`` against anvil, a SQLite file and real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from chain.core.encoding import hex0x
from chain.core.receipt import parse_receipt
from chain.core.secured import leaf_of
from chain.core.signing import public_key_info
from chain.dev.devchain import DevChain
from chain.errors import ConfigError, KeystoreError
from chain.keys import decrypt_private_key, encrypt_private_key, generate_private_key, key_protection
from chain.rpc import RpcClient
from chain.service.files import write_secret_file
from issuer.cli import anchor_command, issue, revoke
from issuer.errors import IntakeRejected, SigningKeyUnusable
from issuer.outputs import MANIFEST_FORMAT
from issuer.registration import issuer_group
from issuer.store import Certificate, CertificateStatus
from tests.integration.conftest import Deployed, run_finvault
from tests.integration.issuer_fixtures import (
    FIXTURES,
    NODE_URL,
    PASSPHRASE,
    TEMPLATE,
    IssuerEnv,
    write_badges_csv,
    write_students_csv,
)
from tests.integration.node_fixtures import FINALITY_DEPTH, start_node, verdict_when
from tests.tools.stock_verifier import rdfc_peer

ROOT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(registry: Deployed, rpc: RpcClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> IssuerEnv:
    for name in list(os.environ):
        if name.startswith("FINVAULT_"):
            monkeypatch.delenv(name)
    return IssuerEnv(registry, rpc, tmp_path)


def chain_access(env: IssuerEnv, anvil: DevChain) -> list[str]:
    return [
        "--db",
        env.db_url,
        "--rpc",
        anvil.rpc_url,
        "--registry",
        env.deployed.address,
        "--dev",
        "--dev-account",
        "1",
    ]


def chain_args(
    env: IssuerEnv, anvil: DevChain, *, key_dir: Path | None = None, passphrase: str | None = PASSPHRASE
) -> list[str]:
    """Everything `issue --now` and `anchor` need: store, signing key, node URL, chain access.

    ``passphrase=None`` leaves the passphrase to the environment."""
    args = ["--key-dir", str(key_dir or env.key_dir), "--node-url", NODE_URL, *chain_access(env, anvil)]
    if passphrase is not None:
        passphrase_file = env.tmp / "passphrase"
        write_secret_file(passphrase_file, passphrase.encode() + b"\n")
        args += ["--passphrase-file", str(passphrase_file)]
    return args


def run(command: object, *args: str) -> Result:
    return CliRunner(mix_stderr=False).invoke(command, list(args))  # type: ignore[arg-type]


def count(env: IssuerEnv, status: CertificateStatus | None = None) -> int:
    with env.store.transaction() as session:
        query = select(func.count()).select_from(Certificate)
        if status is not None:
            query = query.where(Certificate.status == status)
        return int(session.scalar(query) or 0)


#: The issue's acceptance batch: one CSV, one anchor transaction.
BATCH = 1_000


@pytest.mark.slow(seconds=20)
def test_issue_now_anchors_1000_certificates_in_one_transaction(env: IssuerEnv, anvil: DevChain) -> None:
    students = write_students_csv(env.tmp / "students.csv", BATCH)
    nonce = env.nonce()
    result = run(
        issue,
        str(students),
        "--template",
        str(TEMPLATE),
        "--out",
        str(env.out),
        "--now",
        "--workers",
        "2",
        *chain_args(env, anvil),
    )
    assert result.exit_code == 0, result.stderr or result.exception
    assert f"{BATCH} accepted, 0 rejected" in result.stdout
    assert f"{BATCH} certificates anchored in block" in result.stdout
    assert env.nonce() == nonce + 1
    assert env.anchor_count() == 1
    assert count(env, CertificateStatus.ANCHORED) == BATCH

    receipts = list(env.receipts())
    assert len(receipts) == BATCH
    assert not list(env.out.glob("*.png"))  # QR codes are rendered on demand (`finvault qr`)
    root = receipts[0].proof.root
    assert len(env.anchored_logs(root)) == 1
    tx_hash = env.store.batch(root).tx_hash
    gas = int(env.rpc.call("eth_getTransactionReceipt", [tx_hash])["gasUsed"], 16)
    print(f"one anchor transaction for {BATCH} certificates: {gas:,} gas")
    assert gas <= 80_000
    manifest = json.loads((env.out / "manifests" / f"{root}.json").read_text())
    assert manifest["format"] == MANIFEST_FORMAT
    assert manifest["count"] == BATCH
    assert manifest["leaves"] == sorted(hex0x(leaf_of(r.credential)) for r in receipts)
    assert "Student" not in json.dumps(manifest)  # hashes only, no personal data
    assert env.assert_all_valid() == BATCH


def test_issue_stores_pending_then_anchor_command_finishes(
    env: IssuerEnv, anvil: DevChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_input = FIXTURES / "students.csv"
    stored = run(
        issue, str(csv_input), "--template", str(TEMPLATE), "--out", str(env.out), "--db", env.db_url
    )
    assert stored.exit_code == 0, stored.exception
    assert "3 accepted, 0 rejected" in stored.stdout
    assert count(env, CertificateStatus.PENDING) == 3
    assert env.anchor_count() == 0

    monkeypatch.setenv("FINVAULT_SIGNING_KEY_PASSPHRASE", PASSPHRASE)
    anchored = run(anchor_command, "--out", str(env.out), *chain_args(env, anvil, passphrase=None))
    assert anchored.exit_code == 0, anchored.exception
    assert "3 certificates anchored" in anchored.stdout
    assert {p.name for p in env.out.glob("*.json")} == {"cert-0001.json", "cert-0002.json", "cert-0003.json"}
    assert env.assert_all_valid() == 3

    again = run(anchor_command, "--out", str(env.out), *chain_args(env, anvil))
    assert again.stdout.strip() == "nothing to anchor"


def test_bad_rows_are_reported_and_good_rows_kept(env: IssuerEnv) -> None:
    bad = FIXTURES / "bad-rows.csv"
    result = run(issue, str(bad), "--template", str(TEMPLATE), "--out", str(env.out), "--db", env.db_url)
    assert result.exit_code == 0, result.exception
    assert "3 accepted, 5 rejected" in result.stdout
    assert result.stderr.splitlines()[:-1] == [
        f"{bad}: rejected line 3: missing column 'name'",
        f"{bad}: rejected line 4: column 'issued': '2026-13-01' is not an ISO 8601 date-time",
        f"{bad}: rejected line 5: duplicate certificate id 'cert-1' (also on line 2)",
        f"{bad}: rejected line 6: column 'name': byte 0xe9 is not UTF-8",
    ]
    assert result.stderr.splitlines()[-1].startswith(f"{bad}: rejected line 9: /credentialSubject/credits: ")
    assert count(env) == 3

    assert "the accepted ones are stored" in result.stdout  # partly rejected: exit 0, and says so

    # Every row rejected: nothing stored, and the exit status says so (it was 0).
    twice = run_finvault(
        "issue", str(bad), "--template", str(TEMPLATE), "--out", str(env.out), "--db", env.db_url
    )
    assert twice.returncode == 2
    assert "rejected line 2: certificate id 'cert-1' is already in the store" in twice.stderr
    assert twice.stderr.splitlines()[-1] == (
        f"finvault: error: intake_all_rejected: 0 accepted, 8 rejected: every row of {bad} was rejected "
        "(above); nothing stored"
    )
    assert count(env) == 3


def test_strict_stores_nothing(env: IssuerEnv) -> None:
    result = run(
        issue,
        str(FIXTURES / "bad-rows.csv"),
        "--template",
        str(TEMPLATE),
        "--out",
        str(env.out),
        "--db",
        env.db_url,
        "--strict",
    )
    assert isinstance(result.exception, IntakeRejected)
    assert result.exception.code == "intake_rejected"
    assert "line 3: missing column 'name'" in result.exception.message
    assert count(env) == 0


def test_now_checks_key_and_passphrase_before_storing(env: IssuerEnv, anvil: DevChain) -> None:
    students = str(FIXTURES / "students.jsonl")
    head = [students, "--template", str(TEMPLATE), "--out", str(env.out), "--now"]
    wrong = run(issue, *head, *chain_args(env, anvil, passphrase="not the passphrase"))
    assert isinstance(wrong.exception, KeystoreError)
    assert "not the passphrase" not in str(wrong.exception)

    unregistered = env.tmp / "other-key"
    unregistered.mkdir()
    other = generate_private_key("ed25519")
    write_secret_file(unregistered / "signing-key.pem", encrypt_private_key(other, PASSPHRASE))
    result = run(issue, *head, *chain_args(env, anvil, key_dir=unregistered))
    assert isinstance(result.exception, SigningKeyUnusable)
    assert count(env) == 0


def test_open_badges_with_an_rsa_key_are_refused_before_storing(env: IssuerEnv, anvil: DevChain) -> None:
    """Open Badges are secured with Data Integrity (Ed25519): `issue --template ob3 --now` with a
    registered RSA key stops before intake, saying why."""
    rsa_dir = env.tmp / "rsa-key"
    rsa_dir.mkdir()
    rsa = generate_private_key("rsa-2048")
    write_secret_file(rsa_dir / "signing-key.pem", encrypt_private_key(rsa, PASSPHRASE))
    info = public_key_info(rsa)
    env.deployed.issuer.add_key(info.key_id, int(info.algorithm), info.der)
    badges = write_badges_csv(env.tmp / "badges.csv", 2)
    args = [str(badges), "--template", "ob3", "--out", str(env.out), "--now"]
    result = run(issue, *args, *chain_args(env, anvil, key_dir=rsa_dir))
    assert isinstance(result.exception, ConfigError)
    assert "Open Badges 3.0 credentials are secured with a Data Integrity proof" in result.exception.message
    assert "needs an Ed25519 signing key" in result.exception.message
    assert count(env) == 0
    assert env.anchor_count() == 0


def test_revoke_command(env: IssuerEnv, anvil: DevChain) -> None:
    students = write_students_csv(env.tmp / "students.csv", 4)
    args = chain_args(env, anvil)
    assert (
        run(
            issue, str(students), "--template", str(TEMPLATE), "--out", str(env.out), "--now", *args
        ).exit_code
        == 0
    )
    receipts = [env.out / "cert-00000.json", env.out / "cert-00001.json"]
    chain_only = chain_access(env, anvil)

    revoked = run(revoke, *map(str, receipts), "--reason", "affiliation-changed", *chain_only)
    assert revoked.exit_code == 0, revoked.exception
    assert revoked.stdout.count("revoked (affiliationChanged) in block") == 2
    again = run(revoke, str(receipts[0]), "--reason", "4", *chain_only)
    assert again.stdout.startswith("cert-00000: already revoked (affiliationChanged")

    root = next(env.receipts()).proof.root
    whole = run(revoke, "--batch", root, "--reason", "key_compromise", *chain_only)
    assert whole.stdout.startswith(f"{root}: revoked (keyCompromise)")

    for bad_args, message in [
        (["--reason", "superseded"], "pass receipt files or --batch"),
        ([str(receipts[0]), "--reason", "because"], "unknown revocation reason"),
        (["--batch", "0x12", "--reason", "0"], "--batch takes a root"),
    ]:
        failed = run(revoke, *bad_args, *chain_only)
        assert isinstance(failed.exception, ConfigError)
        assert message in failed.exception.message


@pytest.mark.slow
def test_anchor_every_runs_until_interrupted(env: IssuerEnv, anvil: DevChain) -> None:
    env.ingest_csv(3)
    command = "from issuer.cli import anchor_command; anchor_command(prog_name='finvault anchor')"
    args = ["--out", str(env.out), "--every", "0.2", *chain_args(env, anvil, passphrase=None)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FINVAULT_")}
    environment["FINVAULT_SIGNING_KEY_PASSPHRASE"] = PASSPHRASE
    daemon = subprocess.Popen(
        [sys.executable, "-c", command, *args],
        cwd=ROOT_DIR,
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60  # a bound on a hang, not a measurement
        while count(env, CertificateStatus.ANCHORED) < 3:
            assert daemon.poll() is None, daemon.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        daemon.send_signal(signal.SIGINT)
        _, stderr = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, stderr
    assert "anchoring every 0.2s, or at 10000 pending" in stderr
    assert stderr.rstrip().endswith("stopped")
    assert env.anchor_count() == 1


def test_a_signing_key_others_can_read_is_refused(env: IssuerEnv, anvil: DevChain) -> None:
    os.chmod(env.key_dir / "signing-key.pem", 0o640)
    students = str(FIXTURES / "students.jsonl")
    result = run(
        issue, students, "--template", str(TEMPLATE), "--out", str(env.out), "--now", *chain_args(env, anvil)
    )
    assert isinstance(result.exception, ConfigError)
    assert f"signing key {env.key_dir / 'signing-key.pem'} is accessible by others (mode 0640)" in str(
        result.exception
    )
    assert "chmod 600" in str(result.exception)
    assert count(env) == 0


def test_a_weak_legacy_key_warns_and_reencrypts_in_place(env: IssuerEnv, anvil: DevChain) -> None:
    key_file = env.key_dir / "signing-key.pem"
    legacy = env.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    )
    write_secret_file(key_file, legacy)
    students = str(FIXTURES / "students.jsonl")
    issued = run(
        issue, students, "--template", str(TEMPLATE), "--out", str(env.out), "--now", *chain_args(env, anvil)
    )
    assert issued.exit_code == 0, issued.stderr
    assert "is encrypted with PBKDF2-HMAC-SHA256 at 2,048 iterations, below current guidance" in issued.stderr
    assert f"finvault issuer reencrypt-key --key-dir {env.key_dir}" in issued.stderr

    passphrase_file = env.tmp / "passphrase"  # written by chain_args
    redone = run(
        issuer_group,
        "reencrypt-key",
        "--key-dir",
        str(env.key_dir),
        "--passphrase-file",
        str(passphrase_file),
    )
    assert redone.exit_code == 0, redone.stderr
    assert (
        "PBKDF2-HMAC-SHA256 at 2,048 iterations -> PBKDF2-HMAC-SHA256 at 600,000 iterations" in redone.stdout
    )
    assert key_protection(key_file.read_bytes()).meets_guidance
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in env.key_dir.iterdir()) == ["signing-key.pem"]  # the backup is gone
    assert public_key_info(decrypt_private_key(key_file.read_bytes(), PASSPHRASE)) == public_key_info(env.key)

    again = run(
        issue, students, "--template", str(TEMPLATE), "--out", str(env.out), "--now", *chain_args(env, anvil)
    )
    assert "below current guidance" not in again.stderr


@pytest.mark.slow(seconds=10)
def test_open_badges_from_the_builtin_template_verify_at_a_node(
    env: IssuerEnv, anvil: DevChain, tmp_path: Path
) -> None:
    """``finvault issue --template ob3 --now``: Open Badges 3.0 sealed with Data Integrity (under the
    default sd-jwt securing), anchored, VALID at a real node; one field changed is INVALID."""
    badges = write_badges_csv(env.tmp / "badges.csv", 3)
    args = [str(badges), "--template", "ob3", "--out", str(env.out), "--now", *chain_args(env, anvil)]
    result = run(issue, *args)
    assert result.exit_code == 0, result.stderr or result.exception
    assert "3 accepted, 0 rejected" in result.stdout
    assert "3 certificates anchored in block" in result.stdout

    receipts = list(env.receipts())
    assert len(receipts) == 3
    for receipt in receipts:
        credential = receipt.credential
        assert isinstance(credential, dict)  # a whole credential, never an SD-JWT
        assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
        assert credential["proof"]["cryptosuite"] == "eddsa-rdfc-2022"
        assert credential["issuer"]["type"] == ["Profile"]
        assert credential["issuer"]["id"] == credential["proof"]["verificationMethod"].split("#")[0]
        assert credential["credentialSubject"]["achievement"]["name"] == "Python 101"
    assert "student1@uni.example" not in (env.out / "badge-0001.json").read_text()  # hashed
    # An independent verifier (Digital Bazaar's eddsa-rdfc-2022, offline on the shipped contexts)
    # agrees: every badge verifies, and one with a field changed does not.
    credentials = [receipt.credential for receipt in receipts if isinstance(receipt.credential, dict)]
    altered = json.loads(json.dumps(credentials[0]))
    altered["credentialSubject"]["achievement"]["name"] = "Python 999"
    judged = rdfc_peer("verify", [*credentials, altered])
    assert [result["verified"] for result in judged] == [True, True, True, False], judged

    env.rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    with (
        start_node(anvil.rpc_url, env.deployed.address, node_dir) as node,
        httpx.Client(base_url=node.url, timeout=30) as client,
    ):
        for receipt in receipts:
            verdict = verdict_when(client, receipt, "VALID")
            assert verdict["credential"]["credentialSubject"]["achievement"]["id"] == (
                "https://uni.example/achievements/python-101"
            )
        forged = json.loads(receipts[0].to_json())
        forged["credential"]["credentialSubject"]["achievement"]["name"] = "Python 999"
        verdict = verdict_when(client, parse_receipt(json.dumps(forged).encode()), "INVALID")
        assert verdict["status"] == "INVALID"
