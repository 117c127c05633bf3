"""Webhook delivery against a real HTTP receiver on 127.0.0.1: signing, retries, backoff, dead letters.

The store is a real SQLite file; the clock is a fake one, so backoff is checked exactly and the
test never sleeps.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from issuer.store import (
    EVENT_IDS,
    DeliveryStatus,
    EventType,
    Store,
    WebhookDelivery,
    add_events,
)
from issuer.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    WebhookDispatcher,
    WebhookPolicy,
    sign_payload,
    verify_signature,
)

SECRET = b"0123456789abcdef-webhook-secret"
START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Receiver:
    """Answers each POST with the next status of ``statuses`` (then 204), and keeps what it got."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/finvault"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(str(tmp_path / "issuer.db")) as opened:
        yield opened


@pytest.fixture
def clock() -> list[datetime]:
    return [START]


def dispatcher(store: Store, urls: list[str], clock: list[datetime], **policy: float) -> WebhookDispatcher:
    return WebhookDispatcher(
        store,
        urls,
        SECRET,
        policy=WebhookPolicy(**policy),  # type: ignore[arg-type]
        now=lambda: clock[0],
        jitter=lambda: 0.5,  # the middle of the jitter range: exactly the nominal delay
    )


def emit(store: Store, ids: list[str], type_: EventType = EventType.CERTIFICATE_ANCHORED) -> None:
    with store.transaction() as session:
        add_events(session, type_, {"batch": "0x" + "ab" * 32}, ids, START)


def deliveries(store: Store) -> list[WebhookDelivery]:
    with store.reading() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.event_id)))


def test_signature_round_trip_and_rejections() -> None:
    body = b'{"id":"evt_1"}'
    header = sign_payload(SECRET, body, 1_790_000_000)
    assert verify_signature(SECRET, header, body, now=1_790_000_100)
    assert not verify_signature(SECRET, header, body + b" ", now=1_790_000_100)
    assert not verify_signature(b"another secret of 16+ bytes", header, body, now=1_790_000_100)
    assert not verify_signature(SECRET, header, body, now=1_790_000_000 + 301)  # stale: a replay
    assert not verify_signature(SECRET, "t=1790000000,v1=zz", body, now=1_790_000_000)
    assert not verify_signature(SECRET, "", body, now=1_790_000_000)


def test_new_endpoint_starts_at_the_present_and_gets_signed_events(
    store: Store, clock: list[datetime]
) -> None:
    emit(store, ["old-1"])  # before the endpoint existed: never sent
    receiver = Receiver([])
    try:
        hooks = dispatcher(store, [receiver.url], clock)
        assert hooks.queue() == 0
        emit(store, [f"cert-{i}" for i in range(EVENT_IDS + 1)])  # two events: ids come in chunks
        hooks.run_once()
        assert len(receiver.received) == 2
        for headers, body in receiver.received:
            assert verify_signature(SECRET, headers[SIGNATURE_HEADER], body, now=int(START.timestamp()))
            event = json.loads(body)
            assert headers[EVENT_ID_HEADER] == event["id"]
            assert event["type"] == "certificate.anchored"
            assert event["data"]["batch"] == "0x" + "ab" * 32
        sent = [json.loads(body)["data"]["certificate_ids"] for _, body in receiver.received]
        assert [len(ids) for ids in sent] == [EVENT_IDS, 1]
        assert all(d.status is DeliveryStatus.DELIVERED and d.attempts == 1 for d in deliveries(store))
        hooks.run_once()
        assert len(receiver.received) == 2  # delivered once
        hooks.shutdown()
    finally:
        receiver.close()


def test_failures_back_off_exponentially_then_succeed(store: Store, clock: list[datetime]) -> None:
    receiver = Receiver([500, 503, 429])
    try:
        hooks = dispatcher(store, [receiver.url], clock, base_delay=2.0, max_attempts=5)
        hooks.queue()
        emit(store, ["cert-1"], EventType.CERTIFICATE_REVOKED)
        waits = []
        for _ in range(3):
            hooks.run_once()
            (delivery,) = deliveries(store)
            assert delivery.status is DeliveryStatus.PENDING
            waits.append((delivery.next_attempt_at - clock[0]).total_seconds())
            hooks.run_once()  # not due yet: nothing is sent
            clock[0] = delivery.next_attempt_at
        assert waits == [2.0, 4.0, 8.0]
        assert deliveries(store)[0].last_error == "HTTP 429"
        hooks.run_once()
        (delivery,) = deliveries(store)
        assert (delivery.status, delivery.attempts, delivery.last_error) == (
            DeliveryStatus.DELIVERED,
            4,
            None,
        )
        bodies = {body for _, body in receiver.received}
        assert len(receiver.received) == 4
        assert len(bodies) == 1
        hooks.shutdown()
    finally:
        receiver.close()


def test_dead_letter_after_max_attempts_and_unreachable_endpoints(
    store: Store, clock: list[datetime]
) -> None:
    receiver = Receiver([500] * 10)
    closed = Receiver([])
    closed.close()  # nothing listens there any more: connection refused
    try:
        hooks = dispatcher(store, [receiver.url, closed.url], clock, base_delay=1.0, max_attempts=3)
        hooks.queue()
        emit(store, ["cert-1"])
        for _ in range(3):
            hooks.run_once()
            clock[0] += timedelta(hours=1)
        found = deliveries(store)
        assert [(d.status, d.attempts) for d in found] == [(DeliveryStatus.DEAD, 3)] * 2
        assert {d.last_error.split(":")[0] for d in found if d.last_error} == {"HTTP 500", "ConnectError"}
        hooks.run_once()
        assert len(receiver.received) == 3  # a dead letter is never sent again
        hooks.shutdown()
    finally:
        receiver.close()


def test_policy_and_secret_are_checked(store: Store) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        WebhookDispatcher(store, ["http://127.0.0.1:9/x"], b"short")
    with pytest.raises(ValueError, match="webhook policy"):
        WebhookPolicy(max_attempts=0)
    assert WebhookPolicy(base_delay=2, max_delay=10).delay(10, 0.5) == 10
    assert "secret" not in repr(WebhookDispatcher(store, [], b""))
