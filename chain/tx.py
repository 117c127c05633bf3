"""Sending transactions: nonces, EIP-1559 fees, gas estimation, receipts with confirmations.

The steps are separate (:meth:`TxSender.prepare`, :meth:`TxSender.broadcast`,
:meth:`TxSender.wait`) so a crash-safe caller can persist a signed transaction before it is sent
and resume waiting on it after a restart. Reverts come back as
:class:`~chain.errors.TransactionFailed` carrying the decoded custom error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chain.contract import ContractAbi, DecodedError
from chain.core.hashing import keccak256
from chain.errors import FinVaultError, RpcError, TransactionFailed
from chain.rpc import RpcClient

if TYPE_CHECKING:  # eth_account is heavy; verification-only processes never sign
    from chain.accounts import Signer

GWEI = 10**9
GAS_HEADROOM = 1.2
#: How geth, anvil and others say "this exact transaction is already in my pool".
ALREADY_KNOWN = ("already known", "already imported", "known transaction")


class TransactionTimeout(TransactionFailed):
    """A sent transaction was not confirmed within the sender's timeout; it may still be mined later."""

    code = "transaction_timeout"


@dataclass(frozen=True)
class FeePolicy:
    """EIP-1559 fees: tip = max(node suggestion, floor); cap = 2 x base fee + tip."""

    min_priority_fee_wei: int = 0
    base_fee_multiplier: int = 2


@dataclass(frozen=True)
class PreparedTx:
    """A signed transaction, ready to be stored and broadcast."""

    nonce: int
    raw: bytes
    tx_hash: str
    gas: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


@dataclass(frozen=True)
class TxReceipt:
    """A mined transaction's receipt (``status`` 1: success, 0: reverted), numbers decoded from hex."""

    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    gas_used: int
    effective_gas_price: int
    contract_address: str | None
    logs: tuple[dict[str, Any], ...]

    @classmethod
    def from_rpc(cls, raw: dict[str, Any]) -> TxReceipt:
        """Parses an ``eth_getTransactionReceipt`` result."""
        return cls(
            tx_hash=raw["transactionHash"],
            block_number=int(raw["blockNumber"], 16),
            block_hash=raw["blockHash"],
            status=int(raw["status"], 16),
            gas_used=int(raw["gasUsed"], 16),
            effective_gas_price=int(raw.get("effectiveGasPrice", "0x0"), 16),
            contract_address=(raw.get("contractAddress") or None),
            logs=tuple(raw.get("logs", [])),
        )


def revert_data(error: RpcError) -> bytes | None:
    """Extracts revert bytes from a node's error (``data`` may be hex or ``{"data": hex}``)."""
    data = error.data
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return None


