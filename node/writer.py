"""The node's writer: the one process that follows the chain into the mirror and judges it.

:class:`MirrorWriter` holds the mirror's writer claim (:mod:`indexer.writer`) and runs the sync
loop: a step, then the node's judgement of its own mirror (the newest reconciliation verdict, the
accumulator check when due, a scheduled reconciliation when due), then its state published in the
``loop_state`` row (:mod:`node.state`). Serving processes read that row and the checkpoint; they
share nothing else with the writer. ``finvault node`` runs it as a process of its own
(:func:`run_writer`, under :mod:`node.worker`'s supervisor); the demo and in-process tests run the
same loop in a thread (:meth:`MirrorWriter.start`).

Transient failures (RPC down, database unavailable or full) are retried one poll interval later,
whether the circuit breaker is open or not, so the writer vouches again within one poll of the cause
going away; each is logged once when it starts and once when it ends, and its reason (the driver's
own words) is in ``last_error``. A step whose commit fails changes nothing readers read. A writer
whose claim another writer took (a database restart ended its session meanwhile) stops: it
neither writes nor publishes again. A reorg below finality, a mirror that no longer folds
into the contract's accumulators, or drift found by a reconciliation needs an operator: the writer
**steps aside**. It stops writing, drops its claim, and publishes why, so ``finvault resync`` can
take the claim and repair the mirror. Every repair changes the checkpoint's ``revision``; when it
has, the writer takes its claim back and resumes from whatever the mirror now holds.

The writer holds no private key and sends no transaction: it only reads the chain.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from chain.errors import ChainMismatch, FinVaultError, RpcError, RpcUnavailable
from chain.registry import RegistryReader
from indexer.digests import update_digests
from indexer.errors import ReorgBeyondFinality
from indexer.reconcile import accumulator_drifts
from indexer.schema import BlockRow, CheckpointRow
from indexer.sync import TRANSIENT_ERRORS, Indexer, build_indexer
from indexer.writer import MirrorWriterBusy, WriterClaim, WriterClaimLost
from node.audit import ReconciliationJob, drift_alert
from node.settings import NodeSettings
from node.state import StatePublisher, SyncSnapshot

log = logging.getLogger(__name__)

#: How often the loop re-checks that the endpoint still serves the configured chain.
CHAIN_ID_CHECK_SECONDS = 30.0
#: How long shutdown waits for a sync step in flight (it commits or rolls back as a whole).
STOP_TIMEOUT = 30.0


@dataclass
class LoopHealth:
    """What the writer knows about itself and its mirror, beyond the indexer's :class:`SyncStatus`."""

    last_success: float | None = None
    steps: int = 0
    rpc_errors: int = 0
    failures: int = 0
    fatal: str | None = None
    repairing: str | None = None  # the writer stepped aside and another writer holds the claim
    chain_mismatch: str | None = None
    running: bool = False
    diverged: str | None = None
    drift: str | None = None
    caught_up_at: float | None = None
    #: The mirror's newest block as (number, hash, time), and its revision, as last read.
    position: tuple[int, bytes, int] = (0, bytes(32), 0)
    revision: int = 0
    accumulators_checked: float | None = None  # time.monotonic() of the last conclusive check


