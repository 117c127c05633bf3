"""HTTP plumbing shared by the issuer API and the verification node.

Both apps are built by a factory (``create_app(...)``) and get the same behaviour at the edge:

- a correlation id on every response (``X-Correlation-ID``; a well-formed inbound ``X-Request-ID``
  or ``X-Correlation-ID`` is kept so that logs join up across services);
- a body-size limit enforced while the body streams in (413), not after it is buffered, and a
  deadline for the whole body (408, and the connection closed);
- optional per-client rate limits (429 with ``Retry-After``);
- one error shape, ``{"error": {"code", "message", "correlation_id"}}``, for every 4xx and 5xx,
  produced by one set of exception handlers, and never a stack trace;
- a client that hangs up mid-body is one warning line, not a traceback;
- bounds on every connection (header and body deadlines, keep-alive, caps on connections in
  total and per address: :mod:`chain.service.connections`), in the one uvicorn configuration
  both servers run (:func:`server_config`);
- strict JSON request bodies: ``application/json`` only, UTF-8 only, no duplicate keys, no
  NaN, bounded nesting and number size (:func:`chain.core.canonical.loads_strict`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import inspect
import ipaddress
import itertools
import logging
import math
import os
import re
import secrets
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterator, Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chain.core.canonical import DocumentError, DocumentTooLarge, loads_strict
from chain.errors import FinVaultError
from chain.service.connections import ConnectionLimits, guarded_protocol, reserve_descriptors

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CORRELATION_HEADER = "X-Correlation-ID"
_INBOUND_IDS = (b"x-correlation-id", b"x-request-id")
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")


class _CorrelationIds:
    """32 hex digits: a random prefix drawn once per process (again in a forked child) and a
    counter. Unique, which is all a correlation id must be, without reading the system's random
    source for every request (uuid4 was 5% of a node's verification path)."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        """A new prefix and counter (at start, and in a forked child)."""
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


_new_correlation_id = _CorrelationIds()
#: Headers every API response carries (a page that needs others sets its own).
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}

_SECURITY_HEADERS_RAW = [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
_CORRELATION_HEADER_RAW = CORRELATION_HEADER.lower().encode()
#: The headers the edge sets itself: an app's own value for one of them is dropped.
_EDGE_HEADER_NAMES = frozenset([*(name for name, _ in _SECURITY_HEADERS_RAW), _CORRELATION_HEADER_RAW])

correlation_id: ContextVar[str] = ContextVar("correlation_id", default="-")


# -- errors -------------------------------------------------------------------------------------


class HttpError(FinVaultError):
    """A request-level error with its HTTP status (and extra headers, e.g. ``Retry-After``)."""

    code = "bad_request"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code)
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})


class BadRequest(HttpError):
    """400: a malformed request: empty or broken JSON (``invalid_json``), a bad header, cursor or root."""

    code, status = "bad_request", 400


class InvalidRequest(HttpError):
    """A request that parses but asks for something impossible (422)."""

    code, status = "invalid_request", 422


class Unauthorized(HttpError):
    """401 with ``WWW-Authenticate: Bearer``: no bearer token, or not a valid one."""

    code, status = "unauthorized", 401

    def __init__(self, message: str = "a valid bearer token is required") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(HttpError):
    """403: not for this caller, e.g. an API key without the route's scope, or /metrics off loopback."""

    code, status = "forbidden", 403


class NotFound(HttpError):
    """404: no such certificate, batch, root, issuer or block (or, on the node, no web page installed)."""

    code, status = "not_found", 404


class Conflict(HttpError):
    """409: the request clashes with the server's state, e.g. an ``Idempotency-Key`` reused or in flight."""

    code, status = "conflict", 409


class PayloadTooLarge(HttpError):
    """413: a body over the edge's limit as it streams in, or over a route's own in :func:`read_json`."""

    code, status = "payload_too_large", 413


class UnsupportedMediaType(HttpError):
    """415: a body that is not ``application/json`` (or ``+json``) in UTF-8, from :func:`read_json`."""

    code, status = "unsupported_media_type", 415


class RequestTimeout(HttpError):
    """408 with ``Connection: close``: the request body did not arrive within the edge's deadline."""

    code, status = "request_timeout", 408

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the request body was not complete within {seconds:g} s", headers={"Connection": "close"}
        )


