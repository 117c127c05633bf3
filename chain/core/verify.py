"""Verification: one pure function over a receipt and a set of chain facts.

``verify(receipt, facts, now)`` never fetches anything: the verification node supplies facts from
its mirror, ``finvault verify --rpc`` from an RPC endpoint, tests from a dictionary. Both call this
same function, so they cannot disagree about what "genuine" means.

Every check is listed in the verdict with a stable reason code. The status is decided in this
order: anything broken (format, digest, signature, proof, chain, anchor, issuer) makes it
``INVALID``; then a revocation makes it ``REVOKED``; then expiry makes it ``INVALID``; then an
anchor that is not yet final makes it ``PENDING``; otherwise it is ``VALID``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

import rfc8785

from chain.core.canonical import DisclosureMismatch, DocumentError, flatten, recompute_digest
from chain.core.data_integrity import DataIntegrityError, verify_proof
from chain.core.encoding import hex0x, iso_utc, to_bytes32
from chain.core.hashing import keccak256
from chain.core.merkle import leaf_hash, process_proof
from chain.core.receipt import (
    LEGACY_FORMAT,
    RECEIPT_FORMAT,
    AnyReceipt,
    Receipt,
    ReceiptError,
    ReceiptV2,
    parse_receipt,
)
from chain.core.revocation import describe_reason
from chain.core.sd_jwt import SdJwtError, parse_sd_jwt, process_credential, verify_jws
from chain.core.secured import data_integrity_digest, sd_jwt_digest
from chain.core.signing import (
    KeyAlgorithm,
    PublicKeyInfo,
    SignatureCache,
    SigningError,
    parsed_public_key,
    verify_digest,
)
from chain.core.vc_model import check_credential


class Status(StrEnum):
    """A verdict's outcome, decided in the order the module docstring gives."""

    VALID = "VALID"
    REVOKED = "REVOKED"
    INVALID = "INVALID"
    PENDING = "PENDING"


class Code(StrEnum):
    """Stable reason codes: programs match on these, never on prose."""

    MALFORMED = "MALFORMED"
    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    KEY_UNKNOWN = "KEY_UNKNOWN"
    KEY_REVOKED = "KEY_REVOKED"
    PROOF_INVALID = "PROOF_INVALID"
    DATA_INTEGRITY_INVALID = "DATA_INTEGRITY_INVALID"
    WRONG_CHAIN = "WRONG_CHAIN"
    NOT_ANCHORED = "NOT_ANCHORED"
    ISSUER_MISMATCH = "ISSUER_MISMATCH"
    ISSUER_INACTIVE = "ISSUER_INACTIVE"
    LEAF_REVOKED = "LEAF_REVOKED"
    ROOT_REVOKED = "ROOT_REVOKED"
    NOT_FINAL = "NOT_FINAL"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"


class CheckName(StrEnum):
    """The checks of a verdict, in the order every verdict lists them (each one always appears)."""

    WELL_FORMED = "well_formed"
    DIGEST = "digest"
    SIGNATURE = "signature"
    DATA_INTEGRITY = "data_integrity"
    PROOF = "proof"
    CHAIN = "chain"
    ANCHOR = "anchor"
    ISSUER = "issuer"
    REVOCATION = "revocation"
    FINALITY = "finality"
    EXPIRY = "expiry"


#: The checks that depend on the receipt alone, not on any chain fact: what a node that cannot vouch
#: for its mirror may still report.
DOCUMENT_CHECKS = frozenset(
    (CheckName.WELL_FORMED, CheckName.DIGEST, CheckName.DATA_INTEGRITY, CheckName.PROOF)
)

Outcome = Literal["pass", "fail", "skip"]
#: Failing any of these makes a receipt INVALID outright.
_INTEGRITY = (
    CheckName.WELL_FORMED,
    CheckName.DIGEST,
    CheckName.SIGNATURE,
    CheckName.DATA_INTEGRITY,
    CheckName.PROOF,
    CheckName.CHAIN,
    CheckName.ANCHOR,
    CheckName.ISSUER,
)


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``code`` is set when it failed; ``detail`` is for people."""

    name: CheckName
    outcome: Outcome
    code: Code | None = None
    detail: str = ""


# -- facts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRef:
    """Where on the chain a fact comes from: enough for a third party to re-check it."""

    tx_hash: str
    block_number: int
    block_hash: str
    log_index: int


@dataclass(frozen=True)
class AnchorFact:
    """A root's anchor as the registry records it: issuer, leaf count, block time (Unix seconds)."""

    root: bytes
    issuer: str
    count: int
    timestamp: int
    event: EventRef


