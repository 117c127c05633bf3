"""Document-signing keys: Ed25519 (default) and RSA PKCS#1 v1.5 / SHA-256 with 2048+ bits.

Pure functions over bytes: no file or clock access, no randomness (both schemes sign
deterministically). A key's id is keccak256 of its DER SubjectPublicKeyInfo, the same value
FinVaultRegistry checks in ``addKey``. Making keys and keeping them at rest is :mod:`chain.keys`.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from chain.core.errors import FinVaultError
from chain.core.hashing import keccak256

PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey

MIN_RSA_BITS = 2048
#: Bytes of an Ed25519 signature (``R`` then ``S``).
SIGNATURE_BYTES = 64


class KeyAlgorithm(IntEnum):
    """On-chain algorithm codes."""

    ED25519 = 1
    RSA_PKCS1V15_SHA256 = 2

    @property
    def label(self) -> str:
        """The name receipts use: ``ed25519`` or ``rsa-pkcs1v15-sha256``."""
        return "ed25519" if self is KeyAlgorithm.ED25519 else "rsa-pkcs1v15-sha256"

    @classmethod
    def from_label(cls, label: str) -> KeyAlgorithm:
        """The algorithm a receipt's label names; raises :class:`SigningError` for any other label."""
        for algorithm in cls:
            if algorithm.label == label:
                return algorithm
        raise SigningError(f"unsupported signature algorithm {label!r}")


class SigningError(FinVaultError, ValueError):
    """A key, passphrase or algorithm that document signing does not accept."""

    code = "signing_error"


@dataclass(frozen=True)
class PublicKeyInfo:
    """What the registry and receipts know about a key."""

    algorithm: KeyAlgorithm
    der: bytes

    @property
    def key_id(self) -> bytes:
        """keccak256 of the DER SubjectPublicKeyInfo, the id ``addKey`` checks and receipts name."""
        return keccak256(self.der)


def public_key_info(key: PrivateKey | PublicKey) -> PublicKeyInfo:
    """The algorithm and DER of a key's public half; raises :class:`SigningError` for RSA under 2048 bits."""
    public = key.public_key() if isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if isinstance(public, ed25519.Ed25519PublicKey):
        return PublicKeyInfo(KeyAlgorithm.ED25519, der)
    if public.key_size < MIN_RSA_BITS:
        raise SigningError(f"RSA keys need at least {MIN_RSA_BITS} bits, got {public.key_size}")
    return PublicKeyInfo(KeyAlgorithm.RSA_PKCS1V15_SHA256, der)


def load_public_key(data: bytes) -> PublicKeyInfo:
    """Reads a public key from PEM or DER SubjectPublicKeyInfo."""
    try:
        key = (
            serialization.load_pem_public_key(data)
            if data.lstrip().startswith(b"-----")
            else serialization.load_der_public_key(data)
        )
    except ValueError as exc:
        raise SigningError(f"not a public key: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise SigningError(f"unsupported public key type {type(key).__name__}")
    return public_key_info(key)


def sign_digest(key: PrivateKey, digest: bytes) -> bytes:
    """Signs the 32 raw bytes of a document digest."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(digest)
    return key.sign(digest, padding.PKCS1v15(), hashes.SHA256())


#: Parsed keys kept by :func:`parsed_public_key`: a registry holds few keys, and each is used for
#: every receipt its issuer signed.
PARSED_KEY_CACHE_SIZE = 256


@functools.lru_cache(maxsize=PARSED_KEY_CACHE_SIZE)
def parsed_public_key(der: bytes) -> PublicKeyTypes:
    """DER SubjectPublicKeyInfo to a key object, once per key (they are immutable and thread-safe).
    A DER that does not parse raises ValueError, which is not cached."""
    return serialization.load_der_public_key(der)


def ed25519_verifies(public_key: ed25519.Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is an Ed25519 signature of ``message`` under ``public_key``: FinVault's
    one Ed25519 check, everywhere it verifies.

    libsodium's (PyNaCl; the GIL is released while it runs), for two reasons. It refuses what RFC
    8032 leaves to implementations and OpenSSL accepts: a small-order public key or ``R`` and a
    non-canonical encoding. Under the identity point as public key, OpenSSL verifies one fixed
    signature for every message; libsodium verifies none. And it is faster: 51-54 against 112-137 µs
    a check on this machine (OpenSSL 3 through ``cryptography``).
    """
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        crypto_sign_open(signature + message, public_key.public_bytes_raw())
    except BadSignatureError:
        return False
    return True


def verify_digest(info: PublicKeyInfo, digest: bytes, signature: bytes) -> bool:
    """Whether ``signature`` signs the 32 digest bytes under the key ``info`` describes.

    False, not an exception, for a bad signature or a DER that does not parse; a key whose DER does
    not match its stated algorithm, or an RSA key under 2048 bits, never verifies.
    """
    try:
        key = parsed_public_key(bytes(info.der))
        if info.algorithm is KeyAlgorithm.ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
            return ed25519_verifies(key, signature, digest)
        if info.algorithm is KeyAlgorithm.RSA_PKCS1V15_SHA256 and isinstance(key, rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_BITS:
                return False
            key.verify(signature, digest, padding.PKCS1v15(), hashes.SHA256())
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


class SignatureCache:
    """Signature checks that succeeded, remembered: a signature that verified under a key always will.

    Keyed by (key id, signed message, signature), held as the SHA-256 of the three (32 bytes an
    entry; a false hit needs a SHA-256 collision). Only successes are remembered, so requests with
    bad signatures cannot push good entries out, and always pay for their own check. Bounded by two
    generations of ``entries`` each: when the newer one fills up, the older is dropped, and an entry
    found in the older one is carried over. This caches signature checks only, never verdicts:
    whether a key was registered, active or revoked comes from the chain facts every time.
    """

    def __init__(self, entries: int) -> None:
        if entries < 1:
            raise ValueError("a signature cache holds at least one entry")
        self.entries = entries
        self._new: set[bytes] = set()
        self._old: set[bytes] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _fingerprint(key_id: bytes, message: bytes, signature: bytes) -> bytes:
        # Lengths first, so no two different triples concatenate alike.
        lengths = b"%d:%d:%d:" % (len(key_id), len(message), len(signature))
        return hashlib.sha256(lengths + key_id + message + signature).digest()

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def verified(self, key_id: bytes, message: bytes, signature: bytes, check: Callable[[], bool]) -> bool:
        """Whether ``signature`` signs ``message`` under the key ``key_id`` names: remembered, or
        ``check()`` (which must check exactly that)."""
        fingerprint = self._fingerprint(key_id, message, signature)
        if fingerprint in self._new:
            return True
        if fingerprint not in self._old and not check():
            return False
        with self._lock:
            if len(self._new) >= self.entries:
                self._old, self._new = self._new, set()
            self._new.add(fingerprint)
        return True
