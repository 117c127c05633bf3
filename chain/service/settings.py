"""Chain settings: one typed object, read from ``FINVAULT_*`` variables and command-line flags.

Validation happens before anything connects or binds, and errors never echo secret values.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from chain.errors import ConfigError
from chain.networks import DEFAULT_NETWORK, NETWORKS, NetworkPreset, network_for_chain_id, network_names
from chain.rpc import RetryPolicy, redact_url

if TYPE_CHECKING:
    from chain.service.connections import ConnectionLimits
    from chain.tx import FeePolicy

S = TypeVar("S", bound=BaseSettings)

ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
#: Field defaults are the default network's preset, so naming no network changes nothing.
LOCAL = NETWORKS[DEFAULT_NETWORK]


_HTTP_URL = re.compile(r"^https?://[^/\s]+")


def is_http_url(value: str) -> bool:
    """Whether ``value`` is an ``http://`` or ``https://`` URL with a host (for validators)."""
    return bool(_HTTP_URL.match(value)) and value.isprintable() and not any(c.isspace() for c in value)


def check_rpc_url(url: str) -> str:
    """``url`` if it is an http(s) JSON-RPC URL, else ValueError saying how to write it (validators).

    A URL without a scheme (``127.0.0.1:8545``) is the common slip: the message suggests the
    ``http://`` form. A WebSocket URL is refused by name: the RPC client speaks HTTP only.
    """
    if is_http_url(url):
        return url
    if url.lower().startswith(("ws://", "wss://")):
        raise ValueError(f"{redact_url(url)}: WebSocket endpoints are not supported; give the http(s) URL")
    if "://" not in url and url.isprintable() and not any(c.isspace() for c in url):
        suggested = redact_url(f"http://{url}")
        raise ValueError(f"{suggested.removeprefix('http://')} has no scheme: write {suggested}")
    raise ValueError(f"not an http(s) URL: {redact_url(url)}")


def normalize_address(value: str) -> str:
    """``value`` lowercased if it is a ``0x``-prefixed 20-byte hex address, else ValueError (validators)."""
    if not isinstance(value, str) or not ADDRESS_RE.fullmatch(value):
        raise ValueError("must be a 0x-prefixed 20-byte hex address")
    return value.lower()


