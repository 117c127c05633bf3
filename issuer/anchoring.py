"""Crash-safe anchoring of one sealed batch: store the signed transaction, then send it.

:meth:`Anchorer.anchor` is a loop over one question, "what does the chain say about this batch?",
so the same code runs a fresh batch and one left behind by a crash at any point:

1. **Reconcile.** Look up the receipt of every transaction stored for the batch's current nonce
   (a replacement shares its nonce, so at most one of them can be mined). Mined: go to 5. None
   mined and the nonce still free: go to 3 with the newest. Otherwise ask the registry
   (``anchorOf``): anchored by us (a transaction this store never saw) means done, found through
   the ``Anchored`` event; anchored by someone else is an :class:`AnchorConflict`, as is a revert
   (or a refusal at estimation) because someone else anchored the root first: the service then
   puts the batch's certificates back to pending, to be secured afresh
   (:meth:`~issuer.service.IssuerService.anchor`).
2. **Sign.** ``TxSender.prepare`` (a revert at estimation fails the batch with the decoded error),
   then the transaction goes into ``anchor_attempts`` *before* anything is sent.
3. **Broadcast** the stored raw transaction (a node that already has it is fine).
4. **Wait** for a receipt. Not mined within ``stuck_after`` seconds: sign a replacement at the same
   nonce with both fee caps raised by at least 12.5% (what nodes demand to replace), store it,
   and go round again; after ``max_replacements`` give up with ``TransactionTimeout`` and leave
   the batch for :meth:`~issuer.service.IssuerService.resume`.
5. **Confirm.** A reverted transaction fails the batch with the decoded custom error; a successful
   one is waited on until it has the configured confirmations.

The nonce is read before the receipts: if the account's nonce has moved past ours and none of our
transactions has a receipt, some other transaction took the nonce and ours can never be mined, so
signing a new round cannot anchor the root twice (and the contract refuses a second anchor anyway).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select

from chain.core.encoding import to_bytes32
from chain.errors import ChainMismatch, RpcError, TransactionFailed
from chain.registry import RegistryWriter
from chain.rpc_facts import RpcFacts
from chain.tx import PreparedTx, TransactionTimeout, TxReceipt
from issuer.errors import AnchorConflict
from issuer.store import AnchorAttempt, Batch, BatchStatus, Store, storable_text, utcnow

log = logging.getLogger(__name__)


class Step(StrEnum):
    """Points where the issuer has just made progress durable; a hook sees each with the batch root."""

    SEALED = "sealed"  # the batch and its membership are committed
    SIGNED = "signed"  # an anchor transaction is stored, not yet broadcast
    BROADCAST = "broadcast"  # the node has the transaction
    CONFIRMED = "confirmed"  # the transaction has its confirmations; receipts are not written yet


Hook = Callable[[Step, str], None]
#: Nodes replace a pending transaction only for at least +10% (geth) to +12.5% (others) on both caps.
FEE_BUMP_DIVISOR = 8


def bump_fee(fee: int) -> int:
    """``fee`` raised by at least 12.5% (and by at least 1 wei)."""
    return fee + max(1, -(-fee // FEE_BUMP_DIVISOR))


def _prepared(attempt: AnchorAttempt) -> PreparedTx:
    return PreparedTx(
        attempt.nonce,
        attempt.raw_tx,
        attempt.tx_hash,
        attempt.gas,
        attempt.max_fee_per_gas,
        attempt.max_priority_fee_per_gas,
    )


class Anchorer:
    """Drives one batch's ``anchor`` transaction to confirmation, crash-safely."""

    def __init__(
        self,
        store: Store,
        registry: RegistryWriter,
        *,
        hook: Hook,
        stuck_after: float = 180.0,
        max_replacements: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.registry = registry
        self.sender = registry.sender
        self._hook = hook
        self.stuck_after = stuck_after
        self.max_replacements = max_replacements
        self._sleep = sleep
        self._clock = clock
        self._now = now

    @property
    def issuer(self) -> str:
        """The account that sends the anchors (and so is the roots' issuer on-chain)."""
        return self.sender.signer.address

    def anchor(self, root: str) -> TxReceipt:
        """Anchors the sealed batch ``root`` (or finds it anchored); returns the confirmed receipt."""
        replacements = 0
        while True:
            batch = self.store.batch(root)
            found = self._reconcile(batch)
            if isinstance(found, TxReceipt):
                if found.status == 1:
                    return self.sender.wait(found.tx_hash)
                if batch.status is not BatchStatus.FAILED:
                    taken_by = self._taken_by(batch)
                    raise self._conflict(batch, taken_by) if taken_by else self._reverted(batch, found)
                found = None  # retrying a batch whose transaction reverted: a new round
            attempt = found or self._sign(batch, nonce=self._fresh_nonce())
            refusal = self._broadcast(attempt)
            if refusal is None and self._await_receipt(attempt):
                continue
            if self._nonce_spent(attempt.nonce):
                continue  # mined meanwhile, or taken by another transaction: reconcile decides
            if replacements == self.max_replacements:
                why = (
                    f"the node refused it ({refusal})"
                    if refusal
                    else f"not mined after {replacements} fee bumps"
                )
                raise TransactionTimeout(
                    f"batch {root}: transaction {attempt.tx_hash}: {why}; `resume` will try again",
                    tx_hash=attempt.tx_hash,
                )
            replacements += 1
            self._replace(batch, attempt)

    # -- reading the chain --------------------------------------------------------------------

    def _reconcile(self, batch: Batch) -> TxReceipt | AnchorAttempt | None:
        if batch.tx_nonce is not None:
            spent = self._nonce_spent(batch.tx_nonce)  # before the receipts: see the module docstring
            attempts = self._round(batch.root, batch.tx_nonce)
            for attempt in attempts:
                receipt = self.sender.receipt(attempt.tx_hash)
                if receipt is not None:
                    return receipt
            if not spent:
                return attempts[0]
        info = self.registry.anchor_of(to_bytes32(batch.root))
        if not info.exists:
            return None
        if info.issuer != self.issuer:
            raise self._conflict(batch, info.issuer)
        fact = RpcFacts(self.registry, self.sender.chain_id).anchor(to_bytes32(batch.root))
        receipt = self.sender.receipt(fact.event.tx_hash) if fact is not None else None
        if fact is None or receipt is None:
            raise ChainMismatch(f"root {batch.root} is anchored, but the node cannot show the transaction")
        log.info("batch %s was already anchored by %s", batch.root, fact.event.tx_hash)
        return receipt

    def _taken_by(self, batch: Batch) -> str | None:
        """The other account that anchored ``batch``'s root, if one did."""
        info = self.registry.anchor_of(to_bytes32(batch.root))
        return info.issuer if info.exists and info.issuer != self.issuer else None

    def _conflict(self, batch: Batch, taken_by: str) -> AnchorConflict:
        conflict = AnchorConflict(f"root {batch.root} is already anchored by {taken_by}", taken_by=taken_by)
        self._record_failure(batch.root, conflict.diagnostics())
        return conflict

    def _nonce_spent(self, nonce: int) -> bool:
        mined = int(self.sender.rpc.call("eth_getTransactionCount", [self.issuer, "latest"]), 16)
        return mined > nonce

    def _round(self, root: str, nonce: int) -> list[AnchorAttempt]:
        """The transactions stored for ``root`` at ``nonce``, newest first."""
        with self.store.reading() as session:
            query = (
                select(AnchorAttempt)
                .where(AnchorAttempt.batch_root == root, AnchorAttempt.nonce == nonce)
                .order_by(AnchorAttempt.signed_at.desc(), AnchorAttempt.max_fee_per_gas.desc())
            )
            return list(session.scalars(query))

    def _fresh_nonce(self) -> int:
        """The account's next nonce, past every nonce an unfinished batch may still use."""
        with self.store.reading() as session:
            unfinished = (BatchStatus.SENDING, BatchStatus.SENT)
            highest = session.scalar(
                select(Batch.tx_nonce).where(Batch.status.in_(unfinished)).order_by(Batch.tx_nonce.desc())
            )
        return max(self.sender.next_nonce(), -1 if highest is None else highest + 1)

    def _await_receipt(self, attempt: AnchorAttempt) -> bool:
        """Waits up to ``stuck_after`` seconds for any transaction of the round to be mined."""
        hashes = [a.tx_hash for a in self._round(attempt.batch_root, attempt.nonce)]
        deadline = self._clock() + self.stuck_after
        while True:
            if any(self.sender.receipt(tx_hash) is not None for tx_hash in hashes):
                return True
            if self._clock() >= deadline:
                return False
            self._sleep(self.sender.poll_interval)

    # -- writing: store first, then send ------------------------------------------------------

    def _calldata(self, batch: Batch) -> bytes:
        return self.registry.abi.encode_call(
            "anchor", to_bytes32(batch.root), batch.leaf_count, batch.manifest_uri
        )

    def _sign(
        self, batch: Batch, *, nonce: int, gas: int | None = None, fees: tuple[int, int] | None = None
    ) -> AnchorAttempt:
        try:
            prepared = self.sender.prepare(
                self.registry.address, self._calldata(batch), nonce=nonce, gas=gas, fees=fees
            )
        except TransactionFailed as exc:
            taken_by = self._taken_by(batch)
            if taken_by:
                raise self._conflict(batch, taken_by) from None
            self._record_failure(batch.root, exc.diagnostics())
            raise
        attempt = AnchorAttempt(
            tx_hash=prepared.tx_hash,
            batch_root=batch.root,
            nonce=prepared.nonce,
            raw_tx=prepared.raw,
            gas=prepared.gas,
            max_fee_per_gas=prepared.max_fee_per_gas,
            max_priority_fee_per_gas=prepared.max_priority_fee_per_gas,
            signed_at=self._now(),
        )
        with self.store.transaction() as session:
            session.add(attempt)
            stored = session.get_one(Batch, batch.root)
            stored.status = BatchStatus.SENDING
            stored.tx_nonce, stored.tx_hash, stored.raw_tx = prepared.nonce, prepared.tx_hash, prepared.raw
            stored.error = None
        self._hook(Step.SIGNED, batch.root)
        return attempt

    def _replace(self, batch: Batch, stuck: AnchorAttempt) -> AnchorAttempt:
        max_fee, tip = self.sender.suggest_fees()
        tip = max(tip, bump_fee(stuck.max_priority_fee_per_gas))
        max_fee = max(max_fee, bump_fee(stuck.max_fee_per_gas), tip)
        log.warning("batch %s: replacing %s (stuck or refused) with higher fees", batch.root, stuck.tx_hash)
        return self._sign(batch, nonce=stuck.nonce, gas=stuck.gas, fees=(max_fee, tip))

    def _broadcast(self, attempt: AnchorAttempt) -> str | None:
        """Sends a stored transaction; returns why the node refused it (underpriced, nonce taken, ...)."""
        try:
            self.sender.broadcast(_prepared(attempt))
        except RpcError as exc:
            log.warning("batch %s: node refused %s: %s", attempt.batch_root, attempt.tx_hash, exc.message)
            return exc.message
        with self.store.transaction() as session:
            stored = session.get_one(Batch, attempt.batch_root)
            if stored.status is BatchStatus.SENDING:
                stored.status = BatchStatus.SENT
                stored.sent_at = stored.sent_at or self._now()
        self._hook(Step.BROADCAST, attempt.batch_root)
        return None

    def _record_failure(self, root: str, error: str) -> None:
        with self.store.transaction() as session:
            stored = session.get_one(Batch, root)
            stored.status = BatchStatus.FAILED
            stored.error = storable_text(error)

    def _reverted(self, batch: Batch, receipt: TxReceipt) -> TransactionFailed:
        """The failure of a mined, reverted anchor, with the contract's custom error."""
        cause = self.sender.reverted(receipt, self.registry.address, self._calldata(batch))
        failure = TransactionFailed(
            f"anchor of batch {batch.root} reverted in block {receipt.block_number}: {cause.message}",
            error_name=cause.error_name,
            error_args=cause.error_args,
            tx_hash=receipt.tx_hash,
        )
        self._record_failure(batch.root, failure.diagnostics())
        return failure
