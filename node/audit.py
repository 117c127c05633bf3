"""The node's auditing side: mirror digests for other nodes, and scheduled reconciliation.

- ``GET /digests?from=&to=&limit=`` and ``GET /blocks/{number}/events`` let another node (or an
  auditor's ``finvault reconcile --against``) compare mirrors digest by digest.
- A scheduled job (APScheduler, in the process that runs the sync loop) reconciles the last
  ``window`` blocks with the chain every ``interval`` seconds and stores each run in
  ``reconciliation_runs``. ``GET /reconciliation/runs`` lists them (admin token).
- A run whose drift exceeds the threshold makes the node not ready until an operator repairs the
  mirror with ``finvault resync`` (which writes an ``audit_log`` entry newer than the run).

Everything the app reads here comes from the database, so every worker process sees the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]
from fastapi import APIRouter, Query, Request
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from chain.rpc import RpcClient
from chain.service.web import NotFound, Unauthorized, bearer_token, digest_matches, error_schema
from indexer.digests import block_events, digest_as_of, digests, event_view
from indexer.reconcile import Reconciler
from indexer.schema import AuditLogRow, BlockRow, CheckpointRow, ReconciliationRunRow

log = logging.getLogger(__name__)

MAX_DIGESTS = 10_000
MAX_RUNS = 200


def _errors(**described: str) -> dict[int | str, dict[str, Any]]:
    return {
        int(status.removeprefix("e")): {
            "description": text,
            "content": {"application/json": {"schema": error_schema()}},
        }
        for status, text in described.items()
    }


# -- scheduled reconciliation -------------------------------------------------------------------


@dataclass
class ReconciliationJob:
    """Reconciles the newest ``window`` blocks of the mirror with the chain, on a timer."""

    engine: Engine
    rpc: RpcClient
    registry: str
    chain_id: int
    start_block: int
    window: int
    interval: float
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._scheduler: BackgroundScheduler | None = None
        self._lock = threading.Lock()

    def run_once(self) -> ReconciliationRunRow | None:
        """One run (skipped if one is in progress or the mirror is empty); stored, and returned."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            with Session(self.engine) as session:
                checkpoint = session.get(CheckpointRow, 1)
            if checkpoint is None:
                return None
            last = checkpoint.block_number
            first = max(self.start_block, last - self.window + 1)
            started = self.clock()
            row = ReconciliationRunRow(
                started_at=int(started), first_block=first, last_block=last, quick=False
            )
            try:
                report = Reconciler(self.engine, self.rpc, self.registry, self.chain_id).run(first, last)
                row.chain_events, row.mirror_events = report.chain_events, report.mirror_events
                row.drift_count, row.drift_by_kind = len(report.drifts), report.counts
                row.seconds, row.error = report.seconds, None
                for drift in report.drifts[:20]:
                    log.error("reconciliation drift: %s", drift.describe())
            except Exception as exc:  # an outage is recorded as a failed run, not a crash of the timer
                row.chain_events = row.mirror_events = row.drift_count = 0
                row.drift_by_kind, row.seconds = {}, self.clock() - started
                row.error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("reconciliation run failed: %s", row.error)
            with Session(self.engine) as session, session.begin():
                session.add(row)
            return row
        finally:
            self._lock.release()

    def start(self) -> None:
        """Runs :meth:`run_once` every ``interval`` seconds in a background thread (never if it is 0)."""
        if self.interval <= 0:
            return
        self._scheduler = BackgroundScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1}
        )
        self._scheduler.add_job(self.run_once, "interval", seconds=self.interval, id="reconcile")
        self._scheduler.start()

    def stop(self) -> None:
        """Stops the timer, waiting for a run in progress to finish."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None


def drift_alert(session: Session, threshold: int) -> str | None:
    """Why the node must not be ready because of drift, or None.

    The newest run whose drift exceeds ``threshold`` counts until a ``resync`` is logged after it.
    """
    run = session.scalar(
        select(ReconciliationRunRow)
        .where(ReconciliationRunRow.drift_count > threshold)
        .order_by(ReconciliationRunRow.id.desc())
        .limit(1)
    )
    if run is None:
        return None
    repaired = session.scalar(
        select(func.max(AuditLogRow.at)).where(
            AuditLogRow.action == AuditLogRow.RESYNC, AuditLogRow.at >= run.started_at
        )
    )
    if repaired is not None:
        return None
    return (
        f"reconciliation run {run.id} found {run.drift_count} drift(s) in blocks "
        f"{run.first_block}..{run.last_block}; repair with `finvault resync`"
    )


class AuditCollector(Collector):
    """Reconciliation metrics, read from the database at scrape time."""

    def __init__(self, engine: Engine, threshold: int) -> None:
        self.engine = engine
        self.threshold = threshold

    def collect(self) -> Iterator[Any]:
        """The metrics, from one query over the stored runs (plus the drift alert) per scrape."""
        with Session(self.engine) as session:
            runs, drifts, alerts, failed = session.execute(
                select(
                    func.count(ReconciliationRunRow.id),
                    func.coalesce(func.sum(ReconciliationRunRow.drift_count), 0),
                    func.count(ReconciliationRunRow.id).filter(
                        ReconciliationRunRow.drift_count > self.threshold
                    ),
                    func.count(ReconciliationRunRow.id).filter(ReconciliationRunRow.error.is_not(None)),
                )
            ).one()
            alerting = drift_alert(session, self.threshold) is not None
        yield CounterMetricFamily("finvault_reconciliation_runs", "Reconciliation runs.", value=runs)
        yield CounterMetricFamily(
            "finvault_reconciliation_failed_runs", "Runs that could not read.", value=failed
        )
        yield CounterMetricFamily(
            "finvault_reconciliation_mismatches", "Drifts found, over all runs.", value=drifts
        )
        yield CounterMetricFamily(
            "finvault_reconciliation_drift_alerts", "Runs whose drift exceeded the threshold.", value=alerts
        )
        yield GaugeMetricFamily(
            "finvault_reconciliation_drift_alert",
            "1 while unrepaired drift keeps the node not ready.",
            value=alerting,
        )


# -- routes -------------------------------------------------------------------------------------


class BlockDigestOut(BaseModel):
    """One event block's rolling digest (hashes as 0x-hex)."""

    number: int
    hash: str
    digest: str
    event_count: int


