"""Hostile request bodies against both HTTP APIs, over real sockets to real uvicorn servers.

One table of bodies (oversized three ways, deep nesting, huge numbers, NaN, broken and overlong
UTF-8, surrogates, duplicate keys, wrong content types, empty, bare scalars, a byte-order mark),
each sent to the node's ``POST /verify`` and ``POST /verify/bulk`` and to the issuer API's
``POST /certificates`` and ``POST /revocations`` (with a key holding both scopes). Every answer
is a 4xx in the one error shape, its ``correlation_id`` the request's ``X-Correlation-ID``, and
the server answers ``/health`` afterwards. The one exception is by design: the node gives a JSON
value that is not a receipt an INVALID verdict (200), not an error.

Requests are written by hand on a socket: httpx would refuse to send some of them (a declared
length with no body) and would frame others its own way.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from chain.contract import Artifact
from chain.dev.devchain import DevChain
from chain.rpc import RpcClient
from chain.service.settings import load_settings
from issuer.api import IssuerApi, create_app
from issuer.api_keys import create_api_key
from issuer.settings import IssuerApiSettings
from issuer.store import Store
from issuer.template import load_template
from node.server import start_node_thread
from node.settings import NodeSettings
from tests.integration.conftest import registry_in_snapshot
from tests.integration.issuer_fixtures import TEMPLATE, serve_in_thread
from tests.integration.node_fixtures import wait_until_vouching

#: Both servers' body limit (the node's /verify is capped at min(this, a receipt's 512 KiB)).
LIMIT = 64 * 1024
OVERSIZED = b'{"a": "' + b"x" * LIMIT + b'"}'
NOT_JSON = (400, "invalid_json")
NOT_JSON_MEDIA = (415, "unsupported_media_type")
TOO_LARGE = (413, "payload_too_large")
#: Answers that differ by endpoint: JSON that is no receipt is a verdict for /verify.
NOT_AN_OBJECT = {
    "/verify": (200, "INVALID"),
    "/verify/bulk": (422, "invalid_request"),
    "/credentials/verify": (400, "invalid_input"),
    "/certificates": (422, "invalid_request"),
    "/revocations": (422, "invalid_request"),
}

Framing = Literal["length", "chunked", "declared"]


@dataclass(frozen=True)
class Hostile:
    body: bytes
    expected: tuple[int, str] | Mapping[str, tuple[int, str]] = NOT_JSON
    content_type: str | None = "application/json"
    #: "length": Content-Length and the body; "chunked": chunked transfer coding, no length;
    #: "declared": a Content-Length over the limit, and no body at all.
    framing: Framing = "length"

    def answer(self, path: str) -> tuple[int, str]:
        return self.expected[path] if isinstance(self.expected, Mapping) else self.expected


CASES = [
    pytest.param(Hostile(b"", TOO_LARGE, framing="declared"), id="oversized-declared-no-body"),
    pytest.param(Hostile(OVERSIZED, TOO_LARGE), id="oversized-with-content-length"),
    pytest.param(Hostile(OVERSIZED, TOO_LARGE, framing="chunked"), id="oversized-chunked"),
    pytest.param(Hostile(b"[" * 1000 + b"]" * 1000), id="nested-arrays-1000"),
    pytest.param(Hostile(b'{"a":' * 1000 + b"1" + b"}" * 1000), id="nested-objects-1000"),
    pytest.param(Hostile(b'{"n": 1' + b"0" * 5000 + b"}"), id="integer-10e5000"),
    pytest.param(Hostile(b'{"n": 1e5000}'), id="number-1e5000"),
    pytest.param(Hostile(b'{"n": -1e-5000, "m": 1' + b"0" * 400 + b".5}"), id="float-overflow"),
    pytest.param(Hostile(b'{"n": NaN}'), id="nan"),
    pytest.param(Hostile(b"[Infinity, -Infinity]"), id="infinity"),
    pytest.param(Hostile(b'{"a": "\xff\xfe"}'), id="invalid-utf8"),
    pytest.param(Hostile(b'{"a": "\xc0\xaf"}'), id="overlong-utf8"),
    pytest.param(Hostile(b'{"a": "\xed\xa0\x80"}'), id="surrogate-utf8"),
    pytest.param(Hostile(b'{"a": "\\udc00"}'), id="lone-surrogate-escape"),
    pytest.param(Hostile(b'{"a": 1, "a": 1}'), id="duplicate-keys"),
    pytest.param(Hostile(b'{"a": "\x00"}'), id="raw-control-character"),
    pytest.param(Hostile(b"\xef\xbb\xbf{}"), id="byte-order-mark"),
    pytest.param(Hostile("{}".encode("utf-16")), id="utf16-as-json"),
    pytest.param(Hostile(b'{"receipts": ['), id="truncated"),
    pytest.param(Hostile(b""), id="empty"),
    pytest.param(Hostile(b" \r\n\t "), id="whitespace-only"),
    pytest.param(Hostile(b'"a receipt"', NOT_AN_OBJECT), id="bare-string"),
    pytest.param(Hostile(b"42", NOT_AN_OBJECT), id="bare-number"),
    pytest.param(Hostile(b"null", NOT_AN_OBJECT), id="bare-null"),
    pytest.param(Hostile(b"{}", NOT_JSON_MEDIA, content_type="text/plain"), id="text-plain"),
    pytest.param(
        Hostile(b"a=1", NOT_JSON_MEDIA, content_type="application/x-www-form-urlencoded"), id="form"
    ),
    pytest.param(
        Hostile(b"{}", NOT_JSON_MEDIA, content_type="application/json; charset=latin-1"), id="latin-1"
    ),
    pytest.param(Hostile(b"{}", NOT_JSON_MEDIA, content_type=None), id="no-content-type"),
]
#: (server, path): every route that reads a JSON body.
ROUTES = [
    pytest.param("node", "/verify", id="node-verify"),
    pytest.param("node", "/verify/bulk", id="node-bulk"),
    pytest.param("node", "/credentials/verify", id="node-credentials-verify"),
    pytest.param("issuer", "/certificates", id="issuer-certificates"),
    pytest.param("issuer", "/revocations", id="issuer-revocations"),
]


@dataclass(frozen=True)
class Server:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def node_server(
    anvil: DevChain, rpc: RpcClient, artifact: Artifact, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A node in this process on a registry deployed inside a snapshot, reverted afterwards, so the
    chain that later modules see is the one they would have seen without this one."""
    with registry_in_snapshot(rpc, artifact) as registry:
        settings = load_settings(
            NodeSettings,
            rpc_urls=[anvil.rpc_url],
            registry=registry,
            database_url=f"sqlite:///{tmp_path_factory.mktemp('node') / 'mirror.db'}",
            poll_interval=0.1,
            port=0,
            max_body_bytes=LIMIT,
            log_level="warning",
        )
        with start_node_thread(settings) as node:
            wait_until_vouching(node.url)  # else a receipt's verdict is a 503 mirror_stale
            yield Server(node.url)


