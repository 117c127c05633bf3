"""The node (and its page) checks who issued a credential: a did:web issuer's published document
must name the account that anchored the batch. The document is served over HTTPS from 127.0.0.1
with a certificate from a test CA that is handed to the node (``FINVAULT_DID_WEB_CA_FILE``);
identity is reported beside the verdict and never changes its status."""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from playwright.sync_api import Browser

from chain.core.data_integrity import multikey
from chain.core.identity import did_web_document
from chain.dev.devchain import DevChain
from chain.rpc import RpcClient
from tests.integration.conftest import Deployed
from tests.integration.issuer_fixtures import FINALITY_DEPTH, IssuerEnv
from tests.integration.node_fixtures import start_node, verdict_when
from tests.integration.test_node_page import banner_says, choose_file, fact, open_page

LOOPBACK = ipaddress.ip_address("127.0.0.1")
OTHER_ACCOUNT = "0x90f79bf6eb2c4f870365e785982e1f101e93b906"


def make_test_ca(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA (its certificate written to ``directory``) and a server context for 127.0.0.1."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FinVault test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(LOOPBACK)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_file, chain_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain_file, key_file)
    return ca_file, context


class QuietServer(ThreadingHTTPServer):
    """Clients that give up mid-answer (the node's timeout) are expected here, not logged."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class DidServer:
    """An HTTPS server on 127.0.0.1 serving ``document`` at /.well-known/did.json after ``delay``."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.document: dict[str, Any] | None = None
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                time.sleep(server.delay)
                if self.path != "/.well-known/did.json" or server.document is None:
                    self.send_error(404)
                    return
                body = json.dumps(server.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/did+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.http = QuietServer(("127.0.0.1", 0), Handler)
        self.http.socket = context.wrap_socket(self.http.socket, server_side=True)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def did(self) -> str:
        return f"did:web:127.0.0.1%3A{self.port}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def ca_and_server(tmp_path: Path) -> Iterator[tuple[Path, DidServer]]:
    ca_file, context = make_test_ca(tmp_path)
    server = DidServer(context)
    yield ca_file, server
    server.close()


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
    }
    with (
        start_node(anvil.rpc_url, env.deployed.address, tmp_path, env=settings) as node,
        httpx.Client(base_url=node.url, timeout=30) as client,
    ):
        did_server.document = published
        verdict = verdict_when(client, by_did_web, "VALID")
        domain = f"127.0.0.1:{did_server.port}"
        assert verdict["identity"] == {"did": did_server.did, "domain": domain, "status": "verified"}
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
        assert verdict["identity"]["status"] == "mismatch"

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
            "status": "not_configured",
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
