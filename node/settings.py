"""Node settings: the indexer's settings plus where the node listens and how it guards its edge
(the connection bounds it shares with the issuer API: :class:`HttpServerSettings`).

Everything is validated before the node connects to anything or binds a port; secrets (the
metrics token, the cursor secret, RPC and database URLs) are never echoed in errors.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode
from sqlalchemy.engine import make_url

from chain.service.db import database_url
from chain.service.settings import DidWebSettings, HttpServerSettings
from indexer.settings import IndexerSettings

#: Most receipts one POST /verify/bulk may carry.
MAX_BULK = 1_000
#: Default work budget of a bulk request, in JSON values: verified in about 1 s on a loaded
#: 2-core machine in the worst shape found (docs/SECURITY.md), and twice what 1,000 typical
#: receipts hold.
DEFAULT_BULK_MAX_VALUES = 262_144
#: Default request body limit: 1,000 typical receipts (~3 KiB each) with room to spare.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9-]{1,63})*$")
#: Secrets shorter than this are refused: they could be guessed.
MIN_SECRET_LENGTH = 16


class NodeSettings(IndexerSettings, DidWebSettings, HttpServerSettings):
    """``finvault node``: one process that follows the chain into the mirror and serves the API
    (its connections bounded by the ``FINVAULT_HTTP_*`` settings of :class:`HttpServerSettings`)."""

    host: str = Field("127.0.0.1", description="Address to listen on (loopback by default).")
    port: int = Field(8000, ge=0, le=65_535, description="Port to listen on (0: any free port).")
    workers: int = Field(
        1, ge=1, le=32, description="HTTP worker processes; above 1, the sync loop runs in a supervisor."
    )
    node_replica: bool = Field(
        False,
        description=(
            "Serve from a mirror another node writes, without syncing or writing it (scale-out: one "
            "writer, replicas behind a load balancer; see docs/operations.md)."
        ),
    )
    max_body_bytes: int = Field(
        DEFAULT_MAX_BODY_BYTES, ge=1024, le=256 * 1024 * 1024, description="Largest request body accepted."
    )
    bulk_limit: int = Field(MAX_BULK, ge=1, le=MAX_BULK, description="Most receipts per POST /verify/bulk.")
    bulk_max_values: int = Field(
        DEFAULT_BULK_MAX_VALUES,
        ge=1_024,
        le=16 * DEFAULT_BULK_MAX_VALUES,
        description=(
            "The work budget of one POST /verify/bulk: JSON values its body may hold (1,000 typical "
            "receipts hold about 133,000). It bounds both memory and CPU before anything is parsed."
        ),
    )
    pin_readers: bool = Field(
        True,
        description=(
            "With 2+ readers and at least as many CPUs as readers, pin reader i to the i-th CPU the "
            "node may run on: a verification's hand-offs between a reader's event loop and its "
            "threads stay on one core (docs/performance.md). The writer is never pinned."
        ),
    )
    verify_threads: int | None = Field(
        None,
        ge=1,
        le=64,
        description=(
            "Threads per reader process that read the mirror and verify, off its event loop. Unset: "
            "1 on a SQLite mirror (its reads are CPU in the process, so a second thread only contends "
            "for the GIL and the reader's core), 2 on PostgreSQL (one verifies while the other waits "
            "on the server)."
        ),
    )
    bulk_concurrency: int = Field(
        2,
        ge=1,
        le=64,
        description=(
            "POST /verify/bulk calls a worker parses and verifies at once; more wait up to 5 s for a "
            "turn, then get 503 busy. Bounds the memory and CPU of bulk work, whatever the connections."
        ),
    )
    rate_limit: float = Field(
        0.0, ge=0, le=1_000_000, description="Requests per second per client address; 0 turns limits off."
    )
    rate_limit_burst: int = Field(
        0, ge=0, le=1_000_000, description="Bucket size per client; 0 means twice the rate (at least 1)."
    )
    rate_limit_loopback: bool = Field(
        False, description="Rate-limit loopback clients too (off: a local operator is never limited)."
    )
    signature_cache_entries: int = Field(
        32_768,
        ge=0,
        le=10_000_000,
        description=(
            "Signature checks that succeeded, remembered per process (two generations of this many, "
            "about 100 bytes each); 0 turns the cache off. Verdicts are never cached."
        ),
    )
    ready_max_lag_blocks: int = Field(
        64, ge=0, le=1_000_000, description="GET /ready fails when the mirror is further behind the head."
    )
    max_staleness: float = Field(
        120.0,
        gt=0,
        le=86_400,
        description=(
            "Seconds since the mirror last reached the chain head after which the node stops vouching "
            "(verification answers 503 mirror_stale, GET /ready fails). 120 s is 60 Polygon blocks."
        ),
    )
    accumulator_check_interval: float = Field(
        60.0,
        ge=0,
        le=7 * 86_400,
        description=(
            "Seconds between checks that the mirror's rows fold into the contract's accumulators "
            "(0: off). A failed check stops the node vouching (mirror_diverged) until one passes."
        ),
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API (comma-separated); none by default.",
    )
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token for GET /metrics from non-loopback clients."
    )
    cursor_secret: SecretStr | None = Field(
        None, description="HMAC key of pagination cursors (default: random per start)."
    )
    log_level: str = Field("info", description="uvicorn's log level.")
    admin_token: SecretStr | None = Field(
        None, description="Bearer token for admin routes (GET /reconciliation/runs); unset: they answer 401."
    )
    reconcile_interval: float = Field(
        3600.0, ge=0, le=7 * 86_400, description="Seconds between scheduled reconciliations (0: off)."
    )
    reconcile_window_blocks: int = Field(
        10_000, ge=1, le=100_000_000, description="How many of the newest mirrored blocks each run re-reads."
    )
    reconcile_drift_threshold: int = Field(
        0, ge=0, description="Drifts a run may find before the node turns not ready (until a resync)."
    )

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not _HOSTNAME.fullmatch(value):
                raise ValueError("must be an IP address or a host name") from None
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*":
                raise ValueError("'*' is not allowed: list the origins that may call the node")
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"not an origin (scheme://host[:port], no path): {origin[:60]!r}")
        return [origin.lower() for origin in value]

    @field_validator("metrics_token", "cursor_secret", "admin_token")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        levels = ("critical", "error", "warning", "info", "debug", "trace")
        if value.lower() not in levels:
            raise ValueError(f"must be one of {', '.join(levels)}")
        return value.lower()

    @model_validator(mode="after")
    def _require_registry(self) -> NodeSettings:
        if self.registry is None:
            raise ValueError("registry: a node needs the registry address (--registry or FINVAULT_REGISTRY)")
        return self

    @property
    def burst(self) -> int:
        """Requests per client bucket: ``rate_limit_burst``, or twice the rate (at least 1) when it is 0."""
        return self.rate_limit_burst or max(1, int(2 * self.rate_limit))

    @property
    def verification_threads(self) -> int:
        """``verify_threads``, or its default for the mirror's database (see the field)."""
        if self.verify_threads is not None:
            return self.verify_threads
        return 1 if make_url(database_url(self.database_url)).get_backend_name() == "sqlite" else 2

    @property
    def url(self) -> str:
        """The node's base URL on its listening address (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
