"""Revocation on anvil: one certificate, several in one transaction, a whole batch; idempotency."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from chain.core.encoding import to_bytes32
from chain.core.receipt import ReceiptV2
from chain.core.verify import Code, Status, verify
from chain.registry import RevocationReason, leaf_revocation_id
from chain.rpc import RpcClient
from issuer.errors import NotAnchored, UnknownCertificate
from issuer.revoke import Revoker
from issuer.store import Certificate, CertificateStatus, Revocation
from tests.factories import disclosed
from tests.integration.conftest import Deployed
from tests.integration.issuer_fixtures import FINALITY_DEPTH, NOW, IssuerEnv


@pytest.fixture
def env(registry: Deployed, rpc: RpcClient, tmp_path: Path) -> IssuerEnv:
    issuer = IssuerEnv(registry, rpc, tmp_path)
    issuer.ingest_csv(6)
    issuer.service().run_once()
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    return issuer


@pytest.fixture
def revoker(env: IssuerEnv) -> Revoker:
    return Revoker(env.store, env.writer())


def receipt_of(env: IssuerEnv, certificate_id: str) -> ReceiptV2:
    return next(r for r in env.receipts() if disclosed(r)["id"].endswith(certificate_id))


def verdict_codes(env: IssuerEnv, certificate_id: str) -> tuple[Status, tuple[Code, ...]]:
    verdict = verify(receipt_of(env, certificate_id), env.facts(), NOW)
    return verdict.status, verdict.reasons


def certificate_statuses(env: IssuerEnv) -> dict[str, CertificateStatus]:
    with env.store.transaction() as session:
        return {i: status for i, status in session.execute(select(Certificate.id, Certificate.status))}


def test_revoke_one_certificate(env: IssuerEnv, revoker: Revoker) -> None:
    nonce = env.nonce()
    [result] = revoker.revoke_certificates(["cert-00002"], RevocationReason.SUPERSEDED)
    assert not result.already_revoked
    assert result.tx_hash is not None
    assert env.nonce() == nonce + 1
    assert verdict_codes(env, "cert-00002") == (Status.REVOKED, (Code.LEAF_REVOKED,))
    assert verdict_codes(env, "cert-00003") == (Status.VALID, ())
    assert certificate_statuses(env)["cert-00002"] is CertificateStatus.REVOKED
    assert certificate_statuses(env)["cert-00003"] is CertificateStatus.ANCHORED
    assert "revoked (superseded) in block" in result.describe()


def test_revoke_several_in_one_transaction_then_again(env: IssuerEnv, revoker: Revoker) -> None:
    ids = ["cert-00000", "cert-00004", "cert-00005"]
    nonce = env.nonce()
    results = revoker.revoke_certificates(ids, RevocationReason.AFFILIATION_CHANGED)
    assert [r.target for r in results] == ids
    assert len({r.tx_hash for r in results}) == 1
    assert env.nonce() == nonce + 1
    tx = env.rpc.call("eth_getTransactionByHash", [results[0].tx_hash])
    assert tx["input"].startswith("0x" + env.deployed.owner.abi.function("revokeLeaves").selector.hex())
    for certificate_id in ids:
        assert verdict_codes(env, certificate_id) == (Status.REVOKED, (Code.LEAF_REVOKED,))

    again = revoker.revoke_certificates([*ids, "cert-00001"], RevocationReason.UNSPECIFIED)
    assert [r.already_revoked for r in again] == [True, True, True, False]
    assert {r.reason for r in again[:3]} == {RevocationReason.AFFILIATION_CHANGED}
    assert "already revoked (affiliationChanged" in again[0].describe()
    assert env.nonce() == nonce + 2  # one transaction, for cert-00001 only
    with env.store.transaction() as session:
        assert len(list(session.scalars(select(Revocation)))) == 4


def test_revoke_a_whole_batch_is_idempotent(env: IssuerEnv, revoker: Revoker) -> None:
    [batch] = env.store.batches(["anchored"])  # type: ignore[list-item]
    nonce = env.nonce()
    first = revoker.revoke_batch(batch.root, RevocationReason.KEY_COMPROMISE)
    assert not first.already_revoked
    assert verdict_codes(env, "cert-00001") == (Status.REVOKED, (Code.ROOT_REVOKED,))
    again = revoker.revoke_batch(batch.root, RevocationReason.UNSPECIFIED)
    assert again.already_revoked
    assert again.reason == RevocationReason.KEY_COMPROMISE
    [leaf] = revoker.revoke_certificates(["cert-00003"], RevocationReason.SUPERSEDED)
    assert leaf.already_revoked  # covered by the root's revocation
    assert env.nonce() == nonce + 1
    assert set(certificate_statuses(env).values()) == {CertificateStatus.REVOKED}


def test_store_follows_revocations_sent_elsewhere(env: IssuerEnv, revoker: Revoker) -> None:
    certificate = env.store.certificates(["cert-00001"])[0]
    assert certificate.batch_root is not None
    assert certificate.leaf is not None
    root, leaf = to_bytes32(certificate.batch_root), to_bytes32(certificate.leaf)
    proof = [to_bytes32(p) for p in receipt_of(env, "cert-00001").proof.path]
    env.deployed.issuer.revoke_leaf(leaf, root, proof, RevocationReason.ISSUED_IN_ERROR)
    assert env.deployed.issuer.revocation_of(leaf_revocation_id(root, leaf)).revoked

    [result] = revoker.revoke_certificates(["cert-00001"], RevocationReason.SUPERSEDED)
    assert result.already_revoked
    assert result.reason == RevocationReason.ISSUED_IN_ERROR
    assert certificate_statuses(env)["cert-00001"] is CertificateStatus.REVOKED


def test_unknown_and_unanchored_certificates_are_refused(env: IssuerEnv, revoker: Revoker) -> None:
    with pytest.raises(UnknownCertificate, match="cert-99999"):
        revoker.revoke_certificates(["cert-99999"], RevocationReason.UNSPECIFIED)
    env.ingest_csv(1, first=100)
    with pytest.raises(NotAnchored, match="pending"):
        revoker.revoke_certificates(["cert-00100"], RevocationReason.UNSPECIFIED)
    with pytest.raises(UnknownCertificate):
        revoker.revoke_batch("0x" + "ab" * 32, RevocationReason.UNSPECIFIED)
