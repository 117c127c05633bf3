"""The node API's response shapes, for /openapi.json (and for schema-conformance tests).

The hot routes (``POST /verify``, ``/verify/bulk``) serialize :meth:`chain.core.verify.Verdict.to_dict`
themselves; these models document that shape and are checked against it by the tests.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chain.core.receipt import Receipt, ReceiptV2
from chain.service.web import error_schema

Hex32 = Field(pattern=r"^0x[0-9a-f]{64}$")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckOut(_Out):
    """One check of a verdict: which check it is, whether it passed, failed or was skipped, and why."""

    name: Literal[
        "well_formed",
        "digest",
        "signature",
        "data_integrity",
        "proof",
        "chain",
        "anchor",
        "issuer",
        "revocation",
        "finality",
        "expiry",
    ]
    outcome: Literal["pass", "fail", "skip"]
    code: str | None = Field(description="Stable reason code when the check failed (e.g. DIGEST_MISMATCH).")
    detail: str


class IssuerOut(_Out):
    """The issuer that anchored the receipt's batch, as registered on-chain, and whether it is active now."""

    address: str
    name: str
    uri: str
    active: bool


class AnchorEvidenceOut(_Out):
    """Where and when the receipt's batch root was anchored on-chain, and how final that anchor is."""

    root: str
    tx_hash: str
    block_number: int
    block_hash: str
    log_index: int
    anchored_at: str = Field(description="Block time of the anchor, ISO 8601 UTC.")
    confirmations: int
    final: bool = Field(description="Deep enough and at or below the chain's finalized block.")


class RevocationEvidenceOut(_Out):
    """The revocation of the certificate (scope leaf) or of its whole batch (scope root), and its event."""

    scope: Literal["leaf", "root"]
    reason: int = Field(description="RFC 5280 CRL reason code (11: issuedInError).")
    tx_hash: str
    block_number: int
    block_hash: str
    log_index: int
    revoked_at: str


class AsOfOut(_Out):
    """The mirror state an answer was judged at: its newest block, and how far behind the chain it may be."""

    block_number: int = Field(description="The mirror's newest block: the state the verdict was judged at.")
    block_hash: str = Field(
        description="That block's hash as the mirror holds it (the chain's own, unless a reorg since).",
        pattern=r"^0x[0-9a-f]{64}$",
    )
    block_time: str = Field(description="That block's timestamp, ISO 8601 UTC.")
    lag_seconds: float | None = Field(
        description="Seconds since the mirror last reached the chain head (null: not yet since the "
        "node started). The node stops vouching beyond its max_staleness."
    )


class IdentityOut(_Out):
    """Who the issuer says it is, checked: the issuer's did:web and whether its published document
    names the account that anchored the receipt. Advisory: it never changes the status."""

    did: str | None = Field(description="The credential's issuer DID, if it names one.")
    domain: str | None = Field(
        description="The did:web host and port, ASCII (IDNs as punycode A-labels); null for an invalid DID."
    )
    location: str | None = Field(
        None,
        description="Where the document lives, host and path, ASCII: uni.example/issuers/42 "
        "(null for an invalid DID or no did:web). Show this, not the domain alone.",
    )
    unicode_location: str | None = Field(
        None,
        description="The location with an internationalized host in Unicode, shown beside the ASCII "
        "form so a look-alike cannot pass for Latin; null when the host is plain ASCII.",
    )
    url: str | None = Field(None, description="The one URL the did:web method gives for the document.")
    status: Literal["verified", "mismatch", "unreachable", "refused", "not_configured"] = Field(
        description="verified: the document names the anchoring account; mismatch: a document came "
        "back that does not; unreachable: none in time; refused: the DID names a URL form or an "
        "address the node will not fetch; not_configured: no did:web (or an INVALID receipt)."
    )
    reason: str | None = Field(
        None,
        description="Why, when not verified: not_named, document_invalid, did_invalid, address_forbidden, "
        "deadline, slow, too_large, http_status, content_encoding, connect_failed, protocol_error, busy.",
    )


class VerdictOut(_Out):
    """The verdict on one receipt, the 200 answer of POST /verify: status, every check, and the evidence."""

    status: Literal["VALID", "REVOKED", "INVALID", "PENDING"]
    valid: bool
    reasons: list[str] = Field(description="Reason codes of the failed checks.")
    checks: list[CheckOut]
    issuer: IssuerOut | None
    anchor: AnchorEvidenceOut | None
    revocation: RevocationEvidenceOut | None
    evidence: dict[str, Any] = Field(description="What a third party needs to re-check the verdict.")
    notices: list[str] = Field(
        description="legacy_format: a finvault-receipt/1, whose digest is ambiguous (docs/formats.md)."
    )
    credential: dict[str, Any] | None = Field(
        description="The credential as the receipt discloses it (an SD-JWT's processed payload); "
        "null when the receipt is not well-formed."
    )
    checked_at: str = Field(description="The time expiry was judged at, ISO 8601 UTC.")
    as_of: AsOfOut = Field(description="The mirror state the verdict was judged at.")
    identity: IdentityOut | None = Field(None, description="The issuer's did:web, checked (advisory).")


