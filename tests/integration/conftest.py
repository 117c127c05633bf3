"""Fixtures on a real anvil chain: one anvil per test session on a free 127.0.0.1 port.

Every test that touches the chain runs inside an ``evm_snapshot``/``evm_revert`` pair, so tests
see the same starting chain (same block numbers, same addresses) whatever ran before them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chain.contract import Artifact, load_artifact
from chain.devchain import DEV_CHAIN_ID, DevChain
from chain.registry import RegistryWriter, deploy_registry
from chain.rpc import RpcClient
from chain.signer import LocalSigner
from chain.tx import TxSender

OWNER, ISSUER, OTHER_ISSUER, STRANGER = 0, 1, 2, 3


@pytest.fixture(scope="session")
def anvil() -> Iterator[DevChain]:
    chain = DevChain().start()
    pid = chain.pid
    try:
        yield chain
    finally:
        chain.stop()
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # stopped by PID: nothing left behind


@pytest.fixture(scope="session")
def rpc(anvil: DevChain) -> Iterator[RpcClient]:
    with RpcClient([anvil.rpc_url]) as client:
        yield client


@pytest.fixture(scope="session")
def artifact() -> Artifact:
    return load_artifact()


@pytest.fixture
def clean_chain(rpc: RpcClient) -> Iterator[None]:
    snapshot = rpc.call("evm_snapshot")
    try:
        yield
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True


@pytest.fixture
def sender(rpc: RpcClient, artifact: Artifact, clean_chain: None) -> Callable[[int], TxSender]:
    """``sender(i)`` sends from anvil dev account ``i``."""

    def make(account: int) -> TxSender:
        return TxSender(
            rpc, LocalSigner.dev(account), chain_id=DEV_CHAIN_ID, abi=artifact.abi, poll_interval=0.02
        )

    return make


@dataclass
class Deployed:
    address: str
    block: int
    owner: RegistryWriter
    issuer: RegistryWriter
    other_issuer: RegistryWriter
    stranger: RegistryWriter
    as_account: Callable[[int], RegistryWriter]


@pytest.fixture
def registry(sender: Callable[[int], TxSender], artifact: Artifact) -> Deployed:
    """A fresh FinVaultRegistry owned by dev account 0, with bindings for the usual actors."""
    receipt = deploy_registry(sender(OWNER), artifact=artifact)
    assert receipt.contract_address is not None
    address = receipt.contract_address.lower()

    def as_account(account: int) -> RegistryWriter:
        return RegistryWriter(sender(account), address, artifact)

    return Deployed(
        address=address,
        block=receipt.block_number,
        owner=as_account(OWNER),
        issuer=as_account(ISSUER),
        other_issuer=as_account(OTHER_ISSUER),
        stranger=as_account(STRANGER),
        as_account=as_account,
    )


#: The installed command, as users run it.
FINVAULT = str(Path(sys.executable).with_name("finvault"))


def run_finvault(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``finvault ARGS`` in a subprocess, with no FINVAULT_* settings but ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FINVAULT_")}
    return subprocess.run(
        [FINVAULT, *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=timeout,
        check=False,
    )
