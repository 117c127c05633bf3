"""The node's processes: one writer and ``FINVAULT_WORKERS`` readers, forked after import.

The node's process imports everything and checks everything (settings, chain, registry, mirror)
before it binds the port; then it forks, so the children share the pages of the modules, the
interpreter and the startup heap (copy on write) instead of each importing its own copy:

- one **writer** runs the sync loop, the mirror's only writer (:mod:`node.writer`), and publishes
  its state in the mirror (none for a replica node: its mirror's writer runs elsewhere);
- ``workers`` **readers** each serve the listening port with their own uvicorn server, mirror
  connections and caches, and read the mirror's state from the mirror (:mod:`node.state`).

With at least two readers and as many CPUs as readers (``FINVAULT_PIN_READERS``, on by default),
reader *i* is pinned to the *i*-th CPU the node may run on, and a replacement takes its
predecessor's: a verification's hand-offs between a reader's event loop and its threads then stay
on one core instead of waking a thread on the other (on this 2-core VM, single runs of
``bench/node.py``: open loop p99 9.0 and 10.7 ms pinned against 22.1, 23.6 and 51 ms unpinned; the
peaks spread more between runs than between the two). The writer is not pinned.

They share nothing but the database. The parent, :class:`Supervisor`, stays single-threaded
(forking a process with threads can copy a lock some other thread held), so it can fork a
replacement whenever a child dies, after a pause that grows while replacements keep dying young.
While no writer runs, readers answer from the last committed state until the mirror's last
catch-up is ``FINVAULT_MAX_STALENESS`` old, then ``mirror_stale``. The supervisor forwards
SIGINT/SIGTERM to the children, waits for them, and exits. Settings, secrets included, reach the
children in memory: nothing is written to disk. A child that outlives its parent gets SIGTERM.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chain.errors import FinVaultError

log = logging.getLogger(__name__)

READY_PREFIX = "ready-"
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
#: What ``ps`` calls the children: ``finvault-writer`` and ``finvault-reader``.
PROCESS_NAMES = {"writer": "finvault-writer", "reader": "finvault-reader"}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: A child that dies this soon after its start is replaced after a pause that doubles with each
#: such death in a row (a writer that cannot reach the RPC endpoint, say), up to the maximum.
CRASH_SECONDS = 5.0
MAX_RESTART_DELAY = 30.0
#: How long children have to stop after SIGTERM before they are killed (uvicorn's graceful
#: shutdown is bounded below this).
STOP_GRACE_SECONDS = 45.0


def name_process(name: str) -> None:
    """Names this process as ``ps``, ``top`` and ``/proc/PID/comm`` show it (15 bytes at most)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def die_with_parent() -> None:
    """SIGTERM when the parent dies (a killed supervisor must not leave workers serving stale state),
    and take the stop signals even if they were blocked."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {*STOP_SIGNALS, signal.SIGCHLD})
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class _Child:
    role: str  # "writer" or "reader"
    started: float
    slot: int | None = None  # a reader's CPU slot, kept by its replacement


def reader_cpus(readers: int, pin: bool) -> list[int] | None:
    """The CPU each reader is pinned to, by slot; None when readers are not pinned (``pin`` off, a
    single reader, or fewer CPUs this process may run on than readers)."""
    if not pin or readers < 2:
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[:readers] if readers <= len(allowed) else None


class Supervisor:
    """Forks the writer and the readers, keeps them running, stops them on a signal.

    ``writer_main`` and ``reader_main`` run in the children and return when the child should
    exit; a reader tells it serves by touching ``ready_dir/ready-PID``. ``on_ready`` is called once
    all ``readers`` serve. ``cpus`` (:func:`reader_cpus`): the CPU of each reader slot.
    """

    def __init__(
        self,
        *,
        readers: int,
        ready_dir: Path,
        writer_main: Callable[[], None] | None,
        reader_main: Callable[[], None],
        on_ready: Callable[[], None],
        cpus: list[int] | None = None,
    ) -> None:
        self.readers = readers
        self.cpus = cpus
        self.ready_dir = ready_dir
        self._mains = (
            {"reader": reader_main} if writer_main is None else {"writer": writer_main, "reader": reader_main}
        )
        self._on_ready = on_ready
        self._children: dict[int, _Child] = {}
        self._quick_crashes = 0
        self._restarts: list[tuple[float, str, int | None]] = []  # (when, role, slot): not forked yet
        self.served = False

    def run(self) -> None:
        """Forks the children and supervises them until SIGINT/SIGTERM (or a child's failure before
        all readers served)."""
        watched = {*STOP_SIGNALS, signal.SIGCHLD}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
        try:
            if "writer" in self._mains:  # a replica node runs none: the mirror's writer is elsewhere
                self._fork("writer")
            for slot in range(self.readers):
                self._fork("reader", slot)
            while True:
                if not self.served and self._count_ready() >= self.readers:
                    self.served = True
                    self._on_ready()
                received = signal.sigtimedwait(watched, self._wait())
                if received is not None and received.si_signo in STOP_SIGNALS:
                    break
                if not self._reap():
                    break
                self._restart_due()
        finally:
            self._stop_children()
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def _count_ready(self) -> int:
        readers = [pid for pid, child in self._children.items() if child.role == "reader"]
        return sum(1 for pid in readers if self._ready_file(pid).exists())

    def _ready_file(self, pid: int) -> Path:
        return self.ready_dir / f"{READY_PREFIX}{pid}"

    def _fork(self, role: str, slot: int | None = None) -> None:
        pid = os.fork()
        if pid == 0:  # the child: run, then leave without the parent's cleanup (atexit, finally)
            code = 0
            try:
                die_with_parent()
                name_process(PROCESS_NAMES[role])
                if self.cpus is not None and slot is not None:  # before any thread: they inherit it
                    os.sched_setaffinity(0, {self.cpus[slot]})
                self._mains[role]()
            except BaseException:
                log.exception("node %s process failed", role)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        self._children[pid] = _Child(role, time.monotonic(), slot)

    def _wait(self) -> float:
        """Seconds to wait for a signal: until the next replacement is due, at most a second."""
        if not self.served:
            return 0.1
        if self._restarts:
            return max(0.01, min(1.0, min(when for when, _, _ in self._restarts) - time.monotonic()))
        return 1.0

    def _reap(self) -> bool:
        """Reaps every child that exited and schedules its replacement; False when the node must
        stop (a child died before the node served: a start-up failure, already logged)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid == 0:
                return True
            child = self._children.pop(pid, None)
            if child is None:
                continue
            self._ready_file(pid).unlink(missing_ok=True)
            code = os.waitstatus_to_exitcode(status)
            if not self.served:
                log.error("a node %s process exited (%d) before the node served", child.role, code)
                return False
            quick = time.monotonic() - child.started < CRASH_SECONDS
            self._quick_crashes = self._quick_crashes + 1 if quick else 0
            delay = min(MAX_RESTART_DELAY, 2.0 ** (self._quick_crashes - 1)) if quick else 0.0
            log.warning(
                "node %s process %d exited (%d): another starts in %.0f s", child.role, pid, code, delay
            )
            self._restarts.append((time.monotonic() + delay, child.role, child.slot))

    def _restart_due(self) -> None:
        now = time.monotonic()
        due = [(role, slot) for when, role, slot in self._restarts if when <= now]
        self._restarts = [restart for restart in self._restarts if restart[0] > now]
        for role, slot in due:
            self._fork(role, slot)

    def _stop_children(self) -> None:
        for pid in self._children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self._children:
            for pid in list(self._children):
                with contextlib.suppress(ChildProcessError):
                    done, _ = os.waitpid(pid, os.WNOHANG)
                    if done == 0:
                        continue
                self._children.pop(pid)
            if self._children and time.monotonic() > deadline:
                for pid in self._children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + STOP_GRACE_SECONDS
            time.sleep(0.05)


def startup_failed() -> FinVaultError:
    """The error a node whose processes did not all start raises."""
    return FinVaultError("the node's processes did not start (see the log above)", code="startup_failed")
