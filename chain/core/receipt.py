"""Receipts: ``finvault-receipt/2`` (issued today) and ``finvault-receipt/1`` (legacy, read only).

One self-contained JSON file per certificate, which a holder can hand to any node or check with
the CLI. Both formats are consensus-critical and frozen (docs/formats.md describes them):

- **/2** carries a standard secured credential (:mod:`chain.core.secured`: an SD-JWT string, or a
  credential object with a Data Integrity proof), the Merkle path with the root it leads to, and
  the anchor's chain, registry and issuer. Nothing else: the leaf, the verification link and the
  anchoring transaction are recomputed or looked up, never read from the receipt.
- **/1** carries a ``finvault-doc/1`` salted document, FinVault's own signature over its digest,
  the proof with its leaf and the anchor with its transaction; verifiers flag it ``legacy_format``.

Parsing is strict: unknown fields, wrong types, non-lowercase hex or malformed base64 are
:class:`ReceiptError` naming the offending field (``signature.value``, ``proof.path.3``...).
Whether the contents are *true* (signature, proof, anchor) is for :mod:`chain.core.verify`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from chain.core.canonical import MAX_SAFE_INTEGER, DocumentError, SaltedDocument, loads_strict
from chain.core.errors import FinVaultError

RECEIPT_FORMAT: Literal["finvault-receipt/2"] = "finvault-receipt/2"
LEGACY_FORMAT: Literal["finvault-receipt/1"] = "finvault-receipt/1"
#: A receipt is a credential plus ~1 KiB of evidence; 512 KiB leaves room for large documents.
MAX_RECEIPT_BYTES = 512 * 1024
#: JSON values a receipt may hold (see :func:`chain.core.canonical.json_values_bound`): one of
#: 4,096 fields, each with its key, salt and container, comes to about 25,000.
MAX_RECEIPT_VALUES = 65_536
#: Deeper than any tree of 2^64 leaves: anything longer is not a proof.
MAX_PROOF_LENGTH = 64

Hex32 = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-f]{64}$")]
Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-f]{40}$")]
Algorithm = Literal["ed25519", "rsa-pkcs1v15-sha256"]


class ReceiptError(FinVaultError, ValueError):
    """A receipt that is not well-formed in its format. ``field`` names where."""

    code = "receipt_malformed"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Signature(_Strict):
    """The issuer's signature over the 32 digest bytes, naming its key by on-chain key id."""

    key_id: Hex32 = Field(alias="keyId")
    algorithm: Algorithm
    value: str = Field(
        min_length=1, max_length=4096, description="base64 of the signature over the 32 digest bytes"
    )

    @field_validator("value")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError("not valid base64") from None
        return value

    @property
    def raw(self) -> bytes:
        """The signature bytes (``value`` decoded from base64)."""
        return base64.b64decode(self.value)


class Proof(_Strict):
    """The Merkle proof: the document's leaf hash, its sibling path and the batch root it leads to."""

    leaf: Hex32
    path: list[Hex32] = Field(max_length=MAX_PROOF_LENGTH)
    root: Hex32


class Anchor(_Strict):
    """Where the root was anchored: chain, registry, issuing account, transaction and block."""

    chain_id: int = Field(alias="chainId", gt=0, le=MAX_SAFE_INTEGER)
    registry: Address
    issuer: Address
    tx_hash: Hex32 = Field(alias="txHash")
    block_number: int = Field(alias="blockNumber", gt=0, le=MAX_SAFE_INTEGER)


class Receipt(_Strict):
    """One finvault-receipt/1 file (legacy): the salted credential and the evidence that it was anchored."""

    format: Literal["finvault-receipt/1"]
    credential: dict[str, Any]
    salts: dict[str, Hex32]
    obfuscated: list[Hex32] = Field(default_factory=list)
    digest: Hex32
    signature: Signature
    proof: Proof
    anchor: Anchor
    link: str | None = Field(None, max_length=2048, description="Verification link: node URL + leaf")

    @property
    def document(self) -> SaltedDocument:
        """The salted document as the receipt states it: ``digest`` is the receipt's claim, not recomputed."""
        return SaltedDocument(
            self.credential, self.salts, tuple(self.obfuscated), bytes.fromhex(self.digest[2:])
        )

    def to_json_dict(self) -> dict[str, Any]:
        """The receipt as JSON-ready data, with the format's camelCase names and no null ``link``."""
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)

    def to_json(self, *, indent: int | None = 2) -> str:
        """The receipt file's text: UTF-8 JSON (non-ASCII kept as is), ending in a newline."""
        return json.dumps(self.to_json_dict(), indent=indent, ensure_ascii=False) + "\n"


