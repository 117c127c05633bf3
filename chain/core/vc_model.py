"""The W3C Verifiable Credentials Data Model 2.0 rules FinVault checks, at issuance and verification.

A credential that breaks one is refused at issuance with the rule's name, and is INVALID (well-formed
check, ``MALFORMED``) at verification, so no verifier can be told "genuine" about a document that is
not a VC 2.0 credential. The rules, each a ``rule`` of :class:`ModelError` (section numbers of VC
Data Model 2.0):

- ``context``: ``@context`` is an array whose first item is the VC 2.0 context URL (4.3);
- ``type``: ``type`` is a string or array of strings that includes ``VerifiableCredential`` (4.5);
- ``id``: an ``id``, where present, is a URL (4.4);
- ``issuer``: the issuer is a URL, or an object whose ``id`` is one (4.7);
- ``credentialSubject``: an object or a non-empty array of objects (4.8);
- ``validity``: ``validFrom``/``validUntil`` are XML Schema ``dateTimeStamp`` values (a time zone
  included) and ``validFrom`` is not after ``validUntil`` (4.9);
- ``language``: ``name``/``description`` are strings, language value objects or arrays of them (4.6);
- ``typed``: each of ``credentialStatus``, ``credentialSchema``, ``evidence``, ``termsOfUse`` and
  ``refreshService`` is an object or an array of objects, each with a ``type`` (and for
  ``credentialSchema``, an ``id``); an ``id`` there is a URL (4.10 to 5.6);
- ``relatedResource``: objects with a URL ``id`` (each one once) and a ``digestSRI`` or
  ``digestMultibase`` (5.3).

Pure and linear in the credential; nothing is fetched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from chain.core.canonical import DocumentError

VC2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
#: Claims that hold one or more objects, each with a ``type``.
TYPED_CLAIMS = ("credentialStatus", "credentialSchema", "evidence", "termsOfUse", "refreshService")
#: A URL as the data model means it: a scheme, then anything without white space.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
#: XML Schema dateTimeStamp: a date, a time and a time zone (Z or an offset).
_DATE_TIME_STAMP = re.compile(
    r"-?[0-9]{4,}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]+)?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)
LANGUAGE_KEYS = frozenset(("@value", "@language", "@direction"))


class ModelError(DocumentError):
    """A credential that breaks a VC Data Model 2.0 rule; ``rule`` names it (see the module)."""

    code = "vc_model_invalid"

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"VC 2.0 {rule}: {message}")
        self.rule = rule


def is_url(value: Any) -> bool:
    """Whether ``value`` is a URL string (``scheme:rest``, no white space)."""
    return isinstance(value, str) and _URL.fullmatch(value) is not None


def parse_date_time_stamp(value: Any, claim: str) -> datetime:
    """``value`` as an aware datetime, if it is an XML Schema ``dateTimeStamp``."""
    if not isinstance(value, str) or not _DATE_TIME_STAMP.fullmatch(value):
        raise ModelError("validity", f"{claim} must be a date-time with a time zone (2026-07-01T00:00:00Z)")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ModelError("validity", f"{claim} is not a date that exists: {value[:40]!r}") from None


def _objects(value: Any, claim: str, rule: str) -> list[Mapping[str, Any]]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, Mapping) for item in items):
        raise ModelError(rule, f"{claim} must be an object or a non-empty array of objects")
    return items


def _check_language(value: Any, claim: str) -> None:
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            continue
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("@value"), str)
            or set(item) - LANGUAGE_KEYS
        ):
            raise ModelError(
                "language", f"{claim} must be a string or language value objects (@value, @language)"
            )
        for key in ("@language", "@direction"):
            if key in item and not isinstance(item[key], str):
                raise ModelError("language", f"{claim}'s {key} must be a string")


def check_credential(credential: Mapping[str, Any]) -> None:
    """Raises :class:`ModelError` for the first VC Data Model 2.0 rule ``credential`` breaks."""
    context = credential.get("@context")
    if not isinstance(context, list) or not context or context[0] != VC2_CONTEXT:
        raise ModelError("context", f"@context must be an array starting with {VC2_CONTEXT}")
    types = credential.get("type")
    type_list = [types] if isinstance(types, str) else types
    if not isinstance(type_list, list) or not all(isinstance(t, str) for t in type_list):
        raise ModelError("type", "type must be a string or an array of strings")
    if "VerifiableCredential" not in type_list:
        raise ModelError("type", "type must include VerifiableCredential")
    if "id" in credential and not is_url(credential["id"]):
        raise ModelError("id", "the credential's id must be a URL")
    issuer = credential.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, Mapping) else issuer
    if not is_url(issuer_id):
        raise ModelError("issuer", "the issuer must be a URL, or an object whose id is one")
    for subject in _objects(credential.get("credentialSubject"), "credentialSubject", "credentialSubject"):
        if "id" in subject and not is_url(subject["id"]):
            raise ModelError("credentialSubject", "a credentialSubject's id must be a URL")
    since = parse_date_time_stamp(credential["validFrom"], "validFrom") if "validFrom" in credential else None
    until = (
        parse_date_time_stamp(credential["validUntil"], "validUntil") if "validUntil" in credential else None
    )
    if since is not None and until is not None and since > until:
        raise ModelError("validity", "validFrom is after validUntil")
    for claim in ("name", "description"):
        if claim in credential:
            _check_language(credential[claim], claim)
    for claim in TYPED_CLAIMS:
        if claim not in credential:
            continue
        for item in _objects(credential[claim], claim, "typed"):
            if "type" not in item:
                raise ModelError("typed", f"each {claim} needs a type")
            if "id" in item and not is_url(item["id"]):
                raise ModelError("typed", f"a {claim}'s id must be a URL")
            if claim == "credentialSchema" and "id" not in item:
                raise ModelError("typed", "each credentialSchema needs an id")
    if "relatedResource" in credential:
        seen: set[Any] = set()
        for item in _objects(credential["relatedResource"], "relatedResource", "relatedResource"):
            resource = item.get("id")
            if not is_url(resource):
                raise ModelError("relatedResource", "each relatedResource needs a URL id")
            if resource in seen:
                raise ModelError("relatedResource", f"{str(resource)[:80]} is listed twice")
            seen.add(resource)
            if not isinstance(item.get("digestSRI"), str) and not isinstance(
                item.get("digestMultibase"), str
            ):
                raise ModelError(
                    "relatedResource", "each relatedResource needs a digestSRI or digestMultibase"
                )
