"""Issuer settings: one typed object from ``FINVAULT_*`` variables and command-line flags.

Chain access (RPC, registry, sending account) stays in :class:`chain.service.settings.ChainSettings`;
these are what only the issuer service needs. The database URL may carry a password and is
treated as a secret in error messages.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from chain.core.secured import SD_JWT, Cryptosuite, Securing
from chain.service.settings import HttpServerSettings, is_http_url
from issuer.pipeline import default_workers
from issuer.service import MAX_BATCH_SIZE, IssuerConfig

DEFAULT_DB = "sqlite:///.finvault/issuer.db"
DOMAIN_PATTERN = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)


class IssuerSettings(BaseSettings):
    """What the issuer service needs besides chain access (``FINVAULT_ISSUER_DB``, ...)."""

    model_config = SettingsConfigDict(env_prefix="FINVAULT_", extra="ignore", frozen=True)

    issuer_db: str = Field(
        DEFAULT_DB,
        description="SQLAlchemy URL (or a SQLite file path) of the issuer's store.",
        json_schema_extra={"sensitive": True},
    )
    issuer_key_dir: Path | None = Field(None, description="Directory written by `finvault issuer keygen`.")
    signing_key_passphrase: SecretStr | None = None
    node_url: str | None = Field(None, description="Verification node for receipt links and QR codes.")
    issuer_max_batch: int = Field(10_000, ge=1, le=MAX_BATCH_SIZE, description="Most certificates per batch.")
    issuer_manifest_base_uri: str = Field(
        "", description="Where manifests are published; the root is appended."
    )
    issuer_stuck_after: float = Field(
        180.0, gt=0, description="Seconds before an unmined anchor is re-priced."
    )
    issuer_max_replacements: int = Field(5, ge=0, le=100, description="Fee bumps before giving up for now.")
    issuer_workers: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Processes that secure, seal and write receipts (default: 1 per CPU).",
    )
    issuer_status_url: str | None = Field(
        None,
        description="Base URL where the issuer's Bitstring Status Lists are published (the issuer API "
        "serves them at /status/N); every credential then gets a credentialStatus entry. Unset: none.",
    )
    issuer_securing: Securing = Field(
        SD_JWT,
        description="How credentials are secured: sd-jwt (selectively disclosable, any key) or "
        "data-integrity (whole credentials, the issuer_cryptosuite proof, Ed25519 keys only).",
    )
    issuer_cryptosuite: Cryptosuite = Field(
        "eddsa-jcs-2022",
        description="The cryptosuite of Data Integrity proofs (data-integrity securing, VC-API issuance). "
        "Open Badges 3.0 credentials always use the suite their template fixes.",
    )
    issuer_qr_codes: bool = Field(
        False, description="Write a QR code PNG beside each receipt (else `finvault qr` renders it later)."
    )
    issuer_did_web_domain: str | None = Field(
        None,
        description="Issue as did:web:DOMAIN (publish its did.json there); unset: the signing key's did:key.",
    )

    @field_validator("issuer_did_web_domain")
    @classmethod
    def _check_domain(cls, value: str | None) -> str | None:
        if value is not None and not DOMAIN_PATTERN.fullmatch(value):
            raise ValueError("must be a host name such as certificates.uni.example (no scheme, no path)")
        return value.lower() if value else None

    @field_validator("issuer_status_url")
    @classmethod
    def _check_status_url(cls, value: str | None) -> str | None:
        if value is not None and not is_http_url(value):
            raise ValueError("must be an http(s) URL, e.g. https://uni.example/status")
        return value.rstrip("/") if value else None

    @field_validator("node_url")
    @classmethod
    def _check_node_url(cls, value: str | None) -> str | None:
        if value is not None and not is_http_url(value):
            raise ValueError("must be an http(s) URL")
        return value

    @property
    def issuer_did(self) -> str | None:
        """``did:web:DOMAIN`` when the issuer publishes one; None: the signing key's ``did:key``."""
        return f"did:web:{self.issuer_did_web_domain}" if self.issuer_did_web_domain else None

    @property
    def workers(self) -> int:
        """How many processes issuance uses (``issuer_workers``, or one per CPU)."""
        return self.issuer_workers or default_workers()

    def issuer_config(self, out_dir: Path) -> IssuerConfig:
        """The service's configuration, writing receipts to ``out_dir``."""
        return IssuerConfig(
            out_dir=out_dir,
            node_url=self.node_url,
            max_batch_size=self.issuer_max_batch,
            manifest_base_uri=self.issuer_manifest_base_uri,
            qr_codes=self.issuer_qr_codes,
            workers=self.workers,
            securing=self.issuer_securing,
            cryptosuite=self.issuer_cryptosuite,
            status_base_url=self.issuer_status_url,
            stuck_after=self.issuer_stuck_after,
            max_replacements=self.issuer_max_replacements,
            issuer_did=self.issuer_did,
        )


class IssuerApiSettings(IssuerSettings, HttpServerSettings):
    """The issuer HTTP API's own settings (``FINVAULT_ISSUER_API_*``, ``FINVAULT_WEBHOOK_*``), and
    the connection bounds it shares with the node (``FINVAULT_HTTP_*``)."""

    issuer_api_host: str = Field("127.0.0.1", description="Interface to bind; loopback by default.")
    issuer_api_port: int = Field(8100, ge=1, le=65535)
    issuer_api_max_body: int = Field(
        4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest request body, in bytes."
    )
    issuer_api_rate: float = Field(0, ge=0, description="Requests/s per client (0: no limit).")
    issuer_api_burst: int = Field(50, ge=1)
    issuer_batch_interval: float = Field(60.0, gt=0, description="Seconds between batches.")
    issuer_batch_threshold: int | None = Field(
        None, ge=1, le=MAX_BATCH_SIZE, description="Seal early at this many pending (default: a full batch)."
    )
    webhook_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated URLs that receive certificate.anchored/certificate.revoked.",
        json_schema_extra={"sensitive": True},
    )
    webhook_secret: SecretStr | None = Field(
        None, description="HMAC key for webhook signatures (≥ 16 bytes)."
    )
    webhook_max_attempts: int = Field(8, ge=1, le=100, description="Attempts before a delivery is dead.")

    @field_validator("webhook_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        for url in value or []:
            if not is_http_url(url):
                raise ValueError("webhook URLs must be http(s) URLs")
        return value

    @model_validator(mode="after")
    def _secret_with_urls(self) -> IssuerApiSettings:
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
        if self.webhook_urls and len(secret.encode()) < 16:
            raise ValueError(
                "webhook_urls need a webhook_secret of at least 16 bytes (FINVAULT_WEBHOOK_SECRET)"
            )
        return self