class BulkOut(_Out):
    """The 200 answer of POST /verify/bulk: one verdict per receipt, in request order, and a tally."""

    count: int
    summary: dict[str, int] = Field(description="How many verdicts of each status.")
    results: list[VerdictOut] = Field(description="One verdict per receipt, in request order.")


class EventOut(_Out):
    """Where on the chain an event was emitted (transaction, block, log index): enough to re-check it."""

    tx_hash: str
    block_number: int
    block_hash: str
    log_index: int


class AnchorRevocationOut(_Out):
    """The revocation of a whole batch: RFC 5280 reason code, block time (Unix seconds) and event."""

    reason: int
    timestamp: int
    event: EventOut


class AnchorOut(_Out):
    """An anchored batch root, the answer of GET /anchors/{root}: issuer, size, manifest, event, finality."""

    root: str
    issuer: str
    count: int = Field(description="Certificates in the batch.")
    timestamp: int
    anchored_at: str
    manifest_uri: str
    event: EventOut
    confirmations: int
    final: bool
    revocation: AnchorRevocationOut | None = Field(description="Set when the whole batch is revoked.")


class KeyOut(_Out):
    """One of an issuer's signing keys: algorithm, public key, and the blocks that added and revoked it."""

    key_id: str
    algorithm: Literal["ed25519", "rsa-pkcs1v15-sha256"]
    public_key: str = Field(description="DER SubjectPublicKeyInfo, hex.")
    added_block: int
    revoked_block: int | None
    active: bool


class IssuerDetailOut(_Out):
    """A registered issuer, the answer of GET /issuers/{address}: status, registration event and keys."""

    address: str
    name: str
    uri: str
    active: bool
    registered: EventOut
    keys: list[KeyOut]


class IssuersOut(_Out):
    """The answer of GET /issuers: every registered issuer, in registration order."""

    issuers: list[IssuerDetailOut]


class RevocationOut(_Out):
    """One revocation in the mirror: of a certificate (scope leaf) or a whole batch (scope root, no leaf)."""

    scope: Literal["leaf", "root"]
    root: str
    leaf: str | None
    issuer: str
    reason: int
    timestamp: int
    revoked_at: str
    event: EventOut


