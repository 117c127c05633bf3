"""Open Badges 3.0 (1EdTech): the built-in ``ob3`` template and the structural check at intake.

An Open Badge 3.0 is a W3C Verifiable Credential 2.0 of type ``OpenBadgeCredential`` (the spec's
alias of ``AchievementCredential``) whose subject holds an ``Achievement``. ``finvault issue
--template ob3`` fills one per input row (the columns are in docs/usage.md):

- the issuer is a ``Profile`` whose ``id`` is the issuer's DID (sealing names the signing DID
  there, as it does for every credential);
- the recipient is ``credentialSubject.id`` (a DID or URI) and/or ``identifier``: IdentityObjects
  whose ``identityHash`` is a salted SHA-256 of an e-mail address or student id, never the plain
  value (the spec "strongly recommends" an IdentityHash where plaintext would leak personal data);
- the achievement has an ``id``, ``name``, ``description``, ``criteria.narrative`` and, optionally,
  an ``image``.

Open Badges are whole credentials under a Data Integrity proof: sealing secures every credential
:func:`is_open_badge` recognizes with :data:`OB3_CRYPTOSUITE`, whatever ``--securing`` says for the
others, and so needs an Ed25519 key.

:func:`check_open_badge` is derived from the spec text (1EdTech's JSON Schema is not vendored here):
Open Badges Specification v3.0, Appendix B.1 "Credential Data Models", classes AchievementCredential,
Profile, AchievementSubject, Achievement, Criteria, Image and IdentityObject, and the derived type
IdentityHash (B.3 "Derived Types"). Pure: no I/O (randomness: each identity's salt, and a
credential id when no column gives one).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ed25519

from chain.core.jsonld import OB_V3P0_CONTEXT, VC_V2_CONTEXT
from chain.core.secured import Cryptosuite
from chain.core.signing import PrivateKey
from chain.errors import ConfigError
from issuer.template import Row, RowError, Template

VC2_CONTEXT: Final = VC_V2_CONTEXT
OB3_CONTEXT: Final = OB_V3P0_CONTEXT  # the newest of the contexts FinVault ships
#: Any published OB 3.0 context (3.0.0 ... 3.0.3) starts so.
OB3_CONTEXT_PREFIX: Final = "https://purl.imsglobal.org/spec/ob/v3p0/context"
#: The credential types that make a VC an Open Badge 3.0 (B.1 AchievementCredential: "The type MUST
#: include 'VerifiableCredential' and 'AchievementCredential' or 'OpenBadgeCredential'").
OPEN_BADGE_TYPES: Final = frozenset({"OpenBadgeCredential", "AchievementCredential"})

#: The Data Integrity cryptosuite every Open Badge is secured with: eddsa-rdfc-2022 (RDF Dataset
#: Canonicalization of the JSON-LD), the embedded-proof suite 1EdTech's certification lists.
OB3_CRYPTOSUITE: Final[Cryptosuite] = "eddsa-rdfc-2022"

#: What a built-in template writes as the issuer's ``id`` while the issuer's DID is unknown at
#: intake (no did:web configured, the key not loaded): sealing replaces it with the signing DID.
ISSUER_NAMED_AT_SEALING: Final = "urn:finvault:issuer-named-at-sealing"
#: Random bytes in each identity's salt (hex in the credential), so equal e-mail addresses in two
#: badges hash differently and no table of hashed addresses matches them.
SALT_BYTES: Final = 16
#: Recipient columns hashed into IdentityObjects, with the spec's IdentifierTypeEnum value each maps
#: to (a student id is the student's id in the school's information system: ``sisSourcedId``).
IDENTITY_COLUMNS: Final = (("recipient_email", "emailAddress"), ("recipient_student_id", "sisSourcedId"))
#: Optional columns the finish step reads (besides the document's placeholders).
OPTIONAL_COLUMNS: Final = frozenset(
    {"credential_id", "recipient_id", "achievement_image", *(column for column, _ in IDENTITY_COLUMNS)}
)

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
#: B.3 IdentityHash: "sha256" or "md5", "$", and the hex digest (either case).
_IDENTITY_HASH = re.compile(r"sha256\$[0-9a-fA-F]{64}|md5\$[0-9a-fA-F]{32}")


def ob3_document(issuer_did: str | None = None) -> dict[str, Any]:
    """The built-in template's document: an OpenBadgeCredential with ``{{column}}`` placeholders
    (the finish step adds ``id``, the recipient's identifiers and the achievement's image)."""
    return {
        "@context": [VC2_CONTEXT, OB3_CONTEXT],
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": "{{achievement_name}}",
        "issuer": {
            "id": issuer_did or ISSUER_NAMED_AT_SEALING,
            "type": ["Profile"],
            "name": "{{issuer_name}}",
            "url": {"$str": "issuer_url", "optional": True},
        },
        "validFrom": {"$datetime": "issued"},
        "validUntil": {"$datetime": "expires", "optional": True},
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "id": {"$str": "recipient_id", "optional": True},
            "achievement": {
                "id": "{{achievement_id}}",
                "type": ["Achievement"],
                "name": "{{achievement_name}}",
                "description": "{{achievement_description}}",
                "criteria": {"narrative": "{{criteria_narrative}}"},
            },
        },
    }


def ob3_template(issuer_did: str | None = None) -> Template:
    """The built-in ``ob3`` template, naming ``issuer_did`` (or :data:`ISSUER_NAMED_AT_SEALING`)."""
    return Template(ob3_document(issuer_did), finish=finish_open_badge, optional_columns=OPTIONAL_COLUMNS)


def identity_hash(identity: str, salt: str) -> str:
    """B.3 IdentityHash: ``sha256$`` and the lowercase hex SHA-256 of the UTF-8 identity with the
    salt appended."""
    return "sha256$" + hashlib.sha256((identity + salt).encode("utf-8")).hexdigest()


def identity_object(identity: str, identity_type: str, salt: str) -> dict[str, Any]:
    """B.1 IdentityObject for ``identity``, hashed with ``salt`` (which it carries, so a verifier
    told the plain value can recompute the hash)."""
    return {
        "type": "IdentityObject",
        "hashed": True,
        "identityHash": identity_hash(identity, salt),
        "identityType": identity_type,
        "salt": salt,
    }


def _cell(row: Row, column: str) -> str | None:
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value).strip()


def finish_open_badge(row: Row, credential: dict[str, Any]) -> dict[str, Any]:
    """The ``ob3`` template's finish step: the credential's ``id`` (the ``credential_id`` column, a
    URI, else a fresh ``urn:uuid:``), the recipient's hashed identifiers (an e-mail address is
    compared case-blind, so it is lowercased first), and the achievement's image; a row naming no
    recipient at all is refused (:class:`RowError`)."""
    problems: list[str] = []
    credential_id = _cell(row, "credential_id")
    if credential_id is not None and not _URI.fullmatch(credential_id):
        problems.append(f"column 'credential_id': {credential_id[:40]!r} is not a URI")
    finished = {
        "@context": credential["@context"],
        "id": credential_id or f"urn:uuid:{uuid.uuid4()}",
        **credential,
    }
    subject = dict(finished["credentialSubject"])
    identifiers = []
    for column, identity_type in IDENTITY_COLUMNS:
        value = _cell(row, column)
        if value is not None:
            identity = value.lower() if identity_type == "emailAddress" else value
            identifiers.append(identity_object(identity, identity_type, secrets.token_hex(SALT_BYTES)))
    if identifiers:
        subject["identifier"] = identifiers
    elif "id" not in subject:
        names = ", ".join(["recipient_id", *(column for column, _ in IDENTITY_COLUMNS)])
        problems.append(f"no recipient: fill one of the columns {names}")
    image = _cell(row, "achievement_image")
    if image is not None:
        subject["achievement"] = {**subject["achievement"], "image": {"id": image, "type": "Image"}}
    if problems:
        raise RowError(problems)
    finished["credentialSubject"] = subject
    return finished


def require_ed25519(key: PrivateKey) -> None:
    """Raises :class:`~chain.errors.ConfigError` unless ``key`` can secure Open Badges (Ed25519)."""
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(
            f"Open Badges 3.0 credentials are secured with a Data Integrity proof ({OB3_CRYPTOSUITE}), "
            "which needs an Ed25519 signing key; this one is RSA: generate an Ed25519 key "
            "(`finvault issuer keygen`) and register it"
        )


# -- the structural check ----------------------------------------------------------------------


def _types(value: Any) -> list[Any]:
    """A ``type`` member as a list (the spec allows one IRI or an array)."""
    return value if isinstance(value, list) else [value]


def is_open_badge(credential: Any) -> bool:
    """Whether ``credential`` declares itself an Open Badge 3.0 (its ``type`` names
    OpenBadgeCredential or AchievementCredential)."""
    return isinstance(credential, Mapping) and any(
        isinstance(name, str) and name in OPEN_BADGE_TYPES for name in _types(credential.get("type"))
    )


class _Problems:
    """Collects problems, each prefixed with where it is (``credentialSubject.achievement.name``)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def text(self, node: Mapping[str, Any], key: str, where: str, cls: str) -> None:
        value = node.get(key)
        if value is None:
            self.add(f"{where}.{key}", f"missing (required by OB 3.0 {cls})")
        elif not isinstance(value, str) or not value.strip():
            self.add(f"{where}.{key}", "must be non-empty text")

    def uri(self, node: Mapping[str, Any], key: str, where: str, cls: str, *, required: bool) -> None:
        value = node.get(key)
        if value is None:
            if required:
                self.add(f"{where}.{key}", f"missing (required by OB 3.0 {cls})")
        elif not isinstance(value, str) or not _URI.fullmatch(value):
            self.add(f"{where}.{key}", "must be a URI (scheme:...)")

    def typed(self, node: Mapping[str, Any], where: str, cls: str, *, single: bool = False) -> None:
        value = node.get("type")
        if value is None:
            self.add(f"{where}.type", f"missing (required by OB 3.0 {cls})")
        elif single and value != cls:
            self.add(f"{where}.type", f"must be {cls!r}")
        elif not single and cls not in _types(value):
            self.add(f"{where}.type", f"must include {cls!r}")

    def object(self, node: Mapping[str, Any], key: str, where: str, cls: str) -> Mapping[str, Any] | None:
        value = node.get(key)
        if value is None:
            self.add(f"{where}.{key}", f"missing (required: a {cls})")
            return None
        if not isinstance(value, Mapping):
            self.add(f"{where}.{key}", f"must be a {cls} object")
            return None
        return value


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


