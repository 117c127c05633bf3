"""The node's moving parts: the live sync loop in a background thread, and what it reports.

:meth:`NodeRuntime.open` does every start-up check before anything binds a port: settings, chain
id, the registry's code hash, the mirror's schema and that the mirror belongs to this chain and
registry. The loop then keeps the mirror at the head: transient failures back off (the breaker
shows in ``/ready``); a reorg below finality or a mirror that no longer folds into the contract's
accumulators stops the loop for good, and the node reports it instead of serving on as if ready.

With several worker processes (``FINVAULT_WORKERS``), the loop runs once, in a sync process of its
own (:mod:`node.worker`), and publishes what it knows through :class:`node.shared.SharedState`;
each worker serves from a :class:`FollowerRuntime` that reads it. The app sees the same interface either way.

The node holds no private key and sends no transaction: it only reads the chain.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, event, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from chain.core.signing import SignatureCache
from chain.core.verify import ChainHead, Policy
from chain.errors import ChainMismatch, ConfigError, FinVaultError, RpcError, RpcUnavailable
from chain.registry import RegistryReader
from chain.rpc import RetryPolicy, RpcClient
from chain.service.db import make_engine
from indexer.digests import update_digests
from indexer.errors import ReorgBeyondFinality
from indexer.reconcile import accumulator_drifts
from indexer.schema import AuditLogRow, BlockRow, CheckpointRow
from indexer.sync import TRANSIENT_ERRORS, Indexer, build_indexer, require_same_mirror
from node.audit import ReconciliationJob, drift_alert
from node.health import CannotVouch, cannot_vouch
from node.mirror import MirrorView, head_of
from node.replica import StatePublisher, read_replica_snapshot, replica_snapshot_on
from node.settings import NodeSettings
from node.shared import SharedState, SyncSnapshot

log = logging.getLogger(__name__)

#: How often the loop re-checks that the endpoint still serves the configured chain.
CHAIN_ID_CHECK_SECONDS = 30.0
#: How long shutdown waits for a sync step in flight (it commits or rolls back as a whole).
STOP_TIMEOUT = 30.0
#: How long another writer (``finvault resync``) must leave the mirror alone before the loop
#: takes over again (at least three poll intervals).
REPAIR_QUIET_SECONDS = 5.0


def cursor_key(settings: NodeSettings) -> bytes:
    """The HMAC key of pagination cursors: ``FINVAULT_CURSOR_SECRET``, else random for this start."""
    secret = settings.cursor_secret
    return secret.get_secret_value().encode() if secret else secrets.token_bytes(32)


def not_ready(snapshot: SyncSnapshot, settings: NodeSettings, now: float | None = None) -> list[str]:
    """Why a node in this state should not take traffic; empty when it is ready.

    The first reason, when there is one, is :func:`node.health.cannot_vouch`'s: readiness and
    verdicts follow one judgement. The others tell an operator what else is wrong.
    """
    reasons = []
    problem = cannot_vouch(snapshot, settings.max_staleness, now)
    if problem is not None:
        reasons.append(f"{problem.code}: {problem.reason}")
    if not snapshot.running:
        reasons.append("sync loop is not running")
    if snapshot.chain_mismatch:
        reasons.append(f"chain id mismatch: {snapshot.chain_mismatch}")
    if snapshot.breaker_open:
        reasons.append(f"RPC circuit breaker open: {snapshot.last_error}")
    if snapshot.lag > settings.ready_max_lag_blocks:
        reasons.append(f"mirror lags the head by {snapshot.lag} blocks (max {settings.ready_max_lag_blocks})")
    return reasons


class Runtime(ABC):
    """What the app needs: settings, the mirror view, the sync state, and the contract's view."""

    def __init__(self, settings: NodeSettings, read_engine: Engine, cursor_key: bytes) -> None:
        self.settings = settings
        self.registry = settings.require_registry()
        self.read_engine = read_engine
        self.policy = Policy(confirmations=settings.confirmations)
        self.cursor_key = cursor_key
        # The API's own client for GET /status: one quick try, never the loop's retries.
        self._status_rpc = RpcClient(
            settings.rpc_urls, policy=RetryPolicy(rounds=1, timeout=min(settings.rpc_timeout, 5.0))
        )
        self._status_reader = RegistryReader(self._status_rpc, self.registry)
        self._contract_cache: tuple[int, dict[str, Any]] | None = None
        entries = settings.signature_cache_entries
        self.view = MirrorView(
            read_engine,
            settings.chain_id,
            self.registry,
            self.snapshot,
            SignatureCache(entries) if entries else None,
            state_in=self.state_in,
        )

    @abstractmethod
    def snapshot(self) -> SyncSnapshot:
        """The sync loop's state now."""

    #: For a runtime whose state lives in the mirror itself (a replica): it, read on a connection,
    #: so each verification reads state and facts in one snapshot (:class:`MirrorView`).
    state_in: Callable[[Connection], SyncSnapshot] | None = None

    @abstractmethod
    def start(self) -> None:
        """Called when the app starts serving."""

    @abstractmethod
    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Called when the app stops serving."""

    def close(self) -> None:
        """Releases connections (after :meth:`stop`)."""
        self._status_rpc.close()
        self.read_engine.dispose()

    def head(self) -> ChainHead:
        """The chain as the loop last saw it; verification judges finality against this."""
        return head_of(self.snapshot())

    def not_ready(self) -> list[str]:
        """Why the node should not take traffic now (empty when ready)."""
        return not_ready(self.snapshot(), self.settings)

    def cannot_vouch(self, snapshot: SyncSnapshot | None = None) -> CannotVouch | None:
        """Why the mirror cannot vouch for verdicts now (judged on ``snapshot``, or on the state now)."""
        return cannot_vouch(snapshot or self.snapshot(), self.settings.max_staleness)

    def contract_accumulators(self, block: int) -> dict[str, Any]:
        """The contract's accumulators and counts at ``block`` (cached per block), or an error."""
        cached = self._contract_cache
        if cached is not None and cached[0] == block:
            return cached[1]
        try:
            anchor_acc, revocation_acc, anchors, revocations = self._status_reader.totals(block)
        except FinVaultError as exc:
            return {"block_number": block, "error": exc.diagnostics()}
        answer: dict[str, Any] = {
            "block_number": block,
            "anchor_accumulator": "0x" + anchor_acc.hex(),
            "revocation_accumulator": "0x" + revocation_acc.hex(),
            "anchors": anchors,
            "revocations": revocations,
        }
        self._contract_cache = (block, answer)
        return answer


