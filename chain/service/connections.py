"""Bounds at the socket edge of every FinVault HTTP server: how long a client may take, how many
connections it may hold.

uvicorn bounds none of this by itself: a connection that sends nothing, half its headers or half
its body stays open for ever, and its only cap, ``limit_concurrency``, acts once a request's
headers are in (so idle connections still pile up until the process runs out of file descriptors)
and answers a plain-text 503. :func:`guarded_protocol` wraps uvicorn's httptools protocol:

- a connection must complete a request's headers within ``header_timeout`` of connecting, or of
  the request's first byte on a kept-alive connection; else it is closed;
- a declared body must be complete within ``body_timeout`` of its headers. The app answers 408
  first (:class:`chain.service.web.EdgeMiddleware`, in the error shape); the connection is closed
  :data:`BODY_GRACE_SECONDS` later if the app was not reading it;
- an answer the client stops reading (it waits in the transport's buffer) is dropped, connection
  and all, once a whole ``send_timeout`` passes with nothing taken; a slow reader that keeps
  taking is not;
- between requests uvicorn's own keep-alive timeout applies, and a connection serves at most
  ``max_requests_per_connection`` requests (the last answer says ``Connection: close``);
- over ``max_connections`` open connections, or ``max_connections_per_client`` from one address,
  a new connection is answered a 503 (the error shape, ``Retry-After: 1``) and closed at once,
  before anything is read from it.

Every count is per server, so per worker process for a pre-forked node (:mod:`node.worker`).
What is left to the app: the body size (413) and the request rate (429), in ``EdgeMiddleware``.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import resource
import sys
import termios
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # pinned: requirements/constraints.txt

from chain.errors import ConfigError

log = logging.getLogger(__name__)

P = TypeVar("P", bound=HttpToolsProtocol)

#: How long after ``body_timeout`` the connection of an unfinished body is closed, when the app
#: has not answered 408 by then (it only can while it is reading the body).
BODY_GRACE_SECONDS = 1.0
#: At most one "refusing connections" warning this often, however many are refused: under a flood
#: the log must not become the next thing to run out.
REFUSAL_LOG_SECONDS = 60.0


@dataclass(frozen=True)
class ConnectionLimits:
    """The bounds :func:`guarded_protocol` holds each connection to (seconds, counts; 0: no limit
    where noted)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    send_timeout: float = 30.0
    keep_alive_timeout: int = 5
    #: 0: no limit.
    max_requests_per_connection: int = 1000
    max_connections: int = 1000
    #: 0: no per-address cap.
    max_connections_per_client: int = 100


#: File descriptors a server needs beside its connections: listening sockets, database and RPC
#: connections, log files, the interpreter's own.
RESERVED_DESCRIPTORS = 128


