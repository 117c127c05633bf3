"""The node's write-coalescing HTTP protocol, tested directly: the transport it wraps, and uvicorn
serving through it (the subclass leans on uvicorn's httptools protocol, so a uvicorn upgrade that
changes how that protocol writes shows up here first)."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from chain.service.web import GracefulServer, server_config
from node.server import _CoalescingTransport, _HttpProtocol, bind_socket, node_url


class RecordingTransport(asyncio.Transport):
    """A transport that keeps every write it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.eof = False
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def run_in_loop(body: Any) -> RecordingTransport:
    async def main() -> RecordingTransport:
        real = RecordingTransport()
        body(_CoalescingTransport(real, asyncio.get_running_loop()), real)
        await asyncio.sleep(0)  # let the loop run the flush it scheduled
        return real

    return asyncio.run(main())


def test_writes_of_one_callback_leave_as_one() -> None:
    def body(transport: _CoalescingTransport, real: RecordingTransport) -> None:
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.writelines([b"he", b"llo"])
        transport.write(b"")
        assert real.writes == []  # held until the callback ends
        assert transport.get_write_buffer_size() == 7 + len(b"HTTP/1.1 200 OK\r\n\r\nhello")

    assert run_in_loop(body).writes == [b"HTTP/1.1 200 OK\r\n\r\nhello"]


def test_a_large_body_goes_out_as_it_comes() -> None:
    big = b"x" * _CoalescingTransport.FLUSH_AT

    def body(transport: _CoalescingTransport, real: RecordingTransport) -> None:
        transport.write(b"head")
        transport.write(big)
        assert real.writes == [b"head" + big]  # sent at once, to meet the real flow control
        transport.write(b"tail")

    assert run_in_loop(body).writes == [b"head" + big, b"tail"]


@pytest.mark.parametrize("ending", ["close", "write_eof"])
def test_closing_sends_what_is_held_first(ending: str) -> None:
    def body(transport: _CoalescingTransport, real: RecordingTransport) -> None:
        transport.write(b"last words")
        getattr(transport, ending)()
        assert real.writes == [b"last words"]
        assert real.closed or real.eof

    real = run_in_loop(body)
    assert real.writes == [b"last words"]  # nothing sent twice by the scheduled flush


def test_nothing_is_written_to_a_closing_transport() -> None:
    def body(transport: _CoalescingTransport, real: RecordingTransport) -> None:
        transport.write(b"late")
        real.closed = True

    assert run_in_loop(body).writes == []


def test_everything_else_is_the_real_transports() -> None:
    def body(transport: _CoalescingTransport, real: RecordingTransport) -> None:
        assert transport.get_extra_info("peername") == ("127.0.0.1", 1)

    run_in_loop(body)


class CountingTransport:
    """Forwards to the real transport, counting the writes that reach it."""

    def __init__(self, real: Any, writes: list[bytes]) -> None:
        self._real = real
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._real.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def serve_and_count(protocol: type[Any]) -> list[bytes]:
    """Three keep-alive requests to a real uvicorn using ``protocol``; the writes that reached the socket."""
    app = FastAPI()

    @app.get("/")
    def hello() -> PlainTextResponse:
        return PlainTextResponse("hello")

    writes: list[bytes] = []

    class Counted(protocol):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(CountingTransport(transport, writes))

    sock = bind_socket("127.0.0.1", 0)
    server = GracefulServer(server_config(app, log_level="warning", http=Counted))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        port = int(node_url("127.0.0.1", sock).rsplit(":", 1)[1])
        for _ in range(1000):
            if server.started:
                break
            threading.Event().wait(0.01)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            for _ in range(3):
                client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                received = b""
                while not received.endswith(b"hello"):
                    received += client.recv(65536)
                assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    return writes


def test_uvicorn_through_it_sends_each_response_in_one_write() -> None:
    writes = serve_and_count(_HttpProtocol)
    assert len(writes) == 3
    assert all(write.startswith(b"HTTP/1.1 200 OK") and write.endswith(b"hello") for write in writes)


def test_stock_uvicorn_sends_head_and_body_apart() -> None:
    """Why the subclass exists: without it, every small response is two writes (two segments)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert len(serve_and_count(HttpToolsProtocol)) == 6