@dataclass
class LoopHealth:
    """What the sync loop knows about itself and its mirror, beyond the indexer's :class:`SyncStatus`."""

    last_success: float | None = None
    steps: int = 0
    rpc_errors: int = 0
    failures: int = 0
    fatal: str | None = None
    repairing: str | None = None  # another process is rewriting the mirror: the loop waits
    chain_mismatch: str | None = None
    running: bool = False
    diverged: str | None = None
    drift: str | None = None
    caught_up_at: float | None = None
    writing: bool = False
    #: The mirror's newest block as (number, hash, time): swapped whole, so it is never read torn.
    position: tuple[int, bytes, int] = (0, bytes(32), 0)
    accumulators_checked: float | None = None  # time.monotonic() of the last conclusive check


class NodeRuntime(Runtime):
    """The indexer, a read view of its mirror, and the loop that keeps them current.

    Besides syncing, the loop keeps the node's judgement of its own mirror current (see
    :mod:`node.health`): after every step it reads the newest reconciliation verdict and the audit
    log, and every ``accumulator_check_interval`` it folds the mirror into the contract's
    accumulators. A halt (reorg beyond finality, divergence while syncing) keeps the loop alive,
    waiting for an operator's ``finvault resync``; once the resync is done, syncing resumes by itself.
    """

    def __init__(
        self, settings: NodeSettings, indexer: Indexer, read_engine: Engine, shared: SharedState | None = None
    ) -> None:
        self.indexer = indexer
        self.health = LoopHealth()
        self.shared = shared
        # Not 0: a sync process started again after a crash must not publish a generation that
        # workers already cached facts under (time.monotonic_ns() only grows, system-wide).
        self._generation_counter = time.monotonic_ns()
        super().__init__(settings, read_engine, cursor_key(settings))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_chain_check = time.monotonic()
        self._caught_up = False
        self._in_step = False
        self._reader = RegistryReader(indexer.rpc, indexer.registry)
        self.reconciliation = ReconciliationJob(
            indexer.engine,
            indexer.rpc,
            indexer.registry,
            settings.chain_id,
            indexer.start_block,
            window=settings.reconcile_window_blocks,
            interval=settings.reconcile_interval,
        )
        self._last_resync = self._newest_resync()
        self._other_write_at = 0.0
        self._read_position()
        self._replicas = StatePublisher(indexer.engine)
        event.listen(indexer.engine, "commit", self._on_commit)

    @classmethod
    def open(cls, settings: NodeSettings, shared: SharedState | None = None) -> NodeRuntime:
        """Connects and checks everything; raises :class:`FinVaultError` on anything wrong. With
        ``shared``, the loop publishes its state there for worker processes."""
        indexer = build_indexer(settings, writer=True)
        try:
            runtime = cls(settings, indexer, make_engine(settings.database_url), shared)
        except BaseException:
            indexer.close()
            raise
        runtime.publish()
        return runtime

    def snapshot(self) -> SyncSnapshot:
        """The loop's state now, from the indexer and :class:`LoopHealth` in this process."""
        status, health = self.indexer.status, self.health
        # `writing` before `generation`: the loop bumps the generation, then clears `writing`, so a
        # reader that sees `writing` clear and the old generation read facts no commit had changed.
        writing = health.writing
        number, block_hash, block_time = health.position
        return SyncSnapshot(
            writing=writing,
            generation=self._generation_counter,
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

    def publish(self) -> None:
        """Hands the current state to worker processes, if there are any."""
        if self.shared is not None:
            self.shared.write(self.snapshot())

    def _publish_everywhere(self) -> None:
        """:meth:`publish`, and the mirror's ``loop_state`` row for replica nodes (from the loop's
        thread only, never inside a commit: it writes the mirror)."""
        self.publish()
        self._replicas.publish(self.snapshot())

    # -- the loop -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts the sync loop in a daemon thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self.health.running = True
        self._thread = threading.Thread(target=self._run, name="finvault-sync", daemon=True)
        self._thread.start()
        self.reconciliation.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stops the loop after the step in flight (each step commits its own checkpoint)."""
        self.reconciliation.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the sync loop did not stop within %.0fs", timeout)
            self._thread = None

    def close(self) -> None:
        """Stops the loop and releases connections."""
        self.stop()
        event.remove(self.indexer.engine, "commit", self._on_commit)
        self.indexer.close()
        self.indexer.rpc.close()
        self.indexer.engine.dispose()
        if self.shared is not None:
            self.shared.close()
        super().close()

    def _run(self) -> None:
        poll = self.settings.poll_interval
        try:
            while not self._stop.is_set():
                if self._notice_other_writers() or self.health.fatal is not None:
                    self._publish_everywhere()
                    self._stop.wait(poll)  # halted, or being repaired: only an operator moves it on
                    continue
                succeeded = self._step()
                if succeeded:
                    self._audit()
                self._publish_everywhere()
                if not succeeded:
                    breaker = self.indexer.breaker
                    self._stop.wait(breaker.cooldown if breaker.open else poll)
                elif self._caught_up:
                    self._stop.wait(poll)
        finally:
            self.health.running = False
            self._publish_everywhere()
            log.info("sync loop stopped at block %d", self.indexer.status.indexed_block)

    def _step(self) -> bool:
        """One sync step; False after a failure (the caller backs off)."""
        indexer = self.indexer
        started = time.monotonic()  # the head the step reads is the chain as of (about) now
        try:
            self._check_chain_id()
            self._in_step = True
            try:
                result = indexer.step()
            finally:
                self._in_step = False
        except TRANSIENT_ERRORS as exc:
            self._failed(exc)
            log.warning("sync step failed: %s", indexer.status.last_error)
            return False
        except FinVaultError as exc:
            # Reorg below finality, mirror divergence: repairing these silently would hide them.
            self._failed(exc)
            self._halt(exc)
            return False
        except Exception as exc:
            self._failed(exc)
            log.exception("sync step failed unexpectedly")
            return False
        self.health.steps += 1
        self.health.last_success = time.monotonic()
        self._caught_up = result.caught_up and result.reorged_to is None
        if self._caught_up:
            self.health.caught_up_at = started
        self._read_position()
        changed = bool(result.events) or result.reorged_to is not None
        if changed:
            self._generation_counter += 1  # after the step's commit: cached facts are now stale
        self._end_write()  # only now: the new generation and position are what readers see next
        if changed:
            try:
                update_digests(indexer.engine)  # derived data: a failure is retried after the next step
            except SQLAlchemyError as exc:
                log.warning("could not update the mirror digests: %s", exc)
        return True

    def _end_write(self) -> None:
        if self.health.writing:
            self.health.writing = False
            self.publish()

    def _on_commit(self, connection: Any) -> None:
        """The indexer's engine is about to commit a sync step: facts read from now on may be newer
        than the published state, so verifications wait until the step's outcome is published."""
        if self._in_step:
            self.health.writing = True
            self.publish()

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
        self._end_write()  # a commit that failed rolled back: nothing changed
        self.health.failures += 1
        if isinstance(exc, RpcUnavailable | RpcError):
            self.health.rpc_errors += 1
        self.indexer.breaker.failure()
        status = self.indexer.status
        status.last_error = exc.diagnostics() if isinstance(exc, FinVaultError) else type(exc).__name__

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

    # -- what the node knows about its own mirror ---------------------------------------------------

    def _mirror_position(self) -> tuple[int, bytes, int] | None:
        """The mirror's checkpoint block, its hash and time as the mirror holds them."""
        with Session(self.indexer.engine) as session:
            found = session.execute(
                select(CheckpointRow.block_number, CheckpointRow.block_hash, BlockRow.timestamp).join(
                    BlockRow, BlockRow.number == CheckpointRow.block_number, isouter=True
                )
            ).first()
        if found is None:
            return None
        number, block_hash, timestamp = found
        return number, bytes(block_hash), timestamp or 0

    def _read_position(self) -> None:
        """Where the mirror stands now: what verdicts are judged at (``as_of``)."""
        try:
            position = self._mirror_position()
        except SQLAlchemyError as exc:
            log.warning("could not read the mirror's checkpoint: %s", exc)
            return
        if position is not None:
            self.indexer.status.indexed_block = position[0]
            self.health.position = position

    def _newest_resync(self) -> int:
        with Session(self.indexer.engine) as session:
            newest = session.scalar(select(func.max(AuditLogRow.id)).where(AuditLogRow.action == "resync"))
        return newest or 0

    def _notice_other_writers(self) -> bool:
        """Whether another process (an operator's ``finvault resync``) is rewriting the mirror.

        Its writes show as a resync logged since, or a checkpoint this loop did not write. Either
        way cached facts are forgotten, the position is re-read, a halt is cleared and the
        accumulators are checked again. Until the other writer has left the checkpoint alone for
        :meth:`_quiet_seconds`, this loop does not step and the node does not vouch: facts it
        would read could be newer than any position it could name.
        """
        try:
            newest = self._newest_resync()
            position = self._mirror_position()
        except SQLAlchemyError as exc:
            log.warning("could not read the audit log and checkpoint: %s", exc)
            return self.health.repairing is not None
        moved = position is not None and position[:2] != self.health.position[:2]
        if newest != self._last_resync or moved:
            self._last_resync = newest
            self._generation_counter += 1
            if position is not None:
                self.indexer.status.indexed_block = position[0]
                self.health.position = position
            self.health.accumulators_checked = None
            self._other_write_at = time.monotonic()
            self.health.repairing = (
                "sync paused: another process (finvault resync) is rewriting the mirror; verdicts "
                f"resume once it has left the mirror alone for {self._quiet_seconds():g} s"
            )
            if self.health.fatal is not None:
                log.warning("the mirror is being repaired: the halt is cleared (%s)", self.health.fatal)
                self.health.fatal = None
                self.indexer.breaker.success()
            return True
        if (
            self.health.repairing is not None
            and time.monotonic() - self._other_write_at >= self._quiet_seconds()
        ):
            log.warning(
                "the mirror's repair looks done: syncing resumes at block %d", self.health.position[0]
            )
            self.health.repairing = None
        return self.health.repairing is not None

    def _quiet_seconds(self) -> float:
        return max(REPAIR_QUIET_SECONDS, 3 * self.settings.poll_interval)

    def _audit(self) -> None:
        """After a successful step: the newest reconciliation verdict, and the accumulator check
        when it is due (at the chain head: a catch-up would only fold the same rows again)."""
        try:
            with Session(self.indexer.engine) as session:
                self.health.drift = drift_alert(session, self.settings.reconcile_drift_threshold)
        except SQLAlchemyError as exc:
            log.warning("could not read the reconciliation runs: %s", exc)
        interval = self.settings.accumulator_check_interval
        checked = self.health.accumulators_checked
        due = checked is None or time.monotonic() - checked >= interval
        if interval > 0 and due and self._caught_up:  # while catching up the node is stale anyway
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


class ReplicaRuntime(Runtime):
    """A replica's runtime (``FINVAULT_NODE_REPLICA``): no loop; the mirror's checkpoint and its
    writer's published state, read per call (:mod:`node.replica`). ``on_start``, if any, is called
    when the app starts serving (a forked worker tells the supervisor so)."""

    def __init__(
        self,
        settings: NodeSettings,
        read_engine: Engine,
        cursor_key: bytes,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(settings, read_engine, cursor_key)
        self._on_start = on_start

    @classmethod
    def open(cls, settings: NodeSettings) -> ReplicaRuntime:
        """Checks that the mirror exists, has a writer's schema and follows this chain and registry
        (:class:`ConfigError` or :class:`ChainMismatch` if not); never migrates or writes it."""
        engine = make_engine(settings.database_url)
        try:
            if "loop_state" not in inspect(engine).get_table_names():
                raise ConfigError(
                    "this mirror has no schema a replica can read: start its writer (a node without "
                    "FINVAULT_NODE_REPLICA, at this version of FinVault) first"
                )
            with Session(engine) as session:
                checkpoint = session.get(CheckpointRow, 1)
            if checkpoint is None:
                raise ConfigError(
                    "this mirror is empty: start its writer (a node without FINVAULT_NODE_REPLICA) first"
                )
            require_same_mirror(checkpoint, settings.chain_id, settings.require_registry())
        except BaseException:
            engine.dispose()
            raise
        return cls(settings, engine, cursor_key(settings))

    def snapshot(self) -> SyncSnapshot:
        """The mirror's checkpoint and its writer's last published state, read now."""
        return read_replica_snapshot(self.read_engine)

    state_in = staticmethod(replica_snapshot_on)

    def start(self) -> None:
        """Calls ``on_start``, if any: a replica runs no loop."""
        if self._on_start is not None:
            self._on_start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Nothing to stop: a replica runs no loop."""


class FollowerRuntime(Runtime):
    """A worker process's runtime: its own mirror reader, the loop's state from shared memory."""

    def __init__(
        self, settings: NodeSettings, shared: SharedState, on_start: Callable[[], None] | None = None
    ) -> None:
        secret = settings.cursor_secret
        if secret is None:
            raise ValueError("workers need the node's one cursor secret")
        self.shared = shared
        self._on_start = on_start
        super().__init__(settings, make_engine(settings.database_url), secret.get_secret_value().encode())

    def snapshot(self) -> SyncSnapshot:
        """The state the sync process's loop last published to shared memory."""
        return self.shared.read()

    def start(self) -> None:
        """Calls ``on_start``, if any: it tells the supervisor this worker serves."""
        if self._on_start is not None:
            self._on_start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Nothing to stop: a worker runs no loop of its own."""
        pass

    def close(self) -> None:
        """Detaches from the shared memory and releases connections."""
        self.shared.close()
        super().close()
