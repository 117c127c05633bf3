"""A fault-injecting JSON-RPC proxy: a real HTTP server in front of a real endpoint (anvil).

Tests point an :class:`~chain.rpc.RpcClient` (or a ``finvault`` subprocess) at :attr:`RpcProxy.url`
and decide, per JSON-RPC method and at run time, how the "provider" misbehaves:

- latency per method (:meth:`RpcProxy.set_latency`);
- transport faults (:class:`Fault`): timeouts (the request is held longer than the client
  waits), dropped connections, HTTP 429 with ``Retry-After``, HTTP 500/502/503, a body cut
  off mid-way, a body that is not JSON. Each fires with a probability and/or for the first N
  matching calls only, drawn from a seeded :class:`random.Random`, so a run is reproducible;
- provider limits: ``eth_getLogs`` over more than ``max_log_range`` blocks answers the JSON-RPC
  error real providers send ("query returned more than 10000 results");
- lies: a stale head (``eth_blockNumber`` N blocks behind), other block hashes in
  ``eth_getBlockByNumber`` results, logs left out of ``eth_getLogs`` results. A *consistent* liar
  (``lie_block_hashes = consistent_lies = True``) fakes every block hash it serves, in headers
  (``hash`` and ``parentHash``) and in logs (``blockHash``) alike, so its answers check out against
  each other: only a second endpoint or a reconciliation against an honest one can tell.

Batch requests (list bodies) are handled item by item for limits and lies; a transport fault
hits the whole HTTP exchange. :attr:`RpcProxy.injected` counts every fault and lie served.

The server runs in a daemon thread bound to 127.0.0.1 on a free port; :meth:`RpcProxy.stop` (or
leaving the ``with`` block) shuts it down and wakes any request being held.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

from chain.core.hashing import keccak256

#: Larger request bodies are refused: a test proxy has no business buffering more.
MAX_REQUEST_BYTES = 8 * 2**20
#: Hard bound on any hold or latency, so a misconfigured test cannot hang the suite.
MAX_HOLD_SECONDS = 30.0
#: What a provider answers when an eth_getLogs range is too wide (Infura/Alchemy wording).
TOO_MANY_RESULTS = {"code": -32005, "message": "query returned more than 10000 results"}
ANY_METHOD = "*"


class FaultKind(StrEnum):
    TIMEOUT = "timeout"  # hold the request longer than the client waits, then drop it
    DROP = "drop"  # close the socket without a response
    RATE_LIMITED = "rate_limited"  # HTTP 429 with Retry-After
    SERVER_ERROR = "server_error"  # HTTP 500/502/503 (``Fault.status``)
    TRUNCATED = "truncated"  # the real answer, cut off half-way, then the connection closes
    INVALID_JSON = "invalid_json"  # HTTP 200 with a body that is not JSON


class Lie(StrEnum):
    """Counter keys for the non-transport misbehaviours."""

    TOO_MANY_RESULTS = "too_many_results"
    STALE_HEAD = "stale_head"
    BLOCK_HASH = "block_hash"
    OMITTED_LOG = "omitted_log"


@dataclass
class Fault:
    """One transport fault: fires with ``probability``, and only on the first ``first`` calls if set."""

    kind: FaultKind
    probability: float = 1.0
    first: int | None = None
    status: int = 503  # SERVER_ERROR
    retry_after: str = "0"  # RATE_LIMITED
    hold: float = 5.0  # TIMEOUT: longer than the client's timeout
    seen: int = 0  # matching calls so far

    def fires(self, rng: random.Random) -> bool:
        self.seen += 1
        if self.first is not None and self.seen > self.first:
            return False
        return self.probability >= 1.0 or rng.random() < self.probability


@dataclass(frozen=True)
class LogRange:
    """One ``eth_getLogs`` the proxy saw: the block range and whether it was refused as too wide."""

    first: int
    last: int
    refused: bool

    @property
    def size(self) -> int:
        return self.last - self.first + 1


def fake_hash(real: str) -> str:
    """A different, deterministic 32-byte hash for ``real``."""
    return "0x" + keccak256(b"lie" + bytes.fromhex(real[2:])).hex()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # held requests must not delay stop()


class RpcProxy:
    """Forwards JSON-RPC to ``upstream``, misbehaving as configured. Thread-safe to reconfigure."""

    def __init__(self, upstream: str, *, seed: int = 0) -> None:
        self.upstream = upstream
        self.rng = random.Random(seed)
        self.stale_head = 0  # eth_blockNumber answers this many blocks behind
        self.lie_block_hashes = False
        self.consistent_lies = False  # with lie_block_hashes: parentHash and logs' blockHash too
        self.omit_logs_every: int | None = None  # leave out every Nth log served
        self.max_log_range: int | None = None  # refuse wider eth_getLogs ranges
        self.calls: Counter[str] = Counter()  # per JSON-RPC method (batch items count one each)
        self.injected: Counter[str] = Counter()  # per FaultKind / Lie
        self.log_ranges: list[LogRange] = []
        self._faults: dict[str, list[Fault]] = {}
        self._latency: dict[str, float] = {}
        self._logs_served = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._http = httpx.Client(timeout=60.0)
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="rpc-proxy"
        )
        self._thread.start()

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()  # wakes held requests
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)
        self._http.close()

    def __enter__(self) -> RpcProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- configuration ------------------------------------------------------------------------------

    def set_faults(self, method: str, *faults: Fault) -> None:
        """Replaces the faults for ``method`` (``"*"``: every method); none clears them."""
        with self._lock:
            self._faults[method] = list(faults)

    def set_latency(self, method: str, seconds: float) -> None:
        with self._lock:
            self._latency[method] = min(seconds, MAX_HOLD_SECONDS)

    def behave(self) -> None:
        """Back to an honest, fast proxy (counters are kept)."""
        with self._lock:
            self._faults.clear()
            self._latency.clear()
            self.stale_head = 0
            self.lie_block_hashes = False
            self.consistent_lies = False
            self.omit_logs_every = None
            self.max_log_range = None

    # -- request handling ---------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

            def do_POST(self) -> None:
                proxy._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests read the counters instead

        return Handler

    def _hold(self, seconds: float) -> None:
        self._stopping.wait(min(seconds, MAX_HOLD_SECONDS))

    def _pick_fault(self, methods: list[str]) -> Fault | None:
        with self._lock:
            for method in [*methods, ANY_METHOD]:
                for fault in self._faults.get(method, ()):
                    if fault.fires(self.rng):
                        self.injected[fault.kind] += 1
                        return fault
        return None

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            _reply(request, 413, b"request too large")
            return
        raw = request.rfile.read(length)
        try:
            body: Any = json.loads(raw)
        except ValueError:
            _reply(request, 400, b"not JSON")
            return
        items: list[dict[str, Any]] = body if isinstance(body, list) else [body]
        if not items or not all(isinstance(item, dict) for item in items):
            _reply(request, 400, b"not JSON-RPC")
            return
        methods = [str(item.get("method")) for item in items]
        refused = {
            id(item) for item in items if item.get("method") == "eth_getLogs" and self._refuse_logs(item)
        }
        with self._lock:
            self.calls.update(methods)
            latency = max((self._latency.get(m, 0.0) for m in [*methods, ANY_METHOD]), default=0.0)
        if latency:
            self._hold(latency)
        fault = self._pick_fault(methods)
        if fault is not None and fault.kind is not FaultKind.TRUNCATED:
            self._fail(request, fault)
            return
        try:
            answer = self._answer(raw, body, items, refused)
        except (httpx.HTTPError, RuntimeError):  # upstream gone, or the proxy stopping under us
            _reply(request, 502, b"upstream unavailable")
            return
        if fault is not None:  # TRUNCATED: promise the whole body, send half, hang up
            _reply(request, 200, answer[: len(answer) // 2], content_length=len(answer))
            _drop(request)
            return
        _reply(request, 200, answer)

    def _fail(self, request: BaseHTTPRequestHandler, fault: Fault) -> None:
        if fault.kind is FaultKind.TIMEOUT:
            self._hold(fault.hold)
            _drop(request)
        elif fault.kind is FaultKind.DROP:
            _drop(request)
        elif fault.kind is FaultKind.RATE_LIMITED:
            _reply(request, 429, b"rate limited", headers={"Retry-After": fault.retry_after})
        elif fault.kind is FaultKind.SERVER_ERROR:
            _reply(request, fault.status, b"upstream error")
        else:  # INVALID_JSON: what a gateway's error page looks like to a JSON parser
            _reply(request, 200, b"<html><body>502 Bad Gateway</body></html>")

    def _needs_rewrite(self, methods: list[str]) -> bool:
        return (
            (self.stale_head > 0 and "eth_blockNumber" in methods)
            or (self.lie_block_hashes and "eth_getBlockByNumber" in methods)
            or (self.omit_logs_every is not None and "eth_getLogs" in methods)
            or (self.lie_block_hashes and self.consistent_lies and "eth_getLogs" in methods)
        )

    def _answer(self, raw: bytes, body: Any, items: list[dict[str, Any]], refused: set[int]) -> bytes:
        methods = [str(item.get("method")) for item in items]
        if not refused and not self._needs_rewrite(methods):
            return self._forward(raw)  # the fast path: bytes in, bytes out
        answers: dict[Any, dict[str, Any]] = {}
        forward: list[dict[str, Any]] = []
        for item in items:
            if id(item) in refused:
                answers[item.get("id")] = {"jsonrpc": "2.0", "id": item.get("id"), "error": TOO_MANY_RESULTS}
                with self._lock:
                    self.injected[Lie.TOO_MANY_RESULTS] += 1
            else:
                forward.append(item)
        if forward:
            upstream = json.loads(self._forward(json.dumps(forward).encode()))
            for item, answer in zip(forward, _by_request(forward, upstream), strict=True):
                answers[item.get("id")] = self._rewrite(str(item.get("method")), answer)
        out = [answers[item.get("id")] for item in items]
        return json.dumps(out if isinstance(body, list) else out[0]).encode()

    def _forward(self, raw: bytes) -> bytes:
        response = self._http.post(self.upstream, content=raw, headers={"Content-Type": "application/json"})
        return response.content

    def _refuse_logs(self, item: Mapping[str, Any]) -> bool:
        """Records the range of every eth_getLogs seen; True when it is wider than ``max_log_range``."""
        params = item.get("params") or [{}]
        query = params[0] if isinstance(params[0], dict) else {}
        if "blockHash" in query:
            return False
        first, last = self._block(query.get("fromBlock")), self._block(query.get("toBlock"))
        with self._lock:
            limit = self.max_log_range
            refused = limit is not None and last - first + 1 > limit
            self.log_ranges.append(LogRange(first, last, refused))
        return refused

    def _block(self, tag: Any) -> int:
        if isinstance(tag, str) and tag.startswith("0x"):
            return int(tag, 16)
        if tag == "earliest":
            return 0
        head = json.loads(self._forward(b'{"jsonrpc":"2.0","id":0,"method":"eth_blockNumber","params":[]}'))
        return int(head["result"], 16)

    def _rewrite(self, method: str, answer: dict[str, Any]) -> dict[str, Any]:
        result = answer.get("result")
        if result is None:
            return answer
        with self._lock:
            if method == "eth_blockNumber" and self.stale_head > 0:
                self.injected[Lie.STALE_HEAD] += 1
                return {**answer, "result": hex(max(0, int(result, 16) - self.stale_head))}
            if method == "eth_getBlockByNumber" and self.lie_block_hashes and isinstance(result, dict):
                self.injected[Lie.BLOCK_HASH] += 1
                faked = {**result, "hash": fake_hash(result["hash"])}
                if self.consistent_lies:
                    faked["parentHash"] = fake_hash(result["parentHash"])
                return {**answer, "result": faked}
            if (
                method == "eth_getLogs"
                and self.lie_block_hashes
                and self.consistent_lies
                and isinstance(result, list)
            ):
                self.injected[Lie.BLOCK_HASH] += len(result)
                result = [{**log, "blockHash": fake_hash(log["blockHash"])} for log in result]
                answer = {**answer, "result": result}
            if method == "eth_getLogs" and self.omit_logs_every and isinstance(result, list):
                kept = []
                for log in result:
                    self._logs_served += 1
                    if self._logs_served % self.omit_logs_every == 0:
                        self.injected[Lie.OMITTED_LOG] += 1
                    else:
                        kept.append(log)
                return {**answer, "result": kept}
        return answer


def _by_request(items: list[dict[str, Any]], upstream: Any) -> list[dict[str, Any]]:
    """Upstream answers in request order (a batch answer may come in any order)."""
    answers = upstream if isinstance(upstream, list) else [upstream]
    by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
    return [by_id[item.get("id")] for item in items]


def _reply(
    request: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    content_length: int | None = None,
) -> None:
    try:
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(body)
        request.wfile.flush()
    except OSError:
        request.close_connection = True  # the client already gave up


def _drop(request: BaseHTTPRequestHandler) -> None:
    request.close_connection = True
    with contextlib.suppress(OSError):  # already gone
        request.connection.shutdown(socket.SHUT_RDWR)
