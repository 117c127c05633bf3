"""What a serving process needs: settings, the mirror view, and the mirror's state, read from it.

Every HTTP-serving process of a node is a reader (:mod:`node.state`): it reads verification facts,
the checkpoint and the writer's published state from the mirror, in one read transaction per
verification, and never writes. The writer (:mod:`node.writer`) is another process, or, for the
demo and in-process tests, a thread beside the server (:mod:`node.server`).

:meth:`Runtime.open` checks, before anything binds a port, that the mirror exists, has a writer's
schema and follows this chain and registry. It never migrates or writes the mirror.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session

from chain.core.signing import SignatureCache
from chain.core.verify import ChainHead, Policy
from chain.errors import ConfigError, FinVaultError
from chain.registry import RegistryReader
from chain.rpc import RetryPolicy, RpcClient
from chain.service.db import make_engine
from indexer.schema import CheckpointRow
from indexer.sync import require_same_mirror
from node.health import CannotVouch, cannot_vouch
from node.mirror import MirrorView, head_of
from node.settings import NodeSettings
from node.state import StateReader, SyncSnapshot


def cursor_key(settings: NodeSettings) -> bytes:
    """The HMAC key of pagination cursors: ``FINVAULT_CURSOR_SECRET``, else random for this start."""
    secret = settings.cursor_secret
    return secret.get_secret_value().encode() if secret else secrets.token_bytes(32)


def not_ready(snapshot: SyncSnapshot, settings: NodeSettings, now: float | None = None) -> list[str]:
    """Why a node in this state should not take traffic; empty when it is ready.

    The first reason, when there is one, is :func:`node.health.cannot_vouch`'s: readiness and
    verdicts follow one judgement. The others tell an operator what else is wrong.
    """
    reasons = []
    problem = cannot_vouch(snapshot, settings.max_staleness, now)
    if problem is not None:
        reasons.append(f"{problem.code}: {problem.reason}")
    if not snapshot.running:
        reasons.append("the mirror's writer is not running")
    if snapshot.chain_mismatch:
        reasons.append(f"chain id mismatch: {snapshot.chain_mismatch}")
    if snapshot.breaker_open:
        reasons.append(f"RPC circuit breaker open: {snapshot.last_error}")
    if snapshot.lag > settings.ready_max_lag_blocks:
        reasons.append(f"mirror lags the head by {snapshot.lag} blocks (max {settings.ready_max_lag_blocks})")
    return reasons


def _require_written(engine: Engine, settings: NodeSettings) -> None:
    """A replica's mirror must exist, have a writer's schema and follow this chain and registry."""
    if "loop_state" not in inspect(engine).get_table_names():
        raise ConfigError(
            "this mirror has no schema a reader can read: start its writer (a node without "
            "FINVAULT_NODE_REPLICA, at this version of FinVault) first"
        )
    with Session(engine) as session:
        checkpoint = session.get(CheckpointRow, 1)
    if checkpoint is None:
        raise ConfigError(
            "this mirror is empty: start its writer (a node without FINVAULT_NODE_REPLICA) first"
        )
    require_same_mirror(checkpoint, settings.chain_id, settings.require_registry())


class Runtime:
    """A serving process's runtime: its own mirror reader, the mirror's state read per call.
    ``on_start``, if any, is called when the app starts serving (a worker tells its supervisor)."""

    def __init__(
        self,
        settings: NodeSettings,
        read_engine: Engine,
        cursor_key: bytes,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = settings.require_registry()
        self.read_engine = read_engine
        self.policy = Policy(confirmations=settings.confirmations)
        self.cursor_key = cursor_key
        self._on_start = on_start
        self._state = StateReader()
        # The API's own client for GET /status: one quick try, never the writer's retries.
        self._status_rpc = RpcClient(
            settings.rpc_urls, policy=RetryPolicy(rounds=1, timeout=min(settings.rpc_timeout, 5.0))
        )
        self._status_reader = RegistryReader(self._status_rpc, self.registry)
        self._contract_cache: tuple[int, dict[str, Any]] | None = None
        entries = settings.signature_cache_entries
        self.view = MirrorView(
            read_engine,
            settings.chain_id,
            self.registry,
            self._state.read,
            SignatureCache(entries) if entries else None,
        )

    @classmethod
    def open(cls, settings: NodeSettings, on_start: Callable[[], None] | None = None) -> Runtime:
        """A reader of the mirror; never migrates or writes it. For a replica node (whose writer runs
        elsewhere), checks that the mirror exists, has a writer's schema and follows this chain and
        registry (:class:`ConfigError` or :class:`ChainMismatch` if not); a node's own writer checks
        (and creates) its mirror before any reader opens."""
        engine = make_engine(settings.database_url)
        try:
            if settings.node_replica:
                _require_written(engine, settings)
        except BaseException:
            engine.dispose()
            raise
        return cls(settings, engine, cursor_key(settings), on_start)

    def snapshot(self) -> SyncSnapshot:
        """The mirror's checkpoint and its writer's last published state, read now (and remembered
        by the verifications that follow: :meth:`MirrorView.saw`)."""
        read_at = time.monotonic()
        state = self._state.read_now(self.read_engine)
        self.view.saw(state, read_at)
        return state

    def start(self) -> None:
        """Called when the app starts serving: calls ``on_start``, if any."""
        if self._on_start is not None:
            self._on_start()

    def close(self) -> None:
        """Releases connections."""
        self._status_rpc.close()
        self.read_engine.dispose()

    def head(self) -> ChainHead:
        """The chain as the mirror last saw it; verification judges finality against this."""
        return head_of(self.snapshot())

    def not_ready(self) -> list[str]:
        """Why the node should not take traffic now (empty when ready)."""
        return not_ready(self.snapshot(), self.settings)

    def cannot_vouch(self, snapshot: SyncSnapshot | None = None) -> CannotVouch | None:
        """Why the mirror cannot vouch for verdicts now (judged on ``snapshot``, or on the state now)."""
        return cannot_vouch(snapshot or self.snapshot(), self.settings.max_staleness)

    def contract_accumulators(self, block: int) -> dict[str, Any]:
        """The contract's accumulators and counts at ``block`` (cached per block), or an error."""
        cached = self._contract_cache
        if cached is not None and cached[0] == block:
            return cached[1]
        try:
            anchor_acc, revocation_acc, anchors, revocations = self._status_reader.totals(block)
        except FinVaultError as exc:
            return {"block_number": block, "error": exc.diagnostics()}
        answer: dict[str, Any] = {
            "block_number": block,
            "anchor_accumulator": "0x" + anchor_acc.hex(),
            "revocation_accumulator": "0x" + revocation_acc.hex(),
            "anchors": anchors,
            "revocations": revocations,
        }
        self._contract_cache = (block, answer)
        return answer
