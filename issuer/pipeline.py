"""Issuance work spread over processes: chunks of certificates through forked workers, in order.

Canonicalizing, signing and writing receipts are independent per certificate, and CPU-bound in
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

import base64
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

from chain.core.canonical import recompute_digest, salt_document
from chain.core.data_integrity import did_key
from chain.core.encoding import hex0x, iso_utc
from chain.core.issuance import secure_credential, verification_link
from chain.core.merkle import MerkleTree, leaf_hash
from chain.core.signing import PrivateKey, public_key_info, sign_digest
from chain.service.files import sync_files
from issuer.errors import StoreError
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
    """What sealing workers share: the document-signing key and what its signatures name."""

    key: PrivateKey
    key_id: str
    algorithm: str
    #: The Data Integrity proof's ``created`` (the seal's time, whole seconds).
    created: str
    #: The DID controlling the key (``did:web:...``), or None for the key's own ``did:key``.
    controller: str | None

    @classmethod
    def for_key(cls, key: PrivateKey, sealed_at: datetime, controller: str | None) -> SealContext:
        """The context for sealing with ``key`` at ``sealed_at``."""
        info = public_key_info(key)
        created = iso_utc(sealed_at.replace(microsecond=0))
        if controller is None and isinstance(key, ed25519.Ed25519PrivateKey):
            controller = did_key(key.public_key())  # once, not per certificate
        return cls(key, hex0x(info.key_id), info.algorithm.label, created, controller)

    def __repr__(self) -> str:  # never shows the key
        return f"SealContext(key_id={self.key_id}, algorithm={self.algorithm})"


#: A pending certificate as sealing reads it: id, credential and salts (JSON text), digest.
SealRow = tuple[str, str, str, str]
#: A sealed certificate: id, credential, salts, digest, leaf, signature value (base64).
Sealed = tuple[str, dict[str, Any], dict[str, str], str, str, str]


def seal_certificates(context: SealContext, rows: list[SealRow]) -> list[Sealed]:
    """Checks each stored digest, secures Ed25519 credentials with a Data Integrity proof (salted
    afresh, so digest, signature and anchor cover the proof), and signs every digest."""
    key = context.key
    sealed: list[Sealed] = []
    for certificate_id, credential_text, salts_text, digest in rows:
        credential, salts = json.loads(credential_text), json.loads(salts_text)
        if hex0x(recompute_digest(credential, salts, ())) != digest:
            raise StoreError(f"certificate {certificate_id!r}: its stored digest does not match")
        if isinstance(key, ed25519.Ed25519PrivateKey):
            # A proof from an earlier seal (a batch whose root was taken) is replaced.
            unsecured = {name: value for name, value in credential.items() if name != "proof"}
            secured = secure_credential(
                unsecured, key, created=context.created, controller=context.controller
            )
            document = salt_document(secured, os.urandom)
            credential, salts, raw_digest = secured, dict(document.salts), document.digest
        else:
            raw_digest = bytes.fromhex(digest[2:])
        signature = base64.b64encode(sign_digest(key, raw_digest)).decode()
        sealed.append(
            (certificate_id, credential, salts, hex0x(raw_digest), hex0x(leaf_hash(raw_digest)), signature)
        )
    return sealed


@dataclass(frozen=True)
class ReceiptContext:
    """What receipt-writing workers share: the batch's tree, its anchor and where files go."""

    tree: MerkleTree
    anchor: dict[str, Any]
    out_dir: Path
    node_url: str | None
    qr_codes: bool


#: A sealed certificate as receipts read it: id, credential and salts (JSON text), digest,
#: signature value, key id, algorithm.
ReceiptRow = tuple[str, str, str, str, str, str, str]


def write_receipts(context: ReceiptContext, rows: list[ReceiptRow]) -> int:
    """Writes a receipt (and QR code, if configured) per row and syncs them to disk; returns how
    many receipts were written."""
    tree, root = context.tree, hex0x(context.tree.root)
    written: list[Path] = []
    for certificate_id, credential_text, salts_text, digest, signature, key_id, algorithm in rows:
        leaf = leaf_hash(bytes.fromhex(digest[2:]))
        link = verification_link(context.node_url, leaf) if context.node_url else None
        text = receipt_text(
            credential=json.loads(credential_text),
            salts=json.loads(salts_text),
            digest=digest,
            signature=(key_id, algorithm, signature),
            proof=(hex0x(leaf), [hex0x(p) for p in tree.proof(leaf)], root),
            anchor=context.anchor,
            link=link,
        )
        written += write_receipt_text(
            context.out_dir, certificate_id, text, link if context.qr_codes else None
        )
    sync_files(written)  # here, so that syncing overlaps the other workers' chunks
    return len(rows)