@pytest.fixture(scope="module")
def issuer_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The issuer API without chain access (no request here gets as far as the chain)."""
    tmp: Path = tmp_path_factory.mktemp("issuer")
    with Store.open(f"sqlite:///{tmp / 'issuer.db'}") as store:
        token = create_api_key(store, "hostile input", ["issue", "revoke"])
        app = create_app(
            IssuerApiSettings.model_validate({"issuer_api_max_body": LIMIT}),
            IssuerApi(store, load_template(TEMPLATE), tmp / "receipts"),
        )
        with serve_in_thread(app) as url:
            yield Server(url, {"Authorization": f"Bearer {token}"})


# -- a hand-written HTTP/1.1 exchange -----------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _read_until(sock: socket.socket, buffer: bytearray, marker: bytes) -> int:
    while (at := buffer.find(marker)) < 0:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before {marker!r}; got {bytes(buffer[:200])!r}"
        buffer += chunk
    return at


def _read_exactly(sock: socket.socket, buffer: bytearray, size: int) -> bytes:
    while len(buffer) < size:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed inside the body"
        buffer += chunk
    data = bytes(buffer[:size])
    del buffer[:size]
    return data


def read_answer(sock: socket.socket) -> Answer:
    buffer = bytearray()
    end = _read_until(sock, buffer, b"\r\n\r\n")
    status_line, *lines = buffer[:end].decode("latin-1").split("\r\n")
    del buffer[: end + 4]
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    assert "content-length" in headers, headers  # every answer here is a JSON body of known length
    body = _read_exactly(sock, buffer, int(headers["content-length"]))
    return Answer(int(status_line.split()[1]), headers, body)


def send(server: Server, path: str, case: Hostile, correlation_id: str) -> Answer:
    url = urlsplit(server.url)
    assert url.hostname is not None
    assert url.port is not None
    head = [f"POST {path} HTTP/1.1", f"Host: {url.netloc}", f"X-Correlation-ID: {correlation_id}"]
    head += [f"{name}: {value}" for name, value in server.headers.items()]
    if case.content_type is not None:
        head.append(f"Content-Type: {case.content_type}")
    length = {"length": str(len(case.body)), "declared": str(LIMIT + 1), "chunked": None}[case.framing]
    head.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        try:
            if case.framing == "chunked":
                for start in range(0, len(case.body), 8192):
                    chunk = case.body[start : start + 8192]
                    sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                sock.sendall(b"0\r\n\r\n")
            else:
                sock.sendall(case.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a server may answer (and hang up) before it has read everything: the answer counts
        return read_answer(sock)


# -- the table --------------------------------------------------------------------------------


@pytest.mark.parametrize(("server_name", "path"), ROUTES)
@pytest.mark.parametrize("case", CASES)
def test_hostile_body_gets_a_structured_4xx(
    case: Hostile, server_name: str, path: str, request: pytest.FixtureRequest
) -> None:
    server: Server = request.getfixturevalue(f"{server_name}_server")
    correlation_id = f"hostile-{request.node.callspec.id}"[:64]
    answer = send(server, path, case, correlation_id)
    status, code = case.answer(path)

    assert answer.status == status, answer.body[:500]
    assert answer.headers["x-correlation-id"] == correlation_id
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert b"Traceback" not in answer.body
    body = answer.json()
    if status == 200:  # the node's verdict on a JSON value that is not a receipt
        assert body["status"] == code
        assert body["reasons"] == ["MALFORMED"]
    else:
        assert body["error"] == {
            "code": code,
            "message": body["error"]["message"],
            "correlation_id": correlation_id,
        }
        assert body["error"]["message"]
        if path == "/credentials/verify" and status == 400:  # W3C VC-API's shape beside the node's
            assert [error["code"] for error in body["errors"]] == [code]
            assert body["verified"] is False
        else:
            assert set(body) == {"error"}
    assert httpx.get(f"{server.url}/health", timeout=10).json() == {"status": "ok"}


#: Where FastAPI's interactive docs load swagger-ui and redoc from, and the other usual CDNs.
CDN_HOSTS = (
    "cdn.jsdelivr.net",
    "unpkg.com",
    "cdnjs.cloudflare.com",
    "fastapi.tiangolo.com",
    "googleapis.com",
)


@pytest.mark.parametrize("server_name", ["node", "issuer"])
def test_no_interactive_docs_and_nothing_loaded_from_a_cdn(
    server_name: str, request: pytest.FixtureRequest
) -> None:
    """/docs and /redoc would run an unpinned script from a CDN on the API's origin: both are off,
    /openapi.json stays, and no page the server answers points at a CDN."""
    server: Server = request.getfixturevalue(f"{server_name}_server")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert answer.json()["error"]["code"] == "not_found", path
        schema = client.get("/openapi.json")
        assert schema.status_code == 200
        assert schema.json()["paths"]
        bodies = [client.get(path).text for path in ("/", "/docs", "/redoc", "/openapi.json", "/health")]
    for body in bodies:
        assert not any(host in body for host in CDN_HOSTS), body[:300]
    assert "swagger" not in " ".join(bodies).lower()


def test_an_unexpected_error_is_a_500_that_still_carries_the_correlation_id(tmp_path: Path) -> None:
    """The issuer API's edge sits outside Starlette's last-resort handler (it used to sit inside:
    a 500 then had no X-Correlation-ID header, and "-" as the id in its body)."""
    with Store.open(f"sqlite:///{tmp_path / 'issuer.db'}") as store:
        app = create_app(
            IssuerApiSettings.model_validate({}),
            IssuerApi(store, load_template(TEMPLATE), tmp_path / "receipts"),
        )

        @app.get("/fails")
        def fails() -> None:
            raise RuntimeError("a bug, as an unexpected exception")

        with TestClient(app, raise_server_exceptions=False) as client:
            answer = client.get("/fails", headers={"X-Correlation-ID": "trace-500"})
    assert answer.status_code == 500
    assert answer.headers["x-correlation-id"] == "trace-500"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal error; quote the correlation id to the operator",
            "correlation_id": "trace-500",
        }
    }
    assert "a bug" not in answer.text
