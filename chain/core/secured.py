"""Secured credentials: what a ``finvault-receipt/2`` carries, and what its Merkle leaf commits to.

FinVault anchors standard credentials. Each certificate is secured once, by the issuer's key that
is registered on-chain, in one of two ways:

- **SD-JWT** (RFC 9901, :mod:`chain.core.sd_jwt`): the payload is the W3C VC 2.0 credential, the
  JWS header names the key by its on-chain key id (``kid``), and the holder may withhold every
  claim the issuer made disclosable. In a receipt it is the compact string ``<JWT>~<D1>~...~``.
- **Data Integrity** (:mod:`chain.core.data_integrity`): the whole credential with an
  ``eddsa-jcs-2022`` proof (Ed25519 keys only). In a receipt it is the JSON object. A second
  cryptosuite needs no format change: the leaf commits to the secured credential, whatever signs it.

The leaf commits to exactly what the issuer signed, under a domain-separated hash:

- SD-JWT: ``digest = SHA-256("finvault-receipt/2 sd-jwt" || 0x00 || ASCII(<header>.<payload>.<signature>))``;
  the disclosures are not hashed in: each is bound by its digest inside the signed payload, and a
  holder withholding one leaves the leaf unchanged;
- Data Integrity: ``digest = SHA-256("finvault-receipt/2 data-integrity" || 0x00 || JCS(credential))``,
  the RFC 8785 bytes of the credential with its proof;
- ``leaf = keccak256(keccak256(abi.encode(digest)))`` (OpenZeppelin ``StandardMerkleTree``, as for
  every FinVault leaf).

The two tags differ, and neither preimage can be a ``finvault-doc/1`` digest preimage (a JCS array,
which starts with ``[``), so no leaf of one kind is a leaf of another. JCS is injective on JSON
values and a JWS is fixed bytes, so two different secured credentials never share a digest.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import rfc8785
from cryptography.hazmat.primitives.asymmetric import ed25519

from chain.core.canonical import (
    MAX_DOCUMENT_BYTES,
    DocumentError,
    DocumentTooLarge,
    check_depth,
    escape_token,
    jcs,
)
from chain.core.data_integrity import CRYPTOSUITE, add_proof, did_key
from chain.core.encoding import hex0x
from chain.core.merkle import leaf_hash
from chain.core.sd_jwt import (
    DEFAULT_DECOYS,
    MAX_DISCLOSURES,
    DecoyPolicy,
    SdJwtError,
    check_payload,
    issue_sd_jwt,
    parse_sd_jwt,
)
from chain.core.signing import PrivateKey, public_key_info
from chain.core.vc_model import check_credential

Securing = Literal["sd-jwt", "data-integrity"]
SD_JWT: Securing = "sd-jwt"
DATA_INTEGRITY: Securing = "data-integrity"
SECURINGS: tuple[Securing, ...] = (SD_JWT, DATA_INTEGRITY)
#: The Data Integrity cryptosuites an issuer may choose (:mod:`chain.core.data_integrity`):
#: eddsa-jcs-2022 (JCS, any JSON) and eddsa-rdfc-2022 (RDFC-1.0 of the JSON-LD, Open Badges 3.0's).
Cryptosuite = Literal["eddsa-jcs-2022", "eddsa-rdfc-2022"]
CRYPTOSUITES: tuple[Cryptosuite, ...] = get_args(Cryptosuite)

SD_JWT_TAG = b"finvault-receipt/2 sd-jwt\x00"
DATA_INTEGRITY_TAG = b"finvault-receipt/2 data-integrity\x00"

#: Members of ``credentialSubject`` that stay shown by default: who the credential is about.
SUBJECT_ALWAYS_SHOWN = ("id", "type")


def sd_jwt_digest(issuer_signed_jwt: bytes) -> bytes:
    """The 32-byte digest a leaf commits to for an SD-JWT: over the issuer-signed JWT's ASCII bytes."""
    return hashlib.sha256(SD_JWT_TAG + issuer_signed_jwt).digest()


