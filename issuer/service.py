"""The issuer service: store intake, seal batches, anchor them, write receipts, resume after a crash.

The life of a certificate: :func:`ingest` stores it ``pending`` (its credential: local).
:meth:`IssuerService.seal` takes the pending certificates (up to ``max_batch_size``), secures each
credential with the document-signing key (an SD-JWT, or a Data Integrity proof: one signature per
certificate), builds one Merkle tree over what was signed and records the batch and its membership
in one transaction. :meth:`IssuerService.anchor` sends the root through the crash-safe
:class:`~issuer.anchoring.Anchorer`, writes the manifest and a receipt (and, if configured, a QR
code) per certificate, and only then marks the batch ``anchored``. Sealing and receipts run a chunk
at a time through one :class:`~issuer.pipeline.WorkerPool` per run (``IssuerConfig.workers``
processes, started once for the run: :meth:`IssuerService.workers`).
:meth:`IssuerService.resume` picks up every batch that is not anchored yet; since every step is
durable before the next one starts, a crash anywhere costs at most a repeated (idempotent) step.
"""

from __future__ import annotations

import gc
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Table, Text, bindparam, cast, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chain.core.canonical import DocumentError
from chain.core.encoding import hex0x, iso_utc
from chain.core.merkle import MerkleTree
from chain.core.secured import (
    CRYPTOSUITES,
    DATA_INTEGRITY,
    SD_JWT,
    SECURINGS,
    Cryptosuite,
    Securing,
    check_securable,
    secure_data_integrity,
)
from chain.core.signing import PrivateKey, public_key_info
from chain.errors import ConfigError, TransactionFailed
from chain.registry import RegistryWriter
from chain.service.files import private_dir, sync_files
from chain.tx import TransactionTimeout, TxReceipt
from issuer.anchoring import Anchorer, Hook, Step
from issuer.errors import AnchorConflict, IntakeRejected, SigningKeyUnusable, StoreError
from issuer.intake import Accepted, IntakeResult, Rejected
from issuer.ob3 import OB3_CRYPTOSUITE, check_open_badge, is_open_badge
from issuer.outputs import write_manifest
from issuer.pipeline import (
    ReceiptContext,
    ReceiptRow,
    SealContext,
    Sealed,
    SealRow,
    WorkerPool,
    chunked,
    seal_certificates,
    write_receipts,
)
from issuer.status import Allocator, StatusPublisher, touch_lists_of_batch
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
#: What VC-API issuance names its certificates (``vcapi-<uuid>``): secured when issued, never again.
VC_API_PREFIX = "vcapi-"

#: Rows per insert (and per duplicate-id query) during intake.
INGEST_CHUNK = 2_000
#: Certificates per chunk handed to a worker while sealing and writing receipts (and read from the
#: store per query): large enough to amortize a round trip, small enough to stream.
WORK_CHUNK = 1_000
#: The contract packs a batch's count into 24 bits.
MAX_BATCH_SIZE = 2**24 - 1
#: Times one run seals certificates again after another account took their batch's root.
MAX_RESEALS = 3


def _no_hook(step: Step, root: str) -> None:
    """The default hook: nothing to do."""


class ProgressBar(Protocol):
    """What the service reports progress to (a ``tqdm`` bar fits)."""

    def update(self, n: int = 1) -> object:
        """``n`` more items done."""


#: Opens a progress bar for a phase (``seal``, ``anchor``, ``receipts``) of ``total`` items.
Progress = Callable[[str, int], AbstractContextManager[ProgressBar]]


class _NoBar:
    def update(self, n: int = 1) -> None:
        """Nothing to show."""


def no_progress(phase: str, total: int) -> AbstractContextManager[ProgressBar]:
    """The default :data:`Progress`: shows nothing."""
    return nullcontext(_NoBar())


# -- intake ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntakeReport:
    """How many certificates one input stored, and the rows it rejected (in line order)."""

    accepted: int
    rejected: tuple[Rejected, ...]


