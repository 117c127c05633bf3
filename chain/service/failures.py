"""Failures of a loop that polls (the node's sync loop, ``finvault sync``): their reason in one line,
and a log that tells when a failure starts and when it ends, not every time it repeats.

A database that is down or full fails every poll the same way. Logged with its traceback each time,
that was some 2,100 lines in 90 s, and the status said only ``OperationalError``: the reason
("database or disk is full") sat in the driver's exception, two links down the chain.
:func:`failure_reason` digs it out; :class:`FailureLog` writes one warning when a failure starts,
nothing while the same failure repeats, and one line when it is over.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from chain.core.errors import FinVaultError

#: Longer reasons are cut: a provider or driver message can be a page long.
MAX_REASON_CHARS = 300
#: Exceptions a loop expects (the chain, the database, the network); any other is a bug, and its
#: traceback is logged once, when the failure starts.
EXPECTED_FAILURES: tuple[type[BaseException], ...] = (FinVaultError, SQLAlchemyError, OSError)

_VARYING = re.compile(r"0x[0-9a-fA-F]+|\d+")


def _first_line(text: str) -> str:
    return next((part.strip() for part in text.splitlines() if part.strip()), "")


def failure_reason(exc: BaseException) -> str:
    """Why ``exc`` happened, in one line (at most :data:`MAX_REASON_CHARS`) for a status field or
    a log.

    - a database error: the driver's own message (``database or disk is full``, ``connection
      failed: ... Connection refused``), never SQLAlchemy's wrapper with the statement and its
      parameters;
    - a :class:`FinVaultError`: its diagnostics (``code: message``);
    - anything else: ``TypeName: message`` (the type name alone when there is no message).
    """
    if isinstance(exc, FinVaultError):
        reason = _first_line(exc.diagnostics())
    elif isinstance(exc, DBAPIError) and exc.orig is not None:
        reason = _first_line(str(exc.orig)) or type(exc.orig).__name__
    else:
        # SQLAlchemy's str() appends a link to its docs: its first argument is the message alone.
        text = str(exc.args[0]) if isinstance(exc, SQLAlchemyError) and exc.args else str(exc)
        message = _first_line(text)
        reason = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"


def failure_kind(exc: BaseException) -> str:
    """What makes two failures "the same failure" for :class:`FailureLog`: the exception's kind and
    its reason with numbers and hex left out (a block number or an attempt count changes from one
    poll to the next; the failure does not)."""
    kind = exc.code if isinstance(exc, FinVaultError) else type(exc).__name__
    return f"{kind}/{_VARYING.sub('#', failure_reason(exc))}"


class FailureLog:
    """Logs a run of failures of ``what`` (``"sync step"``) in two lines, not one per attempt.

    :meth:`failed` logs a warning when a failure starts, or when a different one takes its place
    (by :func:`failure_kind`), and nothing while the same one repeats; an unexpected exception (not
    one of ``expected``) carries its traceback in that line. :meth:`succeeded` logs, at INFO, that
    the failure is over: ``sync step recovered after 42 s, 21 failed attempts (last: ...)``.
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        expected: tuple[type[BaseException], ...] = EXPECTED_FAILURES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.expected = expected
        self.clock = clock
        #: The reason of the failure under way (None while things work).
        self.reason: str | None = None
        #: When the failure under way started (``clock()``), and how many attempts it has failed.
        self.since: float | None = None
        self.attempts = 0
        self._kind: str | None = None

    @property
    def failing(self) -> bool:
        """Whether a failure is under way (the last attempt failed)."""
        return self.since is not None

    def failed(self, exc: BaseException) -> str:
        """Counts a failed attempt; logs it only if it starts a failure or changes its kind. Returns
        :func:`failure_reason`."""
        reason, kind = failure_reason(exc), failure_kind(exc)
        trace = None if isinstance(exc, self.expected) else exc
        if self.since is None:
            self.since, self.attempts = self.clock(), 0
            self.logger.warning("%s failing: %s", self.what, reason, exc_info=trace)
        elif kind != self._kind:
            self.logger.warning(
                "%s still failing, now: %s (was: %s, for %.0f s)",
                self.what,
                reason,
                self.reason,
                self.clock() - self.since,
                exc_info=trace,
            )
        self.reason, self._kind = reason, kind
        self.attempts += 1
        return reason

    def succeeded(self) -> None:
        """An attempt worked: ends the failure under way, if any, with one INFO line."""
        if self.since is None:
            return
        self.logger.info(
            "%s recovered after %.0f s, %d failed attempt%s (last: %s)",
            self.what,
            self.clock() - self.since,
            self.attempts,
            "" if self.attempts == 1 else "s",
            self.reason,
        )
        self.reason, self._kind, self.since, self.attempts = None, None, None, 0
