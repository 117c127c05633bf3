"""Slow and greedy clients against a real node (``python -m node``, uvicorn, a SQLite mirror) on
127.0.0.1, with its connection bounds turned down to a second or two so each is seen to hold.

Each test measures, on raw sockets, when the node hangs up: a connection that sends nothing, half
its headers, half a body, or idles after an answer, reads EOF within its timeout plus a margin
(docs/SECURITY.md, "Slow clients"). The caps are seen from several loopback source addresses
(127.0.0.2, ...: all of 127/8 is this host), so the per-address cap and the total cap can each be
the one that binds. A client that hangs up mid-body leaves one line in the node's log.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from chain.contract import Artifact
from chain.dev.devchain import DevChain
from chain.rpc import RpcClient
from tests.integration.conftest import registry_in_snapshot
from tests.integration.node_fixtures import start_node, wait_until_vouching
from tests.tools.node_process import NodeProcess

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 1.0
KEEP_ALIVE = 1
#: The connection of a body the app was not reading closes this much after BODY_TIMEOUT
#: (chain.service.connections.BODY_GRACE_SECONDS).
BODY_GRACE = 1.0
MAX_CONNECTIONS = 6
PER_CLIENT = 3
MAX_REQUESTS = 3
SEND_TIMEOUT = 1.0
#: Slack on every measured deadline: the node's timer, the loop, a loaded machine.
MARGIN = 1.0
ENV = {
    "FINVAULT_HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
    "FINVAULT_HTTP_BODY_TIMEOUT": str(BODY_TIMEOUT),
    "FINVAULT_HTTP_KEEP_ALIVE_TIMEOUT": str(KEEP_ALIVE),
    "FINVAULT_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    "FINVAULT_HTTP_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT),
    "FINVAULT_HTTP_MAX_REQUESTS_PER_CONNECTION": str(MAX_REQUESTS),
    "FINVAULT_HTTP_SEND_TIMEOUT": str(SEND_TIMEOUT),
}


@pytest.fixture(scope="module")
def node(
    anvil: DevChain, rpc: RpcClient, artifact: Artifact, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeProcess]:
    """The node, on a registry deployed inside a snapshot that is reverted afterwards."""
    with registry_in_snapshot(rpc, artifact) as registry:
        tmp: Path = tmp_path_factory.mktemp("slow-clients")
        with start_node(anvil.rpc_url, registry, tmp, env=ENV) as process:
            yield process


def address(node: NodeProcess) -> tuple[str, int]:
    url = urlsplit(node.url)
    assert url.hostname == "127.0.0.1"
    assert url.port is not None
    return url.hostname, url.port


def connect(node: NodeProcess, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(address(node), timeout=10, source_address=(source, 0))


def seconds_until_eof(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Reads until the node closes the connection; how long that took, and what it sent."""
    started = time.monotonic()
    sock.settimeout(limit)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        raise AssertionError(f"still open after {limit} s; got {received[:200]!r}") from None
    except ConnectionResetError:
        pass  # closed with bytes unread: closed all the same
    return time.monotonic() - started, received


def health_seconds(node: NodeProcess) -> float:
    started = time.perf_counter()
    response = httpx.get(f"{node.url}/health", timeout=5)
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


def test_an_idle_connection_is_closed_after_the_header_timeout(node: NodeProcess) -> None:
    with connect(node) as sock:
        took, received = seconds_until_eof(sock, HEADER_TIMEOUT + MARGIN)
    assert received == b""
    assert HEADER_TIMEOUT - 0.2 <= took <= HEADER_TIMEOUT + MARGIN


def test_half_sent_headers_are_closed_after_the_header_timeout(node: NodeProcess) -> None:
    with connect(node) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        time.sleep(HEADER_TIMEOUT / 2)
        sock.sendall(b"X-Slow: still coming\r\n")  # trickling does not move the deadline
        took, received = seconds_until_eof(sock, HEADER_TIMEOUT + MARGIN)
    assert received == b""
    assert took <= HEADER_TIMEOUT / 2 + MARGIN