_CERTIFICATES: Table = Certificate.__table__  # type: ignore[assignment]  # declared as a Table

#: Sealing's write per certificate: executemany by primary key, in the sealing transaction.
_SEALED = (
    update(_CERTIFICATES)
    .where(_CERTIFICATES.c.id == bindparam("sealed_id"))
    .values(
        secured=bindparam("secured"),
        digest=bindparam("digest"),
        leaf=bindparam("leaf"),
        key_id=bindparam("key_id"),
        algorithm=bindparam("algorithm"),
        status=bindparam("status"),
    )
)
#: The same for a certificate drawn a status list entry by this seal. Only these rows name the
#: entry's columns: naming them costs every row a foreign-key check and a unique-index update, even
#: to keep their value (SQLite, 10,000 rows: 36 µs a row against 10).
_SEALED_WITH_ENTRY = _SEALED.values(
    status_list_id=bindparam("status_list_id"), status_index=bindparam("status_index")
)

#: Anchoring's write per certificate, executemany by primary key. (``id IN (...) AND status = ...``
#: has SQLite read every sealed row through the status index for each chunk: 30 against 13 µs a row.)
_ANCHORED = (
    update(_CERTIFICATES)
    .where(_CERTIFICATES.c.id == bindparam("member"), _CERTIFICATES.c.status == CertificateStatus.SEALED)
    .values(status=CertificateStatus.ANCHORED)
)


def _write_sealed(
    session: Session, sealed: list[Sealed], context: SealContext, entries: dict[str, tuple[int, int]]
) -> None:
    """Records a chunk of sealed certificates, each with the status list entry it was drawn (if
    any: one secured at issuance keeps the entry it has)."""
    plain: list[dict[str, Any]] = []
    with_entry: list[dict[str, Any]] = []
    for certificate_id, secured, digest, leaf in sealed:
        row: dict[str, Any] = {
            "sealed_id": certificate_id,
            "secured": secured,
            "digest": digest,
            "leaf": leaf,
            "key_id": context.key_id,
            "algorithm": context.algorithm,
            "status": CertificateStatus.SEALED,
        }
        entry = entries.get(certificate_id)
        if entry is None:
            plain.append(row)
        else:
            row["status_list_id"], row["status_index"] = entry
            with_entry.append(row)
    if plain:
        session.execute(_SEALED, plain)
    if with_entry:
        session.execute(_SEALED_WITH_ENTRY, with_entry)


def _seal_rows(
    session: Session, ids: list[str], allocator: Allocator | None, entries: dict[str, tuple[int, int]]
) -> Iterator[list[SealRow]]:
    """The pending certificates ``ids`` as sealing needs them, a chunk at a time, each with its
    status list entry drawn by ``allocator`` (recorded in ``entries`` by certificate id)."""
    columns = (Certificate.id, cast(Certificate.credential, Text), Certificate.secured)
    for chunk in chunked(ids, WORK_CHUNK):
        rows: list[SealRow] = []
        found = session.execute(select(*columns).where(Certificate.id.in_(chunk)))
        for certificate_id, credential_text, secured in found:
            if secured:  # secured when it was issued (VC-API): its status entry is in it already
                rows.append((certificate_id, credential_text, "", secured))
                continue
            status_text = ""
            if allocator is not None:
                list_id, index, entry = allocator.entry()
                entries[certificate_id] = (list_id, index)
                status_text = json.dumps(entry)
            rows.append((certificate_id, credential_text, status_text, ""))
        yield rows