@dataclass(frozen=True)
class RevocationFact:
    """A revocation of a leaf or of a whole root: the reason code and block time (Unix seconds)."""

    reason: int
    timestamp: int
    event: EventRef


@dataclass(frozen=True)
class IssuerFact:
    """A registered issuer: its account, name and URI, and whether it is active now."""

    address: str
    name: str
    uri: str
    active: bool


@dataclass(frozen=True)
class KeyFact:
    """A registered document-signing key: issuer, algorithm, DER, and the blocks that added and revoked it."""

    key_id: bytes
    issuer: str
    algorithm: KeyAlgorithm
    public_key: bytes  # DER SubjectPublicKeyInfo, from the KeyAdded event
    added_block: int
    revoked_block: int | None


@dataclass(frozen=True)
class ChainHead:
    """The chain's head block number and its ``finalized`` block, what finality is judged against."""

    number: int
    finalized: int | None  # None where the endpoint has no `finalized` tag


class ChainFacts(Protocol):
    """What verification needs to know about one registry on one chain."""

    @property
    def chain_id(self) -> int:
        """The chain the facts come from."""
        ...

    @property
    def registry(self) -> str:
        """The registry's address, ``0x`` hex."""
        ...

    def anchor(self, root: bytes) -> AnchorFact | None:
        """The anchor of ``root``, or None if this registry never anchored it."""
        ...

    def revocation(self, root: bytes, leaf: bytes | None) -> RevocationFact | None:
        """The revocation of ``leaf`` within ``root``, or of the whole root when ``leaf`` is None."""
        ...

    def issuer(self, address: str) -> IssuerFact | None:
        """The issuer registered at ``address``, or None."""
        ...

    def key(self, key_id: bytes) -> KeyFact | None:
        """The key registered under ``key_id`` (by any issuer), or None."""
        ...

    def head(self) -> ChainHead:
        """Where the chain stands now, for judging finality."""
        ...


@dataclass(frozen=True)
class Policy:
    """How sure an anchor must be before it counts as final.

    Both rules apply together: ``confirmations`` blocks on top, and (unless the endpoint has no
    such tag) at or below the chain's ``finalized`` block.
    """

    confirmations: int = 1
    use_finalized_tag: bool = True
    unsafe_skip_finality: bool = False

    def __post_init__(self) -> None:
        if self.confirmations < 1:
            raise ValueError("a verification policy needs at least 1 confirmation")


# -- verdict -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchorEvidence:
    """The trusted anchor as a verdict reports it: where, when (ISO 8601 UTC) and how final."""

    root: str
    tx_hash: str
    block_number: int
    block_hash: str
    log_index: int
    anchored_at: str
    confirmations: int
    final: bool