class RateLimited(HttpError):
    """429 with ``Retry-After`` (whole seconds, at least 1): :class:`EdgeMiddleware` found no token left."""

    code, status = "rate_limited", 429

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(f"too many requests; retry in {seconds} s", headers={"Retry-After": str(seconds)})


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one error shape of both APIs."""
    body = {"error": {"code": code, "message": message, "correlation_id": correlation_id.get()}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def error_schema() -> dict[str, Any]:
    """The OpenAPI schema of :func:`error_response` bodies (for ``responses=`` declarations)."""
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "correlation_id"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "correlation_id": {"type": "string"},
                },
            }
        },
    }


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def status_for(exc: FinVaultError, statuses: Mapping[type[FinVaultError], int]) -> int:
    """The HTTP status of an error: its own for :class:`HttpError`, else the most specific class in
    its MRO that ``statuses`` maps, else 500."""
    if isinstance(exc, HttpError):
        return exc.status
    return next((statuses[cls] for cls in type(exc).__mro__ if cls in statuses), 500)


def install_error_handlers(app: FastAPI, statuses: Mapping[type[FinVaultError], int]) -> None:
    """Maps every exception to the error shape, in one place.

    ``statuses`` maps the app's :class:`FinVaultError` classes to HTTP statuses; the most specific
    class in an error's MRO wins, and an unmapped one is a 500 (its message is still shown: our
    errors carry no secrets). Anything else is a 500 with a generic message, logged with the
    correlation id so an operator can find the trace.
    """

    async def on_finvault_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FinVaultError)
        if isinstance(exc, HttpError):
            return error_response(exc.status, exc.code, exc.message, exc.headers)
        status = status_for(exc, statuses)
        if status >= 500:
            log.error("request failed: %s", exc.diagnostics())
        return error_response(status, exc.code, exc.message)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
            for error in exc.errors()[:5]
        ]
        return error_response(422, "invalid_request", "; ".join(problems) or "invalid request")

    async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)

    async def on_client_disconnect(request: Request, exc: Exception) -> JSONResponse:
        # Not a server fault, and common on a public port: one line, no traceback, no 500 in the
        # log. The answer goes nowhere (uvicorn drops it); 499 is nginx's "client closed request",
        # so the request metrics count it apart from the server's errors.
        log.warning(
            "client %s went away before its request body was complete (correlation id %s)",
            request.client.host if request.client else "unknown",
            correlation_id.get(),
        )
        return error_response(499, "client_closed_request", "the client closed the connection")

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error (correlation id %s)", correlation_id.get())
        return error_response(
            500, "internal_error", "internal error; quote the correlation id to the operator"
        )

    app.add_exception_handler(FinVaultError, on_finvault_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(ClientDisconnect, on_client_disconnect)
    app.add_exception_handler(Exception, on_unexpected)


# -- request bodies -----------------------------------------------------------------------------


def _is_json(content_type: str) -> bool:
    media_type, _, params = content_type.partition(";")
    media_type = media_type.strip().lower()
    charset = re.search(r"charset\s*=\s*\"?([\w-]+)", params, re.IGNORECASE)
    if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
        return False
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


#: Bodies up to this size are parsed on the event loop (about a millisecond); larger ones in a
#: thread: 8 MiB of JSON takes 50-200 ms to parse, which held /health up as long.
INLINE_PARSE_BYTES = 64 * 1024


async def read_json(request: Request, *, max_bytes: int, max_values: int | None = None) -> Any:
    """The request's JSON body, strictly parsed; 415 for another content type, 400 for bad JSON,
    413 for a body over ``max_bytes`` or holding more than ``max_values`` JSON values (what parsing
    would build is bounded before it runs: see :func:`chain.core.canonical.json_values_bound`)."""
    if not _is_json(request.headers.get("content-type", "")):
        raise UnsupportedMediaType("the request body must be application/json (UTF-8)")
    body = await request.body()
    if not body.strip():
        raise BadRequest("the request body is empty", code="invalid_json")
    parse = functools.partial(loads_strict, body, max_bytes=max_bytes, max_values=max_values)
    try:
        return parse() if len(body) <= INLINE_PARSE_BYTES else await run_in_threadpool(parse)
    except DocumentTooLarge as exc:
        raise PayloadTooLarge(exc.message) from None
    except DocumentError as exc:
        raise BadRequest(exc.message, code="invalid_json") from None


def json_body_openapi(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body with :func:`read_json`."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": dict(schema)}}}}


# -- authentication -----------------------------------------------------------------------------


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def token_digest(token: str) -> str:
    """How tokens are stored: SHA-256, hex. Tokens are random (≥ 128 bits), so no salt or KDF."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def digest_matches(token: str, digest: str) -> bool:
    """Constant-time comparison of a presented token against a stored digest."""
    return hmac.compare_digest(token_digest(token).encode("ascii"), digest.encode("ascii"))