class ChainSettings(BaseSettings):
    """Where the chain is and how to talk to it.

    ``network`` names a preset (:mod:`chain.networks`) that fills chain id, confirmation depths,
    tip floor and RPC URL; any of these given by flag or ``FINVAULT_*`` variable wins. Without a
    network the field defaults below are the ``local`` preset's, and a known chain id still
    brings its tip floor.
    """

    model_config = SettingsConfigDict(env_prefix="FINVAULT_", extra="ignore", frozen=True)

    network: str | None = Field(
        None, description=f"Preset: {network_names()} (default {DEFAULT_NETWORK}); explicit settings win."
    )
    rpc_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [LOCAL.rpc_url],
        description="JSON-RPC endpoints in order of preference (comma-separated in the environment).",
        json_schema_extra={"sensitive": True},  # provider URLs often embed API keys
    )
    chain_id: int = Field(LOCAL.chain_id, gt=0, description="The chain the endpoints must serve.")
    registry: str | None = Field(None, description="FinVaultRegistry address.")
    confirmations: int = Field(
        LOCAL.confirmations, ge=1, le=10_000, description="Blocks a transaction must be buried under."
    )
    min_priority_fee_gwei: Decimal | None = Field(
        None, ge=0, description="Tip floor; default: the chain's preset (30 on Polygon and Amoy), else 0."
    )
    rpc_timeout: float = Field(10.0, gt=0, le=300)
    rpc_rounds: int = Field(4, ge=1, le=100, description="Passes over all endpoints before giving up.")
    keystore: Path | None = Field(None, description="eth-account keystore JSON of the sending account.")
    keystore_password: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_from_network(cls, data: Any) -> Any:
        """Environment and flags are merged by now: fill only what neither of them gave."""
        if not isinstance(data, dict) or not isinstance(data.get("network"), str):
            return data
        preset = NETWORKS.get(data["network"].strip().lower())
        if preset is None:
            return data  # the field validator names the choices
        defaults = {k: v for k, v in preset.settings_defaults().items() if k in cls.model_fields}
        return {**defaults, **data}

    @field_validator("network")
    @classmethod
    def _check_network(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = value.strip().lower()
        if name not in NETWORKS:
            raise ValueError(f"must be {network_names()}")
        return name

    @model_validator(mode="after")
    def _chain_id_matches_network(self) -> ChainSettings:
        if self.network is not None and NETWORKS[self.network].chain_id != self.chain_id:
            raise ValueError(
                f"chain_id: network {self.network} is chain {NETWORKS[self.network].chain_id}, "
                f"not {self.chain_id}; drop --chain-id (FINVAULT_CHAIN_ID) or pick the matching network"
            )
        return self

    @field_validator("rpc_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("rpc_urls")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one RPC URL is required")
        return [check_rpc_url(url) for url in value]

    @field_validator("registry")
    @classmethod
    def _check_registry(cls, value: str | None) -> str | None:
        return None if value is None else normalize_address(value)

    @property
    def preset(self) -> NetworkPreset | None:
        """The preset of this chain id (a named network's always matches); None for a custom chain."""
        return network_for_chain_id(self.chain_id)

    @property
    def fee_policy(self) -> FeePolicy:
        """The tip floor in wei: ``min_priority_fee_gwei`` if set, else the chain preset's, else 0."""
        from chain.tx import GWEI, FeePolicy  # transactions only: readers never load eth_utils

        floor = self.min_priority_fee_gwei
        if floor is None:
            floor = self.preset.min_priority_fee_gwei if self.preset else Decimal(0)
        return FeePolicy(min_priority_fee_wei=int(floor * GWEI))

    @property
    def retry_policy(self) -> RetryPolicy:
        """``rpc_rounds`` passes over the endpoints, each HTTP request timing out after ``rpc_timeout`` s."""
        return RetryPolicy(rounds=self.rpc_rounds, timeout=self.rpc_timeout)

    def require_registry(self) -> str:
        """The registry address; :class:`ConfigError` naming ``--registry`` when none is configured."""
        if self.registry is None:
            raise ConfigError("no registry address: pass --registry or set FINVAULT_REGISTRY")
        return self.registry


class DidWebSettings(BaseSettings):
    """How issuers' did:web documents are fetched: by the node beside each verdict, and by
    ``finvault verify --rpc``. One set of outbound rules for both (:mod:`chain.did_web`)."""

    model_config = SettingsConfigDict(env_prefix="FINVAULT_", extra="ignore", frozen=True)

    did_web_timeout: float = Field(
        2.0, gt=0, le=30, description="Longest a verdict waits for an issuer's did:web document (seconds)."
    )
    did_web_fetch_deadline: float = Field(
        5.0,
        gt=0,
        le=60,
        description=(
            "Longest one did:web fetch may take in all: DNS, connect, TLS, headers and body (seconds). "
            "A fetch that outlives a verdict's wait goes on and is cached for the next one."
        ),
    )
    did_web_cache_seconds: float = Field(
        300.0, ge=0, description="How long a fetched did:web document is reused (a failure: 30 s at most)."
    )
    did_web_ca_file: Path | None = Field(
        None, description="Extra CA certificates (PEM) trusted for did:web documents, beside the system's."
    )
    did_web_allow_private: bool = Field(
        False,
        description=(
            "Let did:web fetches reach loopback, private, link-local and reserved addresses (tests, "
            "intranets). Off: a receipt cannot make the verifier call into its own network."
        ),
    )


class HttpServerSettings(BaseSettings):
    """How an HTTP server (the node, the issuer API) bounds its connections: read by both from the
    same ``FINVAULT_HTTP_*`` variables. Each bound is per server process (per worker for a
    pre-forked node); :mod:`chain.service.connections` holds them."""

    model_config = SettingsConfigDict(env_prefix="FINVAULT_", extra="ignore", frozen=True)

    http_header_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description=(
            "Seconds a connection has to send a request's complete headers (from connecting, or from "
            "the request's first byte on a kept-alive connection); then it is closed."
        ),
    )
    http_body_timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        description=(
            "Seconds a request body has to arrive in full after its headers: then 408 request_timeout "
            "and the connection closed (closed a second later if the route was not reading the body)."
        ),
    )
    http_send_timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        description=(
            "Seconds an answer may wait for a client that does not read it (the server's send buffer "
            "full); then the connection is dropped."
        ),
    )
    http_keep_alive_timeout: int = Field(
        5, ge=1, le=300, description="Seconds an idle kept-alive connection is held open between requests."
    )
    http_max_requests_per_connection: int = Field(
        1000,
        ge=0,
        le=10_000_000,
        description="Requests one kept-alive connection may make; the last answer closes it (0: no limit).",
    )
    http_max_connections: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description=(
            "Open connections a server process holds; one more is answered 503 too_many_connections "
            "and closed at once. The open-file limit (ulimit -n) is raised to fit at start, up to the hard "
            "limit; below that the server refuses to start."
        ),
    )
    http_max_connections_per_client: int = Field(
        100,
        ge=0,
        le=1_000_000,
        description=(
            "Open connections from one client address (loopback too: behind a reverse proxy on the same "
            "host, raise it to the proxy's pool or set 0); one more is refused like the above (0: no cap)."
        ),
    )

    @property
    def connection_limits(self) -> ConnectionLimits:
        """These settings as :class:`chain.service.connections.ConnectionLimits`."""
        from chain.service.connections import ConnectionLimits  # uvicorn: only for a server

        return ConnectionLimits(
            header_timeout=self.http_header_timeout,
            body_timeout=self.http_body_timeout,
            send_timeout=self.http_send_timeout,
            keep_alive_timeout=self.http_keep_alive_timeout,
            max_requests_per_connection=self.http_max_requests_per_connection,
            max_connections=self.http_max_connections,
            max_connections_per_client=self.http_max_connections_per_client,
        )


