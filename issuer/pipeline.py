"""Issuance work spread over processes: chunks of certificates through forked workers, in order.

Securing (signing) and writing receipts are independent per certificate, and CPU-bound in
Python; the database, the chain and the order of results stay with the calling process.
:class:`WorkerPool` runs a function over chunks either in this process (``workers=1``, the serial
path) or in ``workers`` forked processes, returning results in input order with a bounded number
of chunks in flight, so a million certificates stream through without being held at once.

What the workers need beyond their chunk (the signing key, the Merkle tree, the template) is a
*context* object handed to :class:`WorkerPool`. Forked workers inherit it from the parent's memory
at fork time: it is never pickled, never on a command line, never logged. Only chunks (records,
rows) and their results cross the process boundary.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric import ed25519

from chain.core.data_integrity import did_key
from chain.core.encoding import hex0x, iso_utc
from chain.core.issuance import verification_link
from chain.core.merkle import MerkleTree, leaf_hash
from chain.core.secured import SD_JWT, Securing, data_integrity_digest, secure_data_integrity, secure_sd_jwt
from chain.core.signing import PrivateKey, public_key_info
from chain.service.files import sync_files
from issuer.outputs import receipt_text, write_receipt_text

C = TypeVar("C")
T = TypeVar("T")
R = TypeVar("R")

#: Chunks queued per worker: one running, one waiting, so no worker idles between chunks.
IN_FLIGHT_PER_WORKER = 2

#: The context forked workers inherit; set only while the pool forks (under the lock).
_inherited: Any = None
_fork_lock = threading.Lock()


def default_workers() -> int:
    """One worker per CPU this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _in_worker(function: Callable[[Any, Any], Any], chunk: Any) -> Any:
    """What a forked worker runs: ``function`` over its inherited context and one chunk."""
    return function(_inherited, chunk)


