"""Revocation: one certificate, several of one batch in a single transaction, or a whole batch.

- one certificate of a batch: ``revokeLeaf`` with its Merkle proof;
- several certificates of one batch: ``revokeLeaves`` with one OpenZeppelin multiproof;
- a whole batch: ``revokeRoot``.

Idempotent: the registry is asked first (``revocationOf``), and whatever is already revoked, by
the root or leaf by leaf, is reported as such with the reason and block on record, and no
transaction is sent for it. The local store follows the chain (certificate status ``revoked`` and
a row in ``revocations``), also for revocations this store did not send. Proofs come from the
store, which holds every batch's digests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from chain.core.encoding import to_bytes32
from chain.core.revocation import reason_from_text, reason_name
from chain.errors import ConfigError
from chain.registry import RegistryWriter, RevocationInfo, RevocationReason, leaf_revocation_id
from chain.tx import TxReceipt
from issuer.errors import NotAnchored, StoreError, UnknownCertificate
from issuer.status import StatusPublisher, touch_lists_of_batch
from issuer.store import (
    Batch,
    BatchStatus,
    Certificate,
    CertificateStatus,
    EventType,
    Revocation,
    Store,
    add_events,
    utcnow,
)


def parse_reason(text: str) -> RevocationReason:
    """A reason code by number (``4``) or name (``superseded``, ``keyCompromise``, ``key-compromise``)."""
    reason = reason_from_text(text)
    if reason is None:
        names = ", ".join(f"{r.rfc5280_name} ({int(r)})" for r in RevocationReason)
        raise ConfigError(f"unknown revocation reason {text!r}; use one of: {names}")
    return reason


@dataclass(frozen=True)
class RevocationResult:
    """What happened to one target: a certificate id, or a batch root."""

    target: str
    already_revoked: bool
    reason: int
    block_number: int
    tx_hash: str | None  # None when it was already revoked

    def describe(self) -> str:
        """One line for people: what happened, with the reason's name, block and transaction."""
        reason = reason_name(self.reason)
        if self.already_revoked:
            return f"{self.target}: already revoked ({reason}, block {self.block_number})"
        return f"{self.target}: revoked ({reason}) in block {self.block_number} ({self.tx_hash})"


