"""Revocation reasons: the RFC 5280 CRLReason codes the registry accepts, and their names.

One table for every place that reads or prints a reason: the contract takes the code, people see
the RFC 5280 name (``keyCompromise``), and ``finvault revoke --reason`` takes either, also in the
kebab case of earlier releases (``key-compromise``).
"""

from __future__ import annotations

from enum import IntEnum


class RevocationReason(IntEnum):
    """RFC 5280 CRLReason codes FinVault accepts, plus ``ISSUED_IN_ERROR`` (11)."""

    UNSPECIFIED = 0
    KEY_COMPROMISE = 1
    AFFILIATION_CHANGED = 3
    SUPERSEDED = 4
    CESSATION_OF_OPERATION = 5
    PRIVILEGE_WITHDRAWN = 9
    ISSUED_IN_ERROR = 11

    @property
    def rfc5280_name(self) -> str:
        """The name as RFC 5280 spells it: ``keyCompromise``, ``superseded``, ``issuedInError``."""
        first, *rest = self.name.lower().split("_")
        return first + "".join(word.capitalize() for word in rest)


def reason_name(code: int) -> str:
    """``keyCompromise``, ``superseded``, ...; ``reason N`` for a code this build does not know."""
    try:
        return RevocationReason(code).rfc5280_name
    except ValueError:
        return f"reason {code}"


def describe_reason(code: int) -> str:
    """``superseded (4)``: the RFC 5280 name for people and the code as the chain holds it."""
    try:
        return f"{RevocationReason(code).rfc5280_name} ({code})"
    except ValueError:
        return f"reason {code}"


def reason_from_text(text: str) -> RevocationReason | None:
    """The reason named by ``text``: a code (``4``), an RFC 5280 name (``keyCompromise``) or its
    kebab/snake form (``key-compromise``), any case; None if it names none."""
    key = text.strip().lower().replace("-", "").replace("_", "")
    for reason in RevocationReason:
        if key in (str(int(reason)), reason.rfc5280_name.lower()):
            return reason
    return None
