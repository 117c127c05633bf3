"""The body deadline of :class:`chain.service.web.EdgeMiddleware`, at the ASGI level: it bounds a
body that is still coming, and nothing after the body is complete (a streaming response listens
for a disconnect with receive() for as long as it streams)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chain.service.web import EdgeMiddleware, Message, Receive, RequestTimeout, Scope, Send

SCOPE = {"type": "http", "method": "POST", "path": "/x", "headers": [], "client": ("127.0.0.1", 1)}


def run(app_reads: Any, messages: list[Message], *, body_timeout: float) -> list[Any]:
    """``app_reads(receive)`` inside the middleware; ``messages`` are what the server gives, then
    nothing ever again. Returns what the app's reads returned (or raised)."""
    seen: list[Any] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app_reads(receive, seen)
        except RequestTimeout as exc:
            seen.append(exc)

    async def main() -> None:
        queue = list(messages)

        async def receive() -> Message:
            if queue:
                return queue.pop(0)
            await asyncio.Event().wait()  # a client that sends nothing more
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            pass

        edge = EdgeMiddleware(inner, max_body_bytes=1024, body_timeout=body_timeout)
        await edge(dict(SCOPE), receive, send)

    asyncio.run(main())
    return seen


def test_a_body_still_coming_at_the_deadline_is_a_request_timeout() -> None:
    async def reads(receive: Receive, seen: list[Any]) -> None:
        while True:
            seen.append(await receive())

    seen = run(reads, [{"type": "http.request", "body": b"{", "more_body": True}], body_timeout=0.05)
    assert seen[0]["body"] == b"{"
    assert isinstance(seen[1], RequestTimeout)
    assert seen[1].status == 408
    assert seen[1].headers == {"Connection": "close"}


def test_after_a_complete_body_receive_waits_unbounded() -> None:
    async def reads(receive: Receive, seen: list[Any]) -> None:
        seen.append(await receive())
        try:
            async with asyncio.timeout(0.2):  # well past the edge's 0.05 s
                await receive()
        except TimeoutError:
            seen.append("still waiting")

    seen = run(reads, [{"type": "http.request", "body": b"{}", "more_body": False}], body_timeout=0.05)
    assert seen == [{"type": "http.request", "body": b"{}", "more_body": False}, "still waiting"]


@pytest.mark.parametrize(
    ("headers", "declares"),
    [
        ([], False),
        ([(b"content-length", b"0")], False),
        ([(b"content-length", b"12")], True),
        ([(b"transfer-encoding", b"chunked")], True),
    ],
)
def test_which_requests_get_a_body_deadline(headers: list[tuple[bytes, bytes]], declares: bool) -> None:
    from chain.service.connections import _declares_body

    assert _declares_body(headers) is declares