def _is_sensitive(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    return info.annotation in (SecretStr, SecretStr | None) or (
        isinstance(extra, dict) and extra.get("sensitive") is True
    )


def describe_validation_error(error: ValidationError, secret_fields: frozenset[str]) -> str:
    """One line per problem, naming the setting; values of secret fields are never shown."""
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        # A whole-model check has no location; its message names the fields itself.
        problem = f"{'.'.join(str(part) for part in item['loc'])}: {message}" if item["loc"] else message
        if item["loc"] and item["loc"][0] not in secret_fields and item.get("input") is not None:
            shown = repr(item["input"])
            problem += f" (got {shown[:60]}{'...' if len(shown) > 60 else ''})"
        problems.append(problem)
    return "invalid settings: " + "; ".join(problems)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Builds settings from the environment plus non-None ``overrides`` (command-line flags).

    An override the model does not declare is a :class:`TypeError`, not silently dropped: a
    command-line flag that reaches the wrong settings must fail where it is written. (Unknown
    ``FINVAULT_*`` variables are ignored: one environment may configure several roles.)
    """
    unknown = sorted(set(overrides) - set(cls.model_fields))
    if unknown:
        raise TypeError(f"{cls.__name__} has no setting {', '.join(unknown)}")
    try:
        return cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        secret = frozenset(name for name, info in cls.model_fields.items() if _is_sensitive(info))
        raise ConfigError(describe_validation_error(exc, secret)) from None