def is_loopback(host: str | None) -> bool:
    """Whether a peer address is loopback (127.0.0.0/8, ::1)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- middleware ---------------------------------------------------------------------------------


class RateLimiter:
    """Token buckets per client: ``rate`` requests per second, bursts up to ``burst``.

    Bounded memory: the least recently seen clients are forgotten beyond ``max_clients`` (a
    forgotten client starts again with a full bucket, which only errs towards allowing).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait_time(self, client: str) -> float:
        """Takes a token for ``client``: 0.0 if allowed, else the seconds until one is available."""
        now = self._clock()
        tokens, stamp = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


class EdgeMiddleware:
    """Correlation ids, security headers, the body limit and deadline and rate limits, as plain ASGI.

    It sits outside the app's exception handlers, so the responses it makes itself (413 on a
    declared ``Content-Length``, 429) are built here in the same error shape; a body that grows
    past the limit while streaming raises :class:`PayloadTooLarge` inside the app instead, and one
    still incomplete ``body_timeout`` seconds after the request came in raises
    :class:`RequestTimeout` (the server's protocol closes the connection soon after, in case the
    app was not reading the body: :mod:`chain.service.connections`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout: float | None = None,
        limiter: RateLimiter | None = None,
        limit_loopback: bool = False,
        unlimited_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.limiter = limiter
        self.limit_loopback = limit_loopback
        self.unlimited_paths = frozenset(unlimited_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: non-HTTP scopes pass through; a request gets a correlation id (inbound if safe)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        inbound = next((headers[name] for name in _INBOUND_IDS if name in headers), b"")
        cid = inbound.decode("ascii") if _SAFE_ID.match(inbound) else _new_correlation_id()
        token = correlation_id.set(cid)
        try:
            await self._handle(scope, receive, send, headers, cid)
        finally:
            correlation_id.reset(token)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes], cid: str
    ) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _EDGE_HEADER_NAMES]
                message["headers"] = [*raw, *_SECURITY_HEADERS_RAW, (_CORRELATION_HEADER_RAW, cid.encode())]
            await send(message)

        rejection = self._reject_early(scope, headers)
        if rejection is not None:
            await rejection(scope, receive, send_with_headers)
            return

        received = 0
        timeout = self.body_timeout
        # The deadline runs from the request's arrival and only while its body is incomplete: a
        # receive() after that (a streaming response listening for a disconnect) waits unbounded.
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout

        async def limited_receive() -> Message:
            nonlocal received, deadline
            if deadline is None:
                message = await receive()
            else:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    assert timeout is not None
                    raise RequestTimeout(timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise PayloadTooLarge(f"request body over {self.max_body_bytes:,} bytes")
                if not message.get("more_body", False):
                    deadline = None
            return message

        await self.app(scope, limited_receive, send_with_headers)

    def _reject_early(self, scope: Scope, headers: dict[bytes, bytes]) -> JSONResponse | None:
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return error_response(
                413, PayloadTooLarge.code, f"request body over {self.max_body_bytes:,} bytes"
            )
        if self.limiter is None or scope.get("path") in self.unlimited_paths:
            return None
        client = (scope.get("client") or ("", 0))[0]
        if not self.limit_loopback and is_loopback(client):
            return None
        wait = self.limiter.wait_time(client or "unknown")
        if wait > 0:
            limited = RateLimited(wait)
            return error_response(limited.status, limited.code, limited.message, limited.headers)
        return None


class EdgeFastAPI(FastAPI):
    """FastAPI with :class:`EdgeMiddleware` outside everything, its error pages included.

    ``add_middleware`` would put the edge inside Starlette's ``ServerErrorMiddleware``: a 500 would
    then leave without ``X-Correlation-ID`` or the security headers, and with ``"-"`` as the
    correlation id in its body, which is exactly the answer an operator needs to trace.

    FastAPI's own OpenTelemetry instrumentation is off: the services export their own Prometheus
    metrics, and the instrumentation looked up its providers on every request (measured: 1.5% of
    a node's verification path).
    """

    def __init__(self, *, edge: Mapping[str, Any], **kwargs: Any) -> None:
        self.edge = dict(edge)
        telemetry_off: TelemetryConfig = {
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
        }
        super().__init__(telemetry=telemetry_off, **kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        """Starlette's stack (error middleware included) wrapped in :class:`EdgeMiddleware`."""
        inner: ASGIApp = super().build_middleware_stack()
        return EdgeMiddleware(inner, **self.edge)


class RequestOnlyRoute(APIRoute):
    """A route whose endpoint takes the request alone and returns a :class:`Response` itself (the
    node's verification routes, which read, bound and check their bodies themselves), called
    straight: FastAPI's per-request handler (its body sniffing, dependency solving into an empty
    set, the endpoint's error context) costs 25-45 µs a request here, 5-9% of a cold verification.

    Whatever FastAPI would have to run for the route falls back to FastAPI's own handler: a
    dependency (the route's or its router's), a parameter of any other kind, a body model. So a
    dependency added to such a route appears in OpenAPI *and* runs.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The endpoint itself when it takes the request alone, else FastAPI's handler."""
        dependant = self.dependant
        needs_fastapi = (
            dependant.dependencies
            or dependant.path_params
            or dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.body_params
            or dependant.request_param_name is None
            or len(inspect.signature(self.endpoint).parameters) != 1
            or not inspect.iscoroutinefunction(self.endpoint)
        )
        if needs_fastapi:
            return super().get_route_handler()
        endpoint, path = self.endpoint, self.path

        async def handle(request: Request) -> Response:
            response = await endpoint(request)
            if not isinstance(response, Response):
                raise TypeError(f"the endpoint of {path} returned {type(response).__name__}, not a Response")
            return response

        return handle


class GracefulServer(uvicorn.Server):
    """uvicorn that treats SIGINT/SIGTERM as "stop gracefully, then return".

    Stock uvicorn re-raises the signal once it has shut down, which kills the process before the
    caller's cleanup runs; a daemon asked to stop that stops cleanly should exit 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """While serving, SIGINT/SIGTERM call ``handle_exit`` (main thread only) and are not re-raised."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


#: Seconds the server lets requests in flight finish after SIGINT/SIGTERM.
GRACEFUL_SHUTDOWN_SECONDS = 10


def server_config(
    app: Any,
    *,
    log_level: str,
    limits: ConnectionLimits | None = None,
    http: type[HttpToolsProtocol] = HttpToolsProtocol,
    **options: Any,
) -> uvicorn.Config:
    """The one uvicorn configuration every FinVault server uses: no server header, no trust in
    proxy headers, no access log (latency is in the metrics, errors are logged by the handlers),
    lifespan on, a bounded graceful shutdown, no WebSocket upgrades (no route needs one, and an
    upgraded connection would leave the guard), and every connection held to ``limits`` (default:
    :class:`ConnectionLimits`' defaults) by ``http`` wrapped in
    :func:`chain.service.connections.guarded_protocol`.

    uvicorn's ``limit_concurrency`` stays off: it only acts once a request's headers are in and
    answers plain text; the guard's connection caps refuse earlier, in the error shape.
    ``options`` are uvicorn's own (host and port, ``workers``, ``factory``).

    The process's open-file limit is raised to fit the connection cap, or the server refuses to
    start (:func:`chain.service.connections.reserve_descriptors`)."""
    limits = limits or ConnectionLimits()
    reserve_descriptors(limits)
    return uvicorn.Config(
        app,
        log_level=log_level,
        http=guarded_protocol(limits, http),
        ws="none",
        timeout_keep_alive=limits.keep_alive_timeout,
        server_header=False,
        proxy_headers=False,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        **options,
    )


def serve(
    app: FastAPI, *, host: str, port: int, log_level: str = "info", limits: ConnectionLimits | None = None
) -> None:
    """Runs ``app`` under uvicorn (:func:`server_config`) on ``host:port`` until SIGINT/SIGTERM."""
    GracefulServer(server_config(app, log_level=log_level, limits=limits, host=host, port=port)).run()