def data_integrity_digest(credential: Mapping[str, Any]) -> bytes:
    """The 32-byte digest a leaf commits to for a Data Integrity credential: over its JCS bytes
    (raises :class:`rfc8785.CanonicalizationError` for what JCS cannot express, and
    :class:`~chain.core.canonical.DocumentError` for one nested deeper than a document may be,
    checked first: JCS recurses, and 600 levels of a receipt's JSON once overflowed the stack)."""
    check_depth(credential)
    return hashlib.sha256(DATA_INTEGRITY_TAG + jcs(dict(credential))).digest()


def leaf_of(credential: str | Mapping[str, Any]) -> bytes:
    """The Merkle leaf of a /2 receipt's ``credential`` (an SD-JWT, or a credential with its proof),
    recomputed; raises :class:`~chain.core.sd_jwt.SdJwtError` or
    :class:`~chain.core.canonical.DocumentError` for one that is not well-formed. Nothing is verified."""
    if isinstance(credential, str):
        return leaf_hash(sd_jwt_digest(parse_sd_jwt(credential).issuer_signed_jwt.encode("ascii")))
    try:
        return leaf_hash(data_integrity_digest(credential))
    except rfc8785.CanonicalizationError as exc:
        raise DocumentError(f"credential: {exc}") from None


@dataclass(frozen=True)
class SecuredCredential:
    """A credential as the issuer signed it: ``value`` is what a receipt's ``credential`` holds
    (the SD-JWT string, or the credential object with its proof); ``digest`` what its leaf commits to."""

    securing: Securing
    value: str | dict[str, Any]
    digest: bytes

    @property
    def leaf(self) -> bytes:
        """The Merkle leaf of this credential."""
        return leaf_hash(self.digest)


def default_disclosable(credential: Mapping[str, Any]) -> list[str]:
    """The claims a holder may withhold unless the issuer says otherwise: everything under
    ``credentialSubject`` (each member and each array element, at every depth) but its ``id`` and
    ``type``. Everything else, the always-shown claims included, stays shown."""

    def walk(node: Any, pointer: str) -> Iterator[str]:
        if isinstance(node, dict):
            children: Iterable[tuple[str, Any]] = ((escape_token(key), value) for key, value in node.items())
        elif isinstance(node, list):
            children = ((str(index), value) for index, value in enumerate(node))
        else:
            return
        for token, value in children:
            child = f"{pointer}/{token}"
            yield child
            yield from walk(value, child)

    subject = credential.get("credentialSubject")
    if isinstance(subject, dict):
        subjects: Iterable[tuple[str, Any]] = [("/credentialSubject", subject)]
    elif isinstance(subject, list):  # several subjects: each one's claims, not the subjects themselves
        subjects = [(f"/credentialSubject/{i}", s) for i, s in enumerate(subject) if isinstance(s, dict)]
    else:
        return []
    pointers: list[str] = []
    for base, node in subjects:
        for key, value in node.items():
            if key in SUBJECT_ALWAYS_SHOWN:
                continue
            child = f"{base}/{escape_token(key)}"
            pointers.append(child)
            pointers.extend(walk(value, child))
    return pointers


def check_securable(credential: Any) -> None:
    """Raises :class:`~chain.core.canonical.DocumentError` unless ``credential`` can be secured
    either way: a JSON object within the document limits (size, depth, fields; canonicalizable),
    using no claim name SD-JWT reserves (``_sd``, ``...``, ``_sd_alg``), and a VC Data Model 2.0
    credential (:func:`chain.core.vc_model.check_credential`). Issuers check this at intake, so that
    sealing never meets a credential it cannot secure, and verifiers would never refuse.

    One walk over the credential (its values counted on the way), and its size taken by the C JSON
    encoder: a tenth of what ``finvault-doc/1``'s flattening cost.
    """
    try:
        values = check_payload(credential)
    except SdJwtError as exc:
        raise DocumentError(exc.message) from None
    if values > MAX_DISCLOSURES:  # each value could be a disclosure: keep the SD-JWT verifiable
        raise DocumentTooLarge(f"the credential holds {values:,} values; the limit is {MAX_DISCLOSURES:,}")
    size = len(json.dumps(credential, ensure_ascii=False).encode("utf-8"))
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentTooLarge(
            f"the credential is {size:,} bytes of JSON; the limit is {MAX_DOCUMENT_BYTES:,}"
        )
    check_credential(credential)


