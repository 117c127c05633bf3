"""Issuance work spread over processes: chunks of certificates through worker processes, in order.

Filling templates, securing (signing) and writing receipts are independent per certificate, and
CPU-bound in Python; the database, the chain and the order of results stay with the calling
process. :class:`WorkerPool` runs functions over chunks either in this process (``workers=1``,
the serial path) or in ``workers`` processes, returning results in input order with a bounded
number of chunks in flight, so a million certificates stream through without being held at once.
One pool serves every phase of a run (intake, sealing, receipts): its processes start with the
first chunk and stop when the pool is closed.

**The issuer never forks.** It may be threaded (uvicorn and APScheduler in the API process, a
progress bar), and a child forked from a threaded process can inherit a lock another thread held
at that instant and deadlock on it (CPython 3.12 warns about it). The workers come from
multiprocessing's *forkserver*: a fresh interpreter the issuer process starts once (fork+exec,
safe from any thread; about 0.3 s), single-threaded, which imports :data:`PRELOAD` (the signing
stack, intake, templates) and forks every worker from itself; a pool of two then starts in about
10 ms. As multiprocessing does for every start method but fork, each worker also imports the
program's main module again (as ``__mp_main__``): a program that issues with workers keeps its
entry point under ``if __name__ == "__main__":`` and its top-level imports light (the
``finvault`` command's are; ``bench/issuer.py`` guards its own).

**What workers are told.** Beyond its chunk, a worker needs a *context* (the signing key, the
batch's Merkle tree, the template), handed to :meth:`WorkerPool.map`. A forkserver worker shares
no memory with the issuer, so at the start of each map the context is pickled once, in memory, and
written to every worker's own pipe. For a :class:`SealContext` that pickle holds the signing key
(unencrypted PKCS #8 DER): it lives only in the issuer's memory, the kernel's pipe buffer and the
worker's memory, and is never written to a file, never put on a command line (the forkserver's
names modules only; workers are forked from it, not executed) and never logged (a context's
``repr`` names the key id only). A pool's initializer would pickle it the same way, but only once
per pool, so a pool could serve one phase only; sent per map, one pool serves every phase of a
run, and the key and the tree still cross only to the processes of the run that uses them. A
worker keeps the current map's context only, and the pool is used by one thread at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NoReturn, TypeVar

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)

from chain.core.data_integrity import did_key
from chain.core.encoding import hex0x, iso_utc
from chain.core.issuance import verification_link
from chain.core.merkle import MerkleTree, leaf_hash
from chain.core.secured import (
    SD_JWT,
    Cryptosuite,
    Securing,
    data_integrity_digest,
    secure_data_integrity,
    secure_sd_jwt,
)
from chain.core.signing import PrivateKey, public_key_info
from chain.service.files import sync_files
from issuer.errors import WorkerFailed
from issuer.ob3 import OB3_CRYPTOSUITE, is_open_badge, require_ed25519
from issuer.outputs import receipt_text, write_receipt_text

C = TypeVar("C")
T = TypeVar("T")
R = TypeVar("R")

#: Chunks queued per worker: one running, one waiting, so no worker idles between chunks.
IN_FLIGHT_PER_WORKER = 2
#: How workers are started (see the module docstring): never ``fork`` from the issuer process.
START_METHOD: Final = "forkserver"
#: What the forkserver imports once, so that every worker it forks starts with them loaded: the
#: modules holding the chunk functions and their contexts. (``__main__`` is multiprocessing's own
#: default entry; Python 3.11's forkserver skips it, so each worker imports the main module itself.)
PRELOAD = ["__main__", "issuer.pipeline", "issuer.intake"]
#: Bytes a pipe between the issuer and a worker may buffer (Linux; the default is 64 KiB): a chunk
#: of 1,000 credentials fits whole, so it is handed over while the worker is still busy.
PIPE_BYTES = 1 << 20
#: Seconds a closing pool gives each worker to finish its chunk and exit, before it is killed.
STOP_SECONDS = 30.0


def default_workers() -> int:
    """One worker per CPU this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _loads(data: bytes) -> Any:
    # Only ever what this pool's other end wrote into its private pipes: no one else's bytes.
    return pickle.loads(data)  # noqa: S301


