"""Loopback ports for tests that run in parallel (pytest-xdist workers, two suites at once).

A port that was free a moment ago (:func:`chain.dev.devchain.free_port`) can be taken by another
process before the test uses it: another worker's anvil or node, or a test that expects nothing to
answer there and then finds a server. Both helpers keep a socket bound on the port, never listening,
for as long as the ``with`` block lasts:

- :func:`closed_port`: nothing can bind it, so a connection is refused for sure;
- :func:`reserved_port`: the socket sets ``SO_REUSEADDR``, so a server that also sets it (anvil,
  uvicorn, ``finvault node``: all of them do) can still bind and listen there, while the kernel never
  hands the port out for a ``bind`` to port 0 and refuses it to any socket without the option.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

LOOPBACK = "127.0.0.1"


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections until the block ends."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        yield int(sock.getsockname()[1])


@contextmanager
def reserved_port() -> Iterator[int]:
    """A loopback port kept for a server started with it explicitly (``--port N``) in the block."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, 0))
        yield int(sock.getsockname()[1])