def _check_identity(problems: _Problems, identity: Any, where: str) -> None:
    """B.1 IdentityObject: type "IdentityObject", hashed, identityHash, identityType required; a
    hashed identityHash is a B.3 IdentityHash."""
    if not isinstance(identity, Mapping):
        problems.add(where, "must be an IdentityObject")
        return
    problems.typed(identity, where, "IdentityObject", single=True)
    hashed = identity.get("hashed")
    if not isinstance(hashed, bool):
        problems.add(f"{where}.hashed", "missing or not a boolean (required by OB 3.0 IdentityObject)")
    problems.text(identity, "identityHash", where, "IdentityObject")
    problems.text(identity, "identityType", where, "IdentityObject")
    value = identity.get("identityHash")
    if hashed is True and isinstance(value, str) and not _IDENTITY_HASH.fullmatch(value):
        problems.add(f"{where}.identityHash", "a hashed identity is sha256$<64 hex> or md5$<32 hex>")
    if "salt" in identity and not isinstance(identity["salt"], str):
        problems.add(f"{where}.salt", "must be text")


def _check_achievement(problems: _Problems, achievement: Mapping[str, Any], where: str) -> None:
    """B.1 Achievement: id, type (with "Achievement"), name, description and criteria required;
    Criteria needs an id or a narrative; an Image has an id and type "Image"."""
    problems.uri(achievement, "id", where, "Achievement", required=True)
    problems.typed(achievement, where, "Achievement")
    problems.text(achievement, "name", where, "Achievement")
    problems.text(achievement, "description", where, "Achievement")
    criteria = problems.object(achievement, "criteria", where, "Criteria")
    if criteria is not None:
        narrative = criteria.get("narrative")
        if criteria.get("id") is None and not (isinstance(narrative, str) and narrative.strip()):
            problems.add(f"{where}.criteria", "needs a narrative or an id (OB 3.0 Criteria: at least one)")
        problems.uri(criteria, "id", f"{where}.criteria", "Criteria", required=False)
    if "image" in achievement:
        image = problems.object(achievement, "image", where, "Image")
        if image is not None:
            problems.uri(image, "id", f"{where}.image", "Image", required=True)
            problems.typed(image, f"{where}.image", "Image", single=True)


