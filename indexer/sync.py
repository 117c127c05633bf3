"""The sync loop: a small state machine that keeps the mirror equal to the canonical chain.

One step:

1. read the head (and the chain's ``finalized`` block where the endpoint has one);
2. read the next range (its size adapts; usually read in the background while the previous step
   wrote): the registry's logs by raw ``eth_getLogs``, decoded by hand, then in one batch the
   headers of the checkpoint block, of every block with logs and of the range's last block;
3. if the checkpoint's hash changed, a reorg happened: find the fork point, delete everything
   above it and start again from there;
4. fold the rows into both accumulators (checked against the values the events carry), and write
   rows, blocks and the new checkpoint in ONE transaction.

So a crash at any moment leaves the mirror at a committed checkpoint, and re-running a range is
harmless (rows are keyed by ``(tx_hash, log_index)``). A reorg whose fork point lies below the
mirror's finalized block is not repaired: it raises :class:`ReorgBeyondFinality`.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from chain.core.accumulators import fold_anchor, fold_revocation, genesis_accumulators
from chain.core.encoding import hex0x
from chain.errors import ChainMismatch, RpcError, RpcUnavailable
from chain.registry import RegistryReader
from chain.rpc import RpcClient, hex_quantity
from chain.service.db import BEGIN_MODE
from chain.service.failures import FailureLog
from indexer.db import insert_rows, open_mirror
from indexer.decode import MIRRORED_TOPICS, DecodedBatch
from indexer.errors import ChainMoved, DecodeError, MirrorDivergence, QuorumDisagreement, ReorgBeyondFinality
from indexer.fetch import AdaptiveRange, Header, LogFetcher, read_headers
from indexer.rewind import rewind
from indexer.schema import (
    SCHEMA_VERSION,
    AnchorRow,
    BlockRow,
    CheckpointRow,
    IssuerRow,
    IssuerStatusRow,
    KeyRevocationRow,
    KeyRow,
    RevocationRow,
)
from indexer.settings import IndexerSettings
from indexer.writer import WriterClaim, WriterClaimPending

log = logging.getLogger(__name__)


#: Failures a later step may not meet again: retried (with backoff) until the breaker opens. A
#: database's OperationalError (down, restarting, full, locked) is one: the step rolled back whole.
TRANSIENT_ERRORS = (
    RpcUnavailable,
    RpcError,
    ChainMoved,
    QuorumDisagreement,
    DecodeError,
    OperationalError,
    WriterClaimPending,
)


@dataclass(frozen=True)
class StepResult:
    """What one :meth:`Indexer.step` did: the blocks it covered, the events it wrote, the head it aimed at.

    ``reorged_to`` is the fork point when the step rolled the mirror back instead of reading on.
    """

    first_block: int
    last_block: int
    events: int
    head: int
    reorged_to: int | None = None

    @property
    def caught_up(self) -> bool:
        """Whether the step reached the head it aimed at (so a loop may wait for new blocks)."""
        return self.last_block >= self.head


@dataclass
class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures: the failures are an outage, not a blip.

    An open breaker is reported (``/ready``, ``finvault_node_rpc_breaker_open``) and ends
    :meth:`Indexer.sync`'s retries; it does not hold a live loop back. The loop tries again one
    poll interval after a failure, open or not (:meth:`wait_after_failure`), so the first poll after
    the cause is gone succeeds and closes it: the mirror vouches again within one poll, as the
    operations guide promises. Without new failures it half-opens after ``cooldown`` seconds.
    """

    threshold: int = 5
    cooldown: float = 30.0
    failures: int = 0
    opened_at: float | None = None
    clock: Callable[[], float] = time.monotonic

    @property
    def open(self) -> bool:
        """Whether the failures are an outage: the last of ``threshold`` or more in a row came less
        than ``cooldown`` seconds ago."""
        return self.opened_at is not None and self.clock() - self.opened_at < self.cooldown

    def success(self) -> None:
        """Closes the breaker and clears the run of failures."""
        self.failures, self.opened_at = 0, None

    def failure(self) -> None:
        """Counts a failure; from the ``threshold``-th in a row on, each one (re)opens the breaker."""
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = self.clock()

    def wait_after_failure(self, poll_interval: float) -> float:
        """Seconds a live loop waits after a failed step before it tries again: ``poll_interval``,
        whether the breaker is open or not. Waiting out ``cooldown`` instead kept a node refusing
        for up to 30 s after its endpoint or database was back."""
        return poll_interval


