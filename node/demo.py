"""The end-to-end demo behind ``./scripts/demo``: a throwaway dev chain with FinVault on it.

Each run starts from scratch (anvil keeps its state in memory) and writes
``.finvault/demo/env.json`` once everything is ready, so other tools can attach to it.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chain.contract import hex0x, load_artifact
from chain.devchain import DEV_CHAIN_ID, DevChain, free_port, wait_for_shutdown
from chain.errors import FinVaultError
from chain.registry import RegistryWriter, deploy_registry
from chain.rpc import RpcClient
from chain.signer import LocalSigner
from chain.signing import encrypt_private_key, generate_private_key, public_key_info
from chain.tx import TxSender

DEMO_ISSUER_NAME = "FinVault Demo University"
DEMO_ISSUER_URI = "https://demo-university.example/finvault"
OWNER_ACCOUNT = 0
ISSUER_ACCOUNT = 1


@dataclass(frozen=True)
class DemoResult:
    rpc_url: str
    chain_id: int
    registry: str
    issuer: str
    key_id: str


def _port_or_free(preferred: int) -> int:
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", preferred))
        return preferred
    except OSError:
        return free_port()


def run_demo(
    state_dir: Path, *, chain_port: int = 8545, check: bool = False, say: Callable[[str], None] = print
) -> DemoResult:
    """Runs the demo; in check mode returns once verified, else serves until Ctrl-C/SIGTERM."""
    if state_dir.exists():
        shutil.rmtree(state_dir)
    (state_dir / "issuer").mkdir(parents=True)

    port = _port_or_free(chain_port)
    with DevChain(port=port, log_path=state_dir / "anvil.log") as chain:
        say(f"dev chain: anvil on {chain.rpc_url} (chain id {DEV_CHAIN_ID})")
        rpc = RpcClient([chain.rpc_url])
        rpc.require_chain_id(DEV_CHAIN_ID)
        artifact = load_artifact()

        def sender(account: int) -> TxSender:
            return TxSender(
                rpc, LocalSigner.dev(account), chain_id=DEV_CHAIN_ID, abi=artifact.abi, poll_interval=0.05
            )

        owner = sender(OWNER_ACCOUNT)
        deployed = deploy_registry(owner, artifact=artifact)
        assert deployed.contract_address is not None
        registry = deployed.contract_address.lower()
        say(f"registry: deployed at {registry} in block {deployed.block_number} ({deployed.gas_used:,} gas)")

        issuer_sender = sender(ISSUER_ACCOUNT)
        issuer = issuer_sender.signer.address
        RegistryWriter(owner, registry, artifact).register_issuer(issuer, DEMO_ISSUER_NAME, DEMO_ISSUER_URI)
        say(f"issuer: registered {issuer} as {DEMO_ISSUER_NAME!r}")

        key = generate_private_key("ed25519")
        passphrase = secrets.token_urlsafe(24)
        key_dir = state_dir / "issuer"
        (key_dir / "passphrase").touch(mode=0o600)
        (key_dir / "passphrase").write_text(passphrase + "\n")
        (key_dir / "signing-key.pem").touch(mode=0o600)
        (key_dir / "signing-key.pem").write_bytes(encrypt_private_key(key, passphrase))
        info = public_key_info(key)
        issuer_registry = RegistryWriter(issuer_sender, registry, artifact)
        issuer_registry.add_key(info.key_id, int(info.algorithm), info.der)
        say(f"issuer key: {hex0x(info.key_id)} ({info.algorithm.label}) registered on-chain")

        # Check through the contract's own views that the chain holds what we sent.
        issuer_info = issuer_registry.issuer_of(issuer)
        key_info = issuer_registry.key_of(info.key_id)
        if not (issuer_info.active and key_info.issuer == issuer and key_info.revoked_block == 0):
            raise FinVaultError("demo check failed: issuer or key not live on-chain", code="demo_failed")
        say("check: issuer active and key live, read back from the chain")

        result = DemoResult(chain.rpc_url, DEV_CHAIN_ID, registry, issuer, hex0x(info.key_id))
        env = {"rpc_url": result.rpc_url, "chain_id": result.chain_id, "registry": result.registry}
        (state_dir / "env.json").write_text(json.dumps(env, indent=2) + "\n")
        say(f"ready: {state_dir / 'env.json'}")
        if not check:
            say("serving until Ctrl-C")
            wait_for_shutdown()
        return result
