"""The node's Prometheus metrics: request latency by route, verdicts, refusals, the sync loop's
numbers read at scrape time, and the audit's (:class:`node.audit.AuditCollector`)."""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chain.core.verify import Status, Verdict
from chain.service.web import ASGIApp, Message, Receive, Scope, Send
from node.audit import AuditCollector
from node.runtime import Runtime, not_ready

#: Routes without path parameters: their path is their metrics label.
FIXED_PATHS = frozenset(
    (
        "/verify",
        "/verify/bulk",
        "/credentials/verify",
        "/issuers",
        "/revocations",
        "/health",
        "/ready",
        "/status",
        "/metrics",
        "/",
    )
)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class NodeMetrics:
    """Prometheus metrics in a registry of their own (several apps can share one process)."""

    def __init__(self, runtime: Runtime) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "finvault_node_request_duration_seconds",
            "HTTP request latency, by method, route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.verifications = Counter(
            "finvault_node_verifications", "Verdicts given, by status.", ["status"], registry=self.registry
        )
        self.refusals = Counter(
            "finvault_node_verification_refusals",
            "Verifications answered 503 because the mirror could not vouch, by code.",
            ["code"],
            registry=self.registry,
        )
        self.registry.register(SyncCollector(runtime))
        self.registry.register(
            AuditCollector(runtime.read_engine, runtime.settings.reconcile_drift_threshold)
        )

        self._by_status = {status: self.verifications.labels(str(status)) for status in Status}

    def verified(self, status: Status) -> None:
        """Counts one verdict."""
        self._by_status[status].inc()

    def count(self, verdicts: Iterable[Verdict]) -> None:
        """Counts many verdicts at once (bulk verification)."""
        for status, number in Tally(v.status for v in verdicts).items():
            self._by_status[status].inc(number)


class SyncCollector(Collector):
    """The sync loop's numbers, read at scrape time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterable[Metric]:
        """The loop's gauges and counters as of now."""
        sync = self.runtime.snapshot()
        gauges = {
            "finvault_node_sync_lag_blocks": ("Blocks between the chain head and the mirror.", sync.lag),
            "finvault_node_chain_head": ("Chain head as last seen.", sync.head),
            "finvault_node_indexed_block": ("Newest block in the mirror.", sync.indexed_block),
            "finvault_node_finalized_block": (
                "Newest block the mirror holds as final.",
                sync.finalized_block,
            ),
            "finvault_node_rpc_breaker_open": (
                "1 while the RPC circuit breaker is open.",
                int(sync.breaker_open),
            ),
            "finvault_node_ready": (
                "1 when GET /ready would answer 200.",
                int(not not_ready(sync, self.runtime.settings)),
            ),
            "finvault_node_vouching": (
                "1 while the mirror can vouch for verdicts (verification answers 200).",
                int(self.runtime.cannot_vouch(sync) is None),
            ),
        }
        for name, (doc, value) in gauges.items():
            yield GaugeMetricFamily(name, doc, value=value)
        counters = {
            "finvault_node_events_indexed": (
                "Registry events indexed since the node started.",
                sync.events_indexed,
            ),
            "finvault_node_rpc_errors": ("Sync steps that failed on an RPC error.", sync.rpc_errors),
            "finvault_node_sync_failures": ("Sync steps that failed, for any reason.", sync.failures),
            "finvault_node_reorgs_repaired": ("Reorgs rolled back since the node started.", sync.reorgs),
            "finvault_node_quorum_disagreements": (
                "Sync steps refused because the quorum endpoint disagreed on a block hash.",
                sync.quorum_disagreements,
            ),
        }
        for name, (doc, value) in counters.items():
            yield CounterMetricFamily(name, doc, value=value)


class Timing:
    """Observes every request's latency under its route template (bounded label values)."""

    def __init__(self, app: ASGIApp, histogram: Histogram, fixed_paths: frozenset[str]) -> None:
        self.app = app
        self.histogram = histogram
        self.fixed_paths = fixed_paths  # routes without parameters: their path is their template
        self._children: dict[tuple[str, str, int], Any] = {}  # labels() costs more than observe()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: times an HTTP request, observed by method, route template (or unmatched) and status."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route is None:  # plain Starlette routes are matched on a copy of the scope
                route = scope["path"] if scope["path"] in self.fixed_paths else "unmatched"
            key = (scope["method"], route, status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.histogram.labels(key[0], route, str(status))
            child.observe(time.perf_counter() - started)
