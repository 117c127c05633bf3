"""The suite-wide guard (tests/conftest.py) keeps every test on this machine."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.conftest import is_loopback_host


@pytest.mark.parametrize("host", ["example.com", "polygon-rpc.com", "8.8.8.8", "2001:4860:4860::8888"])
def test_public_hosts_do_not_resolve(host: str) -> None:
    with pytest.raises(OSError, match="no public network"):
        socket.getaddrinfo(host, 443)


def test_a_client_pointed_at_a_public_url_fails_before_sending() -> None:
    with pytest.raises(httpx.ConnectError, match="no public network"):
        httpx.get("https://rpc-amoy.polygon.technology", timeout=5)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "localhost", "::1", "[::1]", None, "0.0.0.0"])  # noqa: S104
def test_loopback_is_allowed(host: str | None) -> None:
    assert is_loopback_host(host)
    if host not in (None, "[::1]", "::1"):
        assert socket.getaddrinfo(host, 80)
