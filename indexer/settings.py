"""Indexer settings: the chain settings plus where the mirror lives and how to follow the chain."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from chain.service.settings import LOCAL, ChainSettings, check_rpc_url
from indexer.db import DEFAULT_MIRROR_URL


class IndexerSettings(ChainSettings):
    """:class:`ChainSettings` plus the mirror's database, where to start and how deep a block is final."""

    database_url: str = Field(
        DEFAULT_MIRROR_URL,
        description="SQLAlchemy URL of the mirror (sqlite:///path or postgresql+psycopg://...).",
        json_schema_extra={"sensitive": True},  # may embed a database password
    )
    start_block: int | None = Field(None, ge=0, description="Default: the registry's deploymentBlock().")
    sync_confirmations: int = Field(
        LOCAL.sync_confirmations, ge=1, le=10_000, description="Depth at which mirror rows count as final."
    )
    quorum_rpc_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="A second endpoint whose block hashes must agree before a block is trusted.",
        json_schema_extra={"sensitive": True},
    )
    poll_interval: float = Field(2.0, gt=0, le=300, description="Seconds between head polls in live mode.")

    @field_validator("quorum_rpc_urls", mode="before")
    @classmethod
    def _split_quorum(cls, value: Any) -> Any:
        return cls._split_urls(value)

    @field_validator("quorum_rpc_urls")
    @classmethod
    def _check_quorum(cls, value: list[str]) -> list[str]:
        return [check_rpc_url(url) for url in value]