class MerklePath(_Strict):
    """A /2 receipt's Merkle proof: the sibling path, and the root it must lead to from the leaf
    recomputed from the credential."""

    path: list[Hex32] = Field(max_length=MAX_PROOF_LENGTH)
    root: Hex32


class AnchorRef(_Strict):
    """A /2 receipt's anchor: which chain and registry to ask, and the issuer that anchored the root
    (checked against the registry; the transaction and block come from the chain, not from here)."""

    chain_id: int = Field(alias="chainId", gt=0, le=MAX_SAFE_INTEGER)
    registry: Address
    issuer: Address


class ReceiptV2(_Strict):
    """One finvault-receipt/2 file: a secured credential and where its root was anchored."""

    format: Literal["finvault-receipt/2"]
    #: The SD-JWT (compact, ``<JWT>~<D1>~...~``), or the credential object with its Data Integrity proof.
    credential: str | dict[str, Any]
    proof: MerklePath
    anchor: AnchorRef

    def to_json_dict(self) -> dict[str, Any]:
        """The receipt as JSON-ready data, with the format's camelCase names."""
        return self.model_dump(by_alias=True, mode="json")

    def to_json(self, *, indent: int | None = 2) -> str:
        """The receipt file's text: UTF-8 JSON (non-ASCII kept as is), ending in a newline."""
        return json.dumps(self.to_json_dict(), indent=indent, ensure_ascii=False) + "\n"


AnyReceipt = Receipt | ReceiptV2
_MODELS: dict[str, type[Receipt] | type[ReceiptV2]] = {RECEIPT_FORMAT: ReceiptV2, LEGACY_FORMAT: Receipt}

#: Characters of a field's name quoted in an error (a key may be as long as the receipt).
MAX_SHOWN_FIELD = 120


def _field_name(location: tuple[int | str, ...]) -> str:
    name = ".".join(str(part) for part in location) or "receipt"
    return name if len(name) <= MAX_SHOWN_FIELD else f"{name[:MAX_SHOWN_FIELD]}... ({len(name):,} characters)"


def parse_receipt(source: str | bytes | Mapping[str, Any]) -> AnyReceipt:
    """A receipt of either format from JSON text (or an already parsed object), strictly validated."""
    if isinstance(source, str | bytes):
        try:
            source = loads_strict(source, max_bytes=MAX_RECEIPT_BYTES, max_values=MAX_RECEIPT_VALUES)
        except DocumentError as exc:
            raise ReceiptError(exc.message) from None
    if not isinstance(source, Mapping):
        raise ReceiptError("a receipt must be a JSON object")
    declared = source.get("format")
    model = _MODELS.get(declared) if isinstance(declared, str) else None
    if model is None:
        raise ReceiptError(
            f"not a receipt: format must be {RECEIPT_FORMAT!r} (or the legacy {LEGACY_FORMAT!r})",
            field="format",
        )
    try:
        return model.model_validate(source)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ReceiptError(first["msg"] + more, field=_field_name(first["loc"])) from None


def receipt_size(receipt: Mapping[str, Any]) -> int:
    """Bytes of ``receipt`` as compact UTF-8 JSON: what :data:`MAX_RECEIPT_BYTES` bounds for a
    receipt that arrives already parsed (one of many in a request)."""
    return len(json.dumps(receipt, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace"))


def build_receipt_v2(
    credential: str | dict[str, Any], *, path: list[str], root: str, chain_id: int, registry: str, issuer: str
) -> ReceiptV2:
    """The /2 receipt for an anchored secured credential."""
    return ReceiptV2(
        format=RECEIPT_FORMAT,
        credential=credential,
        proof=MerklePath(path=path, root=root),
        anchor=AnchorRef(chainId=chain_id, registry=registry, issuer=issuer),
    )


def build_receipt(
    document: SaltedDocument,
    *,
    signature: Signature,
    proof: Proof,
    anchor: Anchor,
    link: str | None = None,
) -> Receipt:
    """The legacy /1 receipt for an anchored document: its salted credential plus signature, proof
    and anchor (tests and holders of /1 receipts; issuance writes /2)."""
    return Receipt(
        format=LEGACY_FORMAT,
        credential=dict(document.credential),
        salts=dict(document.salts),
        obfuscated=list(document.obfuscated),
        digest="0x" + document.digest.hex(),
        signature=signature,
        proof=proof,
        anchor=anchor,
        link=link,
    )
