"""Suite-wide guard: no test reaches a public network.

Every test runs with name resolution limited to loopback: a host name or address that is not
loopback fails to resolve, so a client pointed at a public URL fails before a packet leaves the
machine. Child processes (anvil, nodes) are started on 127.0.0.1 by the fixtures themselves.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", ""})


def is_loopback_host(host: Any) -> bool:
    """Whether resolving ``host`` stays on this machine (``None`` and the wildcard bind addresses too)."""
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.lower() in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


@pytest.fixture(autouse=True)
def no_public_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuses to resolve any host but loopback for the length of one test."""
    resolve = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback_host(host):
            raise OSError(f"test guard: no public network ({host})")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
