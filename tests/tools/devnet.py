"""What the soak and the oracle both set up on a fresh anvil: senders, a registry, a node.

A binding from :func:`writer` caches no nonce: after a reorg or a revert the chain's nonce is
lower than any cached one, so the tools make a new binding for every transaction they send.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from chain.accounts import LocalSigner
from chain.contract import Artifact
from chain.dev.devchain import DEV_CHAIN_ID
from chain.registry import RegistryWriter, deploy_registry
from chain.rpc import RpcClient
from chain.tx import TxSender
from tests.tools.node_process import NodeProcess

OWNER, ISSUER = 0, 1


def sender(rpc: RpcClient, artifact: Artifact, account: int) -> TxSender:
    """Sends from anvil dev account ``account``."""
    return TxSender(
        rpc, LocalSigner.dev(account), chain_id=DEV_CHAIN_ID, abi=artifact.abi, poll_interval=0.01
    )


def writer(rpc: RpcClient, artifact: Artifact, registry: str, account: int) -> RegistryWriter:
    """A new binding to ``registry`` for ``account`` (no cached nonce)."""
    return RegistryWriter(sender(rpc, artifact, account), registry, artifact)


def deploy(rpc: RpcClient, artifact: Artifact) -> tuple[str, int]:
    """A fresh registry owned by dev account :data:`OWNER`: its address and deployment block."""
    deployed = deploy_registry(sender(rpc, artifact, OWNER), artifact=artifact)
    assert deployed.contract_address is not None
    return deployed.contract_address.lower(), deployed.block_number


def node_process(rpc_url: str, registry: str, directory: Path, env: Mapping[str, str]) -> NodeProcess:
    """A ``finvault node`` (not started yet) on a SQLite mirror in ``directory``, logging there."""
    return NodeProcess(
        rpc_url=rpc_url,
        registry=registry,
        database_url=f"sqlite:///{directory}/mirror.db",
        env=env,
        log_path=directory / "node.log",
    )
