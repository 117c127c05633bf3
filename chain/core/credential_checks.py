"""The checks of a bare W3C VC 2.0 credential, as the W3C VC-API's ``POST /credentials/verify`` asks.

A bare credential is a credential and nothing else: no Merkle path, no anchor. What can be judged
from it alone is judged here, in this order, stopping at the first failure (all or nothing: a
forged credential costs no more than its proof check):

- ``proof``: one ``eddsa-jcs-2022`` Data Integrity proof that verifies under the Ed25519 Multikey
  its verification method names (:func:`chain.core.data_integrity.verify_proof`);
- ``vc-data-model``: the VC Data Model 2.0 rules (:func:`chain.core.vc_model.check_credential`);
- ``validity``: ``validFrom`` / ``validUntil`` against ``now`` (an input: this module reads no clock).

What it cannot judge is a warning, never a pass: ``status`` (revocation is on-chain by leaf and
batch root, and a bare credential carries no path to its root) and any ``relatedResource`` digest
(nothing is fetched; see :data:`UNFETCHED`). Pure and linear in the credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785

from chain.core.canonical import DocumentError
from chain.core.data_integrity import CRYPTOSUITES, DataIntegrityError, verify_proof
from chain.core.encoding import hex0x
from chain.core.merkle import leaf_hash
from chain.core.secured import data_integrity_digest
from chain.core.signing import SignatureCache
from chain.core.vc_model import VC2_CONTEXT, ModelError, check_credential, parse_date_time_stamp

PROOF, DATA_MODEL, VALIDITY, STATUS = "proof", "vc-data-model", "validity", "status"
#: The checks in the order they run (``status`` only ever warns: see the module docstring).
CHECKS = (PROOF, DATA_MODEL, VALIDITY, STATUS)
#: Why a related resource's digest is not checked: the node fetches nothing, and the one local copy
#: of the VC 2.0 base context (npm ``@digitalbazaar/credentials-context``) is, as its README says,
#: semantically equal to the published file but not byte for byte, so no digest can be checked on it.
UNFETCHED = "the node fetches no related resource, and holds no byte-exact copy of it"
ISSUER_KEY_NOT_CHECKED = (
    "the proof verifies under the key it names, which nothing here ties to the issuer's DID; POST "
    "/verify with the receipt checks the key is the one the anchoring issuer registered on-chain"
)
STATUS_NOT_CHECKED = (
    "not checked: a bare credential carries no Merkle path; POST /verify with the receipt checks it on-chain"
)


@dataclass(frozen=True)
class Finding:
    """An error or a warning: the check it belongs to, a stable code, and a message for people."""

    check: str
    code: str
    message: str


@dataclass(frozen=True)
class CredentialResult:
    """The checks that passed, in order, what could not be checked, and the failure, if any."""

    checks: tuple[str, ...]
    warnings: tuple[Finding, ...]
    errors: tuple[Finding, ...]

    @property
    def verified(self) -> bool:
        """True when no check failed (warnings say what was not checked)."""
        return not self.errors


def check_bare_credential(
    credential: Mapping[str, Any], now: datetime, signatures: SignatureCache | None = None
) -> CredentialResult:
    """Judges ``credential`` (a JSON object, strictly parsed) at ``now`` (timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    passed: list[str] = []

    def failed(check: str, code: str, message: str) -> CredentialResult:
        return CredentialResult(tuple(passed), (), (Finding(check, code, message),))

    if "proof" not in credential:
        suites = " or ".join(CRYPTOSUITES)
        return failed(PROOF, "proof_missing", f"the credential carries no Data Integrity proof ({suites})")
    try:  # the leaf, first: bounded depth, and what JCS cannot express, before anything is signed over
        leaf = leaf_hash(data_integrity_digest(credential))
    except DocumentError as exc:
        return failed(PROOF, "malformed", exc.message)
    except rfc8785.CanonicalizationError as exc:
        return failed(PROOF, "malformed", f"the credential cannot be canonicalized (JCS): {exc}")
    try:
        proof = verify_proof(credential, signatures)  # its key is not looked up in the registry here
    except DataIntegrityError as exc:
        return failed(PROOF, "proof_invalid", exc.message)
    passed.append(PROOF)
    issuer_key: list[Finding] = []
    if not proof.controller.startswith("did:key:"):  # did:web and others: the proof names its own key
        issuer_key.append(Finding(PROOF, "issuer_key_not_checked", ISSUER_KEY_NOT_CHECKED))
    try:
        check_credential(credential)
    except ModelError as exc:
        return failed(DATA_MODEL, f"vc_model_{exc.rule}", exc.message)
    passed.append(DATA_MODEL)
    # check_credential has parsed both dates (a time zone each), so these cannot fail here.
    until = credential.get("validUntil")
    since = credential.get("validFrom")
    if until is not None and now > parse_date_time_stamp(until, "validUntil"):
        return failed(VALIDITY, "expired", f"expired at {until}")
    if since is not None and now < parse_date_time_stamp(since, "validFrom"):
        return failed(VALIDITY, "not_yet_valid", f"not valid before {since}")
    passed.append(VALIDITY)
    warnings = [
        *issuer_key,
        Finding(STATUS, "status_not_checked", f"{STATUS_NOT_CHECKED} (leaf {hex0x(leaf)})"),
    ]
    warnings += _related_resources(credential)
    return CredentialResult(tuple(passed), tuple(warnings), ())


def _related_resources(credential: Mapping[str, Any]) -> list[Finding]:
    related = credential.get("relatedResource")
    items = related if isinstance(related, list) else [] if related is None else [related]
    return [
        Finding(
            "relatedResource",
            "digest_not_checked",
            f"{str(item.get('id'))[:120]}: digest not checked: {UNFETCHED}"
            + (" (the VC 2.0 base context)" if item.get("id") == VC2_CONTEXT else ""),
        )
        for item in items
        if isinstance(item, Mapping)
    ]