def _certificate_row(result: Accepted, created_at: datetime) -> dict[str, Any]:
    return {
        "id": result.certificate_id,
        "credential": result.credential,
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
            for chunk in chunked(results, INGEST_CHUNK):
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
                    session.execute(insert(_CERTIFICATES), rows)
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
    #: Write a QR code PNG beside each receipt (about 2-3 ms each); otherwise ``finvault qr
    #: --node-url URL`` renders one from the recomputed leaf when a holder wants it.
    qr_codes: bool = False
    #: The DID that issues (and controls the Data Integrity key): ``did:web:DOMAIN`` when the issuer
    #: publishes one (``finvault issuer did-web``); None: the signing key's own ``did:key``.
    issuer_did: str | None = None
    stuck_after: float = 180.0
    max_replacements: int = 5
    #: Processes that seal and write receipts (1: all in this process, none started).
    workers: int = 1
    #: Where status lists are published: each credential gets a ``credentialStatus`` entry in list
    #: ``<status_base_url>/<n>`` (issuer/status.py). None: no status lists.
    status_base_url: str | None = None
    #: How sealing secures credentials: ``sd-jwt`` (selectively disclosable; any key) or
    #: ``data-integrity`` (whole credentials with an ``eddsa-jcs-2022`` proof; Ed25519 keys only).
    securing: Securing = SD_JWT
    #: The cryptosuite of Data Integrity proofs (``data-integrity`` securing, VC-API issuance). Open
    #: Badges 3.0 always get :data:`~issuer.ob3.OB3_CRYPTOSUITE`, whatever this says.
    cryptosuite: Cryptosuite = "eddsa-jcs-2022"

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"max_batch_size must be between 1 and {MAX_BATCH_SIZE}")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.securing not in SECURINGS:
            raise ValueError(f"securing must be one of {', '.join(SECURINGS)}")
        if self.cryptosuite not in CRYPTOSUITES:
            raise ValueError(f"cryptosuite must be one of {', '.join(CRYPTOSUITES)}")

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
    progress: Progress = no_progress
    anchorer: Anchorer = field(init=False)
    #: Publishes the status lists (when ``config.status_base_url`` is set).
    status_lists: StatusPublisher | None = field(init=False)
    #: The pool of the run under way (:meth:`workers`), if any.
    _pool: WorkerPool | None = field(init=False, default=None, repr=False)
    #: The tree of the batch this service sealed last, until its receipts are written.
    _sealed: MerkleTree | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        if self.config.securing == DATA_INTEGRITY and not isinstance(self.signing_key, Ed25519PrivateKey):
            raise ConfigError(
                "--securing data-integrity (eddsa-jcs-2022) needs an Ed25519 signing key; this one is "
                "RSA: secure with sd-jwt (RS256) instead"
            )
        self.status_lists = None
        if self.config.status_base_url:
            if not isinstance(self.signing_key, Ed25519PrivateKey):
                raise ConfigError(
                    "status lists are signed with eddsa-jcs-2022, which needs an Ed25519 signing key; "
                    "this one is RSA: unset the status list URL"
                )
            self.status_lists = StatusPublisher(
                self.store, self.config.out_dir, self.signing_key, self.config.issuer_did, now=self.now
            )
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

    @contextmanager
    def workers(self) -> Iterator[WorkerPool]:
        """The worker pool of one run (``config.workers`` processes, started with its first chunk,
        stopped when the block ends). Everything the service does inside the block, and any intake
        given the pool, shares it: nested calls return the same pool."""
        if self._pool is not None:
            yield self._pool
            return
        # What exists when the run starts outlives it: the collector's full passes, which the run's
        # many short-lived objects set off, need not walk it (10,000 certificates: 0.03 s of CPU
        # for them instead of 0.12-0.22). Anything unfrozen later is collected as usual.
        gc.freeze()
        try:
            with WorkerPool(self.config.workers) as pool:
                self._pool = pool
                try:
                    yield pool
                finally:
                    self._pool = None
        finally:
            gc.unfreeze()

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

    def issue_now(self, certificate_id: str, credential: dict[str, Any]) -> dict[str, Any]:
        """VC-API issuance: ``credential`` secured at once with a Data Integrity proof
        (``config.cryptosuite``; :data:`~issuer.ob3.OB3_CRYPTOSUITE` for an Open Badge 3.0) and its
        status entry, when lists are on, then stored ``pending`` as secured, so the next batch
        anchors exactly what was handed out; returns the secured credential.

        Raises :class:`ConfigError` for an RSA key (no such cryptosuite) and
        :class:`~chain.core.canonical.DocumentError` for a credential that cannot be secured (a VC
        2.0 rule, a size limit, an Open Badge missing what OB 3.0 requires); an id already stored
        is a :class:`StoreError`.
        """
        if not isinstance(self.signing_key, Ed25519PrivateKey):
            raise ConfigError("VC-API issuance secures credentials with EdDSA Data Integrity: an Ed25519 key")
        if not certificate_id.startswith(VC_API_PREFIX):
            raise ValueError(f"VC-API certificates are named {VC_API_PREFIX}...")
        check_securable(credential)
        cryptosuite = self.config.cryptosuite
        if is_open_badge(credential):
            if problems := check_open_badge(credential):
                raise DocumentError("not an Open Badge 3.0: " + "; ".join(problems))
            cryptosuite = OB3_CRYPTOSUITE
        self.check_signing_key()  # never hand out a credential no seal will anchor
        created = iso_utc(self.now().replace(microsecond=0))
        try:
            with self.store.transaction() as session:
                row: dict[str, Any] = {"status_list_id": None, "status_index": None}
                base_url = self.config.status_base_url
                if base_url:
                    allocator = Allocator(session, base_url, now=self.now)
                    row["status_list_id"], row["status_index"], entry = allocator.entry()
                    credential = {**credential, "credentialStatus": entry}
                secured = secure_data_integrity(
                    credential,
                    self.signing_key,
                    created=created,
                    random_bytes=secrets.token_bytes,
                    controller=self.config.issuer_did,
                    cryptosuite=cryptosuite,
                )
                value = secured.value
                assert isinstance(value, dict)  # Data Integrity: the credential object
                session.add(
                    Certificate(
                        id=certificate_id,
                        credential=credential,
                        secured=json.dumps(value, ensure_ascii=False, separators=(",", ":")),
                        digest=hex0x(secured.digest),
                        leaf=hex0x(secured.leaf),
                        status=CertificateStatus.PENDING,
                        created_at=self.now(),
                        **row,
                    )
                )
        except IntegrityError:
            raise StoreError(f"certificate id {certificate_id!r} is already in the store") from None
        if self.status_lists is not None and row["status_list_id"] is not None:
            try:  # a new list, published at once so the credential's status resolves
                self.status_lists.publish_unpublished([row["status_list_id"]])
            except OSError as exc:  # issued and stored all the same; the next anchoring publishes it
                log.error("status list %s not published yet: %s", row["status_list_id"], exc)
        return value

    def seal(self) -> str | None:
        """Signs and batches pending certificates in one transaction; returns the root, or None.

        The certificates stream through the workers a chunk at a time (checked, secured, signed)
        and are written back as they come; the batch row and their membership follow once the
        tree is built, all before the one commit.
        """
        if not self.store.pending_count():
            return None
        self.check_signing_key()
        sealed_at = self.now()
        context = SealContext.for_key(
            self.signing_key, sealed_at, self.config.issuer_did, self.config.securing, self.config.cryptosuite
        )
        with self.workers() as pool, self.store.transaction() as session:
            query = (
                select(Certificate.id)
                .where(Certificate.status == CertificateStatus.PENDING)
                .order_by(Certificate.created_at, Certificate.id)
                .limit(self.config.max_batch_size)
                .with_for_update(skip_locked=True)
            )
            ids = list(session.scalars(query))
            if not ids:
                return None  # another sealer took them
            digests: list[bytes] = []
            base_url = self.config.status_base_url
            allocator = Allocator(session, base_url, now=self.now) if base_url else None
            entries: dict[str, tuple[int, int]] = {}
            with self.progress("seal", len(ids)) as bar:
                rows = _seal_rows(session, ids, allocator, entries)
                for sealed in pool.map(seal_certificates, context, rows):
                    _write_sealed(session, sealed, context, entries)
                    digests += [bytes.fromhex(item[2][2:]) for item in sealed]
                    bar.update(len(sealed))
            tree = MerkleTree(digests)
            root = hex0x(tree.root)
            session.add(
                Batch(
                    root=root,
                    leaf_count=len(ids),
                    status=BatchStatus.SEALED,
                    key_id=context.key_id,
                    manifest_uri=self.config.manifest_uri(root),
                    sealed_at=sealed_at,
                )
            )
            session.flush()
            for chunk in chunked(ids, WORK_CHUNK):
                session.execute(update(Certificate).where(Certificate.id.in_(chunk)).values(batch_root=root))
        self._sealed = tree  # for its receipts, which follow at once
        log.info("sealed batch %s with %d certificates", root, len(ids))
        self.hook(Step.SEALED, root)
        return root

    def anchor(self, root: str) -> Batch:
        """Anchors a sealed batch (or finishes one a crash interrupted), writes its receipts and
        marks it anchored.

        Its certificates are marked ``anchored`` a chunk at a time, as soon as the chunk's receipts
        are synced, in the transaction that finally marks the batch anchored (so that work overlaps
        the workers'): until that one commit, every certificate of the batch is still ``sealed``,
        and a crash anywhere means the next run writes the receipts again.
        """
        batch = self.store.batch(root)
        if batch.status is BatchStatus.ANCHORED:
            return batch
        with self.progress("anchor", 1) as bar:
            confirmed = self.anchorer.anchor(root)
            bar.update(1)
        self.hook(Step.CONFIRMED, root)
        anchored: list[str] = []
        with self.store.transaction() as session:

            def mark_anchored(ids: list[str]) -> None:
                marked = session.connection().execute(_ANCHORED, [{"member": m} for m in ids]).rowcount
                if marked != len(ids):  # not all sealed (never met: nothing else touches a sealed batch)
                    done = Certificate.id.in_(ids) & (Certificate.status == CertificateStatus.ANCHORED)
                    found = set(session.scalars(select(Certificate.id).where(done)))
                    ids = [member for member in ids if member in found]
                anchored.extend(ids)  # the batch's own strings: a million ids add 8 MB, not 70

            self._write_outputs(root, confirmed, mark_anchored)
            stored = session.get_one(Batch, root)
            stored.status = BatchStatus.ANCHORED
            stored.tx_hash = confirmed.tx_hash
            stored.block_number = confirmed.block_number
            stored.gas_used = confirmed.gas_used
            stored.anchored_at = self.now()
            stored.error = None
            data = {"batch": root, "tx_hash": confirmed.tx_hash, "block_number": confirmed.block_number}
            add_events(session, EventType.CERTIFICATE_ANCHORED, data, anchored, stored.anchored_at)
            touch_lists_of_batch(session, root, stored.anchored_at)
        if self.status_lists is not None:  # the lists' companions now name these leaves
            self.status_lists.publish_for_batch(root)
        log.info("batch %s anchored in block %d (%s)", root, confirmed.block_number, confirmed.tx_hash)
        return self.store.batch(root)

    def write_outputs(self, root: str, anchored: TxReceipt) -> None:
        """Writes the manifest, then a receipt (and QR code) per certificate of an anchored batch,
        each synced to disk before this returns."""
        self._write_outputs(root, anchored, lambda ids: None)

    def _write_outputs(self, root: str, anchored: TxReceipt, synced: Callable[[list[str]], None]) -> None:
        """:meth:`write_outputs`, calling ``synced`` with the ids of each chunk whose receipts are
        synced."""
        tree, self._sealed = self._sealed, None
        if tree is None or hex0x(tree.root) != root:  # another batch, or one a crash interrupted
            tree = self.store.batch_tree(root)
        out_dir = private_dir(self.config.out_dir)
        sync_files([write_manifest(out_dir, tree)])
        context = ReceiptContext(
            tree=tree,
            chain_id=self.registry.sender.chain_id,
            registry=self.registry.address.lower(),
            issuer=self.issuer.lower(),
            out_dir=out_dir,
            node_url=self.config.node_url,
            qr_codes=self.config.qr_codes,
        )
        ids = self.store.batch_ids(root)
        with self.workers() as pool, self.progress("receipts", len(ids)) as bar:
            written = pool.map(write_receipts, context, self._receipt_rows(ids))
            for count, chunk in zip(written, chunked(ids, WORK_CHUNK), strict=True):
                synced(chunk)
                bar.update(count)

    def _receipt_rows(self, ids: list[str]) -> Iterator[list[ReceiptRow]]:
        """The certificates ``ids`` as receipts need them, one short read per chunk."""
        columns = (Certificate.id, Certificate.secured, Certificate.leaf)
        for chunk in chunked(ids, WORK_CHUNK):
            with self.store.reading() as session:
                rows = session.execute(select(*columns).where(Certificate.id.in_(chunk)))
                yield [tuple(row) for row in rows]  # type: ignore[misc]

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
        its certificates back to ``pending``, in one transaction.

        The next seal secures them afresh (new SD-JWT salts, new proof ids), so fresh leaves and a
        fresh root; the taken root is worthless to whoever holds it (no credentials, and signatures
        by a key it does not own). A credential issued through VC-API (``vcapi-*``) keeps the form
        its client was given: it goes into the next batch as it is, among others.
        """
        with self.store.transaction() as session:
            batch = session.get_one(Batch, root)
            batch.status = BatchStatus.SUPERSEDED
            batch.error = storable_text(conflict.diagnostics())
            members = session.scalars(select(Certificate).where(Certificate.batch_root == root))
            for certificate in members:
                if not certificate.id.startswith(VC_API_PREFIX):  # as handed out: kept as it is
                    certificate.secured = certificate.digest = certificate.leaf = None
                    certificate.status_list_id = certificate.status_index = None
                certificate.status = CertificateStatus.PENDING
                certificate.batch_root = None
                certificate.key_id = certificate.algorithm = None
        log.warning(
            "batch %s: root anchored first by %s; its certificates will be secured and sealed afresh",
            root,
            conflict.taken_by,
        )
        return self.store.batch(root)

    def resume(self, *, retry_failed: bool = False) -> list[Batch]:
        """Carries every batch that is not anchored yet forward from where it stopped, oldest first.

        ``failed`` batches (reverted, or refused at estimation) are retried only when asked, e.g.
        after the registry owner re-activated a suspended issuer.
        """
        if self.status_lists is not None:  # what a crash left unpublished, before anything new
            self.status_lists.publish_owed()
        statuses = [BatchStatus.SEALED, BatchStatus.SENDING, BatchStatus.SENT]
        if retry_failed:
            statuses.append(BatchStatus.FAILED)
        return [self._anchor_or_fail(batch.root) for batch in self.store.batches(statuses)]

    def run_once(self, *, retry_failed: bool = False) -> list[Batch]:
        """Resumes unfinished batches, then seals and anchors every pending certificate.

        A batch whose root another account anchors first is secured and sealed afresh, at
        most :data:`MAX_RESEALS` times a run: past that its certificates wait, pending, for the next
        run (and the registry owner can suspend an issuer that keeps copying roots).
        """
        with self.workers():  # one pool for every batch of the run
            done = self.resume(retry_failed=retry_failed)
            reseals = sum(batch.status is BatchStatus.SUPERSEDED for batch in done)
            while reseals <= MAX_RESEALS and (root := self.seal()) is not None:
                batch = self._anchor_or_fail(root)
                done.append(batch)
                if batch.status is BatchStatus.FAILED:
                    break  # the next batch would fail the same way; its certificates stay pending
                reseals += batch.status is BatchStatus.SUPERSEDED
        return done