def _widen(connection: Connection) -> None:
    """Grows the pipe under ``connection`` to :data:`PIPE_BYTES` where the system allows it."""
    grow = getattr(fcntl, "F_SETPIPE_SZ", None)
    if grow is not None:
        with contextlib.suppress(OSError):  # over the user's pipe quota: the default size works
            fcntl.fcntl(connection.fileno(), grow, PIPE_BYTES)


# -- in a worker -------------------------------------------------------------------------------


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as its ``__cause__``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n(in an issuer worker process)\n{self.text}"


def _failure(exc: Exception) -> bytes:
    """A worker's answer for a chunk that raised ``exc``: the exception itself when it survives
    pickling, a :class:`WorkerFailed` naming it otherwise; with its traceback's text either way."""
    text = "".join(traceback.format_exception(exc))
    try:
        answer = _dumps((False, exc, text))
        _loads(answer)
    except Exception:
        answer = _dumps((False, WorkerFailed(f"{type(exc).__name__}: {exc}"), text))
    return answer


def _receive(tasks: Connection, inbox: queue.SimpleQueue[bytes | None]) -> None:
    """A worker's receiving thread: every message from the issuer into ``inbox``; None at the end."""
    try:
        while True:
            inbox.put(tasks.recv_bytes())
    except (EOFError, OSError):
        inbox.put(None)


def _send(results: Connection, outbox: queue.SimpleQueue[bytes | None]) -> None:
    """A worker's sending thread: every answer in ``outbox`` to the issuer, until None."""
    while (answer := outbox.get()) is not None:
        try:
            results.send_bytes(answer)
        except OSError:
            return  # the issuer closed the pool, or is gone: nobody to answer


def _serve(tasks: Connection, results: Connection) -> None:
    """A worker's life: a context, then chunks, from ``tasks``; one answer per chunk, in order, to
    ``results``; until ``tasks`` closes (the pool closed, or the issuer is gone).

    Two threads move the bytes, so the work never waits for the issuer to read an answer (it may
    be writing to its database) and the issuer never waits for a chunk to be read. Nothing forks
    here."""
    # Ctrl-C and a service manager's SIGTERM reach the whole process group; when to stop is the
    # issuer's call (it closes the pool once a cycle under way has finished).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # What the forkserver imported lives as long as the worker: full collections (the chunks' many
    # small objects trigger them) need not walk it again each time.
    gc.freeze()
    inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    receiver = threading.Thread(target=_receive, args=(tasks, inbox), name="receive", daemon=True)
    sender = threading.Thread(target=_send, args=(results, outbox), name="send", daemon=True)
    receiver.start()
    sender.start()
    context: Any = None
    broken_context: Exception | None = None
    while (message := inbox.get()) is not None and sender.is_alive():  # else: nobody to answer
        try:
            kind, *parts = _loads(message)
        except Exception as exc:  # a chunk whose function or rows cannot be rebuilt here
            outbox.put(_failure(exc))
            continue
        if kind == "context":
            context = None  # the previous map's context goes first
            try:
                context, broken_context = _loads(parts[0]), None
            except Exception as exc:
                broken_context = exc
            continue
        if broken_context is not None:  # every chunk of this map fails as its context did
            outbox.put(_failure(broken_context))
            continue
        function, chunk = parts
        try:
            outbox.put(_dumps((True, function(context, chunk), "")))
        except Exception as exc:
            outbox.put(_failure(exc))
    outbox.put(None)
    sender.join()


# -- in the issuer -----------------------------------------------------------------------------


@dataclass
class _Worker:
    process: BaseProcess
    tasks: Connection
    results: Connection
    #: The numbers of the chunks sent to it whose answers are not read yet, oldest first.
    waiting: deque[int] = field(default_factory=deque)