def check_open_badge(credential: Mapping[str, Any]) -> list[str]:
    """Every way ``credential`` falls short of an Open Badge 3.0 (OpenBadgeCredential /
    AchievementCredential), as messages naming the field; empty when it is well-formed.

    Structure only (required members, their types and shapes), per the spec's Appendix B.1 classes;
    the VC 2.0 rules (``@context`` first, ``validFrom`` a date-time, ...) are checked with every
    credential by :func:`chain.core.vc_model.check_credential`.
    """
    problems = _Problems()
    where = "credential"
    contexts = credential.get("@context")
    if not isinstance(contexts, list) or not any(
        isinstance(c, str) and c.startswith(OB3_CONTEXT_PREFIX) for c in contexts
    ):
        problems.add(f"{where}.@context", f"must include the OB 3.0 context ({OB3_CONTEXT})")
    types = [name for name in _types(credential.get("type")) if isinstance(name, str)]
    if "VerifiableCredential" not in types or not OPEN_BADGE_TYPES.intersection(types):
        problems.add(
            f"{where}.type",
            "must include 'VerifiableCredential' and 'OpenBadgeCredential' (or 'AchievementCredential')",
        )
    problems.uri(credential, "id", where, "AchievementCredential", required=True)
    problems.text(credential, "name", where, "AchievementCredential")
    if "validFrom" not in credential:
        problems.add(f"{where}.validFrom", "missing (required by OB 3.0 AchievementCredential)")
    elif not _is_datetime(credential["validFrom"]):
        problems.add(f"{where}.validFrom", "must be a date-time with a UTC offset")
    if "validUntil" in credential and not _is_datetime(credential["validUntil"]):
        problems.add(f"{where}.validUntil", "must be a date-time with a UTC offset")

    issuer = problems.object(credential, "issuer", where, "Profile")
    if issuer is not None:  # B.1 Profile: id and type ("Profile") required
        problems.uri(issuer, "id", "issuer", "Profile", required=True)
        problems.typed(issuer, "issuer", "Profile")
        if "name" in issuer:
            problems.text(issuer, "name", "issuer", "Profile")
        problems.uri(issuer, "url", "issuer", "Profile", required=False)

    subject = problems.object(credential, "credentialSubject", where, "AchievementSubject")
    if subject is not None:  # B.1 AchievementSubject
        where = "credentialSubject"
        problems.typed(subject, where, "AchievementSubject")
        problems.uri(subject, "id", where, "AchievementSubject", required=False)
        identifiers = subject.get("identifier")
        if identifiers is not None:
            if not isinstance(identifiers, list):
                identifiers = [identifiers]
            for index, identity in enumerate(identifiers):
                _check_identity(problems, identity, f"{where}.identifier[{index}]")
        if subject.get("id") is None and not identifiers:
            problems.add(where, "needs an id or at least one identifier (OB 3.0 AchievementSubject)")
        achievement = problems.object(subject, "achievement", where, "Achievement")
        if achievement is not None:
            _check_achievement(problems, achievement, f"{where}.achievement")
    return problems.items
