"""A worker process of a multi-process node (``FINVAULT_WORKERS`` > 1).

uvicorn's supervisor spawns each worker, which builds its app with :func:`create_worker_app`:
the settings the supervisor validated (from a 0600 file in the supervisor's private directory),
its own mirror reader, and the sync loop's state from shared memory. Workers never write the
mirror and never talk to the chain except for ``GET /status``'s view of the contract.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import SecretStr

from chain.service.files import write_secret_file
from node.app import create_app
from node.runtime import FollowerRuntime
from node.settings import NodeSettings
from node.shared import SharedState

#: Names the supervisor's private directory in a worker's environment.
WORKER_DIR_ENV = "FINVAULT_NODE_WORKER_DIR"
SETTINGS_FILE = "settings.json"
STATE_FILE = "state"
READY_PREFIX = "ready-"
_PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def die_with_parent() -> None:
    """SIGTERM when the parent dies (a killed supervisor must not leave workers serving stale state),
    and take the stop signals even if they were blocked."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def write_worker_settings(settings: NodeSettings, directory: Path) -> None:
    """The validated settings, secrets included, readable by this user only."""
    data: dict[str, Any] = {}
    for name, value in settings.model_dump().items():
        data[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    write_secret_file(directory / SETTINGS_FILE, json.dumps(data, default=str).encode())


def create_worker_app() -> FastAPI:
    """uvicorn's app factory in each worker process."""
    die_with_parent()
    directory = Path(os.environ[WORKER_DIR_ENV])
    settings = NodeSettings.model_validate(json.loads((directory / SETTINGS_FILE).read_text()))
    shared = SharedState(directory / STATE_FILE)
    runtime = FollowerRuntime(settings, shared, on_start=directory / f"{READY_PREFIX}{os.getpid()}")
    return create_app(runtime)
