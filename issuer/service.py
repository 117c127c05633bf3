"""The issuer service: store intake, seal batches, anchor them, write receipts, resume after a crash.

The life of a certificate: :func:`ingest` stores it ``pending`` (credential, salts, digest: all
local). :meth:`IssuerService.seal` takes the pending certificates (up to ``max_batch_size``), signs
each digest with the document-signing key, builds one Merkle tree and records the batch and its
membership in one transaction. :meth:`IssuerService.anchor` sends the root through the crash-safe
:class:`~issuer.anchoring.Anchorer`, writes the manifest, a receipt and a QR code per
certificate, and only then marks the batch ``anchored``. :meth:`IssuerService.resume` picks up
every batch that is not anchored yet; since every step is durable before the next one starts,
a crash anywhere costs at most a repeated (idempotent) step.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from chain.core.canonical import SaltedDocument, recompute_digest, salt_document
from chain.core.encoding import hex0x, iso_utc
from chain.core.issuance import (
    SignedDocument,
    batch_receipts,
    seal_batch,
    secure_credential,
    sign_document,
)
from chain.core.merkle import leaf_hash
from chain.core.receipt import Anchor
from chain.core.signing import PrivateKey, public_key_info
from chain.errors import TransactionFailed
from chain.registry import RegistryWriter
from chain.service.files import private_dir, sync_files
from chain.tx import TransactionTimeout, TxReceipt
from issuer.anchoring import Anchorer, Hook, Step
from issuer.errors import AnchorConflict, IntakeRejected, SigningKeyUnusable, StoreError
from issuer.intake import Accepted, IntakeResult, Rejected
from issuer.outputs import write_manifest, write_receipt
from issuer.store import (
    Batch,
    BatchStatus,
    Certificate,
    CertificateStatus,
    EventType,
    Store,
    add_events,
    storable_text,
    utcnow,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Rows per insert (and per duplicate-id query) during intake.
INGEST_CHUNK = 500
#: Certificates read per transaction while writing receipts.
RECEIPT_CHUNK = 500
#: The contract packs a batch's count into 24 bits.
MAX_BATCH_SIZE = 2**24 - 1
#: Times one run seals certificates again after another account took their batch's root.
MAX_RESEALS = 3


def _no_hook(step: Step, root: str) -> None:
    """The default hook: nothing to do."""


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


# -- intake ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntakeReport:
    """How many certificates one input stored, and the rows it rejected (in line order)."""

    accepted: int
    rejected: tuple[Rejected, ...]


def _certificate_row(result: Accepted, created_at: datetime) -> dict[str, Any]:
    document = result.document
    return {
        "id": result.certificate_id,
        "credential": dict(document.credential),
        "salts": dict(document.salts),
        "digest": hex0x(document.digest),
        "leaf": hex0x(leaf_hash(document.digest)),
        "status": CertificateStatus.PENDING,
        "created_at": created_at,
    }


def ingest(
    store: Store,
    results: Iterable[IntakeResult],
    *,
    strict: bool = False,
    now: Callable[[], datetime] = utcnow,
) -> IntakeReport:
    """Stores the accepted certificates of one input, all in one transaction.

    An id the store already holds is rejected like any other bad row. Without ``strict`` the bad
    rows are reported and the good ones stored; with ``strict`` the first bad row raises
    :class:`IntakeRejected` and nothing from the input is stored. Either way an input is stored
    whole or not at all, so running it again after a crash cannot half-duplicate it.
    """
    accepted = 0
    rejected: list[Rejected] = []
    created_at = now()
    try:
        with store.transaction() as session:
            for chunk in _chunks(results, INGEST_CHUNK):
                ids = [r.certificate_id for r in chunk if isinstance(r, Accepted)]
                known = set(session.scalars(select(Certificate.id).where(Certificate.id.in_(ids))))
                rows = []
                for result in chunk:
                    if isinstance(result, Accepted) and result.certificate_id in known:
                        reason = f"certificate id {result.certificate_id!r} is already in the store"
                        result = Rejected(result.line, reason, result.certificate_id)
                    if isinstance(result, Rejected):
                        if strict:
                            raise IntakeRejected(f"{result} (strict: nothing from this input was stored)")
                        rejected.append(result)
                    else:
                        rows.append(_certificate_row(result, created_at))
                if rows:
                    session.execute(insert(Certificate), rows)
                accepted += len(rows)
    except IntegrityError:
        raise StoreError(
            "another intake stored one of these certificate ids meanwhile; nothing from this input was stored"
        ) from None
    return IntakeReport(accepted, tuple(rejected))


# -- batching and anchoring --------------------------------------------------------------------


@dataclass(frozen=True)
class IssuerConfig:
    """How the service batches and where it writes."""

    out_dir: Path
    node_url: str | None = None
    max_batch_size: int = 10_000
    #: Published manifests live at ``<manifest_base_uri>/<root>.json``; empty: no URI on-chain.
    manifest_base_uri: str = ""
    qr_codes: bool = True
    #: The DID that issues (and controls the Data Integrity key): ``did:web:DOMAIN`` when the issuer
    #: publishes one (``finvault issuer did-web``); None: the signing key's own ``did:key``.
    issuer_did: str | None = None
    stuck_after: float = 180.0
    max_replacements: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"max_batch_size must be between 1 and {MAX_BATCH_SIZE}")

    def manifest_uri(self, root: str) -> str:
        """The URI the ``anchor`` transaction names for a batch's manifest ('' when unpublished)."""
        return f"{self.manifest_base_uri.rstrip('/')}/{root}.json" if self.manifest_base_uri else ""


