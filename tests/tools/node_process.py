"""The node as a child process, for tests and benchmarks: started, waited for, stopped by PID."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from chain.errors import FinVaultError
from node.worker import die_with_parent


class NodeProcess:
    """``python -m node ...`` as a child process: started, waited for, stopped by PID.

    ``env`` is the child's whole ``FINVAULT_*`` configuration (the parent's ``FINVAULT_*``
    variables are not inherited); ``args`` are extra ``finvault node`` flags. stderr (uvicorn's
    and the sync loop's log) goes to ``log_path`` (a temporary file by default).
    """

    def __init__(
        self,
        *,
        rpc_url: str,
        registry: str,
        database_url: str,
        port: int = 0,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        log_path: Path | None = None,
    ) -> None:
        self.command = [
            sys.executable,
            "-m",
            "node",
            "--rpc",
            rpc_url,
            "--registry",
            registry,
            "--db",
            database_url,
            "--host",
            host,
            "--port",
            str(port),
            *args,
        ]
        base = {k: v for k, v in os.environ.items() if not k.startswith("FINVAULT_")}
        self.env = {**base, **(env or {})}
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self._log_file: tempfile._TemporaryFileWrapper[str] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, ready_timeout: float = 60.0) -> NodeProcess:
        """Starts the node; returns once it printed its URL. Raises with the log's tail if it exits."""
        log: IO[str]
        if self.log_path is not None:
            log = self.log_path.open("w")
        else:
            self._log_file = tempfile.NamedTemporaryFile("w+", prefix="finvault-node-", suffix=".log")  # noqa: SIM115
            log = self._log_file
        self.process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=self.env,
            preexec_fn=die_with_parent,
        )
        if self.log_path is not None:
            log.close()
        assert self.process.stdout is not None
        deadline = time.monotonic() + ready_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(timeout=min(0.5, max(0.0, deadline - time.monotonic()))):
                    line = self.process.stdout.readline()
                    if line.startswith("http://"):
                        self.url = line.strip()
                        return self
                    if not line:  # EOF: the node exited
                        break
                elif self.process.poll() is not None:
                    break
        code = self.stop()
        raise FinVaultError(f"the node did not start (exit {code}): {self.log_tail()}", code="startup_failed")

    def log(self) -> str:
        """What the node wrote on stderr so far."""
        if self.log_path is not None:
            return self.log_path.read_text() if self.log_path.exists() else ""
        if self._log_file is None:
            return ""
        with open(self._log_file.name) as handle:
            return handle.read()

    def log_tail(self, lines: int = 5) -> str:
        return " | ".join(self.log().strip().splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def close(self) -> None:
        self.stop()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> NodeProcess:
        return self.start() if self.process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
