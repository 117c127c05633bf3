"""Files that hold secrets (keystores, signing keys, a node's settings for its workers)."""

from __future__ import annotations

import os
from pathlib import Path


def write_secret_file(path: Path, data: bytes) -> None:
    """Writes ``data`` to a file only its owner can read or write, from its first byte on (an
    existing file is truncated and its mode tightened before anything is written)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, 0o600)
        handle.write(data)
