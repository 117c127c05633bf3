"""TxSender on anvil: fee floor, nonces, confirmations, on-chain reverts, re-broadcast, timeouts."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from chain.accounts import LocalSigner
from chain.contract import Artifact
from chain.dev.devchain import DEV_CHAIN_ID
from chain.errors import TransactionFailed
from chain.registry import RegistryWriter
from chain.rpc import RpcClient
from chain.tx import GWEI, FeePolicy, TransactionTimeout, TxSender
from tests.integration.conftest import Deployed

ROOT = bytes([0xAA]) * 32


def make_sender(rpc: RpcClient, artifact: Artifact, **options: Any) -> TxSender:
    return TxSender(
        rpc, LocalSigner.dev(1), chain_id=DEV_CHAIN_ID, abi=artifact.abi, poll_interval=0.01, **options
    )


@pytest.fixture
def issuer_ready(registry: Deployed) -> Deployed:
    registry.owner.register_issuer(registry.issuer.sender.signer.address, "Uni", "https://uni.example")
    return registry


def test_priority_fee_floor_is_applied(rpc: RpcClient, artifact: Artifact, issuer_ready: Deployed) -> None:
    sender = make_sender(rpc, artifact, fees=FeePolicy(min_priority_fee_wei=30 * GWEI))
    receipt = RegistryWriter(sender, issuer_ready.address, artifact).anchor(ROOT, 1)
    tx = rpc.call("eth_getTransactionByHash", [receipt.tx_hash])
    assert int(tx["maxPriorityFeePerGas"], 16) == 30 * GWEI
    block = rpc.call("eth_getBlockByNumber", [hex(receipt.block_number), False])
    assert int(tx["maxFeePerGas"], 16) >= int(block["baseFeePerGas"], 16) + 30 * GWEI


def test_waits_for_the_requested_confirmations(
    rpc: RpcClient, artifact: Artifact, issuer_ready: Deployed
) -> None:
    mined: list[int] = []

    def mine_one(_: float) -> None:  # every poll, one more block lands on top
        rpc.call("anvil_mine", ["0x1"])
        mined.append(1)

    sender = make_sender(rpc, artifact, confirmations=4, sleep=mine_one)
    receipt = RegistryWriter(sender, issuer_ready.address, artifact).anchor(ROOT, 1)
    assert receipt.status == 1
    assert rpc.block_number() - receipt.block_number + 1 >= 4
    assert len(mined) == 3


def test_consecutive_transactions_take_consecutive_nonces(
    rpc: RpcClient, artifact: Artifact, issuer_ready: Deployed
) -> None:
    sender = make_sender(rpc, artifact)
    abi = artifact.abi
    rpc.call("evm_setAutomine", [False])
    try:
        first = sender.prepare(issuer_ready.address, abi.encode_call("anchor", ROOT, 1, ""), gas=200_000)
        sender.broadcast(first)
        second = sender.prepare(
            issuer_ready.address, abi.encode_call("anchor", bytes([1]) * 32, 1, ""), gas=200_000
        )
        sender.broadcast(second)
        sender.broadcast(second)  # a re-send (say, after a crash) is accepted, not an error
    finally:
        rpc.call("evm_setAutomine", [True])
    rpc.call("anvil_mine", ["0x1"])
    assert second.nonce == first.nonce + 1
    assert sender.wait(first.tx_hash).status == 1
    assert sender.wait(second.tx_hash).status == 1


def test_on_chain_revert_is_decoded_from_a_replay(
    rpc: RpcClient, artifact: Artifact, issuer_ready: Deployed
) -> None:
    writer = RegistryWriter(make_sender(rpc, artifact), issuer_ready.address, artifact)
    writer.anchor(ROOT, 1)
    data = artifact.abi.encode_call("anchor", ROOT, 1, "")
    prepared = writer.sender.prepare(issuer_ready.address, data, gas=200_000)  # skips estimation
    writer.sender.broadcast(prepared)
    assert writer.sender.wait(prepared.tx_hash).status == 0
    with pytest.raises(TransactionFailed) as caught:
        writer.sender.transact(issuer_ready.address, data, gas=200_000)
    assert caught.value.error_name == "RootAlreadyAnchored"
    assert caught.value.tx_hash is not None


def test_unmined_transaction_times_out(rpc: RpcClient, artifact: Artifact, issuer_ready: Deployed) -> None:
    ticks = itertools.count()
    clock: Callable[[], float] = lambda: float(next(ticks))  # noqa: E731
    sender = make_sender(rpc, artifact, timeout=5.0, clock=clock)
    rpc.call("evm_setAutomine", [False])
    try:
        with pytest.raises(TransactionTimeout, match="not confirmed within 5s"):
            RegistryWriter(sender, issuer_ready.address, artifact).anchor(ROOT, 1)
    finally:
        rpc.call("evm_setAutomine", [True])
