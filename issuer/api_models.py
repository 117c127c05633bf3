"""The issuer API's request and response models, and how store rows become them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from chain.core.revocation import reason_name
from issuer.revoke import RevocationResult
from issuer.store import Revocation

#: Records per ``POST /certificates``; bigger inputs go through ``finvault issue``.
MAX_CERTIFICATES_PER_REQUEST = 1_000
MAX_REVOCATIONS_PER_REQUEST = 1_000
#: A batch root as the API takes it: lowercase ``0x`` hex.
ROOT_PATTERN = r"^0x[0-9a-f]{64}$"


class _Model(BaseModel):
    """Strict and frozen: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RejectedRecord(_Model):
    """A record the intake refused, and why (nothing of the request is stored for it)."""

    index: int = Field(description="1-based position in the request.")
    id: str | None
    reason: str


class AcceptedCertificate(_Model):
    """A record the intake accepted: its certificate id and status (``pending``). Its Merkle leaf
    exists once sealing has secured it: GET /certificates/{id} returns it then."""

    id: str
    status: str


class IntakeResponse(_Model):
    """The answer to ``POST /certificates``: what was accepted and what was refused."""

    accepted: list[AcceptedCertificate]
    rejected: list[RejectedRecord]


class RevocationRequest(_Model):
    """``POST /revocations``: some certificates of anchored batches, or a whole batch, with a reason."""

    certificate_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, min_length=1, max_length=MAX_REVOCATIONS_PER_REQUEST
    )
    batch: Annotated[str, Field(pattern=ROOT_PATTERN)] | None = None
    reason: str | int = Field(description="RFC 5280 reason: a name (superseded, keyCompromise, ...) or code.")


class RevocationOutcome(_Model):
    """One revocation as done on-chain (or found already done)."""

    target: str
    already_revoked: bool
    reason: str
    reason_code: int
    block_number: int
    tx_hash: str | None


class RevocationResponse(_Model):
    """The answer to ``POST /revocations``: one outcome per target."""

    results: list[RevocationOutcome]


class RevocationView(_Model):
    """A revocation as the store keeps it, shown beside its certificate or batch."""

    reason: str
    reason_code: int
    block_number: int
    tx_hash: str | None
    whole_batch: bool


class CertificateView(_Model):
    """``GET /certificates/{id}``: the certificate's state and, once anchored, its receipt."""

    id: str
    status: str
    leaf: str | None = Field(description="The Merkle leaf, once sealed.")
    digest: str | None = Field(description="What the leaf commits to (see docs/formats.md), once sealed.")
    batch: str | None
    created_at: datetime
    receipt: dict[str, Any] | None = Field(description="The finvault-receipt/2, once anchored.")
    revocation: RevocationView | None


class BatchView(_Model):
    """``GET /batches/{root}``: a sealed batch and its anchoring."""

    root: str
    status: str
    leaf_count: int
    key_id: str
    manifest_uri: str
    tx_hash: str | None
    block_number: int | None
    gas_used: int | None
    error: str | None
    sealed_at: datetime
    anchored_at: datetime | None
    revocation: RevocationView | None


class DeliveryView(_Model):
    """One webhook delivery and where it stands."""

    event_id: str
    url: str
    status: str
    attempts: int
    next_attempt_at: str
    last_error: str | None
    delivered_at: str | None


#: The body of ``POST /certificates``: one record or a list of them.
RECORDS: TypeAdapter[dict[str, Any] | list[dict[str, Any]]] = TypeAdapter(
    dict[str, Any] | list[dict[str, Any]]
)
#: Its OpenAPI schema.
#: ``POST /credentials/issue`` (W3C VC-API).
ISSUE_BODY = {
    "type": "object",
    "required": ["credential"],
    "additionalProperties": False,
    "properties": {
        "credential": {"type": "object", "description": "A VC 2.0 credential, unsecured."},
        "options": {"type": "object", "description": "Accepted and ignored: FinVault's key and suite."},
    },
}
CERTIFICATES_BODY = {
    "oneOf": [
        {"type": "object", "description": "One record: the template's columns."},
        {
            "type": "array",
            "items": {"type": "object"},
            "minItems": 1,
            "maxItems": MAX_CERTIFICATES_PER_REQUEST,
        },
    ]
}


def revocation_view(row: Revocation) -> RevocationView:
    """A stored revocation as the API shows it."""
    return RevocationView(
        reason=reason_name(row.reason),
        reason_code=row.reason,
        block_number=row.block_number,
        tx_hash=row.tx_hash,
        whole_batch=row.certificate_id is None,
    )


def revocation_outcome(result: RevocationResult) -> RevocationOutcome:
    """A revocation the :class:`~issuer.revoke.Revoker` did, as the API reports it."""
    return RevocationOutcome(
        target=result.target,
        already_revoked=result.already_revoked,
        reason=reason_name(result.reason),
        reason_code=result.reason,
        block_number=result.block_number,
        tx_hash=result.tx_hash,
    )