class DigestsOut(BaseModel):
    """The digests of the event blocks from first to last, and the rolling digest as of last."""

    first: int
    last: int
    as_of: str  # the rolling digest covering every event up to `last`
    last_block: int | None  # the newest block with a digest
    blocks: list[BlockDigestOut]


class BlockEventsOut(BaseModel):
    """A block's mirrored events in log order, each with its table name (bytes as 0x-hex)."""

    number: int
    events: list[dict[str, Any]]


class RunOut(BaseModel):
    """One stored reconciliation run; error is set when the run could not read the chain or the mirror."""

    id: int
    started_at: datetime
    first_block: int
    last_block: int
    chain_events: int
    mirror_events: int
    drift_count: int
    drift_by_kind: dict[str, int]
    seconds: float
    error: str | None


class RunsOut(BaseModel):
    """One page of reconciliation runs, newest first."""

    runs: list[RunOut]
    next_before: int | None  # pass as ?before= for the next (older) page


def audit_router(
    engine_of: Callable[[Request], Engine], admin_digest_of: Callable[[Request], str | None]
) -> APIRouter:
    """The digest and reconciliation routes, over the mirror ``engine_of(request)`` returns."""
    router = APIRouter(tags=["audit"])

    @router.get(
        "/digests",
        response_model=DigestsOut,
        summary="Per-block rolling digests of the mirror",
        responses=_errors(e422="Invalid parameters.", e429="Rate limited: see Retry-After."),
    )
    def get_digests(
        request: Request,
        first: Annotated[int, Query(alias="from", ge=0, le=2**63 - 1)] = 0,
        last: Annotated[int, Query(alias="to", ge=0, le=2**63 - 1)] = 2**63 - 1,
        limit: Annotated[int, Query(ge=0, le=MAX_DIGESTS)] = 1_000,
    ) -> DigestsOut:
        with Session(engine_of(request)) as session:
            newest = session.scalar(select(func.max(BlockRow.number)).where(BlockRow.digest.is_not(None)))
            found = digests(session, first, last, limit) if limit else []
            return DigestsOut(
                first=first,
                last=last,
                as_of=digest_as_of(session, last),
                last_block=newest,
                blocks=[BlockDigestOut(**vars(d)) for d in found],
            )

    @router.get(
        "/blocks/{number}/events",
        response_model=BlockEventsOut,
        summary="A block's mirrored events",
        responses=_errors(
            e404="No such block.", e422="Invalid parameters.", e429="Rate limited: see Retry-After."
        ),
    )
    def get_block_events(request: Request, number: int) -> BlockEventsOut:
        if not 0 <= number < 2**63:
            raise NotFound(f"no block {number}")
        with Session(engine_of(request)) as session:
            rows = block_events(session, number, number).get(number, [])
        return BlockEventsOut(number=number, events=[event_view(table, row) for _, table, row in rows])

    @router.get(
        "/reconciliation/runs",
        response_model=RunsOut,
        summary="Reconciliation runs, newest first (admin bearer token)",
        responses=_errors(
            e401="The admin token is required.", e422="Invalid parameters.", e429="Rate limited."
        ),
    )
    def get_runs(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=MAX_RUNS)] = 50,
        before: Annotated[int | None, Query(ge=1)] = None,
    ) -> RunsOut:
        expected = admin_digest_of(request)
        token = bearer_token(request)
        if expected is None or token is None or not digest_matches(token, expected):
            raise Unauthorized("the admin token is required (FINVAULT_ADMIN_TOKEN)")
        query = select(ReconciliationRunRow).order_by(ReconciliationRunRow.id.desc()).limit(limit + 1)
        if before is not None:
            query = query.where(ReconciliationRunRow.id < before)
        with Session(engine_of(request)) as session:
            rows = list(session.scalars(query))
        page = rows[:limit]
        return RunsOut(
            runs=[
                RunOut(
                    id=r.id,
                    started_at=datetime.fromtimestamp(r.started_at, UTC),
                    first_block=r.first_block,
                    last_block=r.last_block,
                    chain_events=r.chain_events,
                    mirror_events=r.mirror_events,
                    drift_count=r.drift_count,
                    drift_by_kind=r.drift_by_kind,
                    seconds=r.seconds,
                    error=r.error,
                )
                for r in page
            ],
            next_before=page[-1].id if len(rows) > limit else None,
        )

    return router