@dataclass
class SyncStatus:
    """What the node's readiness and status endpoints report."""

    head: int = 0
    indexed_block: int = 0
    finalized_block: int = 0
    events_indexed: int = 0
    last_error: str | None = None
    quorum_disagreements: int = 0
    reorgs: list[tuple[int, int]] = field(default_factory=list)  # (from checkpoint, to fork point)

    @property
    def lag(self) -> int:
        """Blocks between the head and the mirror's checkpoint (never negative)."""
        return max(0, self.head - self.indexed_block)


class Indexer:
    """Follows one registry on one chain into the mirror behind ``engine``."""

    def __init__(
        self,
        engine: Engine,
        rpc: RpcClient,
        *,
        chain_id: int,
        registry: str,
        start_block: int,
        confirmations: int = 12,
        quorum: RpcClient | None = None,
        window: AdaptiveRange | None = None,
        breaker: CircuitBreaker | None = None,
        prefetch: bool = True,
    ) -> None:
        if confirmations < 1:
            raise ValueError("confirmations must be at least 1")
        self.engine = engine
        self.rpc = rpc
        self.quorum = quorum
        self.chain_id = chain_id
        self.registry = registry.lower()
        self.registry_bytes = bytes.fromhex(self.registry[2:])
        self.start_block = max(1, start_block)
        self.confirmations = confirmations
        self.fetcher = LogFetcher(
            rpc, self.registry, MIRRORED_TOPICS, window or AdaptiveRange(), prefetch=prefetch
        )
        self.breaker = breaker or CircuitBreaker()
        self.status = SyncStatus()
        #: Logs a run of failed steps in two lines: when it starts and when it ends.
        self.failures = FailureLog(log, "sync step")
        self._finalized_tag = True
        self.writer: WriterClaim | None = None

    def close(self) -> None:
        """Stops the background log prefetch and drops the writer claim, if held."""
        self.fetcher.close()
        if self.writer is not None:
            self.writer.release()
            self.writer = None

    def claim_writer(self) -> None:
        """Claims the mirror as its one following writer, or raises :class:`MirrorWriterBusy`
        (:mod:`indexer.writer`); held until :meth:`close`."""
        if self.writer is None:
            self.writer = WriterClaim(self.engine)

    # -- start-up ---------------------------------------------------------------------------------

    def check_startup(self) -> None:
        """Chain id, registry code hash, and that the mirror belongs to this chain and registry."""
        self.rpc.require_chain_id(self.chain_id)
        RegistryReader(self.rpc, self.registry).check_deployment()
        with Session(self.engine) as session:
            checkpoint = session.get(CheckpointRow, 1)
            if checkpoint is not None:
                require_same_mirror(checkpoint, self.chain_id, self.registry)
                self.status.indexed_block = checkpoint.block_number
                self.status.finalized_block = checkpoint.finalized_block

    def _initial_checkpoint(self, session: Session, head: int, finalized: int) -> CheckpointRow:
        base = self.start_block - 1
        header = self._headers([base])[base]
        anchor_acc, revocation_acc = genesis_accumulators(self.chain_id, self.registry_bytes)
        checkpoint = CheckpointRow(
            id=1,
            chain_id=self.chain_id,
            registry_address=self.registry_bytes,
            schema_version=SCHEMA_VERSION,
            block_number=base,
            block_hash=header.hash,
            finalized_block=0,
            chain_head_block=head,
            chain_finalized_block=finalized,
            anchor_accumulator=anchor_acc,
            revocation_accumulator=revocation_acc,
            anchor_count=0,
            revocation_count=0,
            revision=0,
        )
        session.add(checkpoint)
        session.merge(BlockRow.without_events(header))
        return checkpoint

    # -- chain reads ------------------------------------------------------------------------------

    def _headers(
        self, numbers: Sequence[int], client: RpcClient | None = None, *, allow_missing: bool = False
    ) -> dict[int, Header]:
        """Headers by number in one batch; a block the chain does not have is :class:`ChainMoved`,
        or left out with ``allow_missing`` (a reorg to a shorter chain)."""
        headers = read_headers(client or self.rpc, numbers)
        if not allow_missing:
            self._require(headers, numbers)
        return headers

    @staticmethod
    def _require(headers: dict[int, Header], numbers: Iterable[int]) -> None:
        missing = sorted(set(numbers) - headers.keys())
        if missing:
            raise ChainMoved(f"block {missing[0]} is not available (yet)")

    def _check_quorum(self, headers: dict[int, Header]) -> None:
        if self.quorum is None:
            return
        second = self._headers(list(headers), self.quorum)
        for number, header in headers.items():
            if second[number].hash != header.hash:
                self.status.quorum_disagreements += 1
                raise QuorumDisagreement(
                    f"endpoints disagree on block {number}: "
                    f"{hex0x(header.hash)} vs {hex0x(second[number].hash)}"
                )

    def _finality(self) -> tuple[int, int]:
        """``(head, finalized block)``: by depth, and by the ``finalized`` tag where available.

        A head or a finalized block the endpoint answers with something else than a block number
        (``result: null`` included) is an :class:`RpcError` naming the method, retried like any.
        """
        finalized_raw = None
        if self._finalized_tag:
            try:
                head_raw, finalized_raw = self.rpc.batch(
                    [("eth_blockNumber", []), ("eth_getBlockByNumber", ["finalized", False])]
                )
            except RpcError as exc:
                if exc.method == "eth_blockNumber":
                    raise  # the head itself failed: no verdict on the tag
                self._finalized_tag = False  # this endpoint has no such tag: depth alone decides
        if not self._finalized_tag:
            head_raw = self.rpc.call("eth_blockNumber")
        head = hex_quantity("eth_blockNumber", head_raw)
        by_depth = max(0, head - self.confirmations + 1)
        if finalized_raw is None:
            return head, by_depth
        if not isinstance(finalized_raw, dict):
            raise RpcError(f"eth_getBlockByNumber(finalized): not a block: {finalized_raw!r:.60}")
        return head, min(by_depth, hex_quantity("eth_getBlockByNumber", finalized_raw.get("number")))

    # -- one step ---------------------------------------------------------------------------------

    def step(self, to_block: int | None = None) -> StepResult:
        """Advances the mirror by one range (or repairs a reorg). Raises on failure.

        With a writer claim (:meth:`claim_writer`), checks it first (:meth:`WriterClaim.ensure`).
        The checkpoint records the chain head and finalized block this step read, in the step's
        one transaction. :attr:`status` and the breaker move only once that transaction has
        committed: a step whose commit fails (a full disk, a database restart) leaves them, like
        the mirror, as they were.
        """
        if self.writer is not None:
            self.writer.ensure()
        head, finalized = self._finality()
        target_head = head if to_block is None else min(head, to_block)
        with Session(self.engine) as session, session.begin():
            session.connection(execution_options={BEGIN_MODE: "IMMEDIATE"})  # the one writer
            result, final_block = self._advance(session, head, finalized, target_head)
        self._committed(result, final_block)
        return result

    def _advance(
        self, session: Session, head: int, finalized: int, target_head: int
    ) -> tuple[StepResult, int]:
        """The step's writes, in ``session``'s transaction: what the step did, and the mirror's
        finalized block after it."""
        checkpoint = session.get(CheckpointRow, 1) or self._initial_checkpoint(session, head, finalized)
        checkpoint.chain_head_block = head
        checkpoint.chain_finalized_block = finalized
        first = checkpoint.block_number + 1
        if first > target_head:
            fork = self._confirm_checkpoint(session, checkpoint, finalized)
            result = StepResult(first, checkpoint.block_number, 0, target_head, reorged_to=fork)
            return result, checkpoint.finalized_block
        fetched = self.fetcher.fetch_range(first, target_head)
        last, batch, headers = fetched.last, fetched.batch, dict(fetched.headers)
        self._require(headers, [checkpoint.block_number, *batch.blocks, last])
        # The newest final block is kept too, whenever finality moves: the fork point no
        # repairable reorg goes below. Without it, after steps of many blocks (a catch-up) the
        # stored blocks are sparse, and a shallow reorg would find its fork below finality.
        newest_final = min(finalized, last)
        if newest_final > checkpoint.finalized_block and newest_final not in headers:
            headers.update(self._headers([newest_final]))
        if headers[checkpoint.block_number].hash != checkpoint.block_hash:
            fork = self._rollback_to_fork(session, checkpoint)
            return StepResult(first, fork, 0, target_head, reorged_to=fork), checkpoint.finalized_block
        if headers[last].hash != fetched.last_hash_before:
            raise ChainMoved(f"block {last} changed while the logs below it were read")
        for number, block_hash in batch.blocks.items():
            if headers[number].hash != block_hash:
                raise ChainMoved(f"block {number} changed while its logs were read")
        self._check_quorum(headers)
        self._apply(session, checkpoint, batch, headers, last, finalized)
        return StepResult(first, last, batch.count, target_head), checkpoint.finalized_block

    def failed(self, error: BaseException) -> str:
        """Records a failed step: counts it on the breaker, puts its reason in
        ``status.last_error`` (:func:`failure_reason`: the driver's "database or disk is full", not
        "OperationalError") and logs it through :attr:`failures` (one line when a failure starts,
        none while it repeats). Returns the reason. For the loop that called :meth:`step`."""
        self.breaker.failure()
        self.status.last_error = self.failures.failed(error)
        return self.status.last_error

    def _committed(self, result: StepResult, finalized_block: int) -> None:
        """The step's transaction committed: now the status may say what it did."""
        status = self.status
        if result.reorged_to is not None:
            status.reorgs.append((result.first_block - 1, result.reorged_to))
            log.warning(
                "reorg: rolled the mirror back from block %d to fork point %d",
                result.first_block - 1,
                result.reorged_to,
            )
        status.head = result.head
        status.indexed_block = result.last_block
        status.finalized_block = finalized_block
        status.events_indexed += result.events
        status.last_error = None
        self.breaker.success()
        self.failures.succeeded()

    def _confirm_checkpoint(self, session: Session, checkpoint: CheckpointRow, finalized: int) -> int | None:
        """Nothing new to read: make sure the checkpoint block is still on the chain (it may be
        gone altogether after a reorg to a shorter chain). Returns the fork point if it is not."""
        newest_final = min(finalized, checkpoint.block_number)
        wanted = [checkpoint.block_number]
        if newest_final > checkpoint.finalized_block:
            wanted.append(newest_final)  # kept as a fork point, as in every step
        headers = self._headers(wanted, allow_missing=True)
        header = headers.get(checkpoint.block_number)
        if header is None or header.hash != checkpoint.block_hash:
            return self._rollback_to_fork(session, checkpoint)
        final = headers.get(newest_final)
        if final is not None and newest_final > checkpoint.finalized_block:
            if session.get(BlockRow, newest_final) is None:
                session.add(BlockRow.without_events(final))
            checkpoint.finalized_block = newest_final
        return None

    def _apply(
        self,
        session: Session,
        checkpoint: CheckpointRow,
        batch: DecodedBatch,
        headers: dict[int, Header],
        last: int,
        finalized: int,
    ) -> None:
        anchor_acc = checkpoint.anchor_accumulator
        for row in batch.anchors:
            anchor_acc = fold_anchor(
                anchor_acc, row["root"], row["issuer"], row["count"], row["block_number"]
            )
            if anchor_acc != row["accumulator"]:
                raise MirrorDivergence(
                    f"anchor {hex0x(row['root'])} does not fold into the contract's accumulator"
                )
        revocation_acc = checkpoint.revocation_accumulator
        for row in batch.revocations:
            revocation_acc = fold_revocation(
                revocation_acc, row["root"], row["leaf"], row["issuer"], row["reason"], row["block_number"]
            )
            if revocation_acc != row["accumulator"]:
                raise MirrorDivergence(
                    f"revocation in {hex0x(row['tx_hash'])} does not fold into the accumulator"
                )
        insert_rows(session, IssuerRow, batch.issuers)
        insert_rows(session, IssuerStatusRow, batch.issuer_status)
        insert_rows(session, KeyRow, batch.keys)
        insert_rows(session, KeyRevocationRow, batch.key_revocations)
        insert_rows(session, AnchorRow, batch.anchors)
        insert_rows(session, RevocationRow, batch.revocations)
        per_block = batch.events_per_block
        insert_rows(
            session,
            BlockRow,
            [
                {
                    "number": n,
                    "hash": h.hash,
                    "parent_hash": h.parent_hash,
                    "timestamp": h.timestamp,
                    "event_count": per_block.get(n, 0),
                }
                for n, h in headers.items()
                if n in per_block or n == last or n == min(finalized, last)
            ],
        )
        # Checkpoint-only blocks below finality are no longer needed for reorg detection.
        session.execute(
            delete(BlockRow).where(BlockRow.event_count == 0, BlockRow.number < min(finalized, last))
        )
        checkpoint.block_number = last
        checkpoint.block_hash = headers[last].hash
        checkpoint.finalized_block = max(checkpoint.finalized_block, min(finalized, last))
        checkpoint.anchor_accumulator = anchor_acc
        checkpoint.revocation_accumulator = revocation_acc
        checkpoint.anchor_count += len(batch.anchors)
        checkpoint.revocation_count += len(batch.revocations)
        if batch.count:
            checkpoint.revision += 1

    # -- reorgs -----------------------------------------------------------------------------------

    def _rollback_to_fork(self, session: Session, checkpoint: CheckpointRow) -> int:
        """Deletes everything above the newest stored block the chain still has; returns it."""
        stored = session.execute(
            select(BlockRow.number, BlockRow.hash).order_by(BlockRow.number.desc())
        ).all()
        fork: int | None = None
        for start in range(0, len(stored), 64):
            chunk = stored[start : start + 64]
            chain = self._headers([n for n, _ in chunk], allow_missing=True)
            match = next((n for n, h in chunk if n in chain and chain[n].hash == h), None)
            if match is not None:
                fork = match
                break
        if fork is None:
            raise ReorgBeyondFinality(
                "no block the mirror knows is still on the chain: was the chain reset?",
                resync_from=self.start_block,
            )
        if fork < checkpoint.finalized_block:
            raise ReorgBeyondFinality(
                f"the chain reorganized below block {fork + 1}, but the mirror had blocks up to "
                f"{checkpoint.finalized_block} as final; refusing to repair this silently",
                resync_from=fork + 1,
            )
        rewind(session, checkpoint, fork)
        return fork

    # -- loops ------------------------------------------------------------------------------------

    def sync(
        self, to_block: int | None = None, on_step: Callable[[StepResult], None] | None = None
    ) -> SyncStatus:
        """Catches up to the head (or ``to_block``) and returns. Transient errors are retried.

        Meanwhile the objects that already exist are frozen out of the cyclic garbage collector:
        a catch-up parses millions of short-lived JSON containers, and each full collection would
        otherwise walk the whole program's long-lived objects again (a sixth of the sync's time).
        """
        gc.freeze()
        try:
            while True:
                result = self._step_with_retry(to_block)
                if on_step is not None:
                    on_step(result)
                if result.reorged_to is None and result.caught_up:
                    return self.status
        finally:
            gc.unfreeze()

    def _step_with_retry(self, to_block: int | None) -> StepResult:
        delay = 0.2
        while True:
            try:
                return self.step(to_block)
            except TRANSIENT_ERRORS as exc:
                self.failed(exc)  # logged once, when the failure starts
                if self.breaker.open:
                    raise  # N failures in a row: report, rather than retry forever
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def run(self, stop: threading.Event, poll_interval: float = 2.0) -> None:
        """A live loop: catch up, then poll for new heads until ``stop`` is set.

        A failed step is retried one poll interval later, breaker open or not
        (:meth:`CircuitBreaker.wait_after_failure`); :meth:`failed` logs a failure once, when it
        starts, and :meth:`step` once, when it ends.
        """
        while not stop.is_set():
            try:
                result = self.step()
            except TRANSIENT_ERRORS as exc:
                self.failed(exc)
                stop.wait(self.breaker.wait_after_failure(poll_interval))
                continue
            if result.caught_up and result.reorged_to is None:
                stop.wait(poll_interval)


