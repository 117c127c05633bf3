"""did:web fetched like a careful client (chain.did_web), against real HTTPS servers on 127.0.0.1.

Each bound is measured where it bites: bytes the server managed to send before the resolver hung
up, seconds until the deadline fired, connections the server saw (none, when a fetch is refused
before it connects), whether a well-behaved host answers while silent ones hold every other place,
and what happens past the cap on fetches in flight.
"""

from __future__ import annotations

import asyncio
import resource
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from chain.core.identity import did_web_document
from chain.did_web import MAX_DOCUMENT_BYTES, MAX_FETCHES_IN_FLIGHT, IdentityResolver
from tests.integration.did_web_fixtures import DidServer, SilentHosts

ACCOUNT = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
REGISTRY = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
CHAIN_ID = 31337


def resolver(ca_file: Path, **overrides: Any) -> IdentityResolver:
    settings: dict[str, Any] = {
        "timeout": 10.0,  # the tests look at the fetch itself, not at how long a verdict waits
        "fetch_deadline": 3.0,
        "cache_seconds": 0.0,
        "allow_private": True,
        "ca_file": ca_file,
    }
    return IdentityResolver(**{**settings, **overrides})


def published(server: DidServer, *segments: str) -> dict[str, Any]:
    document = did_web_document(
        server.domain, chain_id=CHAIN_ID, registry=REGISTRY, issuer=ACCOUNT, multikeys=[]
    )
    if segments:
        did = server.did_at(*segments)
        document = {**document, "id": did}
    return document