class RevocationsPage(_Out):
    """A page of GET /revocations: revocations in chain order, and the cursor of the next page."""

    revocations: list[RevocationOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last.")


class HealthOut(_Out):
    """The answer of GET /health: the process is up. It says nothing of the mirror (see GET /ready)."""

    status: Literal["ok"]


class ErrorBody(_Out):
    """The error object of every error response: a stable code, a message, and the correlation id."""

    code: str
    message: str
    correlation_id: str


REFUSAL_DOC = (
    "The mirror cannot vouch for verdicts right now; no verdict is given. `error.code` says why: "
    "`mirror_halted` (sync halted until an operator runs `finvault resync`, or paused while one "
    "runs), `mirror_diverged` (the mirror's rows do not fold into the contract's accumulators), "
    "`mirror_drift` (a reconciliation "
    "found unrepaired drift), `mirror_stale` (the mirror has not reached the chain head within "
    "max_staleness), or `mirror_busy` (written without a pause; retry at once). Retry after "
    "`Retry-After` seconds."
)


class RefusalOut(_Out):
    """The 503 answer of POST /verify and POST /verify/bulk: no verdict, why not, and when to retry."""

    error: ErrorBody
    as_of: AsOfOut | None = Field(None, description="The mirror state the node holds (not vouched for).")
    retry_after: int | None = Field(None, description="Seconds to wait, as in the Retry-After header.")
    document_checks: list[CheckOut] | None = Field(
        None,
        description="The checks that depend on the receipt alone "
        "(well_formed, digest, data_integrity, proof); no status.",
    )


class CannotVouchOut(_Out):
    """Why the mirror cannot vouch for verdicts right now: a stable code and a reason for people."""

    code: Literal["mirror_halted", "mirror_diverged", "mirror_drift", "mirror_stale"]
    reason: str


class ReadyOut(_Out):
    """The answer of GET /ready: 200 when ready; 503 with the reasons, and the error object, when not."""

    ready: bool
    reasons: list[str]
    error: ErrorBody | None = None


class AccumulatorsOut(_Out):
    """Accumulators and event counts at one block, as the mirror or the contract holds them, or an error."""

    block_number: int
    anchor_accumulator: str | None = None
    revocation_accumulator: str | None = None
    anchors: int | None = None
    revocations: int | None = None
    error: str | None = None


class CountsOut(_Out):
    """How many anchors, revocations, issuers and keys the mirror holds."""

    anchors: int
    revocations: int
    issuers: int
    keys: int


class StatusOut(_Out):
    """The answer of GET /status: chain, sync loop, the mirror checked against the contract, and vouching."""

    chain_id: int
    registry: str
    head: int
    indexed_block: int
    finalized_block: int
    lag: int
    events_indexed: int = Field(description="Events this process has indexed since it started.")
    counts: CountsOut
    mirror: AccumulatorsOut
    contract: AccumulatorsOut | None = Field(description="The contract's values at the mirror's block.")
    accumulators_match: bool | None
    confirmations: int
    sync_confirmations: int
    reorgs_repaired: int
    quorum_disagreements: int = Field(
        description="Sync steps refused since the node started because the --quorum-rpc endpoint "
        "disagreed with the primary on a block hash (nothing from such a step is committed)."
    )
    last_error: str | None
    ready: bool
    vouching: bool = Field(description="Whether verification answers verdicts (200) rather than 503.")
    cannot_vouch: CannotVouchOut | None = Field(description="Why not, while `vouching` is false.")
    as_of: AsOfOut = Field(description="The mirror state verdicts are judged at now.")


class FindingOut(_Out):
    """One error or warning of POST /credentials/verify: its check, a stable code, a message."""

    check: str = Field(description="proof, vc-data-model, validity, status, relatedResource, or input.")
    code: str = Field(description="Stable: proof_missing, proof_invalid, malformed, vc_model_<rule>, ...")
    message: str


class CredentialVerifyOut(_Out):
    """The 200 answer of POST /credentials/verify (W3C VC-API): the checks that passed, in order, and
    what was not checked (``warnings``); ``errors`` is empty."""

    verified: bool
    checks: list[Literal["proof", "vc-data-model", "validity"]] = Field(
        description="The checks that passed, in the order they ran."
    )
    warnings: list[FindingOut] = Field(
        description="What the node did not check, and why (status, related resources' digests)."
    )
    errors: list[FindingOut] = Field(description="Empty on 200; the failure on 400.")
    checked_at: str = Field(description="The node's clock, against which validity was judged, ISO 8601 UTC.")


class CredentialRefusedOut(CredentialVerifyOut):
    """The 400 answer of POST /credentials/verify: the VC-API shape (``errors`` non-empty) and the
    node's one error object, whose code is the first error's."""

    error: ErrorBody


def _inline_refs(schema: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline_refs(definitions[schema["$ref"].rsplit("/", 1)[-1]], definitions)
        return {key: _inline_refs(value, definitions) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [_inline_refs(item, definitions) for item in schema]
    return schema


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    inlined: dict[str, Any] = _inline_refs(schema, schema.get("$defs", {}))
    return inlined


def receipt_schema() -> dict[str, Any]:
    """The receipt JSON schema (``finvault-receipt/2``, or the legacy ``/1``), self-contained (no
    ``$ref``), for request bodies."""
    return {
        "oneOf": [_model_schema(ReceiptV2), _model_schema(Receipt)],
        "description": "A finvault-receipt/2 (or a legacy finvault-receipt/1) receipt. Anything else that "
        "is JSON still gets a verdict (INVALID, MALFORMED), not an error.",
    }


def bulk_schema(limit: int) -> dict[str, Any]:
    """The JSON schema of ``POST /verify/bulk`` bodies: ``{"receipts": [...]}``, 1 to ``limit`` of them."""
    return {
        "type": "object",
        "required": ["receipts"],
        "additionalProperties": False,
        "properties": {
            "receipts": {"type": "array", "minItems": 1, "maxItems": limit, "items": receipt_schema()}
        },
    }


def credential_verify_schema() -> dict[str, Any]:
    """The JSON schema of ``POST /credentials/verify`` bodies (W3C VC-API)."""
    return {
        "type": "object",
        "required": ["verifiableCredential"],
        "additionalProperties": False,
        "properties": {
            "verifiableCredential": {
                "type": "object",
                "description": "A W3C VC 2.0 credential with its eddsa-jcs-2022 Data Integrity proof. "
                "An SD-JWT is not a bare credential: POST its receipt to /verify.",
            },
            "options": {
                "type": "object",
                "description": "Accepted and ignored (each one named in a warning).",
            },
        },
    }


def error_response_doc(description: str) -> dict[str, Any]:
    """A ``responses=`` entry for the one error shape."""
    return {"description": description, "content": {"application/json": {"schema": error_schema()}}}
