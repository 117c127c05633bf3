"""Raw ``eth_getLogs`` over the registry, with a block range that adapts to the provider.

Providers refuse big ranges in many dialects ("query returned more than 10000 results", "block
range is too wide", -32005, timeouts). Any of those halves the range and tries again; a run of
successes doubles it back, up to a ceiling.

A range is read whole in the background while the sync loop writes the previous one: header of its
last block, logs, decoding, then the headers the step checks. JSON parsing and decoding are Python
work that holds the GIL, but SQLite releases it while it writes, so the two threads overlap.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chain.errors import RpcError, RpcUnavailable
from chain.rpc import RpcClient
from indexer.decode import DecodedBatch, decode_logs

log = logging.getLogger(__name__)

#: Fragments of provider errors that mean "ask for less".
TOO_MUCH = (
    "more than",
    "too many",
    "limit",
    "range",
    "exceed",
    "too large",
    "timeout",
    "timed out",
    "response size",
)
TOO_MUCH_CODES = frozenset({-32005, -32602, -32614})


@dataclass
class AdaptiveRange:
    """Blocks per ``eth_getLogs`` call: starts small, doubles while answers stay light, shrinks
    when a provider refuses or an answer carries more than ``target_logs`` (which bounds the
    memory one step needs, whatever the provider allows)."""

    size: int = 16
    minimum: int = 1
    maximum: int = 50_000
    grow_after: int = 1
    target_logs: int = 10_000
    successes: int = 0

    def shrink(self) -> None:
        """Halves the range (not below ``minimum``) after a refusal, and restarts the run of successes."""
        self.size = max(self.minimum, self.size // 2)
        self.successes = 0

    def succeeded(self, logs: int = 0) -> None:
        """Records an answer of ``logs`` logs and resizes the range.

        Above ``target_logs`` it shrinks in proportion; above half of it, it stays; otherwise it
        doubles (up to ``maximum``) after ``grow_after`` such answers in a row.
        """
        if logs > self.target_logs:
            self.size = max(self.minimum, self.size * self.target_logs // logs)
            self.successes = 0
            return
        if logs > self.target_logs // 2:
            return  # about right: stay
        self.successes += 1
        if self.successes >= self.grow_after:
            self.size = min(self.maximum, self.size * 2)
            self.successes = 0


def _asks_for_less(error: RpcError) -> bool:
    message = error.message.lower()
    return error.rpc_code in TOO_MUCH_CODES or any(fragment in message for fragment in TOO_MUCH)


@dataclass(frozen=True)
class Header:
    """What the sync loop checks of a block: number, hash, parent hash and time (Unix seconds)."""

    number: int
    hash: bytes
    parent_hash: bytes
    timestamp: int

    @classmethod
    def from_rpc(cls, raw: Any) -> Header:
        """Parses an ``eth_getBlockByNumber`` result; :class:`RpcError` if it is not a block."""
        try:
            return cls(
                int(raw["number"], 16),
                bytes.fromhex(raw["hash"][2:]),
                bytes.fromhex(raw["parentHash"][2:]),
                int(raw["timestamp"], 16),
            )
        except (KeyError, TypeError, ValueError):
            raise RpcError(
                f"eth_getBlockByNumber: not a block: {raw!r:.80}", method="eth_getBlockByNumber"
            ) from None


def read_headers(rpc: RpcClient, numbers: Iterable[int]) -> dict[int, Header]:
    """Headers by number in one batch; a block the chain does not have is left out."""
    wanted = sorted(set(numbers))
    raws = rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in wanted])
    return {n: Header.from_rpc(raw) for n, raw in zip(wanted, raws, strict=True) if raw is not None}


@dataclass(frozen=True)
class LogRange:
    """The decoded logs of blocks ``first..last``, the hash block ``last`` had *before* they were
    read, and headers read *after* them: of the block before ``first``, of every block with logs,
    and of ``last`` (a block the chain no longer has is missing).

    A reorg below ``last`` changes ``last``'s hash, so comparing it with a header read after the
    logs proves the logs came from one chain, even for blocks that carried no logs.
    """

    first: int
    last: int
    last_hash_before: bytes
    log_count: int
    batch: DecodedBatch
    headers: dict[int, Header]


class LogFetcher:
    """Fetches and decodes the registry's logs for the topics the mirror follows.

    While the caller applies one range, the next one is already being read in a background
    thread; a prefetched range is used only if it starts where the caller continues.
    """

    def __init__(
        self,
        rpc: RpcClient,
        registry: str,
        topics: Sequence[str],
        window: AdaptiveRange,
        *,
        prefetch: bool = True,
    ) -> None:
        self.rpc = rpc
        self.registry = registry
        self.topics = list(topics)
        self.window = window
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="logs") if prefetch else None
        self._ahead: tuple[int, int, Future[LogRange]] | None = None

    def close(self) -> None:
        """Stops the background reader: waits for a read in flight, cancels one not yet started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def fetch(self, first: int, last: int) -> LogRange:
        """Reads blocks ``first..last`` as given (no window, no prefetch); RpcError if ``last`` is missing.

        ``last``'s header is read before the logs, the headers the step checks after them.
        """
        header = self.rpc.call("eth_getBlockByNumber", [hex(last), False])
        if header is None:
            raise RpcError(f"block {last} is not available (yet)")
        logs = self.rpc.call(
            "eth_getLogs",
            [
                {
                    "address": self.registry,
                    "fromBlock": hex(first),
                    "toBlock": hex(last),
                    "topics": [self.topics],
                }
            ],
        )
        if not isinstance(logs, list):
            raise RpcError("eth_getLogs: result is not a list")
        batch = decode_logs(logs, self.registry)
        headers = read_headers(self.rpc, [first - 1, *batch.blocks, last])
        return LogRange(first, last, Header.from_rpc(header).hash, len(logs), batch, headers)

    def fetch_range(self, first: int, last: int) -> LogRange:
        """Logs from ``first`` up to at most ``last`` (fewer blocks if the window is smaller)."""
        while True:
            end = min(last, first + self.window.size - 1)
            try:
                fetched = self._prefetched(first, last) or self.fetch(first, end)
            except (RpcError, RpcUnavailable) as exc:
                too_much = isinstance(exc, RpcUnavailable) or _asks_for_less(exc)
                if not too_much or self.window.size <= self.window.minimum:
                    raise
                self.window.shrink()
                log.info(
                    "eth_getLogs %d-%d refused (%s); range now %d", first, end, exc.message, self.window.size
                )
                continue
            self.window.succeeded(fetched.log_count)
            self._prefetch(fetched.last + 1, last)
            return fetched

    def _prefetch(self, first: int, last: int) -> None:
        if self._pool is None or first > last:
            return
        end = min(last, first + self.window.size - 1)
        self._ahead = (first, end, self._pool.submit(self.fetch, first, end))

    def _prefetched(self, first: int, last: int) -> LogRange | None:
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        ahead_first, ahead_last, future = ahead
        if ahead_first != first or ahead_last > last:
            future.cancel()
            return None
        return future.result()  # its errors are handled like a direct fetch's