class WorkerPool:
    """Maps functions of ``(context, chunk)`` over chunks, in ``workers`` processes or in this one.

    Use as a context manager: the processes start with the first chunk (or :meth:`start`), serve
    any number of maps, one at a time, and stop when the pool is left. With ``workers=1`` no
    process is started and the functions run here, in order.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self._running: list[_Worker] = []
        self._closed = False
        #: Counts maps; a map whose number is no longer this one was superseded by a newer one.
        self._maps = 0

    @property
    def start_method(self) -> str | None:
        """How the worker processes start (:data:`START_METHOD`); None when nothing runs elsewhere
        (``workers=1``)."""
        return START_METHOD if self.workers > 1 else None

    def pids(self) -> list[int]:
        """The process ids of the running workers (none before the first chunk)."""
        return [worker.process.pid for worker in self._running if worker.process.pid is not None]

    def __repr__(self) -> str:
        return f"WorkerPool(workers={self.workers}, running={len(self._running)})"

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Starts the worker processes, unless they run already (or ``workers=1``)."""
        if self._closed:
            raise WorkerFailed("this worker pool is closed")
        if self.workers == 1 or self._running:
            return
        context = multiprocessing.get_context(START_METHOD)
        context.set_forkserver_preload(PRELOAD)  # for the whole process: its one forkserver
        try:
            for number in range(self.workers):
                task_reader, task_writer = context.Pipe(duplex=False)
                answer_reader, answer_writer = context.Pipe(duplex=False)
                _widen(task_writer)
                _widen(answer_writer)
                process = context.Process(
                    target=_serve,
                    args=(task_reader, answer_writer),
                    name=f"finvault-issuer-worker-{number}",
                    daemon=True,  # stopped with the issuer, whatever happens to it
                )
                try:
                    process.start()
                finally:  # the worker's ends are the worker's
                    task_reader.close()
                    answer_writer.close()
                self._running.append(_Worker(process, task_writer, answer_reader))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stops the workers: each finishes the chunk it is on and exits (killed if it has not within
        :data:`STOP_SECONDS`). The pool cannot be started again."""
        self._closed = True
        running, self._running = self._running, []
        for worker in running:
            worker.tasks.close()  # end of input: the worker exits after its chunk
            worker.results.close()  # answers still on their way are dropped
        deadline = time.monotonic() + STOP_SECONDS
        for worker in running:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                worker.process.kill()  # SIGKILL: a worker ignores SIGTERM (see _serve)
                worker.process.join()

    def map(self, function: Callable[[C, T], R], context: C, chunks: Iterable[T]) -> Iterator[R]:
        """``function(context, chunk)`` for every chunk, yielded in input order.

        ``function`` must be a module-level function (workers find it by name), and ``context``,
        the chunks and the results must pickle. At most ``IN_FLIGHT_PER_WORKER * workers`` chunks
        are out at a time (sent, or answered and not yet yielded). A worker's exception is raised
        here when its chunk's turn comes; a worker that dies raises :class:`WorkerFailed` and
        closes the pool. Starting a map abandons an unfinished earlier one.
        """
        if self.workers == 1:
            for chunk in chunks:
                yield function(context, chunk)
            return
        self.start()
        self._drain()  # what an abandoned map left in flight
        self._maps += 1
        this_map = self._maps
        message = _dumps(("context", _dumps(context)))
        for worker in self._running:
            self._send(worker, message)
        del message
        answers: dict[int, tuple[bool, Any, str]] = {}
        limit = IN_FLIGHT_PER_WORKER * len(self._running)
        source = iter(chunks)
        exhausted = False
        sent = done = 0
        try:
            while True:
                if self._maps != this_map:
                    raise RuntimeError("a newer map on this worker pool abandoned this one")
                self._collect(answers, block=False)  # who is free, before handing out more
                while not exhausted and sent - done < limit:
                    try:
                        chunk = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    worker = min(self._running, key=lambda w: len(w.waiting))
                    self._send(worker, _dumps(("chunk", function, chunk)))
                    worker.waiting.append(sent)
                    sent += 1
                if done == sent:
                    return
                while done not in answers:
                    self._collect(answers, block=True)
                ok, value, remote = answers.pop(done)
                done += 1
                if not ok:
                    value.__cause__ = _RemoteTraceback(remote)
                    raise value
                yield value
        finally:
            if self._maps == this_map:
                self._drain()

    def _send(self, worker: _Worker, message: bytes) -> None:
        try:
            worker.tasks.send_bytes(message)
        except OSError:
            self._fail(worker)

    def _collect(self, answers: dict[int, tuple[bool, Any, str]], *, block: bool) -> None:
        """Reads the answers that have arrived (with ``block``, waits for at least one)."""
        busy = [worker for worker in self._running if worker.waiting]
        if not busy:
            return
        ready = wait([w.results for w in busy] + [w.process.sentinel for w in busy], None if block else 0)
        for worker in busy:
            has_answer = worker.results in ready
            if not has_answer and worker.process.sentinel in ready:
                if not worker.results.poll():
                    self._fail(worker)
                has_answer = True
            if has_answer:
                try:
                    data = worker.results.recv_bytes()
                except (EOFError, OSError):
                    self._fail(worker)
                answers[worker.waiting.popleft()] = _loads(data)

    def _drain(self) -> None:
        """Reads and drops every answer still owed, so the next map starts with idle workers."""
        dropped: dict[int, tuple[bool, Any, str]] = {}
        while any(worker.waiting for worker in self._running):
            self._collect(dropped, block=True)
            dropped.clear()

    def _fail(self, worker: _Worker) -> NoReturn:
        pid = worker.process.pid
        self.close()
        raise WorkerFailed(
            f"issuer worker process {pid} exited (code {worker.process.exitcode}) in the middle of "
            "its work; the pool is closed: run again (what was not committed is redone)"
        )


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
    """What sealing workers share: the document-signing key, how credentials are secured (and with
    which Data Integrity cryptosuite), and what names the key."""

    key: PrivateKey
    key_id: str
    algorithm: str
    securing: Securing
    #: The Data Integrity proof's ``created`` (the seal's time, whole seconds).
    created: str
    #: The DID controlling the key (``did:web:...``), or None for an Ed25519 key's own ``did:key``.
    controller: str | None
    #: The cryptosuite of Data Integrity proofs under ``securing="data-integrity"`` (Open Badges
    #: always get :data:`~issuer.ob3.OB3_CRYPTOSUITE`).
    cryptosuite: Cryptosuite = "eddsa-jcs-2022"

    @classmethod
    def for_key(
        cls,
        key: PrivateKey,
        sealed_at: datetime,
        controller: str | None,
        securing: Securing = SD_JWT,
        cryptosuite: Cryptosuite = "eddsa-jcs-2022",
    ) -> SealContext:
        """The context for sealing with ``key`` at ``sealed_at``."""
        info = public_key_info(key)
        created = iso_utc(sealed_at.replace(microsecond=0))
        if controller is None and isinstance(key, ed25519.Ed25519PrivateKey):
            controller = did_key(key.public_key())  # once, not per certificate
        return cls(key, hex0x(info.key_id), info.algorithm.label, securing, created, controller, cryptosuite)

    def __repr__(self) -> str:  # never shows the key
        return (
            f"SealContext(key_id={self.key_id}, algorithm={self.algorithm}, securing={self.securing}, "
            f"cryptosuite={self.cryptosuite})"
        )

    def __reduce__(self) -> tuple[Callable[..., SealContext], tuple[Any, ...]]:
        """Pickled only for the workers' pipes (see the module docstring): the key as unencrypted
        PKCS #8 DER, which cryptography's key objects do not pickle by themselves."""
        der = self.key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        parts = (self.key_id, self.algorithm, self.securing, self.created, self.controller, self.cryptosuite)
        return _seal_context, (der, *parts)


