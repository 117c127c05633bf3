"""Document-signing keys at rest: made fresh (random), kept as encrypted PKCS#8 PEM, loaded back.

Outside the pure core because making a key draws randomness and encrypting one draws a salt;
signing and verifying with a key is :mod:`chain.core.signing`.

A key is written as a standard PKCS#8 ``ENCRYPTED PRIVATE KEY`` (RFC 5958) under PBES2 (RFC 8018):
PBKDF2-HMAC-SHA256 at :data:`PBKDF2_ITERATIONS` iterations, AES-256-CBC. OpenSSL
(``openssl pkey``), ``cryptography`` and pycryptodome all read it. ``cryptography`` alone would
write PBKDF2 at 2,048 iterations, far below current guidance (OWASP: PBKDF2-HMAC-SHA256 at 600,000
or more, or scrypt with N >= 2^17, r = 8, p = 1), so the container is assembled here and the
key derived by OpenSSL through :func:`hashlib.pbkdf2_hmac`. :func:`key_protection` reads what a
file uses, so that keys written before (or by other tools) can be judged and re-encrypted.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from chain.core.errors import KeystoreError
from chain.core.signing import PrivateKey, SigningError, public_key_info

MIN_PASSPHRASE_LENGTH = 8
#: PBKDF2-HMAC-SHA256 iterations for new keys: OWASP's password-storage figure (2023 on).
PBKDF2_ITERATIONS = 600_000
#: The least each KDF must do to meet current guidance (PBKDF2 by its PRF; scrypt by N and r).
PBKDF2_MINIMUM = {"sha1": 1_300_000, "sha256": 600_000, "sha512": 210_000}
SCRYPT_MINIMUM_N, SCRYPT_MINIMUM_R = 2**17, 8

_OID_PBES2 = "1.2.840.113549.1.5.13"
_OID_PBKDF2 = "1.2.840.113549.1.5.12"
_OID_SCRYPT = "1.3.6.1.4.1.11591.4.11"
_OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"
_PRFS = {
    "1.2.840.113549.2.7": "sha1",
    "1.2.840.113549.2.9": "sha256",
    "1.2.840.113549.2.11": "sha512",
}
_OID_HMAC_SHA256 = "1.2.840.113549.2.9"
_PEM_LABEL = "ENCRYPTED PRIVATE KEY"
#: What every failure to open an encrypted key with a passphrase says (see decrypt_private_key).
UNOPENED_KEY_MESSAGE = "wrong passphrase for the signing key, or the file is damaged"


def generate_private_key(kind: Literal["ed25519", "rsa-2048", "rsa-3072", "rsa-4096"]) -> PrivateKey:
    """A new random document-signing key (RSA keys with public exponent 65537)."""
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    bits = int(kind.removeprefix("rsa-"))
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def encrypt_private_key(key: PrivateKey, passphrase: str, *, iterations: int = PBKDF2_ITERATIONS) -> bytes:
    """PKCS#8 PEM under PBES2: PBKDF2-HMAC-SHA256 (``iterations``), AES-256-CBC, fresh salt and IV."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise SigningError(f"the passphrase must be at least {MIN_PASSPHRASE_LENGTH} characters")
    plain = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt, iv = os.urandom(16), os.urandom(16)
    derived = hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, iterations, 32)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(derived), modes.CBC(iv)).encryptor()
    sealed = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    kdf = _seq(
        _oid(_OID_PBKDF2),
        _seq(_octets(salt), _integer(iterations), _seq(_oid(_OID_HMAC_SHA256), _NULL)),
    )
    scheme = _seq(_oid(_OID_PBES2), _seq(kdf, _seq(_oid(_OID_AES256_CBC), _octets(iv))))
    der = _seq(scheme, _octets(sealed))
    body = base64.b64encode(der).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {_PEM_LABEL}-----\n{lines}\n-----END {_PEM_LABEL}-----\n".encode()


def decrypt_private_key(pem: bytes, passphrase: str) -> PrivateKey:
    """The key in an encrypted PKCS#8 PEM (any scheme OpenSSL reads).

    Raises :class:`KeystoreError` for a wrong passphrase, a damaged or unencrypted file or an
    unsupported key type, and :class:`SigningError` for an RSA key under 2048 bits.
    """
    if _PEM_LABEL.encode() not in pem:
        raise KeystoreError("the signing key file is not an encrypted PKCS#8 key (ENCRYPTED PRIVATE KEY)")
    try:
        key = serialization.load_pem_private_key(pem, passphrase.encode())
    except UnsupportedAlgorithm as exc:
        raise KeystoreError(f"the signing key's encryption scheme is not supported: {exc}") from None
    except (ValueError, TypeError):
        # PBES2 with AES-CBC carries no MAC: a wrong passphrase decrypts to noise that fails the
        # padding check, except about 1 time in 300 (the noise ends in valid padding) when it
        # fails as DER instead. The file is known to be an encrypted PKCS#8 key (the label check
        # above), so every failure here is a wrong passphrase or damage, whatever the loader says.
        raise KeystoreError(UNOPENED_KEY_MESSAGE) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        raise KeystoreError(f"unsupported signing key type {type(key).__name__}")
    public_key_info(key)  # enforces the RSA size floor
    return key


