"""The issuer service on a real anvil chain and a real SQLite file: anchoring, crashes, stuck and
reverted transactions. After every scenario the root is anchored exactly once on-chain."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from chain.accounts import LocalSigner
from chain.core.encoding import to_bytes32
from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.errors import TransactionFailed
from chain.keys import decrypt_private_key
from chain.registry import RegistryWriter
from chain.rpc import RpcClient
from chain.tx import TransactionTimeout, TxSender
from issuer.anchoring import Step, bump_fee
from issuer.errors import AnchorConflict
from issuer.service import IssuerConfig, IssuerService
from issuer.store import AnchorAttempt, Batch, BatchStatus, Certificate, CertificateStatus, Store
from issuer.webhooks import WebhookDispatcher
from tests.integration.conftest import ISSUER, Deployed
from tests.integration.issuer_fixtures import PASSPHRASE, Crash, IssuerEnv, crash_at
from tests.integration.test_issuer_api import Receiver

ROOT_DIR = Path(__file__).resolve().parents[2]
DIE_AT = "import sys; from tests.integration.test_issuer_anchoring import die_at; die_at(*sys.argv[1:])"


@pytest.fixture
def env(registry: Deployed, rpc: RpcClient, tmp_path: Path) -> IssuerEnv:
    return IssuerEnv(registry, rpc, tmp_path)


def attempts(store: Store, root: str) -> list[AnchorAttempt]:
    with store.transaction() as session:
        query = (
            select(AnchorAttempt).where(AnchorAttempt.batch_root == root).order_by(AnchorAttempt.signed_at)
        )
        return list(session.scalars(query))


def statuses(store: Store) -> set[CertificateStatus]:
    with store.transaction() as session:
        return set(session.scalars(select(Certificate.status)))


def assert_anchored_once(env: IssuerEnv, batch: Batch, certificates: int) -> None:
    assert batch.status is BatchStatus.ANCHORED, batch.error
    assert env.anchor_count() == 1
    logs = env.anchored_logs(batch.root)
    assert len(logs) == 1
    assert logs[0]["transactionHash"] == batch.tx_hash
    assert statuses(env.store) == {CertificateStatus.ANCHORED}
    assert env.assert_all_valid() == certificates


def test_seal_anchor_and_receipts(env: IssuerEnv) -> None:
    env.ingest_csv(7)
    nonce = env.nonce()
    [batch] = env.service(manifest_base_uri="ipfs://manifests", qr_codes=True, workers=2).run_once()
    assert batch.leaf_count == 7
    assert batch.manifest_uri == f"ipfs://manifests/{batch.root}.json"
    assert batch.gas_used is not None
    assert batch.gas_used <= 80_000
    assert env.nonce() == nonce + 1
    assert_anchored_once(env, batch, 7)
    assert len(list(env.out.glob("*.png"))) == 7
    assert env.service().run_once() == []  # nothing pending, nothing unfinished


def test_large_input_is_split_into_batches(env: IssuerEnv) -> None:
    env.ingest_csv(5)
    batches = env.service(max_batch_size=2).run_once()
    assert [b.leaf_count for b in batches] == [2, 2, 1]
    assert all(b.status is BatchStatus.ANCHORED for b in batches)
    assert env.anchor_count() == 3
    assert env.assert_all_valid() == 5


@pytest.mark.parametrize("step", list(Step))
def test_resume_after_a_crash_anchors_exactly_once(env: IssuerEnv, step: Step) -> None:
    env.ingest_csv(4)
    nonce = env.nonce()
    with pytest.raises(Crash):
        env.service(hook=crash_at(step)).run_once()
    [interrupted] = env.store.batches(list(BatchStatus))
    assert interrupted.status is not BatchStatus.ANCHORED

    [batch] = env.service().resume()
    assert env.nonce() == nonce + 1  # one anchor transaction, whatever the crash interrupted
    assert_anchored_once(env, batch, 4)
    assert env.service().resume() == []


def die_at(step: str, db_url: str, rpc_url: str, registry: str, key_pem: str, out: str) -> None:
    """Runs in a child process: issues what is pending and SIGKILLs itself right after ``step``."""

    def hook(seen: Step, root: str) -> None:
        if seen == step:
            os.kill(os.getpid(), signal.SIGKILL)

    rpc = RpcClient([rpc_url])
    sender = TxSender(rpc, LocalSigner.dev(ISSUER), chain_id=DEV_CHAIN_ID, poll_interval=0.02)
    key = decrypt_private_key(Path(key_pem).read_bytes(), PASSPHRASE)
    config = IssuerConfig(out_dir=Path(out))
    IssuerService(Store.open(db_url), RegistryWriter(sender, registry), key, config, hook=hook).run_once()


@pytest.mark.parametrize("step", [Step.SIGNED, Step.BROADCAST])
@pytest.mark.slow
def test_resume_after_kill_9(env: IssuerEnv, anvil: DevChain, step: Step) -> None:
    env.ingest_csv(3)
    key_pem = str(env.key_dir / "signing-key.pem")
    args = [step.value, env.db_url, anvil.rpc_url, env.deployed.address, key_pem, str(env.out)]
    child = subprocess.run(
        [sys.executable, "-c", DIE_AT, *args],
        cwd=ROOT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    [stored] = env.store.batches(list(BatchStatus))
    assert stored.status is (BatchStatus.SENDING if step is Step.SIGNED else BatchStatus.SENT)

    [batch] = env.service().resume()
    assert_anchored_once(env, batch, 3)


def test_stuck_transaction_is_replaced_with_higher_fees(env: IssuerEnv, rpc: RpcClient) -> None:
    env.ingest_csv(2)
    broadcasts = 0

    def mine_after_the_replacement(step: Step, root: str) -> None:
        nonlocal broadcasts
        if step is Step.BROADCAST:
            broadcasts += 1
            if broadcasts == 2:
                rpc.call("evm_setAutomine", [True])
                rpc.call("anvil_mine", ["0x1"])

    ticks = itertools.count()
    rpc.call("evm_setAutomine", [False])
    try:
        [batch] = env.service(
            hook=mine_after_the_replacement,
            clock=lambda: float(next(ticks)),
            sleep=lambda _: None,
            stuck_after=5,
        ).run_once()
    finally:
        rpc.call("evm_setAutomine", [True])

    first, second = attempts(env.store, batch.root)
    assert first.nonce == second.nonce
    assert second.max_priority_fee_per_gas >= bump_fee(first.max_priority_fee_per_gas)
    assert second.max_fee_per_gas >= bump_fee(first.max_fee_per_gas)
    assert second.max_fee_per_gas * 8 >= first.max_fee_per_gas * 9  # at least +12.5%
    assert batch.tx_hash == second.tx_hash
    assert rpc.call("eth_getTransactionReceipt", [first.tx_hash]) is None
    assert_anchored_once(env, batch, 2)


def test_gives_up_after_max_replacements_and_resume_finishes(env: IssuerEnv, rpc: RpcClient) -> None:
    env.ingest_csv(2)
    ticks = itertools.count()
    rpc.call("evm_setAutomine", [False])
    try:
        service = env.service(
            clock=lambda: float(next(ticks)), sleep=lambda _: None, stuck_after=3, max_replacements=2
        )
        with pytest.raises(TransactionTimeout, match="not mined after 2 fee bumps; `resume` will try again"):
            service.run_once()
    finally:
        rpc.call("evm_setAutomine", [True])
    [stored] = env.store.batches(list(BatchStatus))
    assert stored.status is BatchStatus.SENT
    assert len(attempts(env.store, stored.root)) == 3

    rpc.call("anvil_mine", ["0x1"])  # the newest replacement is in the pool
    [batch] = env.service().resume()
    assert batch.tx_hash == attempts(env.store, stored.root)[-1].tx_hash
    assert_anchored_once(env, batch, 2)


def test_suspended_issuer_fails_at_estimation_then_retries(env: IssuerEnv) -> None:
    env.deployed.owner.set_issuer_active(env.address, False)
    env.ingest_csv(3)
    nonce = env.nonce()
    [failed] = env.service().run_once()
    assert failed.status is BatchStatus.FAILED
    assert failed.error is not None
    assert "IssuerInactive" in failed.error
    assert env.nonce() == nonce  # nothing was sent
    assert env.service().resume() == []  # failed batches wait for an explicit retry

    env.deployed.owner.set_issuer_active(env.address, True)
    [batch] = env.service().resume(retry_failed=True)
    assert_anchored_once(env, batch, 3)


def test_on_chain_revert_is_decoded_and_retry_uses_a_new_nonce(env: IssuerEnv) -> None:
    env.ingest_csv(2)

    def suspend_before_broadcast(step: Step, root: str) -> None:
        if step is Step.SIGNED:
            env.deployed.owner.set_issuer_active(env.address, False)

    service = env.service(hook=suspend_before_broadcast)
    root = service.seal()
    assert root is not None
    with pytest.raises(TransactionFailed) as caught:
        service.anchor(root)
    assert caught.value.error_name == "IssuerInactive"
    assert caught.value.tx_hash == attempts(env.store, root)[0].tx_hash
    assert "reverted in block" in caught.value.message
    assert env.store.batch(root).status is BatchStatus.FAILED

    env.deployed.owner.set_issuer_active(env.address, True)
    [batch] = env.service().resume(retry_failed=True)
    reverted, retried = attempts(env.store, root)
    assert retried.nonce == reverted.nonce + 1
    assert_anchored_once(env, batch, 2)


def sealed(env: IssuerEnv, certificates: int) -> tuple[IssuerService, str]:
    env.ingest_csv(certificates)
    service = env.service()
    root = service.seal()
    assert root is not None
    return service, root


def test_root_anchored_out_of_band_is_found_not_sent_again(env: IssuerEnv) -> None:
    service, root = sealed(env, 2)
    batch = env.store.batch(root)
    direct = env.deployed.issuer.anchor(to_bytes32(root), batch.leaf_count, batch.manifest_uri)
    nonce = env.nonce()

    anchored = service.anchor(root)
    assert anchored.tx_hash == direct.tx_hash
    assert env.nonce() == nonce
    assert attempts(env.store, root) == []
    assert_anchored_once(env, anchored, 2)


def test_nonce_taken_by_another_transaction_is_signed_again(env: IssuerEnv) -> None:
    env.ingest_csv(2)
    with pytest.raises(Crash):
        env.service(hook=crash_at(Step.SIGNED)).run_once()  # stored, never broadcast
    [stored] = env.store.batches(list(BatchStatus))
    env.writer().sender.transact(LocalSigner.dev(5).address, b"")  # takes the stored nonce

    [batch] = env.service().resume()
    lost, signed_again = attempts(env.store, stored.root)
    assert signed_again.nonce == lost.nonce + 1
    assert_anchored_once(env, batch, 2)


def test_root_anchored_by_another_issuer_is_a_conflict(env: IssuerEnv) -> None:
    service, root = sealed(env, 2)
    other = env.deployed.other_issuer
    env.deployed.owner.register_issuer(other.sender.signer.address, "Copycat", "https://copycat.example")
    other.anchor(to_bytes32(root), 2)
    with pytest.raises(AnchorConflict, match="already anchored by"):
        service.anchor(root)
    assert env.store.batch(root).status is BatchStatus.FAILED


def test_refused_broadcast_is_reported_and_resume_sends_it(env: IssuerEnv, rpc: RpcClient) -> None:
    env.ingest_csv(2)
    balance = rpc.call("eth_getBalance", [env.address, "latest"])

    def drain_after_signing(step: Step, root: str) -> None:
        if step is Step.SIGNED:
            rpc.call("anvil_setBalance", [env.address, "0x0"])

    with pytest.raises(TransactionTimeout, match="the node refused it"):
        env.service(hook=drain_after_signing, max_replacements=1).run_once()
    [stored] = env.store.batches(list(BatchStatus))
    assert stored.status is BatchStatus.SENDING  # stored, never accepted by the node

    rpc.call("anvil_setBalance", [env.address, balance])
    [batch] = env.service().resume()
    assert_anchored_once(env, batch, 2)


@pytest.mark.slow(seconds=2)
def test_a_front_run_root_is_resealed_and_every_certificate_anchored_once(
    env: IssuerEnv, rpc: RpcClient
) -> None:
    """With automine off, a second registered issuer and an unregistered account copy the pending
    anchor with higher tips; the copies are mined first. The victim's batch is sealed again under
    fresh salts and anchored under its own issuer; receipts, webhooks and verdicts are all right."""
    env.ingest_csv(5)
    copycat, stranger = env.deployed.other_issuer, env.deployed.stranger
    env.deployed.owner.register_issuer(copycat.sender.signer.address, "Copycat", "https://copycat.example")
    copied: list[str] = []

    def copy_the_pending_anchor(step: Step, root: str) -> None:
        if step is not Step.BROADCAST or copied:
            return
        pending = rpc.call("eth_getTransactionByHash", [env.store.batch(root).tx_hash])
        assert pending["blockNumber"] is None  # still in the mempool: what a front-runner sees
        calldata, gas = bytes.fromhex(pending["input"][2:]), int(pending["gas"], 16)
        max_fee, tip = int(pending["maxFeePerGas"], 16), int(pending["maxPriorityFeePerGas"], 16)
        for thief, factor in ((stranger, 3), (copycat, 2)):
            fees = (max_fee * factor, tip * factor + 1)
            prepared = thief.sender.prepare(env.deployed.address, calldata, gas=gas, fees=fees)
            thief.sender.broadcast(prepared)
        copied.append(root)
        rpc.call("evm_mine", [])  # one block: the copies first (higher tips), the victim's last
        rpc.call("evm_setAutomine", [True])

    receiver = Receiver(200)
    dispatcher = WebhookDispatcher(env.store, [receiver.url], b"a webhook secret of 16+ bytes")
    dispatcher.run_once()  # the endpoint's cursor starts here
    rpc.call("evm_setAutomine", [False])
    try:
        batches = env.service(hook=copy_the_pending_anchor).run_once()
    finally:
        rpc.call("evm_setAutomine", [True])
    taken, anchored = batches
    assert copied == [taken.root]
    assert taken.status is BatchStatus.SUPERSEDED
    assert f"already anchored by {copycat.sender.signer.address}" in (taken.error or "")
    assert env.deployed.owner.anchor_of(to_bytes32(taken.root)).issuer == copycat.sender.signer.address

    # every certificate anchored exactly once, under its own issuer, in the new root
    assert anchored.root != taken.root
    assert anchored.status is BatchStatus.ANCHORED
    assert anchored.leaf_count == 5
    assert len(env.anchored_logs(anchored.root)) == 1
    assert env.deployed.owner.anchor_of(to_bytes32(anchored.root)).issuer == env.address
    with env.store.reading() as session:
        members = list(session.scalars(select(Certificate)))
    assert {(c.status, c.batch_root) for c in members} == {(CertificateStatus.ANCHORED, anchored.root)}
    assert len(members) == 5

    # receipts written once, for the new root only, and VALID
    receipts = list(env.receipts())
    assert len(receipts) == 5
    assert {receipt.proof.root for receipt in receipts} == {anchored.root}
    assert sorted(p.name for p in (env.out / "manifests").iterdir()) == [f"{anchored.root}.json"]
    assert env.assert_all_valid() == 5

    # webhooks: one certificate.anchored per certificate, naming the new root
    try:
        dispatcher.run_once()
        events = receiver.events()
    finally:
        receiver.close()
    anchored_ids = [
        i for e in events if e["type"] == "certificate.anchored" for i in e["data"]["certificate_ids"]
    ]
    assert sorted(anchored_ids) == sorted(c.id for c in members)
    assert {e["data"]["batch"] for e in events} == {anchored.root}
