"""Webhooks: the issuer's outbox (``events``) delivered to subscriber URLs, signed, retried, dead-lettered.

Events are written in the same transaction as the change they report (see
:func:`issuer.store.add_events`), so none is lost to a crash. The dispatcher then, on a
timer:

1. queues one ``webhook_deliveries`` row per new event and configured URL (an endpoint seen for
   the first time starts at the present, not with the store's whole history);
2. POSTs the due deliveries. A 2xx answer marks one ``delivered``; anything else (an error
   status, a timeout, a refused connection) schedules another attempt with exponential backoff
   and jitter, until ``max_attempts``, after which the delivery is ``dead``: kept, listed by
   ``GET /webhooks/deliveries?status=dead``, never sent again.

Delivery is at least once: receivers deduplicate on ``FinVault-Event-Id``. Every body is signed
with HMAC-SHA256 over ``<unix time>.<body>``, sent as ``FinVault-Signature: t=<unix>,v1=<hex>``;
:func:`verify_signature` is what a receiver runs (with a tolerance against replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]
from sqlalchemy import func, select

from chain.rpc import redact_url
from issuer.store import DeliveryStatus, Event, Store, WebhookCursor, WebhookDelivery, storable_text, utcnow

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "FinVault-Signature"
EVENT_ID_HEADER = "FinVault-Event-Id"
#: Seconds a receiver accepts between the signed timestamp and its own clock.
DEFAULT_TOLERANCE = 300
_SIGNATURE = re.compile(r"^t=(\d{1,12}),v1=([0-9a-f]{64})$")


def sign_payload(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``FinVault-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: bytes, header: str, body: bytes, *, now: int, tolerance: int = DEFAULT_TOLERANCE
) -> bool:
    """A receiver's check: the header is well formed, fresh, and its MAC matches (in constant time)."""
    match = _SIGNATURE.fullmatch(header.strip())
    if match is None:
        return False
    timestamp = int(match.group(1))
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign_payload(secret, body, timestamp).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("ascii"))


