"""The issuer API as operators run it: `finvault issuer-api serve` (real uvicorn) against anvil.

Certificates go in over HTTP, the scheduler anchors them, the receipts come back over HTTP and
verify against the chain; revocations go out over HTTP; a local receiver gets signed webhooks, and
a receiver that always fails ends up in the dead letters.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.core.receipt import parse_receipt
from chain.core.verify import Status, verify
from chain.dev.devchain import DevChain
from chain.rpc import RpcClient
from issuer.api_keys import create_api_key
from issuer.webhooks import SIGNATURE_HEADER, verify_signature
from tests.integration.conftest import Deployed
from tests.integration.issuer_fixtures import FINALITY_DEPTH, NODE_URL, NOW, PASSPHRASE, TEMPLATE, IssuerEnv

ROOT_DIR = Path(__file__).resolve().parents[2]
SECRET = "integration-webhook-secret-0123456789"
#: A bound on a hang, not a measurement.
DEADLINE = 90.0


class Receiver:
    """A webhook endpoint on 127.0.0.1 that keeps every delivery; ``status`` is what it answers."""

    def __init__(self, status: int) -> None:
        self.received: list[tuple[str, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((self.headers[SIGNATURE_HEADER], body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def env(registry: Deployed, rpc: RpcClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> IssuerEnv:
    for name in list(os.environ):
        if name.startswith("FINVAULT_"):
            monkeypatch.delenv(name)
    return IssuerEnv(registry, rpc, tmp_path)


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    good, failing = Receiver(204), Receiver(500)
    yield good, failing
    good.close()
    failing.close()


@pytest.fixture
def server(
    env: IssuerEnv, anvil: DevChain, receivers: tuple[Receiver, Receiver], reserved_port: int
) -> Iterator[str]:
    webhooks = {
        "FINVAULT_WEBHOOK_URLS": ",".join(r.url for r in receivers),
        "FINVAULT_WEBHOOK_SECRET": SECRET,
        "FINVAULT_WEBHOOK_MAX_ATTEMPTS": "2",
    }
    with issuer_api(env, anvil, reserved_port, str(TEMPLATE), webhooks) as url:
        yield url


@contextmanager
def issuer_api(
    env: IssuerEnv, anvil: DevChain, port: int, template: str, extra_env: dict[str, str]
) -> Iterator[str]:
    """``finvault issuer-api serve --template TEMPLATE`` in a process of its own, until the block ends."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FINVAULT_")}
    environment |= {
        "FINVAULT_SIGNING_KEY_PASSPHRASE": PASSPHRASE,
        "FINVAULT_ISSUER_API_MAX_BODY": "65536",
        **extra_env,
    }
    args = [
        *("issuer-api", "serve", "--template", template, "--out", str(env.out), "--port", str(port)),
        *("--every", "0.5", "--key-dir", str(env.key_dir), "--node-url", NODE_URL, "--db", env.db_url),
        *("--rpc", anvil.rpc_url, "--registry", env.deployed.address, "--dev", "--dev-account", "1"),
    ]
    process = subprocess.Popen(
        [sys.executable, "-c", "from chain.entry import main; main()", *args],
        cwd=ROOT_DIR,
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), process)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        assert process.returncode == 0, stderr
        assert SECRET not in stderr


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the issuer API exited: {process.communicate()[1]}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def student(i: int) -> dict[str, Any]:
    return {
        "id": f"api-{i:03d}",
        "name": f"Student {i}",
        "degree": "MSc Data Science",
        "grade": "A",
        "credits": 120,
        "issued": "2026-07-01",
        "graduated": "2026-06-30",
    }