class Revoker:
    """Revokes anchored certificates and batches of one issuer."""

    def __init__(
        self,
        store: Store,
        registry: RegistryWriter,
        *,
        now: Callable[[], datetime] = utcnow,
        status_lists: StatusPublisher | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self._now = now
        self.status_lists = status_lists

    def _anchored_batch(self, root: str) -> Batch:
        with self.store.reading() as session:
            batch = session.get(Batch, root)
        if batch is None:
            raise UnknownCertificate(f"no batch with root {root} in the issuer store")
        if batch.status is not BatchStatus.ANCHORED:
            raise NotAnchored(f"batch {root} is {batch.status}, not anchored: nothing to revoke on-chain")
        return batch

    def revoke_batch(self, root: str, reason: RevocationReason) -> RevocationResult:
        """Revokes every certificate of the batch ``root`` with one ``revokeRoot``."""
        self._anchored_batch(root)
        state = self.registry.revocation_of(to_bytes32(root))
        if state.revoked:
            self._record(root, None, state.reason, state.block_number, None)
            return RevocationResult(root, True, state.reason, state.block_number, None)
        sent = self.registry.revoke_root(to_bytes32(root), int(reason))
        self._record(root, None, int(reason), sent.block_number, sent.tx_hash)
        return RevocationResult(root, False, int(reason), sent.block_number, sent.tx_hash)

    def revoke_certificates(self, ids: Sequence[str], reason: RevocationReason) -> list[RevocationResult]:
        """Revokes certificates by id: one transaction per batch they belong to."""
        found = {certificate.id: certificate for certificate in self.store.certificates(ids)}
        if missing := [i for i in ids if i not in found]:
            raise UnknownCertificate(f"no certificate {missing[0]!r} in the issuer store")
        by_root: dict[str, list[Certificate]] = {}
        for certificate_id in dict.fromkeys(ids):
            certificate = found[certificate_id]
            if certificate.batch_root is None:
                raise NotAnchored(f"certificate {certificate_id!r} is {certificate.status}, not anchored")
            by_root.setdefault(certificate.batch_root, []).append(certificate)
        results: dict[str, RevocationResult] = {}
        for root, certificates in by_root.items():
            for result in self._revoke_in_batch(root, certificates, reason):
                results[result.target] = result
        return [results[i] for i in dict.fromkeys(ids)]

    def _revoke_in_batch(
        self, root: str, certificates: list[Certificate], reason: RevocationReason
    ) -> list[RevocationResult]:
        self._anchored_batch(root)
        root_state = self.registry.revocation_of(to_bytes32(root))
        results: list[RevocationResult] = []
        to_revoke: list[Certificate] = []
        for certificate in certificates:
            state: RevocationInfo = root_state
            if not state.revoked:
                state = self.registry.revocation_of(leaf_revocation_id(to_bytes32(root), _leaf(certificate)))
            if state.revoked:
                self._record(root, [certificate.id], state.reason, state.block_number, None)
                results.append(RevocationResult(certificate.id, True, state.reason, state.block_number, None))
            else:
                to_revoke.append(certificate)
        if to_revoke:
            sent = self._send(root, [_leaf(c) for c in to_revoke], reason)
            self._record(root, [c.id for c in to_revoke], int(reason), sent.block_number, sent.tx_hash)
            results += [
                RevocationResult(c.id, False, int(reason), sent.block_number, sent.tx_hash) for c in to_revoke
            ]
        return results

    def _send(self, root: str, leaves: list[bytes], reason: RevocationReason) -> TxReceipt:
        tree = self.store.batch_tree(root)
        if len(leaves) == 1:
            return self.registry.revoke_leaf(leaves[0], tree.root, tree.proof(leaves[0]), int(reason))
        multi = tree.multiproof(leaves)
        return self.registry.revoke_leaves(
            multi.leaves, tree.root, multi.proof, multi.proof_flags, int(reason)
        )

    def _record(
        self,
        root: str,
        certificate_ids: list[str] | None,
        reason: int,
        block_number: int,
        tx_hash: str | None,
    ) -> None:
        """Brings the store in line with a revocation on-chain (idempotent)."""
        with self.store.transaction() as session:
            recorded = set(
                session.scalars(select(Revocation.certificate_id).where(Revocation.batch_root == root))
            )
            targets: list[str | None] = list(certificate_ids) if certificate_ids is not None else [None]
            for target in targets:
                if target not in recorded:
                    session.add(
                        Revocation(
                            batch_root=root,
                            certificate_id=target,
                            reason=reason,
                            tx_hash=tx_hash,
                            block_number=block_number,
                            recorded_at=self._now(),
                        )
                    )
            scope = (Certificate.batch_root == root) & (Certificate.status != CertificateStatus.REVOKED)
            if certificate_ids is not None:
                scope = scope & Certificate.id.in_(certificate_ids)
            ids = list(session.scalars(select(Certificate.id).where(scope).order_by(Certificate.id)))
            session.execute(update(Certificate).where(scope).values(status=CertificateStatus.REVOKED))
            data = {
                "batch": root,
                "whole_batch": certificate_ids is None,
                "reason": reason_name(reason),
                "reason_code": reason,
                "tx_hash": tx_hash,
                "block_number": block_number,
            }
            add_events(session, EventType.CERTIFICATE_REVOKED, data, ids, self._now())
            touch_lists_of_batch(session, root, self._now())
        if self.status_lists is not None:  # confirmed on-chain and recorded: the lists say so now
            self.status_lists.publish_for_batch(root)


def _leaf(certificate: Certificate) -> bytes:
    """The leaf of a certificate of an anchored batch (sealing set it)."""
    if certificate.leaf is None:
        raise StoreError(f"certificate {certificate.id!r} has no leaf: it was never sealed")
    return to_bytes32(certificate.leaf)