def resolve(identities: IdentityResolver, did: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        try:
            return await identities.resolve(did, chain_id=CHAIN_ID, issuer=ACCOUNT)
        finally:
            await identities.aclose()

    return asyncio.run(run())


def test_a_document_is_verified_at_its_well_known_place_and_under_a_path(
    ca_and_server: tuple[Path, DidServer],
) -> None:
    ca_file, server = ca_and_server
    server.document = published(server)
    server.documents["/issuers/ok/did.json"] = published(server, "issuers", "ok")
    answer = resolve(resolver(ca_file), server.did)
    assert answer["status"] == "verified"
    assert answer["location"] == server.domain
    assert answer["url"] == f"https://{server.domain}/.well-known/did.json"
    at_path = resolve(resolver(ca_file), server.did_at("issuers", "ok"))
    assert (at_path["status"], at_path["location"]) == ("verified", f"{server.domain}/issuers/ok")


def test_an_endless_answer_is_not_read_past_the_bound(ca_and_server: tuple[Path, DidServer]) -> None:
    """300 MB without a Content-Length: the resolver hangs up after the first 64 KiB or so; the
    server gets out only what the loopback socket buffers hold, and the process does not grow."""
    ca_file, server = ca_and_server
    total = 300 * 1024 * 1024
    sent: list[int] = []

    def endless(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/did+json")
        handler.end_headers()  # no Content-Length: the body runs until the connection closes
        chunk, written = b" " * 65536, 0
        try:
            while written < total:
                handler.wfile.write(chunk)
                written += len(chunk)
        except OSError:
            pass
        sent.append(written)

    server.handlers["/.well-known/did.json"] = endless
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    answer = resolve(resolver(ca_file), server.did)
    assert (answer["status"], answer["reason"]) == ("unreachable", "too_large")
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sent, "the server never finished"
    assert sent[0] < 32 * 1024 * 1024, sent  # of 300 MB; the loopback socket buffers hold a few MB
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before
    assert grew < 32 * 1024 * 1024, f"peak RSS grew {grew:,} bytes"

    server.handlers.clear()  # a Content-Length over the bound: refused before the body is read
    server.document = b" " * (MAX_DOCUMENT_BYTES + 1)
    answer = resolve(resolver(ca_file), server.did)
    assert (answer["status"], answer["reason"]) == ("unreachable", "too_large")


def test_a_slow_drip_hits_the_total_deadline(ca_and_server: tuple[Path, DidServer]) -> None:
    """A byte every 0.1 s never trips a per-read timeout; the whole fetch still ends at its deadline."""
    ca_file, server = ca_and_server

    def drip(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")  # under the size bound
        handler.end_headers()
        try:
            for _ in range(1000):
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    server.handlers["/.well-known/did.json"] = drip
    server.documents.clear()
    started = time.monotonic()
    answer = resolve(resolver(ca_file, fetch_deadline=1.0), server.did)
    took = time.monotonic() - started
    assert (answer["status"], answer["reason"]) == ("unreachable", "deadline")
    assert 0.9 < took < 2.0, took


def test_loopback_is_refused_unless_allowed_and_nothing_connects(
    ca_and_server: tuple[Path, DidServer],
) -> None:
    ca_file, server = ca_and_server
    server.document = published(server)
    answer = resolve(resolver(ca_file, allow_private=False), server.did)
    assert (answer["status"], answer["reason"]) == ("refused", "address_forbidden")
    assert (server.connections, server.requests) == (0, 0)
    assert resolve(resolver(ca_file, allow_private=True), server.did)["status"] == "verified"
    assert server.requests == 1


@pytest.mark.parametrize(
    "segments",
    [
        ("a%2F..%2F.well-known",),  # an encoded "/" would climb out of the DID's path
        ("x%3Fq=1",),  # an encoded "?" would add a query
        ("x%23frag",),  # an encoded "#" would cut the path
        ("x%252F",),  # an encoded "%" would be decoded again by some servers
        ("..",),  # a dot segment climbs
        ("%2E%2E",),
        ("",),  # an empty segment
    ],
)
def test_forbidden_encodings_are_refused_before_connecting(
    ca_and_server: tuple[Path, DidServer], segments: tuple[str, ...]
) -> None:
    ca_file, server = ca_and_server
    server.document = published(server)
    answer = resolve(resolver(ca_file), server.did_at(*segments))
    assert (answer["status"], answer["reason"], answer["location"]) == ("refused", "did_invalid", None)
    assert server.connections == 0


@pytest.mark.parametrize(
    "did",
    [
        "did:web:127.0.0.1%2F@evil.example",  # only the port may be encoded in the domain part
        "did:web:%31%32%37.0.0.1",
        "did:web:127.0.0.1%3A443%3A1",
        "did:web:user@127.0.0.1",
        "did:web:127.0.0.1?x=1",
    ],
)
def test_forbidden_domains_are_refused(ca_and_server: tuple[Path, DidServer], did: str) -> None:
    ca_file, _server = ca_and_server
    answer = resolve(resolver(ca_file), did)
    assert (answer["status"], answer["reason"]) == ("refused", "did_invalid")


def test_a_deeply_nested_document_is_a_status(ca_and_server: tuple[Path, DidServer]) -> None:
    ca_file, server = ca_and_server
    server.document = b"[" * 30_000 + b"]" * 30_000  # under 64 KiB, far deeper than any parser recurses
    answer = resolve(resolver(ca_file), server.did)
    assert (answer["status"], answer["reason"]) == ("mismatch", "document_invalid")
    server.document = b'{"id": 1, "id": 2}'  # duplicate keys: the strict parser's, not json.loads'
    assert resolve(resolver(ca_file), server.did)["reason"] == "document_invalid"


@pytest.mark.slow(seconds=3)
def test_silent_hosts_do_not_starve_a_well_behaved_one(ca_and_server: tuple[Path, DidServer]) -> None:
    """Silent hosts (accept, never answer) in every place but one under the cap on fetches in
    flight hold their connections to the deadline (3 s); the well-behaved host, asked after them,
    answers from its own pool while every silent one still waits."""
    ca_file, server = ca_and_server
    server.document = published(server)
    silent = SilentHosts(MAX_FETCHES_IN_FLIGHT - 1)
    identities = resolver(ca_file)

    async def run() -> tuple[list[dict[str, Any]], dict[str, Any], float, int]:
        try:
            stuck = [
                asyncio.ensure_future(identities.resolve(did, chain_id=CHAIN_ID, issuer=ACCOUNT))
                for did in silent.dids
            ]
            await asyncio.sleep(0.3)  # every silent host now holds a connection
            started = time.monotonic()
            good = await identities.resolve(server.did, chain_id=CHAIN_ID, issuer=ACCOUNT)
            took = time.monotonic() - started
            still_waiting = sum(not task.done() for task in stuck)
            return await asyncio.gather(*stuck), good, took, still_waiting
        finally:
            await identities.aclose()

    try:
        stuck, good, took, still_waiting = asyncio.run(run())
    finally:
        silent.close()
    assert good["status"] == "verified"
    # still_waiting is the proof of no starvation; the time is only a loose sanity bound (a busy
    # 2-core machine can take a second over one TLS handshake), well under the 3 s deadline.
    assert took < 2.5, took
    assert still_waiting == MAX_FETCHES_IN_FLIGHT - 1  # the good answer came while they all held on
    assert {(s["status"], s["reason"]) for s in stuck} == {("unreachable", "deadline")}


@pytest.mark.slow(seconds=2)
def test_past_the_cap_on_fetches_in_flight_a_fetch_is_busy_at_once_and_not_cached(
    ca_and_server: tuple[Path, DidServer],
) -> None:
    """More silent hosts than MAX_FETCHES_IN_FLIGHT asked at once: those past the cap, and a
    well-behaved host asked while it is full, answer ``busy`` before any silent host reaches its
    deadline, with no connection made; once the silent fetches end, the well-behaved host is
    verified, though failures are cached for 30 s here: ``busy`` was not remembered."""
    ca_file, server = ca_and_server
    server.document = published(server)
    over = 4
    silent = SilentHosts(MAX_FETCHES_IN_FLIGHT + over)
    identities = resolver(ca_file, fetch_deadline=1.5, cache_seconds=300.0)

    async def ask(did: str) -> dict[str, Any]:
        return await identities.resolve(did, chain_id=CHAIN_ID, issuer=ACCOUNT)

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, dict[str, Any], dict[str, Any]]:
        try:
            tasks = [asyncio.ensure_future(ask(did)) for did in silent.dids]
            # Every fetch has taken its place or been turned away: let each task run to its
            # first real wait, and let the admitted ones connect.
            await asyncio.sleep(0.3)
            early = [task.result() for task in tasks if task.done()]
            good_while_full = await ask(server.did)
            waiting_then = sum(not task.done() for task in tasks)
            every = await asyncio.gather(*tasks)
            good_after = await ask(server.did)
            return early, every, waiting_then, good_while_full, good_after
        finally:
            await identities.aclose()

    try:
        early, every, waiting_then, good_while_full, good_after = asyncio.run(run())
    finally:
        silent.close()
    assert [(a["status"], a["reason"]) for a in early] == [("unreachable", "busy")] * over
    assert (good_while_full["status"], good_while_full["reason"]) == ("unreachable", "busy")
    assert waiting_then == MAX_FETCHES_IN_FLIGHT  # the busy answers came while every admitted one held on
    reasons = [a["reason"] for a in every]
    assert (reasons.count("busy"), reasons.count("deadline")) == (over, MAX_FETCHES_IN_FLIGHT)
    assert good_after["status"] == "verified"
    assert server.requests == 1  # the busy answer made no connection; the second ask fetched
