"""End to end on anvil: certificates anchored by the real contract, verified through RpcFacts and
the ``finvault verify`` command, against the contract's own ``isValid``."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chain.contract import Artifact
from chain.core.encoding import hex0x
from chain.core.receipt import Receipt
from chain.core.verify import CheckName, Code, Policy, Status, verify
from chain.dev.devchain import DevChain
from chain.keys import generate_private_key
from chain.registry import RevocationReason
from chain.rpc import RpcClient
from chain.rpc_facts import RpcFacts
from tests.factories import Batch, make_batch
from tests.integration.conftest import Deployed

NOW = datetime(2026, 11, 23, tzinfo=UTC)
FINVAULT = str(Path(sys.executable).with_name("finvault"))


class Issued:
    def __init__(self, registry: Deployed, batch: Batch, receipts: list[Receipt], facts: RpcFacts) -> None:
        self.registry = registry
        self.batch = batch
        self.receipts = receipts
        self.facts = facts


@pytest.fixture
def issued(registry: Deployed, rpc: RpcClient, artifact: Artifact) -> Issued:
    issuer = registry.issuer
    registry.owner.register_issuer(issuer.sender.signer.address, "Example University", "https://uni.example")
    batch = make_batch(4, key=generate_private_key("ed25519"), seed="onchain")
    info = batch.key_info
    issuer.add_key(info.key_id, int(info.algorithm), info.der)
    anchored = issuer.anchor(batch.tree.root, len(batch.documents), "ipfs://manifest")
    receipts = [
        batch.receipt(
            i,
            tx_hash=anchored.tx_hash,
            block_number=anchored.block_number,
            registry=registry.address,
            issuer=issuer.sender.signer.address,
        )
        for i in range(len(batch.documents))
    ]
    return Issued(registry, batch, receipts, RpcFacts(registry.owner, 31337))


def mine(rpc: RpcClient, blocks: int) -> None:
    rpc.call("anvil_mine", [hex(blocks)])


def test_pending_until_finalized_then_valid_with_evidence(issued: Issued, rpc: RpcClient) -> None:
    receipt = issued.receipts[0]
    pending = verify(receipt, issued.facts, NOW)
    assert pending.status is Status.PENDING  # anvil finalizes at head - 64
    assert pending.reasons == (Code.NOT_FINAL,)

    mine(rpc, 64)
    verdict = verify(receipt, issued.facts, NOW)
    assert verdict.status is Status.VALID, verdict.to_dict()
    assert verdict.anchor is not None
    assert verdict.anchor.tx_hash == receipt.anchor.tx_hash
    block = rpc.call("eth_getBlockByNumber", [hex(receipt.anchor.block_number), False])
    assert verdict.anchor.block_hash == block["hash"]
    assert verdict.anchor.confirmations == rpc.block_number() - receipt.anchor.block_number + 1
    tx_receipt = rpc.call("eth_getTransactionReceipt", [receipt.anchor.tx_hash])
    assert verdict.anchor.log_index == int(tx_receipt["logs"][0]["logIndex"], 16)
    assert verdict.issuer is not None
    assert verdict.issuer.name == "Example University"


def test_revocations_on_chain(issued: Issued, rpc: RpcClient) -> None:
    issuer = issued.registry.issuer
    tree = issued.batch.tree
    first = bytes.fromhex(issued.receipts[0].proof.leaf[2:])
    issuer.revoke_leaf(first, tree.root, tree.proof(first), RevocationReason.SUPERSEDED)
    mine(rpc, 64)
    revoked = verify(issued.receipts[0], issued.facts, NOW)
    assert revoked.status is Status.REVOKED
    assert revoked.reasons == (Code.LEAF_REVOKED,)
    assert revoked.revocation is not None
    assert revoked.revocation.reason == RevocationReason.SUPERSEDED
    assert verify(issued.receipts[1], issued.facts, NOW).status is Status.VALID

    issuer.revoke_root(tree.root, RevocationReason.KEY_COMPROMISE)
    assert verify(issued.receipts[1], issued.facts, NOW).reasons == (Code.ROOT_REVOKED,)


def test_key_and_issuer_status(issued: Issued, rpc: RpcClient) -> None:
    issued.registry.issuer.revoke_key(issued.batch.key_info.key_id)  # after the anchor: still valid
    mine(rpc, 64)
    assert verify(issued.receipts[0], issued.facts, NOW).status is Status.VALID
    issued.registry.owner.set_issuer_active(issued.registry.issuer.sender.signer.address, False)
    verdict = verify(issued.receipts[0], issued.facts, NOW)
    assert verdict.status is Status.INVALID
    assert verdict.reasons == (Code.ISSUER_INACTIVE,)


def test_agrees_with_the_contracts_is_valid(issued: Issued, rpc: RpcClient) -> None:
    mine(rpc, 64)
    policy = Policy(use_finalized_tag=False)
    tree = issued.batch.tree
    issued.registry.issuer.revoke_leaf(tree.leaves[2], tree.root, tree.proof(tree.leaves[2]), 0)
    for receipt in issued.receipts:
        leaf = bytes.fromhex(receipt.proof.leaf[2:])
        on_chain = issued.facts.reader.is_valid(
            leaf, tree.root, [bytes.fromhex(p[2:]) for p in receipt.proof.path]
        )
        assert (verify(receipt, issued.facts, NOW, policy).status is Status.VALID) == on_chain


def test_unknown_root_and_foreign_registry(issued: Issued, registry: Deployed) -> None:
    stranger = make_batch(1, seed="never anchored")
    receipt = stranger.receipt(0, tx_hash=hex0x(bytes(32)), block_number=1, registry=registry.address)
    assert Code.NOT_ANCHORED in verify(receipt, issued.facts, NOW).reasons
    elsewhere = issued.receipts[0].to_json_dict()
    elsewhere["anchor"]["registry"] = "0x" + "12" * 20
    assert next(c for c in verify(elsewhere, issued.facts, NOW).checks if c.name is CheckName.CHAIN).code is (
        Code.WRONG_CHAIN
    )


@pytest.mark.slow(seconds=3)
def test_finvault_verify_command(issued: Issued, anvil: DevChain, rpc: RpcClient, tmp_path: Path) -> None:
    mine(rpc, 64)
    files = []
    for i, receipt in enumerate(issued.receipts[:2]):
        path = tmp_path / f"cert-{i}.json"
        path.write_text(receipt.to_json())
        files.append(str(path))
    base = [FINVAULT, "verify", *files, "--rpc", anvil.rpc_url, "--registry", issued.registry.address]
    ok = subprocess.run([*base, "--json"], capture_output=True, text=True, check=False, timeout=60)
    assert ok.returncode == 0, ok.stderr
    lines = [json.loads(line) for line in ok.stdout.splitlines()]
    assert [line["status"] for line in lines] == ["VALID", "VALID"]

    tree = issued.batch.tree
    issued.registry.issuer.revoke_root(tree.root, RevocationReason.PRIVILEGE_WITHDRAWN)
    revoked = subprocess.run(base, capture_output=True, text=True, check=False, timeout=60)
    assert revoked.returncode == 1  # anything but VALID
    assert "REVOKED" in revoked.stdout
    assert "[ROOT_REVOKED]" in revoked.stdout
    assert "batch revoked: privilegeWithdrawn (9)" in revoked.stdout  # the RFC 5280 name, not "9" alone

    tampered = tmp_path / "tampered.json"
    tampered.write_text(issued.receipts[0].to_json().replace("Student 0", "Student 9"))
    invalid = subprocess.run(
        [*base[:2], str(tampered), *base[4:]], capture_output=True, text=True, check=False, timeout=60
    )
    assert invalid.returncode == 1
    assert "DIGEST_MISMATCH" in invalid.stdout

    # A credential that cannot be canonicalized, beside a well-formed proof (it used to reach the
    # proof's canonicalization and end the command in a traceback): a verdict, like any other.
    hostile = issued.receipts[0].to_json_dict()
    hostile["credential"]["credentialSubject"]["credits"] = 2**53 + 1
    unsafe = tmp_path / "unsafe-integer.json"
    unsafe.write_text(json.dumps(hostile))
    malformed = subprocess.run(
        [*base[:2], str(unsafe), *base[4:]], capture_output=True, text=True, check=False, timeout=60
    )
    assert malformed.returncode == 1, malformed.stderr
    assert "[MALFORMED]" in malformed.stdout
    assert "Traceback" not in malformed.stderr
