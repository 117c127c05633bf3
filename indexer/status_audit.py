"""Status lists held to the chain: every published Bitstring Status List against the mirror's
revocations (``finvault reconcile --status-dir``).

A folder as an issuer publishes it (``N.json``, the signed ``BitstringStatusListCredential``, beside
``N.leaves.json``, its ``finvault-status-leaves/1`` companion naming each index's leaf and root) is
read, and each disagreement is a ``status`` drift naming both sides:

- ``listed revoked, not revoked on-chain``: a set bit whose certificate neither the chain's leaf
  nor root revocations cover, or a set bit no certificate of the companion holds;
- ``revoked on-chain, listed not revoked``: a revoked leaf (or one of a revoked root) whose bit is
  clear;
- a list whose proof does not verify, or that cannot be read, is one drift naming why.

The chain side is the mirror, which the same ``reconcile`` run holds to the chain. A list may be
newer than the mirror (the issuer publishes the moment a batch's anchor or a revocation is
confirmed, the mirror follows a poll later): every disagreement the mirror shows is asked of the
chain's head before it is reported, and only what the chain still contradicts is a drift. A node's
verdicts never depend on a status list: this audit only tells whether the issuer's lists tell the
truth.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chain.core.canonical import loads_strict
from chain.core.data_integrity import verify_proof
from chain.core.encoding import to_bytes32
from chain.core.hashing import keccak256
from chain.core.status_list import LEAVES_FORMAT, LIST_SIZE, StatusListError, is_set, list_bits, set_indexes
from chain.core.verify import ChainFacts, RevocationFact
from indexer.reconcile import Drift

TABLE = "status_list"
#: Bytes of one published file read here (a list of random bits compresses to about 22 KB).
MAX_FILE_BYTES = 16 * 1024 * 1024
#: What a list or companion that cannot be read raises (every FinVault parse error is a ValueError).
_UNREADABLE = (OSError, ValueError, LookupError, TypeError, AttributeError)
_NUMBER = re.compile(r"[1-9][0-9]{0,8}")


def _read(path: Path) -> Any:
    with path.open("rb") as handle:  # bounded before it is read: a published file is anyone's
        return loads_strict(handle.read(MAX_FILE_BYTES + 1), max_bytes=MAX_FILE_BYTES)


def _drift(
    url: str, index: int | None, chain: str, listed: str, revocation: RevocationFact | None = None
) -> Drift:
    event = revocation.event if revocation is not None else None
    return Drift(
        kind="status",
        table=TABLE,
        block_number=event.block_number if event is not None else 0,
        tx_hash=event.tx_hash if event is not None else None,
        log_index=event.log_index if event is not None else None,
        field=url if index is None else f"{url}#{index}",
        chain=chain,
        mirror=listed,
    )


def list_files(folder: Path) -> Iterator[tuple[Path, Path]]:
    """``(N.json, N.leaves.json)`` for each list in ``folder``, in list order."""
    numbered = [p for p in folder.glob("*.json") if _NUMBER.fullmatch(p.stem)]
    for path in sorted(numbered, key=lambda p: int(p.stem)):
        yield path, path.with_name(f"{path.stem}.leaves.json")


def _entries(leaves: Any, path: Path) -> dict[int, tuple[bytes, bytes]]:
    """A companion's ``index -> (leaf, root)``, refused when it is not one or names an index twice."""
    if not isinstance(leaves, dict) or leaves.get("format") != LEAVES_FORMAT:
        raise StatusListError(f"{path.name} is not {LEAVES_FORMAT}")
    entries: dict[int, tuple[bytes, bytes]] = {}
    for entry in leaves["entries"]:
        index = int(entry["statusListIndex"])
        if index in entries:
            raise StatusListError(f"{path.name} names index {index} twice")
        entries[index] = (to_bytes32(entry["leaf"]), to_bytes32(entry["root"]))
    return entries


def _judge(
    url: str, index: int, leaf: bytes, root: bytes, listed: bool, issuer: str, facts: ChainFacts
) -> Drift | None:
    """The drift of one companion entry whose bit reads ``listed``, as ``facts`` see it; or None."""
    anchor = facts.anchor(root)
    if anchor is None or anchor.issuer != issuer:
        return _drift(url, index, "a root this list's issuer anchored", "a certificate it did not")
    revocation = facts.revocation(root, None) or facts.revocation(root, leaf)
    if revocation is not None and not listed:
        return _drift(url, index, "revoked on-chain", "listed not revoked", revocation)
    if revocation is None and listed:
        return _drift(url, index, "not revoked on-chain", "listed revoked")
    return None


def audit_list(
    credential_path: Path, leaves_path: Path, facts: ChainFacts, head: ChainFacts | None = None
) -> list[Drift]:
    """The drifts between one published list and ``facts`` (the mirror).

    The list must be signed by a key registered on-chain, not revoked, to the issuer that anchored
    every root its companion names: a list that verifies under a key of its own says nothing. With
    ``head`` (the chain now), what ``facts`` contradict is asked again there, and a list that is only
    ahead of the mirror is no drift.
    """
    url = credential_path.name
    try:
        credential = _read(credential_path)
        if not isinstance(credential, dict):
            raise StatusListError(f"{credential_path.name} is not a status list credential")
        url = str(credential.get("id", url))
        signer = keccak256(verify_proof(credential).public_key_der)
        bits = list_bits(credential)
        entries = _entries(_read(leaves_path), leaves_path)
    except _UNREADABLE as exc:
        reason = getattr(exc, "message", None) or str(exc)
        return [_drift(url, None, "a list the chain can be compared with", f"unreadable: {reason}")]
    key = facts.key(signer)
    if (key is None or key.revoked_block is not None) and head is not None:
        key = head.key(signer)  # registered since the mirror's last block
    if key is None or key.revoked_block is not None:
        return [_drift(url, None, "a list signed by a live key registered on-chain", "signed by another key")]
    drifts: list[Drift] = []
    for index, (leaf, root) in sorted(entries.items()):
        if not 0 <= index < LIST_SIZE:
            drifts.append(_drift(url, index, "an index within the list", "outside the list"))
            continue
        listed = is_set(bits, index)
        drift = _judge(url, index, leaf, root, listed, key.issuer, facts)
        if drift is not None and head is not None:
            drift = _judge(url, index, leaf, root, listed, key.issuer, head)
        if drift is not None:
            drifts.append(drift)
    for index in set_indexes(bits):
        if index not in entries:
            drifts.append(_drift(url, index, "no certificate at this index", "listed revoked"))
    return drifts


def audit_folder(folder: Path, facts: ChainFacts, head: ChainFacts | None = None) -> list[Drift]:
    """The drifts of every list published in ``folder`` (see :func:`audit_list`)."""
    return [drift for paths in list_files(folder) for drift in audit_list(*paths, facts, head)]
