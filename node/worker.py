"""The processes of a multi-process node (``FINVAULT_WORKERS`` > 1): forked after import.

The node's process imports everything and checks everything (settings, chain, registry, mirror)
before it binds the port; then it forks, so the children share the pages of the modules, the
interpreter and the startup heap (copy on write) instead of each importing its own copy:

- one **sync process** runs the sync loop, the mirror's only writer, and publishes what it knows
  through :class:`node.shared.SharedState`;
- ``workers`` **HTTP workers** each serve the one listening socket with their own uvicorn server,
  mirror reader and caches, and read the loop's state from shared memory.

The parent, :class:`Supervisor`, stays single-threaded (forking a process with threads can copy
a lock some other thread held), so it can fork a replacement whenever a child dies, after a pause
that grows while replacements keep dying young (the workers answer ``mirror_stale`` meanwhile if
it is the sync process). It forwards SIGINT/SIGTERM to the children, waits for them, and exits.
Settings, secrets included, reach the children in memory: nothing is written to disk. A child
that outlives its parent gets SIGTERM.
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
from node.shared import SharedState, SyncSnapshot

log = logging.getLogger(__name__)

READY_PREFIX = "ready-"
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
#: What ``ps`` calls the children: ``finvault-sync`` and ``finvault-worker``.
PROCESS_NAMES = {"sync": "finvault-sync", "worker": "finvault-worker"}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: A child that dies this soon after its start is replaced after a pause that doubles with each
#: such death in a row (a sync process that cannot reach the RPC endpoint, say), up to the maximum.
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


def stale_snapshot() -> SyncSnapshot:
    """What the workers are shown when no sync loop runs: a state no verdict can be judged at
    (never caught up, so ``mirror_stale``), with a generation no earlier state had, so no fact
    cached before can be used with facts read after."""
    return SyncSnapshot(generation=time.monotonic_ns())


@dataclass
class _Child:
    role: str  # "sync" or "worker"
    started: float


class Supervisor:
    """Forks the sync process and the HTTP workers, keeps them running, stops them on a signal.

    ``sync_main`` and ``worker_main`` run in the children and return when the child should exit;
    a worker tells it serves by touching ``ready_dir/ready-PID``. ``on_ready`` is called once all
    ``workers`` serve.
    """

    def __init__(
        self,
        *,
        workers: int,
        shared: SharedState | None,
        ready_dir: Path,
        sync_main: Callable[[], None] | None,
        worker_main: Callable[[], None],
        on_ready: Callable[[], None],
    ) -> None:
        self.workers = workers
        self.shared = shared
        self.ready_dir = ready_dir
        self._mains = (
            {"worker": worker_main} if sync_main is None else {"sync": sync_main, "worker": worker_main}
        )
        self._on_ready = on_ready
        self._children: dict[int, _Child] = {}
        self._quick_crashes = 0
        self._restarts: list[tuple[float, str]] = []  # (when, role): replacements not forked yet
        self.served = False

    def run(self) -> None:
        """Forks the children and supervises them until SIGINT/SIGTERM (or a child's failure before
        all workers served)."""
        watched = {*STOP_SIGNALS, signal.SIGCHLD}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
        try:
            if "sync" in self._mains:  # a replica node runs none: the mirror's writer is elsewhere
                self._fork("sync")
            for _ in range(self.workers):
                self._fork("worker")
            while True:
                if not self.served and self._count_ready() >= self.workers:
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
        workers = [pid for pid, child in self._children.items() if child.role == "worker"]
        return sum(1 for pid in workers if self._ready_file(pid).exists())

    def _ready_file(self, pid: int) -> Path:
        return self.ready_dir / f"{READY_PREFIX}{pid}"

    def _fork(self, role: str) -> None:
        pid = os.fork()
        if pid == 0:  # the child: run, then leave without the parent's cleanup (atexit, finally)
            code = 0
            try:
                die_with_parent()
                name_process(PROCESS_NAMES[role])
                self._mains[role]()
            except BaseException:
                log.exception("node %s process failed", role)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        self._children[pid] = _Child(role, time.monotonic())

    def _wait(self) -> float:
        """Seconds to wait for a signal: until the next replacement is due, at most a second."""
        if not self.served:
            return 0.1
        if self._restarts:
            return max(0.01, min(1.0, min(when for when, _ in self._restarts) - time.monotonic()))
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
            if child.role == "sync" and self.shared is not None:
                self.shared.write(stale_snapshot())  # the workers stop vouching until a loop runs
            if not self.served:
                log.error("a node %s process exited (%d) before the node served", child.role, code)
                return False
            quick = time.monotonic() - child.started < CRASH_SECONDS
            self._quick_crashes = self._quick_crashes + 1 if quick else 0
            delay = min(MAX_RESTART_DELAY, 2.0 ** (self._quick_crashes - 1)) if quick else 0.0
            log.warning(
                "node %s process %d exited (%d): another starts in %.0f s", child.role, pid, code, delay
            )
            self._restarts.append((time.monotonic() + delay, child.role))

    def _restart_due(self) -> None:
        now = time.monotonic()
        due = [role for when, role in self._restarts if when <= now]
        self._restarts = [(when, role) for when, role in self._restarts if when > now]
        for role in due:
            self._fork(role)

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
    return FinVaultError("the node's workers did not start (see the log above)", code="startup_failed")
