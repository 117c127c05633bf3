"""W3C Data Integrity proofs, cryptosuites ``eddsa-jcs-2022`` and ``eddsa-rdfc-2022`` (VC Data
Integrity EdDSA Cryptosuites v1.0).

How an Ed25519 issuer may secure a whole credential in a ``finvault-receipt/2`` (the issuer's one
signature; its leaf commits to the secured credential), which stock Verifiable Credentials tooling
checks too. Pure functions over bytes and JSON:

- the key is an Ed25519 Multikey (``z6Mk...``: base58btc of the multicodec ``ed25519-pub`` prefix
  and the 32-byte key); its ``did:key`` identifies the issuer by default;
- proof configuration: the proof's options with the document's ``@context``;
- hash data: ``SHA-256(C(proof configuration)) || SHA-256(C(document without proof))``, where the
  canonical form ``C`` is RFC 8785 JCS for ``eddsa-jcs-2022``, and for ``eddsa-rdfc-2022`` the
  RDFC-1.0 N-Quads (:mod:`chain.core.rdfc`) of the JSON-LD's RDF dataset, expanded offline and
  strictly (:mod:`chain.core.jsonld`: shipped contexts only, nothing dropped);
- ``proofValue``: base58btc (multibase ``z``) of the Ed25519 signature of the hash data.

The verification method's fragment is the Multikey itself (``did:key:z6Mk...#z6Mk...``, or
``did:web:DOMAIN#z6Mk...``), so a verifier reads the key from the proof without a resolver and
then decides whether it trusts that key (the node: it must be the receipt's on-chain key).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from chain.core import jsonld, rdfc
from chain.core.canonical import jcs
from chain.core.errors import DataIntegrityError as DataIntegrityError  # re-exported (home: errors)
from chain.core.signing import SignatureCache, ed25519_verifies

PROOF_TYPE = "DataIntegrityProof"
CRYPTOSUITE = "eddsa-jcs-2022"  # the default: what FinVault's issuer signs with
EDDSA_JCS_2022 = CRYPTOSUITE
EDDSA_RDFC_2022 = "eddsa-rdfc-2022"
#: The cryptosuites :func:`add_proof` makes and :func:`verify_proof` checks.
CRYPTOSUITES = (EDDSA_JCS_2022, EDDSA_RDFC_2022)
PROOF_PURPOSE = "assertionMethod"
_ED25519_PUB = b"\xed\x01"  # multicodec ed25519-pub, as an unsigned varint
_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {character: value for value, character in enumerate(_ALPHABET)}
#: The longest base58btc text decoded: an Ed25519 Multikey is 48 characters and a signature at
#: most 88. Decoding is quadratic in the length (one big integer grows by a digit per character):
#: a 520,000-character fragment took a minute, so length is checked before any decoding.
MAX_BASE58_CHARS = 128


def base58btc(data: bytes) -> str:
    """Bitcoin's base58 (multibase ``z`` without the prefix)."""
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, digit = divmod(number, 58)
        out = _ALPHABET[digit] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def from_base58btc(text: str) -> bytes:
    """The bytes of a base58btc string of at most :data:`MAX_BASE58_CHARS` characters;
    :class:`DataIntegrityError` for a longer one or a character outside the alphabet."""
    if len(text) > MAX_BASE58_CHARS:
        raise DataIntegrityError(f"base58btc text of {len(text):,} characters; at most {MAX_BASE58_CHARS}")
    number = 0
    for character in text:
        if character not in _INDEX:
            raise DataIntegrityError(f"{character!r} is not a base58btc character")
        number = number * 58 + _INDEX[character]
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def multikey(public_key: ed25519.Ed25519PublicKey) -> str:
    """The key's Multikey ``publicKeyMultibase`` (``z6Mk...``)."""
    return _multikey(public_key.public_bytes_raw())


@functools.lru_cache(maxsize=64)
def _multikey(raw: bytes) -> str:
    """Once per key: an issuer signs every credential of a batch with the same one."""
    return "z" + base58btc(_ED25519_PUB + raw)