@dataclass
class IssuerService:
    """Seals, anchors and resumes batches for one issuer account and one document-signing key."""

    store: Store
    registry: RegistryWriter
    signing_key: PrivateKey
    config: IssuerConfig
    hook: Hook = _no_hook
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = utcnow
    anchorer: Anchorer = field(init=False)

    def __post_init__(self) -> None:
        self.anchorer = Anchorer(
            self.store,
            self.registry,
            hook=self.hook,
            stuck_after=self.config.stuck_after,
            max_replacements=self.config.max_replacements,
            sleep=self.sleep,
            clock=self.clock,
            now=self.now,
        )

    def __repr__(self) -> str:  # never shows the signing key
        return f"IssuerService(issuer={self.issuer}, registry={self.registry.address})"

    @property
    def issuer(self) -> str:
        """The issuer's account address."""
        return self.registry.sender.signer.address

    def check_signing_key(self) -> None:
        """Refuses a signing key that is not registered to this issuer on-chain, or was revoked:
        receipts signed with it would never verify."""
        key_id = public_key_info(self.signing_key).key_id
        info = self.registry.key_of(key_id)
        if not info.exists or info.issuer != self.issuer:
            raise SigningKeyUnusable(
                f"signing key {hex0x(key_id)} is not registered to issuer {self.issuer} "
                "(register it with `finvault issuer add-key`)"
            )
        if info.revoked_block:
            raise SigningKeyUnusable(f"signing key {hex0x(key_id)} was revoked in block {info.revoked_block}")

    def seal(self) -> str | None:
        """Signs and batches pending certificates in one transaction; returns the root, or None."""
        if not self.store.pending_count():
            return None
        self.check_signing_key()
        with self.store.transaction() as session:
            query = (
                select(Certificate)
                .where(Certificate.status == CertificateStatus.PENDING)
                .order_by(Certificate.created_at, Certificate.id)
                .limit(self.config.max_batch_size)
                .with_for_update(skip_locked=True)
            )
            ids: list[str] = []
            signed: list[SignedDocument] = []
            sealed_at = self.now()
            for certificate in session.scalars(query):
                document = certificate.document
                if recompute_digest(document.credential, document.salts, ()) != document.digest:
                    raise StoreError(f"certificate {certificate.id!r}: its stored digest does not match")
                ids.append(certificate.id)
                signed.append(sign_document(self._secured(document, sealed_at), self.signing_key))
            if not signed:
                return None  # another sealer took them
            root = hex0x(seal_batch(signed).root)
            session.add(
                Batch(
                    root=root,
                    leaf_count=len(signed),
                    status=BatchStatus.SEALED,
                    key_id=signed[0].signature.key_id,
                    manifest_uri=self.config.manifest_uri(root),
                    sealed_at=sealed_at,
                )
            )
            session.flush()
            session.execute(
                update(Certificate),
                [
                    {
                        "id": certificate_id,
                        "credential": dict(item.document.credential),
                        "salts": dict(item.document.salts),
                        "digest": hex0x(item.document.digest),
                        "leaf": hex0x(item.leaf),
                        "signature": item.signature.value,
                        "key_id": item.signature.key_id,
                        "algorithm": item.signature.algorithm,
                        "status": CertificateStatus.SEALED,
                        "batch_root": root,
                    }
                    for certificate_id, item in zip(ids, signed, strict=True)
                ],
            )
        log.info("sealed batch %s with %d certificates", root, len(signed))
        self.hook(Step.SEALED, root)
        return root

    def _secured(self, document: SaltedDocument, sealed_at: datetime) -> SaltedDocument:
        """What gets signed: for an Ed25519 key, the credential secured with a W3C Data Integrity
        proof (``eddsa-jcs-2022``, its issuer the key's controller) and salted afresh, so that the
        digest, the signature and the anchor cover the proof too; for RSA, the document as stored.
        A proof from an earlier seal (a batch whose root was taken) is replaced."""
        if not isinstance(self.signing_key, ed25519.Ed25519PrivateKey):
            return document
        unsecured = {name: value for name, value in document.credential.items() if name != "proof"}
        created = iso_utc(sealed_at.replace(microsecond=0))
        secured = secure_credential(
            unsecured, self.signing_key, created=created, controller=self.config.issuer_did
        )
        return salt_document(secured, os.urandom)

    def anchor(self, root: str) -> Batch:
        """Anchors a sealed batch (or finishes one a crash interrupted) and writes its receipts."""
        batch = self.store.batch(root)
        if batch.status is BatchStatus.ANCHORED:
            return batch
        confirmed = self.anchorer.anchor(root)
        self.hook(Step.CONFIRMED, root)
        self.write_outputs(root, confirmed)
        with self.store.transaction() as session:
            stored = session.get_one(Batch, root)
            stored.status = BatchStatus.ANCHORED
            stored.tx_hash = confirmed.tx_hash
            stored.block_number = confirmed.block_number
            stored.gas_used = confirmed.gas_used
            stored.anchored_at = self.now()
            stored.error = None
            sealed = (Certificate.batch_root == root) & (Certificate.status == CertificateStatus.SEALED)
            ids = list(session.scalars(select(Certificate.id).where(sealed).order_by(Certificate.id)))
            session.execute(update(Certificate).where(sealed).values(status=CertificateStatus.ANCHORED))
            data = {"batch": root, "tx_hash": confirmed.tx_hash, "block_number": confirmed.block_number}
            add_events(session, EventType.CERTIFICATE_ANCHORED, data, ids, stored.anchored_at)
        log.info("batch %s anchored in block %d (%s)", root, confirmed.block_number, confirmed.tx_hash)
        return self.store.batch(root)

    def write_outputs(self, root: str, anchored: TxReceipt) -> None:
        """Writes the manifest, then a receipt (and QR code) per certificate of an anchored batch."""
        tree = self.store.batch_tree(root)
        out_dir = private_dir(self.config.out_dir)
        written = [write_manifest(out_dir, tree)]
        anchor = Anchor(
            chainId=self.registry.sender.chain_id,
            registry=self.registry.address,
            issuer=self.issuer,
            txHash=anchored.tx_hash,
            blockNumber=anchored.block_number,
        )
        for chunk in self._batch_certificates(root):
            signed = [certificate.signed_document() for certificate in chunk]
            for certificate, receipt in zip(
                chunk, batch_receipts(tree, signed, anchor, self.config.node_url), strict=True
            ):
                written += write_receipt(out_dir, certificate.id, receipt, qr_code=self.config.qr_codes)
        sync_files(written)  # receipts reach the disk before the batch is marked anchored

    def _batch_certificates(self, root: str) -> Iterator[list[Certificate]]:
        """The batch's certificates in id order, one short transaction per chunk."""
        after = ""
        while True:
            with self.store.reading() as session:
                query = (
                    select(Certificate)
                    .where(Certificate.batch_root == root, Certificate.id > after)
                    .order_by(Certificate.id)
                    .limit(RECEIPT_CHUNK)
                )
                chunk = list(session.scalars(query))
            if not chunk:
                return
            yield chunk
            after = chunk[-1].id

    def _anchor_or_fail(self, root: str) -> Batch:
        """Anchors ``root``; a revert or conflict fails only this batch (the error is stored)."""
        try:
            return self.anchor(root)
        except TransactionTimeout:
            raise  # later batches would only queue behind this nonce
        except AnchorConflict as conflict:
            return self.reseal(root, conflict)
        except TransactionFailed as exc:
            log.error("batch %s failed: %s", root, exc.diagnostics())
            return self.store.batch(root)

    def reseal(self, root: str, conflict: AnchorConflict) -> Batch:
        """Gives up ``root`` to the account that anchored it first (``conflict.taken_by``) and puts
        its certificates back to ``pending`` under fresh salts, in one transaction.

        Fresh salts give fresh digests, leaves and so a fresh root for the next seal; the taken root
        is worthless to whoever holds it (no documents, and signatures by a key it does not own).
        """
        with self.store.transaction() as session:
            batch = session.get_one(Batch, root)
            batch.status = BatchStatus.SUPERSEDED
            batch.error = storable_text(conflict.diagnostics())
            members = session.scalars(select(Certificate).where(Certificate.batch_root == root))
            for certificate in members:
                document = salt_document(certificate.credential, os.urandom)
                certificate.salts = dict(document.salts)
                certificate.digest = hex0x(document.digest)
                certificate.leaf = hex0x(leaf_hash(document.digest))
                certificate.status = CertificateStatus.PENDING
                certificate.batch_root = None
                certificate.signature = certificate.key_id = certificate.algorithm = None
        log.warning(
            "batch %s: root anchored first by %s; its certificates are sealed again under fresh salts",
            root,
            conflict.taken_by,
        )
        return self.store.batch(root)

    def resume(self, *, retry_failed: bool = False) -> list[Batch]:
        """Carries every batch that is not anchored yet forward from where it stopped, oldest first.

        ``failed`` batches (reverted, or refused at estimation) are retried only when asked, e.g.
        after the registry owner re-activated a suspended issuer.
        """
        statuses = [BatchStatus.SEALED, BatchStatus.SENDING, BatchStatus.SENT]
        if retry_failed:
            statuses.append(BatchStatus.FAILED)
        return [self._anchor_or_fail(batch.root) for batch in self.store.batches(statuses)]

    def run_once(self, *, retry_failed: bool = False) -> list[Batch]:
        """Resumes unfinished batches, then seals and anchors every pending certificate.

        A batch whose root another account anchors first is sealed again under fresh salts, at
        most :data:`MAX_RESEALS` times a run: past that its certificates wait, pending, for the next
        run (and the registry owner can suspend an issuer that keeps copying roots).
        """
        done = self.resume(retry_failed=retry_failed)
        reseals = sum(batch.status is BatchStatus.SUPERSEDED for batch in done)
        while reseals <= MAX_RESEALS and (root := self.seal()) is not None:
            batch = self._anchor_or_fail(root)
            done.append(batch)
            if batch.status is BatchStatus.FAILED:
                break  # the next batch would fail the same way; its certificates stay pending
            reseals += batch.status is BatchStatus.SUPERSEDED
        return done
