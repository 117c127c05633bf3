"""No secret reaches a log: real processes at full verbosity, and everything they write searched.

Each process gets a ``sitecustomize`` on its ``PYTHONPATH`` that sets the root logger to level 1
(DEBUG, and uvicorn's TRACE) with a handler on stderr: the most an operator could turn on, on top
of the product's own knob (``FINVAULT_LOG_LEVEL=trace`` for the node). The processes:

- the issuer's command line: ``account new`` and ``issuer keygen`` (an encrypted keystore and an
  encrypted signing key, passwords from files), ``issuer add-key`` and ``issue --now`` with both,
  ``anchor`` with a wrong keystore password and with a wrong signing passphrase (from the
  environment), and ``verify --rpc`` against an endpoint that answers 503;
- ``issuer-api serve`` (keystore password, signing passphrase and webhook secret from the
  environment), asked with a valid ``Authorization: Bearer fvk_...`` and with forged ones,
  anchoring on its timer and delivering a signed webhook;
- ``finvault node`` with an admin token, a metrics token and a cursor secret, asked with the right
  and wrong bearer tokens, its RPC endpoint failing for a while (503s and dropped connections).

Every RPC URL carries a provider key in its path and another in its query
(``tests/tools/rpc_proxy.py`` answers on any path). Each secret is searched, case-insensitively, in
every spelling that could carry it (:func:`spellings`). The HTTP answers the servers gave are
searched too.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from eth_account import Account

from chain.dev.devchain import DevChain
from chain.keys import decrypt_private_key
from chain.rpc import RpcClient, redact_url
from chain.service.files import write_secret_file
from issuer.api_keys import create_api_key
from issuer.store import Store
from issuer.webhooks import verify_signature
from tests.integration.conftest import FINVAULT, Deployed, run_finvault
from tests.integration.issuer_fixtures import NODE_URL, TEMPLATE, write_students_csv
from tests.integration.node_fixtures import FINALITY_DEPTH, issue, start_node, verdict_when, wait_for
from tests.integration.test_issuer_api import Receiver, student
from tests.tools.rpc_proxy import Fault, FaultKind, RpcProxy

ROOT = Path(__file__).resolve().parents[2]

#: Logged by every process at start-up: proof that the process ran with debug logging on.
MARKER = "secrets-in-logs: root logger at DEBUG"
SITECUSTOMIZE = f"""
import logging
logging.basicConfig(level=1, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("finvault.test").debug({MARKER!r})
"""

KEYSTORE_PASSWORD = "ks-password-Vq3nX8sL2tRz"
SIGNING_PASSPHRASE = "pem-passphrase-Hd7wK1mC9yQe"
WRONG_PASSWORD = "wrong-password-Zp4bN6vT0jLs"
RPC_PATH_KEY = "rpcPathKey7f3a9c2e1b8d4"
RPC_QUERY_KEY = "rpcQueryKey5e8b1d7a3c9f"
QUORUM_PATH_KEY = "quorumPathKey2c6e9a4f1b7d"
QUORUM_QUERY_KEY = "quorumQueryKey8d3f5b2a6e1c"
WEBHOOK_SECRET = "webhook-secret-Tn5rB2xW8kPq4mYc"
ADMIN_TOKEN = "admin-token-Gj6sR3vN9tLw2hXd"
METRICS_TOKEN = "metrics-token-Fy2kP7dQ4mZs8bWn"
CURSOR_SECRET = "cursor-secret-Lc9vH3xJ6rTq1gNe"
WRONG_TOKEN = "wrong-token-Qm8cT1zK5nVr3pYa"
#: Below this length a fragment could turn up by chance.
MIN_FRAGMENT = 12


def spellings(secret: bytes) -> set[str]:
    """Every way ``secret`` could be written in a text log, as fragments of at least 12 characters.

    Base64 is taken at all three alignments, and only the characters that depend on the secret
    alone, so the secret is found inside a longer base64 text (a PEM body, a Basic header) too.
    """
    found = {secret.hex(), repr(secret)[2:-1], str(int.from_bytes(secret, "big"))}
    try:
        text = secret.decode()
    except UnicodeDecodeError:
        pass
    else:
        found |= {text, quote(text, safe=""), json.dumps(text)[1:-1]}
    for shift in range(3):
        padded = bytes(shift) + secret
        first, last = -(-8 * shift // 6), 8 * len(padded) // 6
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            found.add(encode(padded).decode()[first:last])
    return {fragment.lower() for fragment in found if len(fragment) >= MIN_FRAGMENT}


def assert_no_secret(outputs: Mapping[str, str], named_secrets: Mapping[str, bytes | str]) -> None:
    """Fails naming each (secret, output) pair where a spelling of the secret turns up."""
    leaks = []
    for where, text in outputs.items():
        lowered = text.lower()
        for name, secret in named_secrets.items():
            raw = secret.encode() if isinstance(secret, str) else secret
            for fragment in spellings(raw):
                at = lowered.find(fragment)
                if at >= 0:  # what came before it on its line, not the secret itself
                    line_start = text.rfind("\n", 0, at) + 1
                    leaks.append(f"{name} in {where}, after {text[max(line_start, at - 80) : at]!r}")
                    break
    assert not leaks, "\n".join(leaks)


def assert_logged_at_debug(logs: Mapping[str, str]) -> None:
    for where, text in logs.items():
        assert MARKER in text, f"{where} did not run with debug logging: {text[-500:]!r}"


def pem_body(pem: bytes) -> bytes:
    """The DER inside a PEM file."""
    lines = pem.decode().strip().splitlines()
    return base64.b64decode("".join(line for line in lines if not line.startswith("-----")))


def without_finvault_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FINVAULT_")}


@pytest.fixture
def debug_env(tmp_path: Path) -> dict[str, str]:
    """The environment that makes a Python process log everything (see the module docstring)."""
    site = tmp_path / "debug-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)}


@pytest.fixture
def proxy(anvil: DevChain) -> Iterator[RpcProxy]:
    with RpcProxy(anvil.rpc_url) as proxy:
        yield proxy


def keyed_url(proxy: RpcProxy, path_key: str, query_key: str) -> str:
    """The proxy's URL as a provider hands it out: an API key in the path and one in the query."""
    return f"{proxy.url}/v3/{path_key}?apikey={query_key}"


@pytest.mark.slow(seconds=17)
def test_issuer_cli_and_api_log_no_secret(
    anvil: DevChain,
    registry: Deployed,
    rpc: RpcClient,
    proxy: RpcProxy,
    debug_env: dict[str, str],
    tmp_path: Path,
    reserved_port: int,
) -> None:
    rpc_url = keyed_url(proxy, RPC_PATH_KEY, RPC_QUERY_KEY)
    logs: dict[str, str] = {}
    answers: dict[str, str] = {}

    def finvault(
        label: str, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = run_finvault(*args, env={**debug_env, **(env or {})})
        logs[label] = result.stdout + result.stderr
        return result

    password_file, passphrase_file = tmp_path / "keystore-password", tmp_path / "signing-passphrase"
    write_secret_file(password_file, KEYSTORE_PASSWORD.encode() + b"\n")
    write_secret_file(passphrase_file, SIGNING_PASSPHRASE.encode() + b"\n")
    keystore, key_dir = tmp_path / "issuer-keystore.json", tmp_path / "signing-key"
    created = finvault(
        "account new", "account", "new", "--out", str(keystore), "--password-file", str(password_file)
    )
    assert created.returncode == 0, created.stderr
    address = created.stdout.strip()
    keygen = ["issuer", "keygen", "--out", str(key_dir), "--passphrase-file", str(passphrase_file)]
    assert finvault("issuer keygen", *keygen).returncode == 0

    rpc.call("anvil_setBalance", [address, hex(10**20)])
    registry.owner.register_issuer(address, "Log Test University", "https://uni.example")
    chain = ["--rpc", rpc_url, "--registry", registry.address]
    signer = ["--keystore", str(keystore), "--password-file", str(password_file)]
    added = finvault("issuer add-key", "issuer", "add-key", str(key_dir), *chain, *signer)
    assert added.returncode == 0, added.stderr

    out, db_url = tmp_path / "receipts", f"sqlite:///{tmp_path / 'issuer.db'}"
    store_and_key = ["--db", db_url, "--key-dir", str(key_dir), "--node-url", NODE_URL, "--no-qr"]
    students = str(write_students_csv(tmp_path / "students.csv", 3))
    issue_now = [students, "--template", str(TEMPLATE), "--out", str(out), "--now", *store_and_key]
    issued = finvault(
        "issue --now", "issue", *issue_now, "--passphrase-file", str(passphrase_file), *chain, *signer
    )
    assert issued.returncode == 0, issued.stderr
    assert "3 certificates anchored" in issued.stdout

    anchor = ["anchor", "--out", str(out), *store_and_key, *chain, "--keystore", str(keystore)]
    for label, password, passphrase, complaint in [
        (
            "anchor, wrong keystore password",
            WRONG_PASSWORD,
            SIGNING_PASSPHRASE,
            "wrong password for keystore",
        ),
        (
            "anchor, wrong passphrase",
            KEYSTORE_PASSWORD,
            WRONG_PASSWORD,
            "wrong passphrase for the signing key",
        ),
    ]:
        env = {"FINVAULT_KEYSTORE_PASSWORD": password, "FINVAULT_SIGNING_KEY_PASSPHRASE": passphrase}
        refused = finvault(label, *anchor, env=env)
        assert refused.returncode != 0, refused.stderr
        assert complaint in refused.stderr

    proxy.set_faults("*", Fault(FaultKind.SERVER_ERROR, status=503))
    receipt = str(next(out.glob("*.json")))
    down = finvault("verify, RPC down", "verify", receipt, *chain, env={"FINVAULT_RPC_ROUNDS": "2"})
    assert down.returncode != 0, down.stderr
    assert f"{redact_url(rpc_url)}: HTTP 503" in down.stderr
    proxy.behave()

    with Store.open(db_url) as store:
        token = create_api_key(store, "registrar", ["issue", "read"])
    _, key_id, key_secret = token.split("_", 2)
    forged = f"fvk_{key_id}_{secrets.token_urlsafe(32)}"
    receiver = Receiver(204)
    port = reserved_port
    environment = without_finvault_settings() | debug_env
    environment |= {
        "FINVAULT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD,
        "FINVAULT_SIGNING_KEY_PASSPHRASE": SIGNING_PASSPHRASE,
        "FINVAULT_WEBHOOK_URLS": receiver.url,
        "FINVAULT_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    serve = [FINVAULT, "issuer-api", "serve", "--template", str(TEMPLATE), "--out", str(out), *store_and_key]
    serve += ["--port", str(port), "--every", "0.5", *chain, "--keystore", str(keystore)]
    api_log = tmp_path / "issuer-api.log"
    with api_log.open("w") as log_file:
        server = subprocess.Popen(serve, stdout=log_file, stderr=subprocess.STDOUT, env=environment)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            wait_for(lambda: _health(http, server), bool, timeout=60, what="the issuer API")
            valid = {"Authorization": f"Bearer {token}"}
            submitted = http.post(
                "/certificates", json=[student(1)], headers={**valid, "Idempotency-Key": "k1"}
            )
            assert submitted.status_code == 202, submitted.text
            for name, authorization in [
                ("forged key", f"Bearer {forged}"),
                ("truncated key", f"Bearer {token[:-1]}"),
                ("key as Basic", "Basic " + base64.b64encode(f"user:{token}".encode()).decode()),
                ("key without scheme", token),
            ]:
                unauthorized = http.get("/certificates/api-001", headers={"Authorization": authorization})
                assert unauthorized.status_code == 401, unauthorized.text
                answers[f"issuer API, {name}"] = json.dumps(dict(unauthorized.headers)) + unauthorized.text
            wait_for(
                lambda: http.get("/certificates/api-001", headers=valid).json()["status"],
                lambda status: status == "anchored",
                timeout=60,
                what="the API's batch anchored",
            )
            wait_for(lambda: len(receiver.received), bool, timeout=30, what="a webhook delivery")
            header, body = receiver.received[0]
            assert verify_signature(WEBHOOK_SECRET.encode(), header, body, now=int(time.time()))
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        finally:
            server.kill()
            receiver.close()
    logs["issuer-api serve"] = api_log.read_text()

    assert_logged_at_debug(logs)
    keystore_json = json.loads(keystore.read_text())
    signing_key = decrypt_private_key((key_dir / "signing-key.pem").read_bytes(), SIGNING_PASSPHRASE)
    assert isinstance(signing_key, ed25519.Ed25519PrivateKey)
    assert_no_secret(
        logs | answers,
        {
            "keystore password": KEYSTORE_PASSWORD,
            "signing key passphrase": SIGNING_PASSPHRASE,
            "wrong password": WRONG_PASSWORD,
            "account private key": bytes(Account.decrypt(keystore_json, KEYSTORE_PASSWORD)),
            "keystore ciphertext": bytes.fromhex(keystore_json["crypto"]["ciphertext"]),
            "signing private key": _raw_private(signing_key),
            "signing key PKCS#8": _pkcs8(signing_key),
            "encrypted signing key PEM body": pem_body((key_dir / "signing-key.pem").read_bytes()),
            "RPC key (path)": RPC_PATH_KEY,
            "RPC key (query)": RPC_QUERY_KEY,
            "API key": token,
            "API key secret part": key_secret,
            "forged API key": forged,
            "webhook secret": WEBHOOK_SECRET,
        },
    )
    proxy_host = f"host='127.0.0.1' port={proxy.url.rsplit(':', 1)[1]}"
    for label in ("issuer add-key", "issue --now", "verify, RPC down", "issuer-api serve"):
        assert proxy_host in logs[label], f"{label}: no RPC connection logged at DEBUG"
        assert redact_url(rpc_url) in logs[label], f"{label}: the RPC endpoint never named"
    assert "anchored in block" in logs["issue --now"]
    assert redact_url(receiver.url) in logs["issuer-api serve"]  # the webhook delivery


def _health(http: httpx.Client, server: subprocess.Popen[Any]) -> bool:
    assert server.poll() is None, "the issuer API exited"
    try:
        return http.get("/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _raw_private(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _pkcs8(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.slow(seconds=3)
def test_node_logs_no_token_or_rpc_key(
    anvil: DevChain,
    registry: Deployed,
    rpc: RpcClient,
    proxy: RpcProxy,
    debug_env: dict[str, str],
    tmp_path: Path,
) -> None:
    issued = issue(registry.owner, registry.issuer, seed="logs")
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    rpc_url = keyed_url(proxy, RPC_PATH_KEY, RPC_QUERY_KEY)
    quorum_url = keyed_url(proxy, QUORUM_PATH_KEY, QUORUM_QUERY_KEY)
    env = debug_env | {
        "FINVAULT_LOG_LEVEL": "trace",
        "FINVAULT_ADMIN_TOKEN": ADMIN_TOKEN,
        "FINVAULT_METRICS_TOKEN": METRICS_TOKEN,
        "FINVAULT_CURSOR_SECRET": CURSOR_SECRET,
        "FINVAULT_RECONCILE_INTERVAL": "1",
        "FINVAULT_RPC_ROUNDS": "1",
    }
    answers: dict[str, str] = {}
    with (
        start_node(rpc_url, issued.registry, tmp_path, args=("--quorum-rpc", quorum_url), env=env) as node,
        httpx.Client(base_url=node.url, timeout=30) as http,
    ):
        verdict_when(http, issued.receipts[0], "VALID")
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        wait_for(
            lambda: http.get("/reconciliation/runs", headers=admin).json()["runs"],
            bool,
            what="a scheduled reconciliation run",
        )
        for name, authorization in [
            ("wrong token", f"Bearer {WRONG_TOKEN}"),
            ("metrics token as admin", f"Bearer {METRICS_TOKEN}"),
            ("admin token as Basic", "Basic " + base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode()),
        ]:
            refused = http.get("/reconciliation/runs", headers={"Authorization": authorization})
            assert refused.status_code == 401, refused.text
            answers[f"node, {name}"] = json.dumps(dict(refused.headers)) + refused.text
        metrics = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert metrics.status_code == 200
        assert http.get("/revocations", params={"limit": 1}).status_code == 200

        # two 503s, then every connection dropped: both kinds of failure reach the log
        proxy.set_faults("*", Fault(FaultKind.SERVER_ERROR, status=503, first=2), Fault(FaultKind.DROP))
        failures = [f"{redact_url(rpc_url)}: HTTP 503", f"{redact_url(rpc_url)}: RemoteProtocolError"]
        wait_for(
            node.log,
            lambda text: all(failure in text for failure in [*failures, "sync step failing"]),
            what="failed RPC calls and sync steps in the log",
        )
        for path in ("/ready", "/status"):
            answers[f"node {path}, RPC down"] = http.get(path).text
        proxy.behave()

    log = node.log()
    assert_logged_at_debug({"node": log})
    assert f"host='127.0.0.1' port={proxy.url.rsplit(':', 1)[1]}" in log
    assert "ASGI [" in log  # uvicorn's trace of the requests above
    assert_no_secret(
        {"node log": log} | answers,
        {
            "RPC key (path)": RPC_PATH_KEY,
            "RPC key (query)": RPC_QUERY_KEY,
            "quorum RPC key (path)": QUORUM_PATH_KEY,
            "quorum RPC key (query)": QUORUM_QUERY_KEY,
            "admin token": ADMIN_TOKEN,
            "metrics token": METRICS_TOKEN,
            "cursor secret": CURSOR_SECRET,
            "wrong token": WRONG_TOKEN,
        },
    )


@pytest.mark.slow(seconds=4)
def test_a_full_demo_run_logs_no_secret(
    tmp_path: Path, debug_env: dict[str, str], reserved_port: int
) -> None:
    """``scripts/demo.py --check`` at full verbosity: its output and every log it leaves hold none
    of the secrets it made (the signing key and its passphrase)."""
    state = tmp_path / "demo"
    demo = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--check", "--state-dir", str(state),
         "--chain-port", str(reserved_port)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**without_finvault_settings(), **debug_env},
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    passphrase = (state / "issuer" / "passphrase").read_text().strip()
    key = decrypt_private_key((state / "issuer" / "signing-key.pem").read_bytes(), passphrase)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    logs = {"demo stdout": demo.stdout, "demo stderr": demo.stderr}
    logs |= {str(path): path.read_text(errors="replace") for path in state.rglob("*.log")}
    logs[str(state / "env.json")] = (state / "env.json").read_text()
    assert_logged_at_debug({"demo stderr": demo.stderr})
    assert len(logs) >= 4, sorted(logs)  # stdout, stderr, anvil.log, env.json
    assert_no_secret(
        logs,
        {
            "signing key passphrase": passphrase,
            "signing key (raw)": _raw_private(key),
            "signing key (PKCS#8)": _pkcs8(key),
            "encrypted signing key PEM body": pem_body((state / "issuer" / "signing-key.pem").read_bytes()),
        },
    )
