"""JSON-RPC over HTTP with several endpoints, failover, timeouts and retry with backoff.

Transport failures, timeouts, HTTP 429 and 5xx move on to the next endpoint; once every endpoint
has failed in a round, the client sleeps with exponential backoff and jitter (honouring
``Retry-After``) and tries again. A JSON-RPC error object is an answer, not an outage: it is raised
at once as :class:`~chain.errors.RpcError` with the raw ``code`` and ``data`` kept.

``result: null`` is a valid answer to some methods (a block or receipt the chain does not have) and
a faulty one to others (:data:`NEVER_NULL`: ``eth_blockNumber`` always has a value). A faulty null
fails over and backs off like a transport fault; if no endpoint gives a value, the call raises
:class:`~chain.errors.RpcError` naming the method, never a ``TypeError`` in whatever parses it.

Endpoint URLs often embed API keys, so only :func:`redact_url` forms ever reach messages and
logs (httpx's own request log included).
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from chain.errors import ChainMismatch, ConfigError, RpcError, RpcUnavailable

log = logging.getLogger(__name__)

RETRYABLE_HTTP_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Methods whose result is never null by the Ethereum JSON-RPC specification: a provider that
#: answers ``result: null`` to one is faulty (a node still starting, a broken load balancer).
NEVER_NULL = frozenset(
    {
        "eth_blockNumber",
        "eth_chainId",
        "net_version",
        "eth_call",
        "eth_estimateGas",
        "eth_feeHistory",
        "eth_gasPrice",
        "eth_getBalance",
        "eth_getCode",
        "eth_getLogs",
        "eth_getStorageAt",
        "eth_getTransactionCount",
        "eth_maxPriorityFeePerGas",
    }
)


def redact_url(url: str) -> str:
    """``https://polygon.example/v3/SECRET`` -> ``https://polygon.example/***``."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "<not a URL>"  # what a schemeless string holds cannot be told apart from a secret
    host = parts.hostname
    port = f":{parts.port}" if parts.port else ""
    hidden = "/***" if (parts.path not in ("", "/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


class _RedactRequestUrls(logging.Filter):
    """httpx logs every request's full URL at INFO (``HTTP Request: POST https://...``), which
    anyone who turns logging up would see: its records carry :func:`redact_url` forms instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


#: Installed on httpx's logger by the first :class:`RpcClient` (adding the same filter twice is a no-op).
_REDACT_REQUEST_URLS = _RedactRequestUrls()


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before :class:`RpcUnavailable`: ``rounds`` passes over all endpoints."""

    rounds: int = 4
    backoff_initial: float = 0.25
    backoff_max: float = 8.0
    timeout: float = 10.0
    retry_after_max: float = 60.0

    def delay(self, round_index: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter; a provider's Retry-After wins, up to a sane bound."""
        base = min(self.backoff_max, self.backoff_initial * 2.0**round_index)
        jittered = base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto
        return max(jittered, min(retry_after or 0.0, self.retry_after_max))


class _Retryable(Exception):
    def __init__(
        self, reason: str, retry_after: float | None = None, *, null_method: str | None = None
    ) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.null_method = null_method


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _result(method: str, body: Any) -> Any:
    """The ``result`` of one JSON-RPC response object; its error object becomes :class:`RpcError`."""
    if not isinstance(body, dict) or ("result" not in body and "error" not in body):
        raise RpcError(f"{method}: missing or malformed response", method=method)
    error = body.get("error")
    if error is not None:
        if not isinstance(error, dict):
            raise RpcError(f"{method}: {error!r}", method=method)
        raise RpcError(
            f"{method}: {error.get('message', 'error')}",
            rpc_code=error.get("code"),
            data=error.get("data"),
            method=method,
        )
    return body["result"]


def _faulty_null(payload: dict[str, Any] | list[dict[str, Any]], body: Any) -> str | None:
    """The first method of ``payload`` in :data:`NEVER_NULL` that ``body`` answers with ``result: null``."""
    items = payload if isinstance(payload, list) else [payload]
    answers = body if isinstance(body, list) else [body]
    by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
    for item in items:
        answer = by_id.get(item["id"])
        if (
            item["method"] in NEVER_NULL
            and isinstance(answer, dict)
            and answer.get("error") is None
            and answer.get("result") is None
        ):
            return str(item["method"])
    return None


def hex_quantity(method: str, value: Any) -> int:
    """A JSON-RPC QUANTITY (``"0x1a"``) that ``method`` returned, as an int; :class:`RpcError`
    naming ``method`` if it is anything else (``null`` included)."""
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise RpcError(f"{method}: expected a hex number, the endpoint answered {value!r:.60}", method=method)


class RpcClient:
    """A synchronous JSON-RPC client over an ordered list of endpoints.

    The endpoint that last answered stays preferred, so a healthy primary is not abandoned after
    one blip elsewhere and a failed one is not retried first on every call.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not urls:
            raise ConfigError("at least one RPC URL is required")
        for url in urls:
            if urlsplit(url).scheme not in ("http", "https"):
                raise ConfigError(f"RPC URL must be http(s): {redact_url(url)}")
        self.urls = list(urls)
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._preferred = 0
        self._ids = itertools.count(1)
        logging.getLogger("httpx").addFilter(_REDACT_REQUEST_URLS)
        self._http = httpx.Client(timeout=self.policy.timeout, transport=transport)

    def close(self) -> None:
        """Closes the HTTP connection pool; no call can be made afterwards."""
        self._http.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def endpoints(self) -> list[str]:
        """The endpoints, redacted for display."""
        return [redact_url(u) for u in self.urls]

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """Calls ``method`` and returns its ``result``, failing over and backing off as needed."""
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        return _result(method, self._send(payload, method))

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls in one JSON-RPC batch request; results in call order.

        An error object for any call raises :class:`RpcError`: the caller retries the batch.
        """
        if not calls:
            return []
        payload: list[dict[str, Any]] = [
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
            for method, params in calls
        ]
        answers = self._send(payload, f"batch of {len(calls)} {calls[0][0]}")
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        return [_result(item["method"], by_id.get(item["id"])) for item in payload]

    def _send(self, payload: dict[str, Any] | list[dict[str, Any]], what: str) -> Any:
        last_reason = "no attempt"
        null_method: str | None = None  # a method some endpoint answered with a faulty null
        for round_index in range(self.policy.rounds):
            retry_after: float | None = None
            for offset in range(len(self.urls)):
                index = (self._preferred + offset) % len(self.urls)
                try:
                    body = self._post(self.urls[index], payload)
                    faulty = _faulty_null(payload, body)
                    if faulty is not None:
                        raise _Retryable(f"answered null to {faulty}", null_method=faulty)
                except _Retryable as exc:
                    last_reason = f"{redact_url(self.urls[index])}: {exc}"
                    retry_after = max(retry_after or 0.0, exc.retry_after or 0.0) or None
                    null_method = exc.null_method or null_method
                    log.info("rpc %s failed on %s", what, last_reason)
                    continue
                self._preferred = index
                return body
            if round_index + 1 < self.policy.rounds:
                self._sleep(self.policy.delay(round_index, retry_after))
        if null_method is not None:
            raise RpcError(
                f"{null_method}: the endpoint answered `result: null`, but this method always has a "
                f"value (no endpoint gave one after {self.policy.rounds} rounds; {last_reason})",
                method=null_method,
            )
        raise RpcUnavailable(
            f"{what}: no RPC endpoint answered after {self.policy.rounds} rounds ({last_reason})"
        )

    def _post(self, url: str, payload: dict[str, Any] | list[dict[str, Any]]) -> Any:
        try:
            response = self._http.post(url, json=payload)
        except httpx.TimeoutException:
            raise _Retryable("timed out") from None
        except httpx.TransportError as exc:
            raise _Retryable(type(exc).__name__) from None
        if response.status_code in RETRYABLE_HTTP_STATUSES:
            raise _Retryable(f"HTTP {response.status_code}", _retry_after_seconds(response))
        if response.status_code >= 400:
            raise RpcError(f"HTTP {response.status_code} from {redact_url(url)}")
        try:
            body = response.json()
        except ValueError:
            raise _Retryable("invalid JSON in response") from None
        if isinstance(payload, list):
            if not isinstance(body, list) or len(body) != len(payload):
                raise _Retryable("malformed JSON-RPC batch response")
        elif not isinstance(body, dict) or ("result" not in body and "error" not in body):
            raise _Retryable("malformed JSON-RPC response")
        return body

    # -- typed helpers for the calls every part needs -------------------------------------------

    def chain_id(self) -> int:
        """The chain id of the endpoint that answers (``eth_chainId``)."""
        return hex_quantity("eth_chainId", self.call("eth_chainId"))

    def block_number(self) -> int:
        """The number of the latest block (``eth_blockNumber``)."""
        return hex_quantity("eth_blockNumber", self.call("eth_blockNumber"))

    def get_code(self, address: str, block: str = "latest") -> bytes:
        """The runtime code at ``address`` as of ``block`` (``eth_getCode``); empty where no contract is."""
        return bytes.fromhex(str(self.call("eth_getCode", [address, block]))[2:])

    def require_chain_id(self, expected: int) -> int:
        """Checks at start-up that the endpoint serves the configured chain."""
        actual = self.chain_id()
        if actual != expected:
            raise ChainMismatch(
                f"RPC endpoint serves chain id {actual}, but chain id {expected} is configured"
            )
        return actual