@pytest.mark.slow(seconds=6)
def test_issue_anchor_fetch_revoke_and_webhooks_over_http(
    env: IssuerEnv, server: str, receivers: tuple[Receiver, Receiver]
) -> None:
    good, failing = receivers
    registrar = {"Authorization": f"Bearer {create_api_key(env.store, 'registrar', ['issue', 'read'])}"}
    revoker = {"Authorization": f"Bearer {create_api_key(env.store, 'dean', ['revoke', 'read'])}"}
    with httpx.Client(base_url=server, timeout=30) as http:
        submitted = http.post(
            "/certificates",
            json=[student(1), student(2), {**student(3), "credits": "many"}],
            headers={**registrar, "Idempotency-Key": "intake-1"},
        )
        assert submitted.status_code == 202, submitted.text
        assert [c["id"] for c in submitted.json()["accepted"]] == ["api-001", "api-002"]
        assert submitted.json()["rejected"][0]["index"] == 3
        assert submitted.headers["x-correlation-id"]

        def anchored() -> bool:
            return bool(http.get("/certificates/api-002", headers=registrar).json()["status"] == "anchored")

        wait_for(anchored)
        replay = http.post(
            "/certificates",
            json=[student(1), student(2), {**student(3), "credits": "many"}],
            headers={**registrar, "Idempotency-Key": "intake-1"},
        )
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == submitted.json()
        assert env.anchor_count() == 1

        view = http.get("/certificates/api-001", headers=registrar).json()
        receipt = parse_receipt(json.dumps(view["receipt"]).encode())
        assert receipt.proof.root == view["batch"]
        env.rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
        assert verify(receipt, env.facts(), NOW).status is Status.VALID

        batch = http.get(f"/batches/{view['batch']}", headers=registrar).json()
        assert (batch["status"], batch["leaf_count"], batch["revocation"]) == ("anchored", 2, None)
        assert batch["tx_hash"].startswith("0x")

        refused = http.post(
            "/revocations", json={"certificate_ids": ["api-001"], "reason": 4}, headers=registrar
        )
        assert refused.status_code == 403
        revoke = {"certificate_ids": ["api-001"], "reason": "superseded"}
        revoked = http.post("/revocations", json=revoke, headers=revoker)
        assert revoked.status_code == 200, revoked.text
        (outcome,) = revoked.json()["results"]
        assert (outcome["target"], outcome["already_revoked"], outcome["reason"]) == (
            "api-001",
            False,
            "superseded",
        )
        again = http.post("/revocations", json=revoke, headers=revoker).json()["results"][0]
        assert again["already_revoked"] is True
        assert again["tx_hash"] is None
        assert verify(receipt, env.facts(), NOW).status is Status.REVOKED
        view = http.get("/certificates/api-001", headers=revoker).json()
        assert view["status"] == "revoked"
        assert view["revocation"]["reason"] == "superseded"

        unknown = http.post("/revocations", json={"certificate_ids": ["nope"], "reason": 4}, headers=revoker)
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "certificate_unknown"
        assert http.post("/certificates", content=b"x" * 70_000, headers=registrar).status_code == 413

        wait_for(
            lambda: {e["type"] for e in good.events()} == {"certificate.anchored", "certificate.revoked"}
        )
        for header, body in good.received:
            assert verify_signature(SECRET.encode(), header, body, now=int(time.time()))
        by_type = {e["type"]: e["data"] for e in good.events()}
        assert by_type["certificate.anchored"]["certificate_ids"] == ["api-001", "api-002"]
        assert by_type["certificate.revoked"]["certificate_ids"] == ["api-001"]
        assert by_type["certificate.revoked"]["reason"] == "superseded"

        def dead_letters() -> list[dict[str, Any]]:
            response = http.get("/webhooks/deliveries", params={"status": "dead"}, headers=registrar)
            return list(response.json())

        wait_for(lambda: len(dead_letters()) == 2)
        assert {d["attempts"] for d in dead_letters()} == {2}
        assert all(d["last_error"] == "HTTP 500" for d in dead_letters())
        assert len(failing.received) == 4


def badge_record(i: int, **changes: str) -> dict[str, Any]:
    """One record for the built-in ``ob3`` template (its columns: docs/usage.md)."""
    return {
        "id": f"badge-{i:03d}",
        "issuer_name": "Example University",
        "issued": "2026-07-01",
        "achievement_id": "https://uni.example/achievements/python-101",
        "achievement_name": "Python 101",
        "achievement_description": "Writes and tests small Python programs.",
        "criteria_narrative": "Passed the final project.",
        "recipient_email": f"student{i}@uni.example",
        **changes,
    }


@pytest.mark.slow(seconds=6)
def test_open_badges_through_the_api_with_the_builtin_template(
    env: IssuerEnv, anvil: DevChain, reserved_port: int
) -> None:
    """``issuer-api serve --template ob3``: badge records in, a bad one refused with the OB 3.0 rule it
    breaks, the good ones anchored as Data Integrity credentials that verify."""
    registrar = {"Authorization": f"Bearer {create_api_key(env.store, 'registrar', ['issue', 'read'])}"}
    with (
        issuer_api(env, anvil, reserved_port, "ob3", {}) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        records = [badge_record(1), badge_record(2, achievement_id="python-101"), badge_record(3)]
        submitted = http.post("/certificates", json=records, headers=registrar)
        assert submitted.status_code == 202, submitted.text
        assert [c["id"] for c in submitted.json()["accepted"]] == ["badge-001", "badge-003"]
        [rejected] = submitted.json()["rejected"]
        assert (rejected["index"], rejected["id"]) == (2, "badge-002")
        assert rejected["reason"] == "credentialSubject.achievement.id: must be a URI (scheme:...)"

        def anchored() -> bool:
            return bool(http.get("/certificates/badge-003", headers=registrar).json()["status"] == "anchored")

        wait_for(anchored)
        env.rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
        for certificate_id in ("badge-001", "badge-003"):
            view = http.get(f"/certificates/{certificate_id}", headers=registrar).json()
            receipt = parse_receipt(json.dumps(view["receipt"]).encode())
            assert isinstance(receipt.credential, dict)
            assert receipt.credential["proof"]["cryptosuite"] == "eddsa-rdfc-2022"
            assert receipt.credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
            assert verify(receipt, env.facts(), NOW).status is Status.VALID
