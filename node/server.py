"""Running the node: a writer process and reader processes under a supervisor, or threads.

- :func:`serve_node` is what ``finvault node`` runs: checks, binds, then forks one writer process
  (the sync loop, :mod:`node.writer`) and ``workers`` reader processes that serve HTTP
  (:mod:`node.runtime`), after import (:mod:`node.worker`), and supervises them until
  SIGINT/SIGTERM; exits 0.
- :func:`start_node_thread` runs the same writer and a reader's server in background threads of
  the calling process and returns once it accepts connections (for the demo and in-process tests).

The socket is bound before the server starts, so a port in use is a one-line error, and port 0
means "any free port" (the URL line then names the real one).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import uvicorn
from pydantic import SecretStr
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chain.errors import ConfigError, FinVaultError
from chain.service.db import make_engine
from chain.service.web import GracefulServer, server_config
from node.app import create_app
from node.runtime import Runtime, cursor_key
from node.settings import NodeSettings
from node.worker import READY_PREFIX, STOP_SIGNALS, Supervisor, reader_cpus, startup_failed
from node.writer import MirrorWriter, run_writer

log = logging.getLogger(__name__)


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening-ready TCP socket on ``host:port``; :class:`ConfigError` if it cannot be had.
    ``reuse_port``: other sockets of this user with the option may bind the same port, and the
    kernel spreads new connections evenly over those that listen."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def node_url(host: str, sock: socket.socket) -> str:
    """The node's URL: ``host`` (bracketed if IPv6) and the port ``sock`` is bound to (the real one for 0)."""
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _Server(GracefulServer):
    """uvicorn that reports when it accepts connections, and exits 0 on SIGINT/SIGTERM."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self._on_ready()


class _CoalescingTransport:
    """A transport that sends what the protocol writes during one event loop callback as one write.

    uvloop sends every ``write()`` at once, and uvicorn writes a response's head and body
    separately: two segments, and the client woken twice, for every small response. Held until
    the callback ends, they leave together. Everything else is the real transport's.
    """

    #: Held bytes that are sent at once: a large or streamed body goes out (and meets the real
    #: transport's flow control) as it comes.
    FLUSH_AT = 64 * 1024

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= self.FLUSH_AT:
            self._flush()

    def writelines(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        pending, self._pending, self._pending_size = self._pending, [], 0
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._pending_size

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`_CoalescingTransport` (held to the node's
    connection limits by :func:`chain.service.web.server_config`, which wraps it).

    uvicorn offers no supported hook around a connection's transport, so this subclasses its
    httptools protocol (uvicorn is pinned in requirements/constraints.txt). It stays because one
    write per small response is what lets one process keep up with the verification load
    (docs/performance.md); tests/unit/test_node_server.py checks it against the pinned uvicorn,
    including that stock uvicorn still writes head and body apart.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they have its methods.
        real = cast(asyncio.Transport, transport)
        super().connection_made(cast(asyncio.Transport, _CoalescingTransport(real, self.loop)))


def _server(runtime: Runtime, on_ready: Callable[[], None]) -> _Server:
    settings = runtime.settings
    config = server_config(
        create_app(runtime),
        log_level=settings.log_level,
        limits=settings.connection_limits,
        http=_HttpProtocol,
    )
    return _Server(config, on_ready)


def _freeze_startup_heap() -> None:
    """Moves what startup built (modules, the app, its schemas; most of the heap, and it lives as
    long as the process) out of the garbage collector's sight. Otherwise every full collection
    walks all of it while the requests in flight wait. Only for a process that is the node."""
    gc.collect()
    gc.freeze()


def serve_node(settings: NodeSettings, on_ready: Callable[[str], None] = print) -> None:
    """Checks, binds and serves until SIGINT/SIGTERM: the supervisor (:mod:`node.worker`) of one
    writer process (none for ``FINVAULT_NODE_REPLICA``: the mirror's writer is elsewhere) and
    ``settings.workers`` reader processes that serve HTTP on one port. Raises
    :class:`FinVaultError` before binding if anything is wrong (chain id, registry code, mirror,
    another writer), so a bad start is one line."""
    if settings.cursor_secret is None:  # every reader must sign and check cursors alike
        settings = settings.model_copy(update={"cursor_secret": SecretStr(secrets.token_hex(32))})
    if not settings.node_replica:
        MirrorWriter.open(settings).close()  # every writer check (and migration) before the port is bound
    Runtime.open(settings).close()
    with tempfile.TemporaryDirectory(prefix="finvault-node-") as tmp:
        directory = Path(tmp)
        # Each reader listens on a socket of its own on this port (SO_REUSEPORT), so the kernel
        # spreads connections evenly: on one shared socket, the reader that happens to be awake
        # accepts a burst of them all (measured: 53 of 56 keep-alive connections, the other reader
        # idle). This one, bound and never listening, only holds the port and names it.
        sock = bind_socket(settings.host, settings.port, reuse_port=True)
        url = node_url(settings.host, sock)
        port = sock.getsockname()[1]

        def mark_ready() -> None:
            (directory / f"{READY_PREFIX}{os.getpid()}").touch()

        # Built once, here: the readers share the app's pages, and each opens its own database and
        # RPC connections on first use (none is open when they fork).
        engine = make_engine(settings.database_url)
        runtime = Runtime(settings, engine, cursor_key(settings), on_start=mark_ready)
        try:
            server = _server(runtime, _freeze_startup_heap)
            server.config.load()  # uvicorn's protocol, lifespan and loop modules: imported once, here
            server.config.get_loop_factory()

            def reader_main() -> None:
                sock.close()
                with bind_socket(settings.host, port, reuse_port=True) as own:
                    server.run(sockets=[own])

            cpus = reader_cpus(settings.workers, settings.pin_readers)
            if cpus is not None:
                log.info("readers pinned to CPUs %s, one each", cpus)
            supervisor = Supervisor(
                readers=settings.workers,
                cpus=cpus,
                ready_dir=directory,
                writer_main=None if settings.node_replica else lambda: run_writer(settings, STOP_SIGNALS),
                reader_main=reader_main,
                on_ready=lambda: on_ready(url),
            )
            _freeze_startup_heap()
            supervisor.run()
        finally:
            runtime.close()
            sock.close()
        if not supervisor.served:
            raise startup_failed()


class RunningNode:
    """A node served from background threads of this process (:func:`start_node_thread`)."""

    def __init__(
        self,
        runtime: Runtime,
        writer: MirrorWriter | None,
        server: _Server,
        thread: threading.Thread,
        url: str,
    ) -> None:
        self.runtime = runtime
        self.writer = writer
        self.server = server
        self.thread = thread
        self.url = url

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown: stop accepting, finish requests, stop the writer, close."""
        self.server.should_exit = True
        self.thread.join(timeout)
        self.runtime.close()
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> RunningNode:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_node_thread(settings: NodeSettings, ready_timeout: float = 60.0) -> RunningNode:
    """Starts the node in this process, for the demo and in-process tests: the writer's loop in a
    thread (none for a replica), and a reader's server in another. Returns once it accepts
    connections."""
    writer = None if settings.node_replica else MirrorWriter.open(settings)
    try:
        runtime = Runtime.open(settings)
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    try:
        sock = bind_socket(settings.host, settings.port)
    except BaseException:
        runtime.close()
        if writer is not None:
            writer.close()
        raise
    url = node_url(settings.host, sock)
    started = threading.Event()
    server = _server(runtime, started.set)

    def run() -> None:
        with sock:
            server.run(sockets=[sock])
        started.set()  # also when startup failed: the caller must not wait for ever

    if writer is not None:
        writer.start()
    thread = threading.Thread(target=run, name="finvault-node", daemon=True)
    thread.start()
    node = RunningNode(runtime, writer, server, thread, url)
    if not started.wait(ready_timeout) or not server.started:
        node.stop(10)
        raise FinVaultError(f"the node did not start within {ready_timeout:.0f}s", code="startup_failed")
    return node
