"""Seals and anchors on a timer: every ``interval`` seconds, or sooner once ``threshold`` are pending.

Two APScheduler jobs share one cycle, :meth:`IssuerService.run_once` (resume, then seal and anchor
whatever is pending): the interval job, which also runs once at start-up so a crashed run is
resumed at once, and a cheap check every ``check_every`` seconds that starts a cycle early when
the pending count reaches ``threshold``. A lock keeps cycles from overlapping; a failed cycle is
logged and kept in :attr:`BatchScheduler.last_error`, and the next one tries again.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]

from chain.errors import FinVaultError
from issuer.service import IssuerService

log = logging.getLogger(__name__)


class BatchScheduler:
    """Runs an :class:`IssuerService` in the background until :meth:`shutdown`."""

    def __init__(
        self, service: IssuerService, *, interval: float, threshold: int, check_every: float = 5.0
    ) -> None:
        if interval <= 0 or check_every <= 0 or threshold < 1:
            raise ValueError("interval and check_every must be positive, threshold at least 1")
        self.service = service
        self.interval = interval
        self.threshold = threshold
        self.check_every = check_every
        self.cycles = 0
        self.last_error: FinVaultError | None = None
        #: Held for a whole cycle; others sending from the same account take it too.
        self.lock = threading.Lock()
        self._scheduler = BackgroundScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1}
        )

    def start(self) -> BatchScheduler:
        """Starts both jobs; the first cycle (which resumes unfinished batches) runs at once."""
        self._scheduler.add_job(
            self.run_cycle, "interval", seconds=self.interval, next_run_time=datetime.now(UTC), id="batch"
        )
        self._scheduler.add_job(self._check, "interval", seconds=self.check_every, id="threshold")
        self._scheduler.start()
        return self

    def shutdown(self, *, wait: bool = True) -> None:
        """Stops the jobs; with ``wait``, lets a running cycle finish first."""
        self._scheduler.shutdown(wait=wait)

    def __enter__(self) -> BatchScheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _check(self) -> None:
        if self.service.store.pending_count() >= self.threshold:
            self.run_cycle()

    def run_cycle(self) -> None:
        """One cycle, unless one is already running."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            self.service.run_once()
            self.last_error = None
        except FinVaultError as exc:
            log.error("issuer cycle failed: %s", exc.diagnostics())
            self.last_error = exc
        finally:
            self.cycles += 1
            self.lock.release()