@dataclass(frozen=True)
class KeyProtection:
    """How an encrypted PKCS#8 key is protected: its KDF and that KDF's cost."""

    kdf: str  # "pbkdf2-hmac-sha256", "scrypt", ... or the scheme's OID when it is neither
    iterations: int = 0  # PBKDF2
    n: int = 0  # scrypt cost, block size, parallelization
    r: int = 0
    p: int = 0

    @property
    def meets_guidance(self) -> bool:
        """Whether the KDF is at or above current guidance (see the module docstring)."""
        if self.kdf.startswith("pbkdf2-hmac-"):
            return self.iterations >= PBKDF2_MINIMUM[self.kdf.removeprefix("pbkdf2-hmac-")]
        if self.kdf == "scrypt":
            return self.n >= SCRYPT_MINIMUM_N and self.r >= SCRYPT_MINIMUM_R and self.p >= 1
        return False

    def describe(self) -> str:
        """One line for messages: ``PBKDF2-HMAC-SHA256 at 2,048 iterations``."""
        if self.kdf.startswith("pbkdf2-hmac-"):
            return f"{self.kdf.upper()} at {self.iterations:,} iterations"
        if self.kdf == "scrypt":
            return f"scrypt (N=2^{self.n.bit_length() - 1}, r={self.r}, p={self.p})"
        return f"an unrecognized scheme ({self.kdf})"


def key_protection(pem: bytes) -> KeyProtection:
    """What protects the encrypted PKCS#8 key in ``pem``; :class:`KeystoreError` if it is not one."""
    try:
        der = _pem_body(pem)
        info = _read_all(der)
        scheme, _ = _children(info)
        scheme_oid, scheme_params = _children(scheme)
        if _as_oid(scheme_oid) != _OID_PBES2:
            return KeyProtection(_as_oid(scheme_oid))
        kdf, _ = _children(scheme_params)
        kdf_parts = _children(kdf)
        kdf_oid, params = _as_oid(kdf_parts[0]), _children(kdf_parts[1])
        if kdf_oid == _OID_PBKDF2:
            prf = "sha1"  # RFC 8018's default when the PRF is absent
            for part in params[1:]:
                if part[0] == 0x30:
                    prf = _PRFS.get(_as_oid(_children(part)[0]), _as_oid(_children(part)[0]))
            return KeyProtection(f"pbkdf2-hmac-{prf}", iterations=_as_int(params[1]))
        if kdf_oid == _OID_SCRYPT:
            return KeyProtection("scrypt", n=_as_int(params[1]), r=_as_int(params[2]), p=_as_int(params[3]))
        return KeyProtection(kdf_oid)
    except (ValueError, IndexError) as exc:
        raise KeystoreError(f"not an encrypted PKCS#8 key: {exc}") from None


# -- just enough DER for PBES2 ---------------------------------------------------------------------

_NULL = b"\x05\x00"
_Tlv = tuple[int, bytes]


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _seq(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _octets(value: bytes) -> bytes:
    return _tlv(0x04, value)


def _integer(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(arc) for arc in dotted.split("."))
    out = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


def _pem_body(pem: bytes) -> bytes:
    text = pem.decode("ascii")
    begin, end = f"-----BEGIN {_PEM_LABEL}-----", f"-----END {_PEM_LABEL}-----"
    if begin not in text or end not in text:
        raise ValueError(f"no {_PEM_LABEL} block")
    return base64.b64decode(text.split(begin, 1)[1].split(end, 1)[0], validate=False)


def _read(data: bytes, at: int) -> tuple[_Tlv, int]:
    tag, size = data[at], data[at + 1]
    at += 2
    if size & 0x80:
        count = size & 0x7F
        size = int.from_bytes(data[at : at + count], "big")
        at += count
    if at + size > len(data):
        raise ValueError("truncated DER")
    return (tag, data[at : at + size]), at + size


def _read_all(data: bytes) -> _Tlv:
    element, end = _read(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes after DER")
    return element


def _children(element: _Tlv) -> list[_Tlv]:
    tag, content = element
    if tag != 0x30:
        raise ValueError(f"expected a SEQUENCE, found tag {tag:#x}")
    out, at = [], 0
    while at < len(content):
        child, at = _read(content, at)
        out.append(child)
    return out


def _as_oid(element: _Tlv) -> str:
    tag, content = element
    if tag != 0x06 or not content:
        raise ValueError("expected an OBJECT IDENTIFIER")
    arcs, value = [content[0] // 40, content[0] % 40], 0
    for byte in content[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def _as_int(element: _Tlv) -> int:
    tag, content = element
    if tag != 0x02:
        raise ValueError("expected an INTEGER")
    return int.from_bytes(content, "big")