@dataclass(frozen=True)
class RevocationEvidence:
    """The revocation of the certificate (``leaf``) or of its batch (``root``), as a verdict reports it."""

    scope: Literal["leaf", "root"]
    reason: int
    tx_hash: str
    block_number: int
    block_hash: str
    log_index: int
    revoked_at: str


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` decided: the status, every check in a fixed order, and the evidence."""

    status: Status
    checks: tuple[Check, ...]
    issuer: IssuerFact | None = None
    anchor: AnchorEvidence | None = None
    revocation: RevocationEvidence | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    #: ``legacy_format`` for a finvault-receipt/1.
    notices: tuple[str, ...] = ()
    #: The credential as disclosed (an SD-JWT's processed payload), once the receipt is well-formed.
    credential: Mapping[str, Any] | None = None

    @property
    def valid(self) -> bool:
        """True only for ``VALID``: a ``PENDING`` or ``REVOKED`` receipt is not valid."""
        return self.status is Status.VALID

    @property
    def reasons(self) -> tuple[Code, ...]:
        """The codes of the failed checks, in check order."""
        return tuple(c.code for c in self.checks if c.outcome == "fail" and c.code is not None)

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON-ready data (enums as strings), as ``finvault verify --json`` prints it."""
        return {
            "status": str(self.status),
            "valid": self.valid,
            "reasons": [str(r) for r in self.reasons],
            "checks": [
                {
                    "name": str(c.name),
                    "outcome": c.outcome,
                    "code": c.code and str(c.code),
                    "detail": c.detail,
                }
                for c in self.checks
            ],
            "issuer": asdict(self.issuer) if self.issuer else None,
            "anchor": asdict(self.anchor) if self.anchor else None,
            "revocation": asdict(self.revocation) if self.revocation else None,
            "evidence": dict(self.evidence),
            "notices": list(self.notices),
            "credential": self.credential,
        }


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("not a date-time string")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


#: Iterating an Enum class runs a generator each time; the verdict's order is fixed.
_CHECK_ORDER = tuple(CheckName)


class _Checks:
    def __init__(self) -> None:
        self.items: dict[CheckName, Check] = {}

    def passed(self, name: CheckName, detail: str = "") -> None:
        self.items[name] = Check(name, "pass", None, detail)

    def failed(self, name: CheckName, code: Code, detail: str) -> None:
        self.items[name] = Check(name, "fail", code, detail)

    def skipped(self, name: CheckName, detail: str) -> None:
        if name not in self.items:  # not setdefault: a Check is only built when it is kept
            self.items[name] = Check(name, "skip", None, detail)

    def ok(self, name: CheckName) -> bool:
        check = self.items.get(name)
        return check is not None and check.outcome == "pass"

    def failing(self, *names: CheckName) -> bool:
        return any(self.items[n].outcome == "fail" for n in names if n in self.items)

    def ordered(self) -> tuple[Check, ...]:
        for name in _CHECK_ORDER:
            self.skipped(name, "not reached")
        return tuple(self.items[name] for name in _CHECK_ORDER)


# -- the function ------------------------------------------------------------------------------


_HEX32 = re.compile(r"0x[0-9a-f]{64}")
#: The key algorithm a JWS ``alg`` needs, by on-chain label: no algorithm confusion is possible, as
#: the registered key's algorithm decides what the header must say.
_JWS_ALG = {KeyAlgorithm.ED25519: "EdDSA", KeyAlgorithm.RSA_PKCS1V15_SHA256: "RS256"}
#: A notice on every verdict about a finvault-receipt/1 (docs/formats.md says why).
LEGACY_FORMAT_NOTICE = "legacy_format"


@dataclass(frozen=True)
class Subject:
    """What the chain checks judge, whatever the receipt's format: the leaf and where it claims to be
    anchored, the key that signed it, and the credential as disclosed."""

    format: str
    digest: bytes
    leaf: bytes
    root: bytes
    path: tuple[str, ...]
    chain_id: int
    registry: str
    issuer: str
    key_id: bytes
    #: The credential as the holder disclosed it (an SD-JWT's processed payload).
    credential: Mapping[str, Any]
    #: The signature bytes and how to check them under the registered key; None when the signature
    #: was already checked with the key the credential itself names (a Data Integrity proof).
    signature: bytes
    check_signature: Callable[[KeyFact], bool] | None


@dataclass(frozen=True)
class Examined:
    """A receipt's document checks (:data:`DOCUMENT_CHECKS`), done once: they depend on its bytes
    alone, so a verification that must look at the chain again (a mirror written meanwhile) does
    not pay for them again. ``subject`` is None when the receipt is not well-formed."""

    subject: Subject | None
    checks: Mapping[CheckName, Check]


def examine(
    receipt: AnyReceipt | Mapping[str, Any] | str | bytes, signatures: SignatureCache | None = None
) -> Examined:
    """The checks of ``receipt`` that need no chain fact: well-formed (its credential's size and
    shape included, before anything hashes it), digest (the leaf recomputed from what the issuer
    signed), Data Integrity proof, Merkle proof.

    Every check is bounded by the receipt's size: nothing here is super-linear in untrusted input,
    and anything wrong with it is a failed check, never an exception.
    """
    checks = _Checks()
    try:
        parsed = receipt if isinstance(receipt, Receipt | ReceiptV2) else parse_receipt(receipt)
        if isinstance(parsed, ReceiptV2):
            subject = _examine_v2(parsed, checks, signatures)
        else:
            subject = _examine_v1(parsed, checks, signatures)
    except (ReceiptError, DocumentError, SdJwtError) as exc:
        checks.items.clear()
        checks.failed(CheckName.WELL_FORMED, Code.MALFORMED, exc.message)
        return Examined(None, checks.items)
    _check_proof(subject, checks)
    return Examined(subject, checks.items)


def _examine_v1(parsed: Receipt, checks: _Checks, signatures: SignatureCache | None) -> Subject:
    leaves = flatten(parsed.credential)
    checks.passed(CheckName.WELL_FORMED, f"{LEGACY_FORMAT} (legacy format)")
    digest = to_bytes32(parsed.digest)
    _check_digest(parsed, leaves, digest, checks)
    _check_data_integrity_v1(parsed, checks, signatures)
    leaf = to_bytes32(parsed.proof.leaf)
    if leaf_hash(digest) != leaf:
        checks.failed(CheckName.PROOF, Code.PROOF_INVALID, "proof.leaf is not the leaf of this digest")
    signature = base64.b64decode(parsed.signature.value)
    algorithm = parsed.signature.algorithm

    def check(key: KeyFact) -> bool:
        if key.algorithm.label != algorithm:
            return False
        try:
            return verify_digest(PublicKeyInfo(key.algorithm, key.public_key), digest, signature)
        except SigningError:
            return False

    key_id = to_bytes32(parsed.signature.key_id)
    return _subject(parsed, LEGACY_FORMAT, digest, leaf, key_id, parsed.credential, signature, check)


def _examine_v2(parsed: ReceiptV2, checks: _Checks, signatures: SignatureCache | None) -> Subject:
    credential = parsed.credential
    if isinstance(credential, str):
        sd_jwt = parse_sd_jwt(credential)
        payload = process_credential(sd_jwt)
        kid = sd_jwt.header.get("kid")
        if not isinstance(kid, str) or not _HEX32.fullmatch(kid):
            raise SdJwtError(
                "the JWS header's kid must be the signing key's on-chain id (0x and 64 hex digits)"
            )
        check_credential(payload)
        checks.passed(CheckName.WELL_FORMED, f"{RECEIPT_FORMAT}, SD-JWT ({sd_jwt.header.get('alg')})")
        signed = sd_jwt.issuer_signed_jwt.encode("ascii")
        digest = sd_jwt_digest(signed)
        checks.passed(
            CheckName.DIGEST,
            f"leaf recomputed from the issuer-signed JWT; {len(sd_jwt.disclosures)} claims disclosed",
        )
        checks.skipped(CheckName.DATA_INTEGRITY, "not applicable: an SD-JWT (its JWS signature is checked)")
        parsed_jwt = sd_jwt

        def check(key: KeyFact) -> bool:
            try:
                verify_jws(parsed_jwt, _public_key(key), expected_alg=_JWS_ALG[key.algorithm])
            except (SdJwtError, ValueError):
                return False
            return True

        key_id, signature, check_signature, shown = to_bytes32(kid), sd_jwt.signature, check, payload
    else:
        try:
            digest = data_integrity_digest(credential)
        except rfc8785.CanonicalizationError as exc:
            raise DocumentError(f"credential: {exc}") from None
        check_credential(credential)
        checks.passed(CheckName.WELL_FORMED, f"{RECEIPT_FORMAT}, Data Integrity")
        checks.passed(CheckName.DIGEST, "leaf recomputed from the whole credential (JCS)")
        try:
            proof = verify_proof(credential, signatures)
        except DataIntegrityError as exc:
            checks.failed(CheckName.DATA_INTEGRITY, Code.DATA_INTEGRITY_INVALID, exc.message)
            key_id, signature = bytes(32), b""
        else:
            checks.passed(CheckName.DATA_INTEGRITY, f"{proof.cryptosuite} by {proof.controller}")
            key_id, signature = keccak256(proof.public_key_der), b""
        check_signature, shown = None, credential
    return _subject(
        parsed, RECEIPT_FORMAT, digest, leaf_hash(digest), key_id, shown, signature, check_signature
    )


def _subject(
    parsed: AnyReceipt,
    receipt_format: str,
    digest: bytes,
    leaf: bytes,
    key_id: bytes,
    credential: Mapping[str, Any],
    signature: bytes,
    check: Callable[[KeyFact], bool] | None,
) -> Subject:
    """The :class:`Subject` of ``parsed``: where it says its root is, and what was examined."""
    proof, anchor = parsed.proof, parsed.anchor
    root, path = to_bytes32(proof.root), tuple(proof.path)
    return Subject(
        receipt_format, digest, leaf, root, path, anchor.chain_id, anchor.registry, anchor.issuer,
        key_id, credential, signature, check,
    )  # fmt: skip


def _public_key(key: KeyFact) -> Any:
    return parsed_public_key(bytes(key.public_key))


def malformed(message: str) -> Examined:
    """A receipt refused before it was read (over a size limit, say): INVALID, ``MALFORMED``."""
    checks = _Checks()
    checks.failed(CheckName.WELL_FORMED, Code.MALFORMED, message)
    return Examined(None, checks.items)


def verify(
    receipt: AnyReceipt | Mapping[str, Any] | str | bytes | Examined,
    facts: ChainFacts,
    now: datetime,
    policy: Policy | None = None,
    *,
    signatures: SignatureCache | None = None,
) -> Verdict:
    """Judges ``receipt`` against ``facts`` at time ``now`` (timezone-aware).

    ``receipt`` may be the result of :func:`examine`: then only the checks that need chain facts run.
    ``signatures`` remembers signature checks that succeeded (the issuer's signature, a credential's
    Data Integrity proof): immutable facts about bytes. Everything that depends on the chain (the
    key's registration and revocation, the anchor, the issuer) is judged from ``facts`` every time.
    """
    policy = policy or Policy()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    examined = receipt if isinstance(receipt, Examined) else examine(receipt, signatures)
    checks = _Checks()
    checks.items.update(examined.checks)
    subject = examined.subject
    if subject is None:
        return Verdict(Status.INVALID, checks.ordered())

    notices = (LEGACY_FORMAT_NOTICE,) if subject.format == LEGACY_FORMAT else ()
    evidence: dict[str, Any] = {
        "format": subject.format,
        "digest": hex0x(subject.digest),
        "leaf": hex0x(subject.leaf),
        "root": hex0x(subject.root),
        "proof": list(subject.path),
        "keyId": hex0x(subject.key_id),
        "chainId": facts.chain_id,
        "registry": facts.registry,
    }

    def verdict(status: Status, **found: Any) -> Verdict:
        return Verdict(
            status,
            checks.ordered(),
            evidence=evidence,
            notices=notices,
            credential=subject.credential,
            **found,
        )

    if subject.chain_id != facts.chain_id or subject.registry != facts.registry.lower():
        checks.failed(
            CheckName.CHAIN,
            Code.WRONG_CHAIN,
            f"receipt is for chain {subject.chain_id} registry {subject.registry}; "
            f"these facts are for chain {facts.chain_id} registry {facts.registry.lower()}",
        )
        _check_signature(subject, None, facts, checks, signatures)
        return verdict(Status.INVALID)
    checks.passed(CheckName.CHAIN, f"chain {facts.chain_id}, registry {facts.registry.lower()}")

    anchor = facts.anchor(subject.root)
    issuer = None
    if anchor is None:
        checks.failed(CheckName.ANCHOR, Code.NOT_ANCHORED, "root is not anchored in this registry")
    elif anchor.issuer != subject.issuer:
        checks.failed(
            CheckName.ANCHOR,
            Code.ISSUER_MISMATCH,
            f"root was anchored by {anchor.issuer}, not {subject.issuer} as the receipt claims",
        )
    else:
        checks.passed(CheckName.ANCHOR, f"anchored in block {anchor.event.block_number} by {anchor.issuer}")
        issuer = facts.issuer(anchor.issuer)
        if issuer is None or not issuer.active:
            checks.failed(CheckName.ISSUER, Code.ISSUER_INACTIVE, f"issuer {anchor.issuer} is not active")
        else:
            checks.passed(CheckName.ISSUER, f"{issuer.name} ({issuer.address}) is active")
    trusted_anchor = anchor if checks.ok(CheckName.ANCHOR) else None
    _check_signature(subject, trusted_anchor, facts, checks, signatures)

    anchor_evidence = None
    revocation = None
    if trusted_anchor is not None:
        revocation = _check_revocation(facts, subject.root, subject.leaf, checks)
        anchor_evidence = _check_finality(trusted_anchor, facts.head(), policy, checks)
    else:
        checks.skipped(CheckName.REVOCATION, "no trusted anchor")
        checks.skipped(CheckName.FINALITY, "no trusted anchor")
    _check_expiry(subject.credential, now, checks)

    if checks.failing(*_INTEGRITY):
        status = Status.INVALID
    elif revocation is not None:
        status = Status.REVOKED
    elif checks.failing(CheckName.EXPIRY):
        status = Status.INVALID
    elif checks.failing(CheckName.FINALITY):
        status = Status.PENDING
    else:
        status = Status.VALID
    return verdict(status, issuer=issuer, anchor=anchor_evidence, revocation=revocation)


def _check_digest(receipt: Receipt, leaves: list[tuple[str, str]], digest: bytes, checks: _Checks) -> None:
    try:
        recomputed = recompute_digest(receipt.credential, receipt.salts, receipt.obfuscated, leaves=leaves)
    except DisclosureMismatch as exc:
        checks.failed(CheckName.DIGEST, Code.DIGEST_MISMATCH, exc.message)
        return
    except DocumentError as exc:
        checks.failed(CheckName.DIGEST, Code.MALFORMED, exc.message)
        return
    if recomputed != digest:
        checks.failed(
            CheckName.DIGEST, Code.DIGEST_MISMATCH, "credential, salts and obfuscated do not give the digest"
        )
    else:
        checks.passed(
            CheckName.DIGEST,
            f"{len(receipt.salts)} fields disclosed, {len(receipt.obfuscated)} withheld by the holder",
        )


def _check_data_integrity_v1(receipt: Receipt, checks: _Checks, signatures: SignatureCache | None) -> None:
    """A /1 credential's own W3C Data Integrity proof, when it has one: it must verify, and be made
    by the key that signed the receipt (so the chain vouches for that key)."""
    if "proof" not in receipt.credential:
        checks.skipped(CheckName.DATA_INTEGRITY, "no Data Integrity proof (RSA issuers have none)")
        return
    if receipt.obfuscated:
        checks.skipped(
            CheckName.DATA_INTEGRITY,
            "not applicable: fields withheld by the holder (the proof covers the whole credential)",
        )
        return
    try:
        proof = verify_proof(receipt.credential, signatures)
    except DataIntegrityError as exc:
        checks.failed(CheckName.DATA_INTEGRITY, Code.DATA_INTEGRITY_INVALID, exc.message)
        return
    if hex0x(keccak256(proof.public_key_der)) != receipt.signature.key_id:
        checks.failed(
            CheckName.DATA_INTEGRITY,
            Code.DATA_INTEGRITY_INVALID,
            "the proof's key is not the key that signed the receipt",
        )
        return
    checks.passed(CheckName.DATA_INTEGRITY, f"{proof.cryptosuite} by {proof.controller}")


def _check_proof(subject: Subject, checks: _Checks) -> None:
    if checks.failing(CheckName.PROOF):
        return
    if process_proof(subject.leaf, [to_bytes32(p) for p in subject.path]) != subject.root:
        checks.failed(CheckName.PROOF, Code.PROOF_INVALID, "proof.path does not lead to proof.root")
    else:
        checks.passed(CheckName.PROOF, f"{len(subject.path)} steps to the root")


def _check_signature(
    subject: Subject,
    anchor: AnchorFact | None,
    facts: ChainFacts,
    checks: _Checks,
    signatures: SignatureCache | None,
) -> None:
    if checks.failing(CheckName.DATA_INTEGRITY) and subject.check_signature is None:
        checks.skipped(CheckName.SIGNATURE, "no verified signature: the Data Integrity proof fails")
        return
    key_id = subject.key_id
    key = facts.key(key_id)
    if key is None or keccak256(key.public_key) != key_id:
        checks.failed(CheckName.SIGNATURE, Code.KEY_UNKNOWN, "key id is not registered in this registry")
        return
    if anchor is not None:
        if key.issuer != anchor.issuer:
            checks.failed(
                CheckName.SIGNATURE,
                Code.KEY_UNKNOWN,
                f"key belongs to {key.issuer}, not the anchoring issuer",
            )
            return
        if key.added_block > anchor.event.block_number:
            checks.failed(CheckName.SIGNATURE, Code.KEY_UNKNOWN, "key was registered after the anchor")
            return
        if key.revoked_block is not None and key.revoked_block <= anchor.event.block_number:
            checks.failed(
                CheckName.SIGNATURE, Code.KEY_REVOKED, f"key was revoked in block {key.revoked_block}"
            )
            return
    verify_with = subject.check_signature
    if verify_with is None:  # a Data Integrity proof, verified with the key the chain now vouches for
        good = key.algorithm is KeyAlgorithm.ED25519
    elif signatures is None:
        good = verify_with(key)
    else:
        good = signatures.verified(key_id, subject.digest, subject.signature, lambda: verify_with(key))
    if not good:
        checks.failed(CheckName.SIGNATURE, Code.SIGNATURE_INVALID, "signature does not verify under the key")
    elif anchor is None:
        checks.skipped(
            CheckName.SIGNATURE, "signature verifies, but the key's status at anchor time is unknown"
        )
    else:
        checks.passed(CheckName.SIGNATURE, f"{key.algorithm.label} key registered in block {key.added_block}")


def _revocation_evidence(scope: Literal["leaf", "root"], fact: RevocationFact) -> RevocationEvidence:
    e = fact.event
    return RevocationEvidence(
        scope, fact.reason, e.tx_hash, e.block_number, e.block_hash, e.log_index, iso_utc(fact.timestamp)
    )


def _check_revocation(
    facts: ChainFacts, root: bytes, leaf: bytes, checks: _Checks
) -> RevocationEvidence | None:
    of_root = facts.revocation(root, None)
    if of_root is not None:
        checks.failed(
            CheckName.REVOCATION, Code.ROOT_REVOKED, f"batch revoked: {describe_reason(of_root.reason)}"
        )
        return _revocation_evidence("root", of_root)
    of_leaf = facts.revocation(root, leaf)
    if of_leaf is not None:
        checks.failed(
            CheckName.REVOCATION, Code.LEAF_REVOKED, f"certificate revoked: {describe_reason(of_leaf.reason)}"
        )
        return _revocation_evidence("leaf", of_leaf)
    checks.passed(CheckName.REVOCATION, "neither the certificate nor its batch is revoked")
    return None


def finality(block: int, head: ChainHead, policy: Policy) -> tuple[int, bool, str]:
    """``(confirmations, final, why)`` for something included in ``block``, under ``policy``."""
    confirmations = max(0, head.number - block + 1)
    deep_enough = confirmations >= policy.confirmations
    tag_says = None if head.finalized is None or not policy.use_finalized_tag else block <= head.finalized
    if head.finalized is not None and head.finalized > head.number:
        final, why = (
            False,
            f"finalized block {head.finalized} is above head {head.number}: facts are inconsistent",
        )
    elif policy.unsafe_skip_finality:
        final, why = True, "finality NOT checked (unsafe_skip_finality)"
    elif not deep_enough:
        final, why = False, f"{confirmations} of {policy.confirmations} confirmations"
    elif tag_says is False:
        final, why = False, f"block {block} is above the finalized block {head.finalized}"
    else:
        final, why = True, f"{confirmations} confirmations" + (", finalized" if tag_says else "")
    return confirmations, final, why


def _check_finality(anchor: AnchorFact, head: ChainHead, policy: Policy, checks: _Checks) -> AnchorEvidence:
    confirmations, final, why = finality(anchor.event.block_number, head, policy)
    if final:
        checks.passed(CheckName.FINALITY, why)
    else:
        checks.failed(CheckName.FINALITY, Code.NOT_FINAL, why)
    e = anchor.event
    return AnchorEvidence(
        "0x" + anchor.root.hex(),
        e.tx_hash,
        e.block_number,
        e.block_hash,
        e.log_index,
        iso_utc(anchor.timestamp),
        confirmations,
        final,
    )


def _check_expiry(credential: Mapping[str, Any], now: datetime, checks: _Checks) -> None:
    try:
        until = credential.get("validUntil", credential.get("expirationDate"))
        since = credential.get("validFrom")
        if until is not None and now > _parse_time(until):
            checks.failed(CheckName.EXPIRY, Code.EXPIRED, f"expired at {until}")
        elif since is not None and now < _parse_time(since):
            checks.failed(CheckName.EXPIRY, Code.NOT_YET_VALID, f"valid from {since}")
        else:
            checks.passed(CheckName.EXPIRY, f"valid until {until}" if until else "no expiry date disclosed")
    except ValueError as exc:
        checks.failed(CheckName.EXPIRY, Code.MALFORMED, f"unreadable validity date: {exc}")
