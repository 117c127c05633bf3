"""The benchmarks' npm peers: each in ``bench/peers/NAME`` with its own pinned ``package.json`` and
``package-lock.json``, installed there with ``npm ci`` the first time a bench needs it."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

PEERS = Path(__file__).resolve().parent


def peer(name: str) -> Path | None:
    """``bench/peers/NAME``, its packages installed (again only when its lock file changed); None,
    with the reason printed, when npm is unavailable or the install fails, so the bench skips it."""
    folder = PEERS / name
    if shutil.which("node") is None or shutil.which("npm") is None:
        print(f"peer {name}: skipped, Node.js and npm are not on PATH")
        return None
    want = hashlib.sha256((folder / "package-lock.json").read_bytes()).hexdigest()
    stamp = folder / "node_modules" / ".finvault-npm"
    if stamp.is_file() and stamp.read_text() == want:
        return folder
    print(f"peer {name}: installing its pinned packages (npm ci; once)")
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(f"peer {name}: skipped, npm ci failed: {done.stderr.strip()[-500:]}")
        return None
    stamp.write_text(want)
    return folder