def _seal_context(
    der: bytes,
    key_id: str,
    algorithm: str,
    securing: Securing,
    created: str,
    controller: str | None,
    cryptosuite: Cryptosuite,
) -> SealContext:
    """A :class:`SealContext` rebuilt in a worker from its pickled parts."""
    key = load_der_private_key(der, password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        raise TypeError(f"a signing key is Ed25519 or RSA, not {type(key).__name__}")
    return SealContext(key, key_id, algorithm, securing, created, controller, cryptosuite)


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
    says. An Open Badge 3.0 is always whole under a Data Integrity proof
    (:data:`~issuer.ob3.OB3_CRYPTOSUITE`): a ConfigError for an RSA key."""
    sealed: list[Sealed] = []
    for certificate_id, credential_text, status_text, secured_text in rows:
        if secured_text:  # secured at issuance (VC-API): its leaf commits to it as it was handed out
            digest = data_integrity_digest(json.loads(secured_text))
            sealed.append((certificate_id, secured_text, hex0x(digest), hex0x(leaf_hash(digest))))
            continue
        credential = json.loads(credential_text)
        if status_text:  # FinVault's entry replaces any the template wrote
            credential["credentialStatus"] = json.loads(status_text)
        badge = is_open_badge(credential)
        if badge:
            require_ed25519(context.key)
        if context.securing == SD_JWT and not badge:
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
                cryptosuite=OB3_CRYPTOSUITE if badge else context.cryptosuite,
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
