"""Real HTTPS servers on 127.0.0.1 for did:web tests (this module holds no tests itself).

- :func:`make_test_ca` makes a throwaway CA (its PEM handed to the resolver or node as
  ``FINVAULT_DID_WEB_CA_FILE``) and a server certificate for 127.0.0.1.
- :class:`DidServer` serves did.json documents by path, and hostile answers (an endless body, a
  slow drip) through ``handlers``; it counts the connections it accepted and the requests it read,
  so a test can tell "refused before connecting" from "fetched and judged".
- :class:`SilentHosts` listens on many ports and never answers: slow hosts holding connections.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOOPBACK = ipaddress.ip_address("127.0.0.1")
WELL_KNOWN = "/.well-known/did.json"


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

    daemon_threads = True
    connections = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


Handler = Callable[[BaseHTTPRequestHandler], None]


class DidServer:
    """An HTTPS server on 127.0.0.1: ``documents`` (JSON, or raw bytes) by path after ``delay``,
    or a path's ``handlers`` entry, which writes the whole answer itself."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.documents: dict[str, Any] = {}
        self.handlers: dict[str, Handler] = {}
        self.delay = 0.0
        self.requests = 0
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                time.sleep(server.delay)
                handler = server.handlers.get(self.path)
                if handler is not None:
                    handler(self)
                    return
                document = server.documents.get(self.path)
                if document is None:
                    self.send_error(404)
                    return
                body = document if isinstance(document, bytes) else json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/did+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.http = QuietServer(("127.0.0.1", 0), RequestHandler)
        self.http.socket = context.wrap_socket(self.http.socket, server_side=True)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def document(self) -> Any:
        """The document at /.well-known/did.json (None: 404)."""
        return self.documents.get(WELL_KNOWN)

    @document.setter
    def document(self, value: Any) -> None:
        if value is None:
            self.documents.pop(WELL_KNOWN, None)
        else:
            self.documents[WELL_KNOWN] = value

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def did(self) -> str:
        return f"did:web:127.0.0.1%3A{self.port}"

    def did_at(self, *segments: str) -> str:
        return ":".join([self.did, *segments])

    @property
    def connections(self) -> int:
        return self.http.connections

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


class SilentHosts:
    """``count`` TCP ports on 127.0.0.1 that accept connections (the kernel's backlog) and never
    say a word: each fetch to one holds its connection until the fetch's deadline."""

    def __init__(self, count: int) -> None:
        self.sockets = []
        for _ in range(count):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
            self.sockets.append(listener)

    @property
    def dids(self) -> list[str]:
        return [f"did:web:127.0.0.1%3A{s.getsockname()[1]}" for s in self.sockets]

    def close(self) -> None:
        for listener in self.sockets:
            listener.close()