def test_a_half_sent_body_is_answered_408_and_closed(node: NodeProcess) -> None:
    with connect(node) as sock:
        sock.sendall(
            b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\nX-Correlation-ID: slow-body\r\n\r\n{"format": '
        )
        took, received = seconds_until_eof(sock, BODY_TIMEOUT + MARGIN)
    assert BODY_TIMEOUT - 0.2 <= took <= BODY_TIMEOUT + MARGIN
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), received[:300]
    assert b"connection: close" in head.lower()
    assert body.startswith(b'{"error":{"code":"request_timeout"'), body
    assert b'"correlation_id":"slow-body"' in body


def test_a_half_sent_body_nobody_reads_is_closed_too(node: NodeProcess) -> None:
    """/health answers without reading the body; the connection still cannot dribble it for ever."""
    with connect(node) as sock:
        sock.sendall(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        deadline = time.monotonic() + BODY_TIMEOUT + BODY_GRACE
        while time.monotonic() < deadline - 0.3:
            time.sleep(0.2)
            sock.sendall(b"c")  # a byte now and then keeps no timer of uvicorn's from firing
        took, received = seconds_until_eof(sock, BODY_TIMEOUT + BODY_GRACE + MARGIN)
    assert received.startswith(b"HTTP/1.1 405 "), received[:200]  # /health is GET only
    assert took <= 0.3 + 2 * MARGIN


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(node: NodeProcess) -> None:
    with connect(node) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        sock.sendall(b"\r\n")  # bytes that begin no request stop uvicorn's keep-alive timer
        took, received = seconds_until_eof(sock, HEADER_TIMEOUT + MARGIN)
    assert received.startswith(b"HTTP/1.1 200 ")
    assert took <= HEADER_TIMEOUT + MARGIN
    with connect(node) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        took, received = seconds_until_eof(sock, KEEP_ALIVE + MARGIN)
    assert received.startswith(b"HTTP/1.1 200 ")
    assert KEEP_ALIVE - 0.2 <= took <= KEEP_ALIVE + MARGIN


def test_a_connection_serves_at_most_its_requests(node: NodeProcess) -> None:
    with connect(node) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * (MAX_REQUESTS + 1))
        took, received = seconds_until_eof(sock, 5)
    answers = received.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == MAX_REQUESTS
    assert all(answer.startswith(b"200 ") for answer in answers)
    assert b"connection: close" in answers[-1].lower()
    assert b"connection: close" not in answers[0].lower()
    assert took < KEEP_ALIVE + MARGIN  # closed after the last answer, not left to idle out


def assert_refused(node: NodeProcess, source: str, why: bytes) -> None:
    """A connection from ``source`` is answered 503 before it sends anything, and closed. Tried
    again while the node may not have accepted the connections held before it (the kernel accepts
    them first; on a loaded machine the node's loop takes them a moment later): an accepted one
    sends nothing and is closed by the header timeout instead, so each try waits well under it."""
    deadline = time.monotonic() + HEADER_TIMEOUT
    while True:
        with connect(node, source) as extra:
            took, received = seconds_until_eof(extra, HEADER_TIMEOUT / 4)
        if received or time.monotonic() > deadline:
            break
    assert received.startswith(b"HTTP/1.1 503 "), received[:200]
    assert b'"code":"too_many_connections"' in received
    assert why in received
    assert took < HEADER_TIMEOUT / 4  # answered at once, not left to time out


def best_health_seconds(node: NodeProcess, tries: int = 3) -> float:
    """The fastest of a few ``/health`` answers: one can be slow because the machine stalled."""
    return min(health_seconds(node) for _ in range(tries))


