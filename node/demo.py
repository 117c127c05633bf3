"""The end-to-end demo behind ``./scripts/demo``: a throwaway dev chain with FinVault on it.

Each run starts from scratch (anvil keeps its state in memory): deploy the registry, register a
demo issuer and its signing key, issue and anchor a batch of certificates, write their receipts,
and verify every receipt straight against the chain. ``.finvault/demo/env.json`` is written once
everything is ready, so other tools can attach.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from chain.canonical import salt_document
from chain.contract import hex0x, load_artifact
from chain.devchain import DEV_CHAIN_ID, DevChain, free_port, wait_for_shutdown
from chain.errors import FinVaultError
from chain.issuance import batch_receipts, seal_batch, sign_document
from chain.receipt import Anchor
from chain.registry import RegistryReader, RegistryWriter, deploy_registry
from chain.rpc import RpcClient
from chain.rpc_facts import RpcFacts
from chain.signer import LocalSigner
from chain.signing import encrypt_private_key, generate_private_key, public_key_info
from chain.tx import TxSender
from chain.verify import Status, verify

DEMO_ISSUER_NAME = "FinVault Demo University"
DEMO_ISSUER_URI = "https://demo-university.example/finvault"
OWNER_ACCOUNT = 0
ISSUER_ACCOUNT = 1
#: anvil reports blocks older than head - 64 as finalized; mining past that makes anchors final.
ANVIL_FINALITY_DEPTH = 64
DEMO_STUDENTS = [
    ("cert-0001", "Ada Lovelace", "MSc Mathematics", "Distinction"),
    ("cert-0002", "Alan Turing", "PhD Computer Science", "Pass"),
    ("cert-0003", "Grace Hopper", "BSc Physics", "First Class"),
]


@dataclass(frozen=True)
class DemoResult:
    rpc_url: str
    chain_id: int
    registry: str
    issuer: str
    key_id: str
    receipts_dir: Path


def demo_credential(name: str, degree: str, grade: str) -> dict[str, object]:
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential", "DegreeCredential"],
        "issuer": {"id": "did:web:demo-university.example", "name": DEMO_ISSUER_NAME},
        "validFrom": "2026-07-01T00:00:00Z",
        "credentialSubject": {"name": name, "degree": degree, "grade": grade},
    }


def _port_or_free(preferred: int) -> int:
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", preferred))
        return preferred
    except OSError:
        return free_port()


def _write_secret(path: Path, data: bytes) -> None:
    path.touch(mode=0o600)
    path.write_bytes(data)


def run_demo(
    state_dir: Path, *, chain_port: int = 8545, check: bool = False, say: Callable[[str], None] = print
) -> DemoResult:
    """Runs the demo; in check mode returns once verified, else serves until Ctrl-C/SIGTERM."""
    if state_dir.exists():
        shutil.rmtree(state_dir)
    key_dir, receipts_dir = state_dir / "issuer", state_dir / "receipts"
    key_dir.mkdir(parents=True)
    receipts_dir.mkdir()

    with DevChain(port=_port_or_free(chain_port), log_path=state_dir / "anvil.log") as chain:
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

        issuer_registry = RegistryWriter(sender(ISSUER_ACCOUNT), registry, artifact)
        issuer = issuer_registry.sender.signer.address
        RegistryWriter(owner, registry, artifact).register_issuer(issuer, DEMO_ISSUER_NAME, DEMO_ISSUER_URI)
        say(f"issuer: registered {issuer} as {DEMO_ISSUER_NAME!r}")

        key = generate_private_key("ed25519")
        passphrase = secrets.token_urlsafe(24)
        _write_secret(key_dir / "passphrase", passphrase.encode() + b"\n")
        _write_secret(key_dir / "signing-key.pem", encrypt_private_key(key, passphrase))
        info = public_key_info(key)
        issuer_registry.add_key(info.key_id, int(info.algorithm), info.der)
        say(f"issuer key: {hex0x(info.key_id)} ({info.algorithm.label}) registered on-chain")

        signed = [
            sign_document(salt_document(demo_credential(name, degree, grade), os.urandom), key)
            for _, name, degree, grade in DEMO_STUDENTS
        ]
        tree = seal_batch(signed)
        anchored = issuer_registry.anchor(tree.root, len(signed))
        say(
            f"batch: {len(signed)} certificates anchored, root {hex0x(tree.root)} ({anchored.gas_used:,} gas)"
        )
        anchor = Anchor(
            chainId=DEV_CHAIN_ID,
            registry=registry,
            issuer=issuer,
            txHash=anchored.tx_hash,
            blockNumber=anchored.block_number,
        )
        for (cert_id, *_), receipt in zip(DEMO_STUDENTS, batch_receipts(tree, signed, anchor), strict=True):
            (receipts_dir / f"{cert_id}.json").write_text(receipt.to_json())
        say(f"receipts: {len(signed)} written to {receipts_dir}")

        rpc.call("anvil_mine", [hex(ANVIL_FINALITY_DEPTH)])
        facts = RpcFacts(RegistryReader(rpc, registry, artifact), DEV_CHAIN_ID)
        now = datetime.now(UTC)
        for path in sorted(receipts_dir.glob("*.json")):
            verdict = verify(path.read_bytes(), facts, now)
            if verdict.status is not Status.VALID:
                raise FinVaultError(f"demo check failed: {path.name} is {verdict.status} {verdict.reasons}")
            say(f"check: {path.name} {verdict.status} through RPC facts")
        forged = (receipts_dir / "cert-0001.json").read_text().replace("Distinction", "Pass")
        if verify(forged, facts, now).status is not Status.INVALID:
            raise FinVaultError("demo check failed: a tampered receipt was not rejected")
        say("check: a tampered copy is INVALID (DIGEST_MISMATCH)")

        result = DemoResult(chain.rpc_url, DEV_CHAIN_ID, registry, issuer, hex0x(info.key_id), receipts_dir)
        env = {
            "rpc_url": result.rpc_url,
            "chain_id": result.chain_id,
            "registry": result.registry,
            "receipts_dir": str(receipts_dir.resolve()),
        }
        (state_dir / "env.json").write_text(json.dumps(env, indent=2) + "\n")
        say(f"ready: {state_dir / 'env.json'}")
        if not check:
            say(f"try: .venv/bin/finvault verify {receipts_dir}/*.json --rpc {chain.rpc_url} \\")
            say(f"       --registry {registry}")
            say("serving until Ctrl-C")
            wait_for_shutdown()
        return result