def named_issuer(credential: Mapping[str, Any], controller: str) -> dict[str, Any]:
    """``credential`` with its ``issuer`` set to ``controller`` (an issuer object keeps its other fields)."""
    issuer = credential.get("issuer")
    return {
        **credential,
        "issuer": {**issuer, "id": controller} if isinstance(issuer, Mapping) else controller,
    }


def secure_sd_jwt(
    credential: Mapping[str, Any],
    key: PrivateKey,
    *,
    random_bytes: Callable[[int], bytes],
    disclosable: Iterable[str] | None = None,
    controller: str | None = None,
    decoys: DecoyPolicy = DEFAULT_DECOYS,
    key_id: str | None = None,
) -> SecuredCredential:
    """``credential`` as an SD-JWT signed by ``key`` (EdDSA or RS256), its ``kid`` the key's on-chain
    id. ``disclosable`` lists the claims a holder may withhold (JSON Pointers; default:
    :func:`default_disclosable`). An Ed25519 issuer is named ``controller`` (``did:web:...``) or the
    key's ``did:key``; an RSA issuer's credential keeps the ``issuer`` it has. ``key_id``: the key's
    on-chain id as ``0x`` hex, for a caller securing many credentials (derived from ``key`` if None)."""
    if controller is None and isinstance(key, ed25519.Ed25519PrivateKey):
        controller = did_key(key.public_key())
    payload = named_issuer(credential, controller) if controller else dict(credential)
    pointers = default_disclosable(payload) if disclosable is None else list(disclosable)
    issued = issue_sd_jwt(
        payload,
        pointers,
        signer=key,
        random_bytes=random_bytes,
        decoys=decoys,
        kid=key_id or hex0x(public_key_info(key).key_id),
    )
    return SecuredCredential(SD_JWT, issued.compact, sd_jwt_digest(issued.jwt.encode("ascii")))


def secure_data_integrity(
    credential: Mapping[str, Any],
    key: PrivateKey,
    *,
    created: str,
    random_bytes: Callable[[int], bytes],
    controller: str | None = None,
    cryptosuite: str = CRYPTOSUITE,
) -> SecuredCredential:
    """``credential`` whole, with a ``cryptosuite`` proof (one of :data:`CRYPTOSUITES`) by ``key``,
    its ``issuer`` set to ``controller`` (``did:web:...``) or the key's ``did:key``. A proof it
    already carries is replaced. The proof gets a random ``urn:uuid:`` id, so that two certificates
    with the same content (or one sealed again) never share a leaf."""
    if cryptosuite not in CRYPTOSUITES:
        available = ", ".join(CRYPTOSUITES)
        raise ValueError(f"cryptosuite {cryptosuite!r} is not available (available: {available})")
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise TypeError(f"Data Integrity ({cryptosuite}) needs an Ed25519 key; RSA issuers use SD-JWT")
    controller = controller or did_key(key.public_key())
    unsecured = {name: value for name, value in credential.items() if name != "proof"}
    proof_id = f"urn:uuid:{uuid.UUID(bytes=random_bytes(16), version=4)}"
    secured = add_proof(
        named_issuer(unsecured, controller),
        key,
        controller=controller,
        created=created,
        proof_id=proof_id,
        cryptosuite=cryptosuite,
    )
    return SecuredCredential(DATA_INTEGRITY, secured, data_integrity_digest(secured))
