"""Waiting for SIGINT/SIGTERM: how the long-running commands (node, issuer, dev chain) stay up."""

from __future__ import annotations

import signal

SHUTDOWN_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def wait_for_shutdown() -> signal.Signals:
    """Blocks until SIGINT or SIGTERM arrives, then lets the caller's cleanup run."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SHUTDOWN_SIGNALS)
    try:
        return signal.Signals(signal.sigwait(SHUTDOWN_SIGNALS))
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SHUTDOWN_SIGNALS)