#: Multikeys kept parsed by :func:`public_key_of`: an issuer signs with few keys, each for many credentials.
PARSED_MULTIKEY_CACHE_SIZE = 256


@functools.lru_cache(maxsize=PARSED_MULTIKEY_CACHE_SIZE)
def public_key_of(multibase: str) -> ed25519.Ed25519PublicKey:
    """The Ed25519 key a ``z6Mk...`` Multikey names (parsed once per key: keys are immutable; a
    Multikey that does not parse raises, which is not cached)."""
    if not multibase.startswith("z"):
        raise DataIntegrityError("a Multikey is multibase base58btc: it starts with 'z'")
    raw = from_base58btc(multibase[1:])
    if len(raw) != 34 or not raw.startswith(_ED25519_PUB):
        raise DataIntegrityError("not an Ed25519 Multikey (multicodec 0xed01 and 32 bytes)")
    return ed25519.Ed25519PublicKey.from_public_bytes(raw[2:])


def did_key(public_key: ed25519.Ed25519PublicKey) -> str:
    """The ``did:key`` of an Ed25519 key."""
    return "did:key:" + multikey(public_key)


def verification_method(controller: str, public_key: ed25519.Ed25519PublicKey) -> str:
    """``CONTROLLER#z6Mk...``: the key, named under the DID that controls it."""
    return f"{controller}#{multikey(public_key)}"


def canonical_form(value: Mapping[str, Any], cryptosuite: str = CRYPTOSUITE) -> bytes:
    """``value`` as the cryptosuite canonicalizes it: JCS bytes, or RDFC-1.0 N-Quads as UTF-8."""
    if cryptosuite == EDDSA_JCS_2022:
        return jcs(dict(value))
    if cryptosuite == EDDSA_RDFC_2022:
        return rdfc.canonicalize(jsonld.to_dataset(value)).encode()
    raise DataIntegrityError(f"unknown cryptosuite {cryptosuite!r}; FinVault knows {', '.join(CRYPTOSUITES)}")


def hash_data(
    document: Mapping[str, Any], proof_config: Mapping[str, Any], cryptosuite: str = CRYPTOSUITE
) -> bytes:
    """What is signed: SHA-256 of the canonical proof configuration, then of the document."""
    return (
        hashlib.sha256(canonical_form(proof_config, cryptosuite)).digest()
        + hashlib.sha256(canonical_form(document, cryptosuite)).digest()
    )


def proof_options(
    verification_method_id: str,
    created: str,
    context: Any,
    proof_id: str | None = None,
    cryptosuite: str = CRYPTOSUITE,
) -> dict[str, Any]:
    """The proof configuration (every proof field but ``proofValue``); ``proof_id`` is the proof's
    optional ``id`` (a ``urn:uuid:``), which makes every proof, and so every secured credential, unique."""
    options: dict[str, Any] = {} if proof_id is None else {"id": proof_id}
    options |= {
        "type": PROOF_TYPE,
        "cryptosuite": cryptosuite,
        "created": created,
        "verificationMethod": verification_method_id,
        "proofPurpose": PROOF_PURPOSE,
    }
    if context is not None:
        options["@context"] = context
    return options


def add_proof(
    document: Mapping[str, Any],
    key: ed25519.Ed25519PrivateKey,
    *,
    controller: str,
    created: str,
    proof_id: str | None = None,
    cryptosuite: str = CRYPTOSUITE,
) -> dict[str, Any]:
    """``document`` secured with a ``cryptosuite`` proof by ``key`` (named under ``controller``).

    An ``eddsa-jcs-2022`` proof carries the document's ``@context`` (as the specification's
    examples do); an ``eddsa-rdfc-2022`` proof does not: the document's context applies to it.
    """
    if cryptosuite not in CRYPTOSUITES:
        raise DataIntegrityError(
            f"unknown cryptosuite {cryptosuite!r}: FinVault signs {' or '.join(CRYPTOSUITES)}"
        )
    if "proof" in document:
        raise DataIntegrityError("the document already carries a proof")
    method = verification_method(controller, key.public_key())
    config = proof_options(method, created, document.get("@context"), proof_id, cryptosuite)
    signature = key.sign(hash_data(document, config, cryptosuite))
    proof = config if cryptosuite == EDDSA_JCS_2022 else {k: v for k, v in config.items() if k != "@context"}
    return {**document, "proof": {**proof, "proofValue": "z" + base58btc(signature)}}


