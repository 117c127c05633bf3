"""Document-signing keys at rest: made fresh (random), kept as encrypted PKCS#8 PEM, loaded back.

Outside the pure core because making a key draws randomness and encrypting one draws a salt;
signing and verifying with a key is :mod:`chain.core.signing`.
"""

from __future__ import annotations

from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from chain.core.errors import KeystoreError
from chain.core.signing import PrivateKey, SigningError, public_key_info

MIN_PASSPHRASE_LENGTH = 8


def generate_private_key(kind: Literal["ed25519", "rsa-2048", "rsa-3072", "rsa-4096"]) -> PrivateKey:
    """A new random document-signing key (RSA keys with public exponent 65537)."""
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    bits = int(kind.removeprefix("rsa-"))
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def encrypt_private_key(key: PrivateKey, passphrase: str) -> bytes:
    """PKCS#8 PEM, encrypted with the best scheme ``cryptography`` offers."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise SigningError(f"the passphrase must be at least {MIN_PASSPHRASE_LENGTH} characters")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )


def decrypt_private_key(pem: bytes, passphrase: str) -> PrivateKey:
    """The key in an encrypted PKCS#8 PEM.

    Raises :class:`KeystoreError` for a wrong passphrase, a damaged file or an unsupported key type,
    and :class:`SigningError` for an RSA key under 2048 bits.
    """
    try:
        key = serialization.load_pem_private_key(pem, passphrase.encode())
    except (ValueError, TypeError) as exc:
        if "password" in str(exc).lower() or "decrypt" in str(exc).lower():
            raise KeystoreError("wrong passphrase for the signing key, or the file is damaged") from None
        raise KeystoreError(f"not a PEM private key: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        raise KeystoreError(f"unsupported signing key type {type(key).__name__}")
    public_key_info(key)  # enforces the RSA size floor
    return key