class WorkerPool(Generic[C]):
    """Maps functions of ``(context, chunk)`` over chunks, in ``workers`` processes or in this one.

    Use as a context manager: entering forks the workers (each inherits ``context``), leaving
    stops them. With ``workers=1`` nothing is forked and the functions run here, in order.
    """

    def __init__(self, context: C, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.context = context
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> WorkerPool[C]:
        global _inherited
        if self.workers > 1:
            with _fork_lock:
                _inherited = self.context
                # Garbage the parent has not collected yet (a dropped database connection, say)
                # must never be finalized in a worker, over the parent's socket: collect it here,
                # and freeze the rest out of the workers' collector (fewer copied pages, too).
                gc.collect()
                gc.freeze()
                try:
                    executor = ProcessPoolExecutor(
                        self.workers, mp_context=multiprocessing.get_context("fork")
                    )
                    # With fork, the first submit forks every worker: now, while the context is set.
                    executor.submit(os.getpid).result()
                finally:
                    gc.unfreeze()
                    _inherited = None
            self._executor = executor
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def map(self, function: Callable[[C, T], R], chunks: Iterable[T]) -> Iterator[R]:
        """``function(context, chunk)`` for every chunk, yielded in input order.

        ``function`` must be a module-level function (workers find it by name). A worker's
        exception is raised here when its chunk's turn comes.
        """
        if self._executor is None:
            for chunk in chunks:
                yield function(self.context, chunk)
            return
        pending: deque[Future[R]] = deque()
        limit = IN_FLIGHT_PER_WORKER * self.workers
        for chunk in chunks:
            pending.append(self._executor.submit(_in_worker, function, chunk))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- the chunk functions -----------------------------------------------------------------------


@dataclass(frozen=True)
class SealContext:
    """What sealing workers share: the document-signing key, how credentials are secured, and what
    names the key."""

    key: PrivateKey
    key_id: str
    algorithm: str
    securing: Securing
    #: The Data Integrity proof's ``created`` (the seal's time, whole seconds).
    created: str
    #: The DID controlling the key (``did:web:...``), or None for an Ed25519 key's own ``did:key``.
    controller: str | None

    @classmethod
    def for_key(
        cls, key: PrivateKey, sealed_at: datetime, controller: str | None, securing: Securing = SD_JWT
    ) -> SealContext:
        """The context for sealing with ``key`` at ``sealed_at``."""
        info = public_key_info(key)
        created = iso_utc(sealed_at.replace(microsecond=0))
        if controller is None and isinstance(key, ed25519.Ed25519PrivateKey):
            controller = did_key(key.public_key())  # once, not per certificate
        return cls(key, hex0x(info.key_id), info.algorithm.label, securing, created, controller)

    def __repr__(self) -> str:  # never shows the key
        return f"SealContext(key_id={self.key_id}, algorithm={self.algorithm}, securing={self.securing})"


#: A pending certificate as sealing reads it: id, credential (JSON text), the JSON text of the
#: ``credentialStatus`` entry it gets ("" when the issuer publishes no status lists, or it has one),
#: and the credential as already secured ("" unless it came through VC-API, secured at once).
SealRow = tuple[str, str, str, str]
#: A sealed certificate: id, secured credential (the SD-JWT, or the JSON text of the credential with
#: its proof), digest, leaf.
Sealed = tuple[str, str, str, str]


def seal_certificates(context: SealContext, rows: list[SealRow]) -> list[Sealed]:
    """Secures each credential with the issuer's key (one signature per certificate): an SD-JWT
    (every claim of the subject disclosable) or a Data Integrity proof, as ``context.securing``
    says."""
    sealed: list[Sealed] = []
    for certificate_id, credential_text, status_text, secured_text in rows:
        if secured_text:  # secured at issuance (VC-API): its leaf commits to it as it was handed out
            digest = data_integrity_digest(json.loads(secured_text))
            sealed.append((certificate_id, secured_text, hex0x(digest), hex0x(leaf_hash(digest))))
            continue
        credential = json.loads(credential_text)
        if status_text:  # FinVault's entry replaces any the template wrote
            credential["credentialStatus"] = json.loads(status_text)
        if context.securing == SD_JWT:
            secured = secure_sd_jwt(
                credential,
                context.key,
                random_bytes=os.urandom,
                controller=context.controller,
                key_id=context.key_id,
            )
        else:
            secured = secure_data_integrity(
                credential,
                context.key,
                created=context.created,
                random_bytes=os.urandom,
                controller=context.controller,
            )
        value = secured.value
        text = (
            value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        )
        sealed.append((certificate_id, text, hex0x(secured.digest), hex0x(secured.leaf)))
    return sealed


@dataclass(frozen=True)
class ReceiptContext:
    """What receipt-writing workers share: the batch's tree, its anchor and where files go."""

    tree: MerkleTree
    chain_id: int
    registry: str
    issuer: str
    out_dir: Path
    node_url: str | None
    qr_codes: bool


#: A sealed certificate as receipts read it: id, secured credential, leaf.
ReceiptRow = tuple[str, str, str]


def write_receipts(context: ReceiptContext, rows: list[ReceiptRow]) -> int:
    """Writes a receipt (and QR code, if configured) per row and syncs them to disk; returns how
    many receipts were written."""
    tree, root = context.tree, hex0x(context.tree.root)
    anchor = {"chainId": context.chain_id, "registry": context.registry, "issuer": context.issuer}
    written: list[Path] = []
    for certificate_id, secured, leaf_hex in rows:
        leaf = bytes.fromhex(leaf_hex[2:])
        # Stored as sealed: an SD-JWT, or the JSON text of a credential with its proof.
        credential: str | dict[str, Any] = json.loads(secured) if secured.startswith("{") else secured
        text = receipt_text(
            credential=credential, path=[hex0x(p) for p in tree.proof(leaf)], root=root, anchor=anchor
        )
        link = verification_link(context.node_url, leaf) if context.node_url and context.qr_codes else None
        written += write_receipt_text(context.out_dir, certificate_id, text, link)
    sync_files(written)  # here, so that syncing overlaps the other workers' chunks
    return len(rows)
