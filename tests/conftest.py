"""Suite-wide test machinery.

- No test reaches a public network: every test runs with name resolution limited to loopback, so a
  client pointed at a public URL fails before a packet leaves the machine. Child processes (anvil,
  nodes) are started on 127.0.0.1 by the fixtures themselves.
- The order tests start in a parallel run (pytest-xdist, as ``./scripts/test`` runs them). Workers
  take tests one at a time in collection order (``--dist load --maxschedchunk 1``), so a long test
  collected late would start late and end the run alone on one worker while the others idle. In a
  worker, the tests marked ``slow`` therefore come first, longest first (by the mark's ``seconds``,
  measured alone on an idle machine); the rest keep pytest's order, which groups them by module so
  that module-scoped fixtures are built once per worker. A serial run keeps pytest's order.
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


#: What a ``slow`` mark without ``seconds`` stands for: about the mark's threshold.
SLOW_SECONDS = 1.0


def expected_seconds(item: pytest.Item) -> float:
    """Roughly how long ``item`` takes alone: its ``slow`` mark's ``seconds``; 0 if not marked."""
    mark = item.get_closest_marker("slow")
    if mark is None:
        return 0.0
    return float(mark.kwargs.get("seconds", SLOW_SECONDS))


@pytest.hookimpl(trylast=True)  # after pytest's own reordering (by higher-scoped fixtures)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: every worker sorts alike (a stable sort)
        items.sort(key=lambda item: -expected_seconds(item))
