"""A local anvil chain from the repo's node_modules, bound to 127.0.0.1.

anvil runs in its own process group and is told to die with its parent (``PR_SET_PDEATHSIG``), so
neither a test failure nor a killed demo leaves it behind. :meth:`DevChain.stop` ends it by PID.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from chain.dev.toolchain import anvil_binary
from chain.errors import ToolchainError
from chain.networks import DEV_CHAIN_ID
from chain.service.signals import SHUTDOWN_SIGNALS

__all__ = ["DEV_CHAIN_ID", "DevChain", "free_port"]

_PR_SET_PDEATHSIG = 1
#: What anvil prints once it listens: the port it was given, or the one it picked for ``--port 0``.
_LISTENING = re.compile(rb"Listening on 127\.0\.0\.1:(\d+)")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago; another process may bind it before the caller does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _child_setup() -> None:
    """Runs in the anvil child: die with the parent, and take SIGTERM even if the parent blocked it."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SHUTDOWN_SIGNALS)
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class DevChain:
    """Runs ``anvil`` on 127.0.0.1 until :meth:`stop` (or the end of a ``with`` block)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        chain_id: int = DEV_CHAIN_ID,
        block_time: float | None = None,
        accounts: int = 10,
        log_path: Path | None = None,
        states_in_memory: int | None = None,
    ) -> None:
        """``states_in_memory``: keep this many blocks' states in memory, none on disk. anvil moves
        older states to disk, and ``anvil_reorg`` back to a block whose state is there finds an
        empty state (contracts gone): a chain reorganised many times needs them all in memory.

        Without ``port``, anvil binds a free port itself (``--port 0``) and :attr:`port` is known
        once :meth:`start` returns: no other process (a parallel test worker's server, say) can
        take the port between a pick and the bind."""
        self.port = port or 0
        self.chain_id = chain_id
        self.block_time = block_time
        self.accounts = accounts
        self.log_path = log_path
        self.states_in_memory = states_in_memory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def rpc_url(self) -> str:
        """The JSON-RPC URL anvil listens on."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 30.0) -> DevChain:
        """Starts anvil and waits until it answers; :class:`ToolchainError` if it exits or stays silent."""
        command = [
            str(anvil_binary()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--accounts", str(self.accounts),
        ]  # fmt: skip
        if self.block_time is not None:
            command += ["--block-time", str(self.block_time)]
        if self.states_in_memory is not None:
            command += ["--prune-history", str(self.states_in_memory)]
        log = open(self.log_path, "a+b") if self.log_path else tempfile.TemporaryFile()  # noqa: SIM115
        with log:
            log.seek(0, os.SEEK_END)  # where this start's output begins (a log file may hold older runs)
            output_from = log.tell()
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_child_setup,
                # anvil keeps its cache under $HOME/.foundry; keep a test's HOME if it set one.
                env={**os.environ},
            )
            self._wait_ready(ready_timeout, log.fileno(), output_from)
        return self

    def _wait_ready(self, timeout: float, log: int, output_from: int) -> None:
        """Waits until anvil answers; first, for a port anvil picks, until it says which one."""
        deadline = time.monotonic() + timeout
        payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                port = f" (port {self.port} in use?)" if self.port else ""
                raise ToolchainError(f"anvil exited with code {self.process.returncode}{port}")
            if not self.port:
                # Output so far, read in place: pread leaves the file offset anvil appends at alone.
                found = _LISTENING.search(os.pread(log, 1 << 16, output_from))
                if found is None:
                    time.sleep(0.02)
                    continue
                self.port = int(found.group(1))
            try:
                if httpx.post(self.rpc_url, json=payload, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise ToolchainError(f"anvil did not answer on {self.rpc_url} within {timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> None:
        """Ends anvil's process group: SIGTERM, then SIGKILL after ``timeout`` seconds. Idempotent."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)

    @property
    def pid(self) -> int | None:
        """anvil's process id, None before :meth:`start` and after :meth:`stop`."""
        return self.process.pid if self.process else None

    def __enter__(self) -> DevChain:
        return self.start() if self.process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