def test_connections_over_the_caps_are_refused_and_health_still_answers(node: NodeProcess) -> None:
    held: list[socket.socket] = []
    try:
        held += [connect(node, "127.0.0.2") for _ in range(PER_CLIENT)]
        assert_refused(node, "127.0.0.2", b"from one address")
        assert best_health_seconds(node) <= 0.2  # another address is not affected

        held += [connect(node, "127.0.0.3") for _ in range(MAX_CONNECTIONS - PER_CLIENT)]
        assert_refused(node, "127.0.0.4", b"maximum of %d connections;" % MAX_CONNECTIONS)
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert best_health_seconds(node) <= 0.2


def test_a_client_that_hangs_up_mid_body_is_one_line_in_the_log(node: NodeProcess) -> None:
    before = len(node.log())
    with connect(node) as sock:
        sock.sendall(
            b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\nX-Correlation-ID: hung-up\r\n\r\n{"format": '
        )
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while "hung-up" not in node.log()[before:] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # anything logged after the line
    logged = node.log()[before:]
    assert "Traceback" not in logged
    assert "Exception" not in logged
    lines = [line for line in logged.splitlines() if "hung-up" in line]  # earlier tests may log too
    assert len(lines) == 1, logged
    assert "went away before its request body was complete" in lines[0]
    assert best_health_seconds(node) <= 0.2


def _ask_for_a_large_answer(node: NodeProcess) -> socket.socket:
    """A connection that has asked for an 8 MB answer (a bulk call echoing 1,000 long issuer names,
    in each verdict's credential and identity: more than loopback's socket buffers hold), with a
    small receive window."""
    wait_until_vouching(node.url)
    receipt = json.dumps(
        {
            "format": "finvault-receipt/2",
            "credential": {  # well-formed VC 2.0, with no proof: INVALID, and echoed
                "@context": ["https://www.w3.org/ns/credentials/v2"],
                "type": ["VerifiableCredential"],
                "issuer": "urn:" + "x" * 7_000,
                "credentialSubject": {},
            },
            "proof": {"path": [], "root": "0x" + "00" * 32},
            "anchor": {"chainId": 31337, "registry": "0x" + "11" * 20, "issuer": "0x" + "22" * 20},
        }
    ).encode()
    body = b'{"receipts":[' + b",".join([receipt] * 1_000) + b"]}"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    sock.settimeout(10)
    sock.connect(address(node))
    sock.sendall(
        b"POST /verify/bulk HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
    )
    return sock


def _read_answer(sock: socket.socket, rate: float | None = None) -> tuple[int, int]:
    """``(content-length, body bytes received)``, reading until the node closes or resets, at most
    ``rate`` bytes a second."""
    head, received, started = b"", 0, time.monotonic()
    try:
        while chunk := sock.recv(64 * 1024):
            head, received = head or chunk, received + len(chunk)
            if rate is not None:
                time.sleep(max(0.0, received / rate - (time.monotonic() - started)))
    except ConnectionResetError:
        pass
    assert head.startswith(b"HTTP/1.1 200 "), head[:200]
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return length, received - (head.index(b"\r\n\r\n") + 4)


def test_an_answer_nobody_reads_is_dropped_after_the_send_timeout(node: NodeProcess) -> None:
    """The node drops a connection whose answer nobody takes for SEND_TIMEOUT, instead of holding
    the connection and the answer for ever."""
    with _ask_for_a_large_answer(node) as sock:
        time.sleep(SEND_TIMEOUT + 2 * MARGIN)  # the answer is computed, fills the buffers, waits
        length, received = _read_answer(sock)
    assert length > 8_000_000
    assert received < length  # what the buffers held, not the whole answer
    assert best_health_seconds(node) <= 0.2


def test_a_slow_reader_gets_the_whole_answer(node: NodeProcess) -> None:
    """Slow is not stuck: a client that keeps taking the answer, 2 MB a second, gets all of it
    though that takes several send timeouts."""
    with _ask_for_a_large_answer(node) as sock:
        started = time.monotonic()
        length, received = _read_answer(sock, rate=2_000_000)
    assert received == length > 8_000_000
    assert time.monotonic() - started > 2 * SEND_TIMEOUT