def event_body(event: Event) -> bytes:
    """The JSON body delivered for ``event`` (stable: a retry sends the same bytes)."""
    payload = {
        "id": f"evt_{event.id}",
        "type": event.type,
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": event.data,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class WebhookPolicy:
    """Retries: attempt n waits ``base_delay * 2**(n-1)`` seconds (capped, with ±20 % jitter)."""

    max_attempts: int = 8
    base_delay: float = 2.0
    max_delay: float = 3600.0
    timeout: float = 10.0
    batch: int = 50

    def __post_init__(self) -> None:
        if (
            self.max_attempts < 1
            or self.base_delay <= 0
            or self.max_delay < self.base_delay
            or self.timeout <= 0
        ):
            raise ValueError("webhook policy: max_attempts ≥ 1, 0 < base_delay ≤ max_delay, timeout > 0")

    def delay(self, attempts: int, jitter: float) -> float:
        """Seconds before the next attempt after ``attempts`` failures (``jitter`` in [0, 1))."""
        backoff: float = min(self.max_delay, self.base_delay * 2.0 ** (attempts - 1))
        return backoff * (0.8 + 0.4 * jitter)


class WebhookDispatcher:
    """Queues and delivers the outbox to ``urls``, on a background timer or one :meth:`run_once`."""

    def __init__(
        self,
        store: Store,
        urls: Sequence[str],
        secret: bytes,
        *,
        policy: WebhookPolicy | None = None,
        client: httpx.Client | None = None,
        now: Callable[[], datetime] = utcnow,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if urls and len(secret) < 16:
            raise ValueError("the webhook secret must be at least 16 bytes")
        self.store = store
        self.urls = tuple(dict.fromkeys(urls))
        self._secret = secret
        self.policy = policy or WebhookPolicy()
        self._client = client or httpx.Client(timeout=self.policy.timeout, follow_redirects=False)
        self._now = now
        self._jitter = jitter
        self._lock = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None

    def __repr__(self) -> str:  # never shows the secret
        return f"WebhookDispatcher(urls={len(self.urls)})"

    def queue(self) -> int:
        """Queues a delivery of every event newer than each endpoint's cursor; returns how many."""
        queued = 0
        with self.store.transaction() as session:
            newest = int(session.scalar(select(func.max(Event.id))) or 0)
            for url in self.urls:
                cursor = session.get(WebhookCursor, url)
                if cursor is None:
                    session.add(WebhookCursor(url=url, last_event_id=newest))
                    continue
                new_ids = session.scalars(
                    select(Event.id).where(Event.id > cursor.last_event_id).order_by(Event.id)
                ).all()
                now = self._now()
                session.add_all(
                    WebhookDelivery(
                        event_id=event_id,
                        url=url,
                        status=DeliveryStatus.PENDING,
                        attempts=0,
                        next_attempt_at=now,
                    )
                    for event_id in new_ids
                )
                cursor.last_event_id = max([cursor.last_event_id, *new_ids])
                queued += len(new_ids)
        return queued

    def deliver_due(self) -> int:
        """Attempts up to ``policy.batch`` due deliveries; returns how many succeeded."""
        with self.store.reading() as session:
            due = session.execute(
                select(WebhookDelivery.event_id, WebhookDelivery.url, Event)
                .join(Event, Event.id == WebhookDelivery.event_id)
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= self._now(),
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.event_id)
                .limit(self.policy.batch)
            ).all()
        delivered = 0
        for event_id, url, event in due:
            error = self._post(url, event)
            self._record(event_id, url, error)
            delivered += error is None
        return delivered

    def _post(self, url: str, event: Event) -> str | None:
        body = event_body(event)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_payload(self._secret, body, int(self._now().timestamp())),
            EVENT_ID_HEADER: f"evt_{event.id}",
            "User-Agent": "FinVault-Webhooks/1",
        }
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}".replace(url, redact_url(url))[:500]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    def _record(self, event_id: int, url: str, error: str | None) -> None:
        with self.store.transaction() as session:
            delivery = session.get_one(WebhookDelivery, (event_id, url))
            delivery.attempts += 1
            now = self._now()
            if error is None:
                delivery.status = DeliveryStatus.DELIVERED
                delivery.delivered_at = now
                delivery.last_error = None
                return
            delivery.last_error = storable_text(error)
            if delivery.attempts >= self.policy.max_attempts:
                delivery.status = DeliveryStatus.DEAD
                log.warning(
                    "webhook evt_%d to %s dead after %d attempts: %s",
                    event_id,
                    redact_url(url),
                    delivery.attempts,
                    error,
                )
                return
            wait = self.policy.delay(delivery.attempts, self._jitter())
            delivery.next_attempt_at = now + timedelta(seconds=wait)

    def run_once(self) -> None:
        """Queues new events, then delivers what is due (never two runs at once)."""
        if not self.urls or not self._lock.acquire(blocking=False):
            return
        try:
            self.queue()
            self.deliver_due()
        except Exception:  # the timer must survive a bad run; the next one tries again
            log.exception("webhook run failed")
        finally:
            self._lock.release()

    def start(self, every: float = 1.0) -> WebhookDispatcher:
        """Runs :meth:`run_once` every ``every`` seconds in a background thread."""
        if self.urls:
            self.queue()  # new endpoints start at the present
            self._scheduler = BackgroundScheduler(
                timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1}
            )
            self._scheduler.add_job(self.run_once, "interval", seconds=every, id="webhooks")
            self._scheduler.start()
        return self

    def shutdown(self) -> None:
        """Stops the timer (a delivery in flight finishes) and closes the HTTP client."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self._client.close()


def delivery_view(delivery: WebhookDelivery) -> dict[str, Any]:
    """A delivery as the issuer API lists it."""
    return {
        "event_id": f"evt_{delivery.event_id}",
        "url": redact_url(delivery.url),
        "status": str(delivery.status),
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at.isoformat(),
        "last_error": delivery.last_error,
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
    }
