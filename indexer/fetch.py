"""Raw ``eth_getLogs`` over the registry, with a block range that adapts to the provider.

Providers refuse big ranges in many dialects ("query returned more than 10000 results", "block
range is too wide", -32005, timeouts). Any of those halves the range and tries again; a run of
successes doubles it back, up to a ceiling.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chain.errors import RpcError, RpcUnavailable
from chain.rpc import RpcClient

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
        self.size = max(self.minimum, self.size // 2)
        self.successes = 0

    def succeeded(self, logs: int = 0) -> None:
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


class LogFetcher:
    """Fetches the registry's logs for the topics the mirror follows."""

    def __init__(self, rpc: RpcClient, registry: str, topics: Sequence[str], window: AdaptiveRange) -> None:
        self.rpc = rpc
        self.registry = registry
        self.topics = list(topics)
        self.window = window

    def fetch(self, first: int, last: int) -> list[dict[str, Any]]:
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
        return logs

    def fetch_range(self, first: int, last: int) -> tuple[list[dict[str, Any]], int]:
        """Logs from ``first`` up to at most ``last``; returns them and the last block covered."""
        while True:
            end = min(last, first + self.window.size - 1)
            try:
                logs = self.fetch(first, end)
            except (RpcError, RpcUnavailable) as exc:
                too_much = isinstance(exc, RpcUnavailable) or _asks_for_less(exc)
                if not too_much or self.window.size <= self.window.minimum:
                    raise
                self.window.shrink()
                log.info(
                    "eth_getLogs %d-%d refused (%s); range now %d", first, end, exc.message, self.window.size
                )
                continue
            self.window.succeeded(len(logs))
            return logs, end