@dataclass(frozen=True)
class ProofCheck:
    """A verified proof: the key that made it and the DID that controls that key."""

    public_key: ed25519.Ed25519PublicKey
    controller: str
    cryptosuite: str = CRYPTOSUITE

    @property
    def public_key_der(self) -> bytes:
        """The key as DER SubjectPublicKeyInfo (how FinVault names keys on-chain)."""
        return self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def issuer_id(document: Mapping[str, Any]) -> str | None:
    """The credential's ``issuer``: a string, or the ``id`` of an issuer object."""
    issuer = document.get("issuer")
    if isinstance(issuer, Mapping):
        issuer = issuer.get("id")
    return issuer if isinstance(issuer, str) else None


def verify_proof(secured: Mapping[str, Any], signatures: SignatureCache | None = None) -> ProofCheck:
    """Checks ``secured``'s ``eddsa-jcs-2022`` or ``eddsa-rdfc-2022`` proof; :class:`DataIntegrityError`
    (or a subclass: an unknown context, a dropped term, a too costly canonicalization) says what fails.

    The proof must be a single assertion proof whose verification method's controller is the
    credential's issuer, and whose fragment is the Ed25519 Multikey that signed. ``signatures``
    remembers the signature check, keyed by the Multikey, the hash data and the proof value. (Not
    by a receipt's digest: finvault-doc/1 flattens ``["x"]`` and ``{"0": "x"}`` alike, and the
    proof's signature over the exact JSON is what tells them apart.)
    """
    proof = secured.get("proof")
    if not isinstance(proof, Mapping):
        raise DataIntegrityError("no single Data Integrity proof (a 'proof' object)")
    if proof.get("type") != PROOF_TYPE:
        raise DataIntegrityError(f"not a {PROOF_TYPE}")
    cryptosuite = proof.get("cryptosuite")
    if cryptosuite not in CRYPTOSUITES:
        raise DataIntegrityError(
            f"cryptosuite {cryptosuite!r} is not one FinVault verifies ({', '.join(CRYPTOSUITES)})"
        )
    if proof.get("proofPurpose") != PROOF_PURPOSE:
        raise DataIntegrityError(f"proofPurpose is not {PROOF_PURPOSE}")
    method, value = proof.get("verificationMethod"), proof.get("proofValue")
    if not isinstance(method, str) or method.count("#") != 1 or not isinstance(value, str):
        raise DataIntegrityError("verificationMethod must be DID#Multikey, and proofValue a string")
    controller, fragment = method.split("#")
    if controller != issuer_id(secured):
        raise DataIntegrityError(f"the proof's controller {controller} is not the credential's issuer")
    if controller.startswith("did:key:") and controller != "did:key:" + fragment:
        raise DataIntegrityError("a did:key verification method names the key of its own DID")
    public_key = public_key_of(fragment)
    if not value.startswith("z"):
        raise DataIntegrityError("proofValue is multibase base58btc: it starts with 'z'")
    document = {name: field for name, field in secured.items() if name != "proof"}
    config = {name: field for name, field in proof.items() if name != "proofValue"}
    if "@context" in config and config["@context"] != document.get("@context"):
        raise DataIntegrityError("the proof's @context is not the document's")
    if cryptosuite == EDDSA_RDFC_2022 and "@context" in document:
        config["@context"] = document["@context"]
    signature, message = from_base58btc(value[1:]), hash_data(document, config, cryptosuite)

    check = functools.partial(ed25519_verifies, public_key, signature, message)
    key_id = _ED25519_PUB + public_key.public_bytes_raw()
    if not (check() if signatures is None else signatures.verified(key_id, message, signature, check)):
        raise DataIntegrityError("the proof's signature does not verify")
    return ProofCheck(public_key, controller, cryptosuite)