class MirrorWriter:
    """The indexer, its writer claim, and the loop that keeps the mirror current and judged."""

    def __init__(self, settings: NodeSettings, indexer: Indexer) -> None:
        self.settings = settings
        self.indexer = indexer
        self.health = LoopHealth()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_chain_check = time.monotonic()
        self._caught_up = False
        self._reader = RegistryReader(indexer.rpc, indexer.registry)
        self._publisher = StatePublisher(indexer.engine)
        self.reconciliation = ReconciliationJob(
            indexer.engine,
            indexer.rpc,
            indexer.registry,
            settings.chain_id,
            indexer.start_block,
            window=settings.reconcile_window_blocks,
            interval=settings.reconcile_interval,
        )
        self._reconciled_at = time.monotonic()
        #: Why this writer stopped for good: another writer took its claim (None while it holds it).
        self.lost: str | None = None
        self._read_position()

    @classmethod
    def open(cls, settings: NodeSettings) -> MirrorWriter:
        """Connects, checks everything and claims the mirror; raises :class:`FinVaultError` on
        anything wrong (:class:`MirrorWriterBusy` if another writer holds it)."""
        indexer = build_indexer(settings, writer=True)
        try:
            writer = cls(settings, indexer)
        except BaseException:
            indexer.close()
            raise
        writer.publish(force=True)
        return writer

    def snapshot(self) -> SyncSnapshot:
        """The writer's state now, as it publishes it."""
        status, health = self.indexer.status, self.health
        number, block_hash, block_time = health.position
        return SyncSnapshot(
            generation=health.revision,
            head=status.head,
            indexed_block=number,
            finalized_block=status.finalized_block,
            events_indexed=status.events_indexed,
            rpc_errors=health.rpc_errors,
            failures=health.failures,
            reorgs=len(status.reorgs),
            quorum_disagreements=status.quorum_disagreements,
            last_success=health.last_success,
            breaker_open=self.indexer.breaker.open,
            running=health.running,
            last_error=status.last_error,
            fatal=health.fatal,
            repairing=health.repairing,
            chain_mismatch=health.chain_mismatch,
            diverged=health.diverged,
            drift=health.drift,
            block_hash=block_hash,
            block_time=block_time,
            caught_up_at=health.caught_up_at,
        )

    def publish(self, *, force: bool = False) -> None:
        """Puts the state in the mirror's ``loop_state`` row for the serving processes."""
        if not self._publisher.publish(self.snapshot(), force=force):
            log.debug("could not publish the writer's state; the next poll retries")

    # -- running ----------------------------------------------------------------------------------

    def run(self) -> None:
        """The loop, in this thread, until :meth:`stop` (or :meth:`stop_soon`) is called."""
        poll = self.settings.poll_interval
        self.health.running = True
        try:
            while not self._stop.is_set():
                if self._needs_repair() and not self._repaired():
                    self.publish()
                    self._stop.wait(poll)
                    continue
                succeeded = self._step()
                if succeeded:
                    self._audit()
                if self._needs_repair():
                    self._step_aside()  # before it says so: whoever reads the halt may resync at once
                self.publish()
                if not succeeded:  # one poll, breaker open or not: back within a poll of the cause
                    self._stop.wait(self.indexer.breaker.wait_after_failure(poll))
                elif self._caught_up:
                    self._stop.wait(poll)
        finally:
            self.health.running = False
            if self.lost is None:  # a writer whose claim another took must not speak for the mirror
                self.publish(force=True)
            log.info("the mirror's writer stopped at block %d", self.health.position[0])

    def stop_soon(self) -> None:
        """Asks :meth:`run` to return after the step in flight (safe from a signal handler)."""
        self._stop.set()

    def start(self) -> None:
        """Runs the loop in a daemon thread (for the demo and in-process tests; idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="finvault-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stops the loop after the step in flight (each step commits its own checkpoint)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the mirror's writer did not stop within %.0fs", timeout)
            self._thread = None

    def close(self) -> None:
        """Stops the loop, drops the claim and releases connections."""
        self.stop()
        self.indexer.close()
        self.indexer.rpc.close()
        self.indexer.engine.dispose()

    # -- one poll ---------------------------------------------------------------------------------

    def _step(self) -> bool:
        """One sync step; False after a failure (the caller waits a poll interval)."""
        indexer = self.indexer
        started = time.monotonic()  # the head the step reads is the chain as of (about) now
        try:
            self._check_chain_id()
            result = indexer.step()
        except WriterClaimLost as exc:
            self._failed(exc)
            self.lost = exc.message
            log.error("the mirror's writer stops: %s", exc.message)
            self._stop.set()  # another writer owns the mirror now: this one neither writes nor speaks
            return False
        except TRANSIENT_ERRORS as exc:
            self._failed(exc)  # logged once when a failure starts, once when it ends
            return False
        except FinVaultError as exc:
            # Reorg below finality, mirror divergence: repairing these silently would hide them.
            self._failed(exc)
            self._halt(exc)
            return False
        except Exception as exc:
            self._failed(exc)  # with its traceback, when it starts
            return False
        self.health.steps += 1
        self.health.last_success = time.monotonic()
        self._caught_up = result.caught_up and result.reorged_to is None
        if self._caught_up:
            self.health.caught_up_at = started
        self._read_position()
        if result.events or result.reorged_to is not None:
            try:
                update_digests(indexer.engine)  # derived data: a failure is retried after the next step
            except SQLAlchemyError as exc:
                log.warning("could not update the mirror digests: %s", exc)
        return True

    def _halt(self, exc: FinVaultError) -> None:
        if isinstance(exc, ReorgBeyondFinality):
            remedy = f"`finvault resync --from {exc.resync_from}`"
        else:
            remedy = (
                "`finvault reconcile` to find the first drift, then `finvault resync --from BLOCK` below it"
            )
        self.health.fatal = f"{exc.diagnostics()}. To repair: {remedy}; the node resumes by itself"
        log.error("sync halted: %s", self.health.fatal)

    def _failed(self, exc: Exception) -> None:
        self.health.failures += 1
        if isinstance(exc, RpcUnavailable | RpcError):
            self.health.rpc_errors += 1
        self.indexer.failed(exc)  # the breaker, the reason in last_error, the two-line log

    def _check_chain_id(self) -> None:
        """Every so often: an endpoint behind a load balancer can start serving another chain."""
        if time.monotonic() - self._last_chain_check < CHAIN_ID_CHECK_SECONDS:
            return
        self._last_chain_check = time.monotonic()
        try:
            self.indexer.rpc.require_chain_id(self.settings.chain_id)
        except ChainMismatch as exc:
            self.health.chain_mismatch = exc.message
            raise RpcError(exc.message) from None  # transient: the endpoint may come back
        self.health.chain_mismatch = None

    # -- what the writer knows about its own mirror -----------------------------------------------

    def _mirror_position(self) -> tuple[tuple[int, bytes, int], int] | None:
        """The mirror's checkpoint block, its hash and time as the mirror holds them, and its revision."""
        with Session(self.indexer.engine) as session:
            found = session.execute(
                select(
                    CheckpointRow.block_number,
                    CheckpointRow.block_hash,
                    BlockRow.timestamp,
                    CheckpointRow.revision,
                ).join(BlockRow, BlockRow.number == CheckpointRow.block_number, isouter=True)
            ).first()
        if found is None:
            return None
        number, block_hash, timestamp, revision = found
        return (number, bytes(block_hash), timestamp or 0), revision

    def _read_position(self) -> None:
        """Where the mirror stands now: what verdicts are judged at (``as_of``)."""
        try:
            found = self._mirror_position()
        except SQLAlchemyError as exc:
            log.warning("could not read the mirror's checkpoint: %s", exc)
            return
        if found is not None:
            position, self.health.revision = found
            self.indexer.status.indexed_block = position[0]
            self.health.position = position

    def _needs_repair(self) -> bool:
        health = self.health
        return bool(health.fatal or health.diverged or health.drift)

    def _step_aside(self) -> None:
        """The mirror needs an operator's repair: drop the claim so that ``finvault resync`` can take it."""
        indexer = self.indexer
        if indexer.writer is not None:
            indexer.writer.release()
            indexer.writer = None
            log.warning(
                "the mirror needs repair: the writer stepped aside, its claim free for finvault resync"
            )

    def _repaired(self) -> bool:
        """Whether a repair changed the mirror's revision since the writer stepped aside, and the
        writer took its claim back: then it resumes from whatever the mirror now holds."""
        indexer, health = self.indexer, self.health
        self._step_aside()
        try:
            found = self._mirror_position()
        except SQLAlchemyError as exc:
            log.warning("could not read the mirror's checkpoint: %s", exc)
            return False
        if found is None or found[1] == health.revision:
            return False  # nothing repaired yet
        try:
            indexer.writer = WriterClaim(indexer.engine)
        except MirrorWriterBusy:
            health.repairing = (
                "another writer (finvault resync) is rewriting the mirror; verdicts resume once it is "
                "done and this node's writer has checked the result"
            )
            return False
        log.warning("the mirror was repaired (revision %d): the writer resumes", found[1])
        health.fatal = health.diverged = health.drift = health.repairing = None
        health.accumulators_checked = None
        health.caught_up_at = None
        self._caught_up = False
        self.indexer.breaker.success()
        self._read_position()
        return True

    def _audit(self) -> None:
        """After a successful step: the newest reconciliation verdict; at the chain head (a catch-up
        is stale anyway), a scheduled reconciliation and the accumulator check when due."""
        settings, health = self.settings, self.health
        now = time.monotonic()
        if self._caught_up and 0 < settings.reconcile_interval <= now - self._reconciled_at:
            self._reconciled_at = now
            self.reconciliation.run_once()
        try:
            with Session(self.indexer.engine) as session:
                health.drift = drift_alert(session, settings.reconcile_drift_threshold)
        except SQLAlchemyError as exc:
            log.warning("could not read the reconciliation runs: %s", exc)
        interval, checked = settings.accumulator_check_interval, health.accumulators_checked
        if self._caught_up and interval > 0 and (checked is None or now - checked >= interval):
            self.check_accumulators()

    def check_accumulators(self) -> None:
        """Folds the mirror's rows and compares them with the contract's accumulators at the
        mirror's block (read by that block's hash). An RPC failure leaves the verdict as it was."""
        block, block_hash, _ = self.health.position
        try:
            with Session(self.indexer.engine) as session:
                drifts = accumulator_drifts(
                    session, self._reader, self.settings.chain_id, block, block_hash=block_hash
                )
        except (FinVaultError, SQLAlchemyError) as exc:
            log.warning("accumulator check at block %d could not run: %s", block, exc)
            return
        self.health.accumulators_checked = time.monotonic()
        if not drifts:
            if self.health.diverged is not None:
                log.warning("accumulator check at block %d passes again", block)
            self.health.diverged = None
            return
        sides = "; ".join(f"{d.table}: contract {d.chain}, mirror {d.mirror}" for d in drifts)
        self.health.diverged = (
            f"at block {block} the mirror's rows do not fold into the contract's accumulators ({sides}); "
            "find the drift with `finvault reconcile` and repair it with `finvault resync --from BLOCK`"
        )
        log.error("accumulator check: %s", self.health.diverged)


def run_writer(settings: NodeSettings, stop_signals: tuple[signal.Signals, ...]) -> None:
    """A writer process's main: logs to stderr at ``FINVAULT_LOG_LEVEL`` (a failure's "recovered"
    line is INFO), opens the writer and runs its loop until one of ``stop_signals``."""
    level = "DEBUG" if settings.log_level == "trace" else settings.log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    writer = MirrorWriter.open(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        writer.stop_soon()

    for signum in stop_signals:
        signal.signal(signum, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(stop_signals))
    try:
        writer.run()
    finally:
        writer.close()
    if writer.lost is not None:
        raise SystemExit(1)  # the supervisor starts another, which waits its turn for the claim