def require_same_mirror(checkpoint: CheckpointRow, chain_id: int, registry: str) -> None:
    """:class:`ChainMismatch` unless the mirror of ``checkpoint`` follows ``registry`` on ``chain_id``."""
    if checkpoint.chain_id != chain_id or hex0x(checkpoint.registry_address) != registry.lower():
        raise ChainMismatch(
            f"this mirror follows chain {checkpoint.chain_id} registry {hex0x(checkpoint.registry_address)}, "
            f"not chain {chain_id} registry {registry.lower()}"
        )


def build_indexer(settings: IndexerSettings, *, writer: bool = False) -> Indexer:
    """Connects, checks chain id and registry code, opens (and migrates) the mirror; with
    ``writer``, also claims it as its one following writer (:meth:`Indexer.claim_writer`)."""
    rpc = RpcClient(settings.rpc_urls, policy=settings.retry_policy)
    registry = settings.require_registry()
    quorum = (
        RpcClient(settings.quorum_rpc_urls, policy=settings.retry_policy)
        if settings.quorum_rpc_urls
        else None
    )
    start = settings.start_block
    if start is None:
        rpc.require_chain_id(settings.chain_id)
        reader = RegistryReader(rpc, registry)
        reader.check_deployment()
        start = reader.deployment_block()
    indexer = Indexer(
        open_mirror(settings.database_url),
        rpc,
        chain_id=settings.chain_id,
        registry=registry,
        start_block=start,
        confirmations=settings.sync_confirmations,
        quorum=quorum,
    )
    try:
        indexer.check_startup()
        if writer:
            indexer.claim_writer()
    except BaseException:
        indexer.close()
        raise
    return indexer