def reserve_descriptors(limits: ConnectionLimits) -> int:
    """Makes room for ``limits.max_connections`` open sockets: raises this process's soft limit on
    open files (``ulimit -n``) up to its hard limit if it is lower than the cap plus
    :data:`RESERVED_DESCRIPTORS`, and returns the soft limit. :class:`ConfigError` if even the hard
    limit is too low: with the cap above the limit, accepting fails before the cap is reached, and
    every client (``/health`` too) waits. Forked workers inherit the limit."""
    needed = limits.max_connections + RESERVED_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ConfigError(
            f"FINVAULT_HTTP_MAX_CONNECTIONS={limits.max_connections} needs {needed:,} open files, and this "
            f"process may open at most {hard:,} (ulimit -Hn): lower the cap or raise the limit"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


def _unsent(transport: asyncio.Transport) -> int:
    """Bytes written and not yet taken by the peer: the transport's buffer, plus the kernel's send
    queue where the platform says (Linux ``TIOCOUTQ``)."""
    unsent = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    try:
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (AttributeError, OSError, ValueError):
        return unsent
    return unsent + int.from_bytes(queued, sys.byteorder, signed=True)


def _peer_host(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "unknown"


def _refusal(message: str) -> bytes:
    """A whole 503 answer in the error shape of :func:`chain.service.web.error_response` (written
    here because the app never sees a refused connection)."""
    body = json.dumps(
        {"error": {"code": "too_many_connections", "message": message, "correlation_id": uuid.uuid4().hex}},
        separators=(",", ":"),
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "retry-after: 1\r\n"
        "connection: close\r\n"
        "x-content-type-options: nosniff\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


def guarded_protocol(limits: ConnectionLimits, base: type[P]) -> type[P]:
    """``base`` (uvicorn's httptools protocol or a subclass) held to ``limits``: a new class, whose
    connection counts are shared by the connections of one server (one per process)."""
    per_client: Counter[str] = Counter()
    last_refusal_log = [-REFUSAL_LOG_SECONDS]

    class Guarded(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline: asyncio.TimerHandle | None = None
            self._send_deadline: asyncio.TimerHandle | None = None
            self._sent_some = False
            self._client_host: str | None = None  # set once the connection is accepted and counted
            self._requests = 0

        # -- connections: counted, or refused before anything is read -----------------------

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            host = _peer_host(transport)
            refusal = self._over_cap(host)
            if refusal is not None:
                self._refuse(cast(asyncio.Transport, transport), refusal)
                return
            self._client_host = host
            per_client[host] += 1
            super().connection_made(transport)
            self._arm(limits.header_timeout)

        def _over_cap(self, host: str) -> str | None:
            if len(self.connections) >= limits.max_connections:
                return f"this server holds its maximum of {limits.max_connections} connections"
            cap = limits.max_connections_per_client
            if cap and per_client[host] >= cap:
                return f"this server holds its maximum of {cap} connections from one address"
            return None

        def _refuse(self, transport: asyncio.Transport, reason: str) -> None:
            now = time.monotonic()
            if now - last_refusal_log[0] >= REFUSAL_LOG_SECONDS:
                last_refusal_log[0] = now
                log.warning("refusing connections: %s (this warning repeats at most once a minute)", reason)
            transport.write(_refusal(f"{reason}; retry shortly"))
            transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            host = self._client_host
            if host is None:  # refused: uvicorn never saw it
                return
            self._client_host = None
            self._disarm()
            self._stop_send_deadline()
            per_client[host] -= 1
            if per_client[host] <= 0:
                del per_client[host]
            super().connection_lost(exc)

        # -- deadlines: one at a time, for the headers or for the body ------------------------

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

        # -- the send deadline: an answer nobody reads holds nothing for long -----------------
        # A slow reader is fine: what counts is progress. While an answer waits to be sent, a
        # watcher looks every send_timeout; if the client took nothing since (no resume_writing,
        # no fewer bytes unsent), the connection is dropped. Unsent bytes include the kernel's
        # send queue: a reader first drains that (up to megabytes), while the transport's own
        # buffer does not move.

        def pause_writing(self) -> None:
            super().pause_writing()
            self._watch_sending()

        def resume_writing(self) -> None:
            super().resume_writing()
            self._sent_some = True

        def _watch_sending(self) -> None:
            if self._send_deadline is None:
                self._sent_some = False
                self._send_deadline = self.loop.call_later(
                    limits.send_timeout, self._check_sending, _unsent(self.transport)
                )

        def _check_sending(self, before: int) -> None:
            self._send_deadline = None
            size = _unsent(self.transport)
            if size == 0 and not self.flow.write_paused:
                return  # all taken: nothing to watch
            if self._sent_some or size < before:
                self._watch_sending()
            else:  # abort(), not close(): close() waits for a buffer that will never drain
                self.transport.abort()

        def _stop_send_deadline(self) -> None:
            if self._send_deadline is not None:
                self._send_deadline.cancel()
                self._send_deadline = None

        def timeout_keep_alive_handler(self) -> None:
            super().timeout_keep_alive_handler()  # closes once the last answer has been taken...
            if self.transport.get_write_buffer_size() > 0:
                self._watch_sending()  # ...if it ever is

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            # Bytes that begin no request (a bare CRLF) cancel uvicorn's keep-alive timer without
            # starting the header deadline: the connection must not then idle for ever.
            idle = self.cycle is None or self.cycle.response_complete
            if self._deadline is None and idle and not self.transport.is_closing():
                self._arm(limits.header_timeout)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._deadline is None:  # a fresh connection's deadline runs from its start
                self._arm(limits.header_timeout)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
            if self.cycle is None:
                return
            self._requests += 1
            if limits.max_requests_per_connection and self._requests >= limits.max_requests_per_connection:
                self.cycle.keep_alive = False
            # A pipelined request's body is not read until the requests before it are answered:
            # its deadline is the app's 408, and the header deadline once the connection idles.
            if not self.pipeline and _declares_body(self.headers):
                self._arm(limits.body_timeout + BODY_GRACE_SECONDS)

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return cast(type[P], Guarded)