class TxSender:
    """Signs and sends transactions from one account and waits for N confirmations."""

    def __init__(
        self,
        rpc: RpcClient,
        signer: Signer,
        *,
        chain_id: int,
        abi: ContractAbi | None = None,
        fees: FeePolicy | None = None,
        confirmations: int = 1,
        poll_interval: float = 1.0,
        timeout: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if confirmations < 1:
            raise FinVaultError("confirmations must be at least 1")
        self.rpc = rpc
        self.signer = signer
        self.chain_id = chain_id
        self.abi = abi
        self.fees = fees or FeePolicy()
        self.confirmations = confirmations
        self.poll_interval = poll_interval
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._next_nonce: int | None = None

    # -- building ---------------------------------------------------------------------------------

    def _describe_revert(self, data: bytes | None) -> DecodedError | None:
        return self.abi.decode_error(data) if (self.abi and data) else None

    def _failed(self, what: str, data: bytes | None, tx_hash: str | None = None) -> TransactionFailed:
        decoded = self._describe_revert(data)
        reason = str(decoded) if decoded else ("0x" + data.hex() if data else "no revert data")
        return TransactionFailed(
            f"{what} reverted: {reason}",
            error_name=decoded.name if decoded else None,
            error_args=decoded.args if decoded else None,
            tx_hash=tx_hash,
        )

    def _call_object(self, to: str | None, data: bytes, value: int) -> dict[str, Any]:
        call: dict[str, Any] = {"from": self.signer.address, "data": "0x" + data.hex(), "value": hex(value)}
        if to is not None:
            call["to"] = to
        return call

    def estimate_gas(self, to: str | None, data: bytes, value: int = 0) -> int:
        """``eth_estimateGas`` for the call; a revert raises :class:`TransactionFailed`, error decoded."""
        try:
            return int(self.rpc.call("eth_estimateGas", [self._call_object(to, data, value)]), 16)
        except RpcError as exc:
            data_bytes = revert_data(exc)
            if data_bytes is not None or "revert" in exc.message.lower():
                raise self._failed("transaction", data_bytes) from None
            raise

    def suggest_fees(self) -> tuple[int, int]:
        """Returns ``(max_fee_per_gas, max_priority_fee_per_gas)`` in wei."""
        block = self.rpc.call("eth_getBlockByNumber", ["latest", False])
        base_fee = int(block.get("baseFeePerGas") or "0x0", 16)
        try:
            suggested = int(self.rpc.call("eth_maxPriorityFeePerGas"), 16)
        except RpcError:
            suggested = 0
        tip = max(suggested, self.fees.min_priority_fee_wei)
        return base_fee * self.fees.base_fee_multiplier + tip, tip

    def next_nonce(self) -> int:
        """The node's pending nonce, or past it if this sender has broadcast more than the node shows yet."""
        pending = int(self.rpc.call("eth_getTransactionCount", [self.signer.address, "pending"]), 16)
        if self._next_nonce is None or pending > self._next_nonce:
            self._next_nonce = pending
        return self._next_nonce

    def prepare(
        self,
        to: str | None,
        data: bytes,
        *,
        value: int = 0,
        gas: int | None = None,
        nonce: int | None = None,
        fees: tuple[int, int] | None = None,
    ) -> PreparedTx:
        """Estimates, prices and signs a transaction without sending it."""
        gas = gas if gas is not None else int(self.estimate_gas(to, data, value) * GAS_HEADROOM)
        max_fee, tip = fees if fees is not None else self.suggest_fees()
        nonce = nonce if nonce is not None else self.next_nonce()
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "gas": gas,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
            "value": value,
            "data": data,
        }
        if to is not None:
            from eth_utils.address import to_checksum_address  # eth_utils loads in ~0.1 s: on use

            tx["to"] = to_checksum_address(to)
        raw = self.signer.sign_transaction(tx)
        return PreparedTx(nonce, raw, "0x" + keccak256(raw).hex(), gas, max_fee, tip)

    # -- sending and waiting ------------------------------------------------------------------------

    def broadcast(self, prepared: PreparedTx) -> str:
        """Sends the signed transaction (a node that already has it is fine); returns its hash."""
        try:
            self.rpc.call("eth_sendRawTransaction", ["0x" + prepared.raw.hex()])
        except RpcError as exc:
            if not any(phrase in exc.message.lower() for phrase in ALREADY_KNOWN):
                raise  # a re-send of the same signed transaction (after a crash, say) is fine
        self._next_nonce = max(self._next_nonce or 0, prepared.nonce + 1)
        return prepared.tx_hash

    def receipt(self, tx_hash: str) -> TxReceipt | None:
        """The receipt of ``tx_hash``, or None while it is not mined (or the node does not know it)."""
        raw = self.rpc.call("eth_getTransactionReceipt", [tx_hash])
        return TxReceipt.from_rpc(raw) if raw else None

    def wait(self, tx_hash: str, confirmations: int | None = None) -> TxReceipt:
        """Waits until ``tx_hash`` is mined and buried under ``confirmations`` blocks (counting its
        own). A receipt that a reorg moves or removes is waited for again."""
        needed = confirmations if confirmations is not None else self.confirmations
        deadline = self._clock() + self.timeout
        while True:
            found = self.receipt(tx_hash)
            if found is not None and self.rpc.block_number() - found.block_number + 1 >= needed:
                again = self.receipt(tx_hash)  # still there, in the same block, after the wait?
                if again is not None and again.block_hash == found.block_hash:
                    return again
            if self._clock() >= deadline:
                raise TransactionTimeout(
                    f"{tx_hash} not confirmed within {self.timeout:.0f}s", tx_hash=tx_hash
                )
            self._sleep(self.poll_interval)

    def transact(self, to: str | None, data: bytes, *, value: int = 0, gas: int | None = None) -> TxReceipt:
        """Prepare, broadcast and wait; a reverted transaction raises with its decoded error."""
        prepared = self.prepare(to, data, value=value, gas=gas)
        self.broadcast(prepared)
        found = self.wait(prepared.tx_hash)
        if found.status != 1:
            raise self.reverted(found, to, data, value)
        return found

    def reverted(self, receipt: TxReceipt, to: str | None, data: bytes, value: int = 0) -> TransactionFailed:
        """The failure of a mined, reverted transaction, with its decoded custom error."""
        revert = self._explain_revert(to, data, value, receipt.block_number)
        return self._failed(f"transaction {receipt.tx_hash}", revert, receipt.tx_hash)

    def _explain_revert(self, to: str | None, data: bytes, value: int, block: int) -> bytes | None:
        """Re-runs a mined, reverted call with eth_call at its block to recover the revert data."""
        try:
            self.rpc.call("eth_call", [self._call_object(to, data, value), hex(block)])
        except RpcError as exc:
            return revert_data(exc)
        return None
