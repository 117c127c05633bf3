from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.core.signing import (
    KeyAlgorithm,
    SigningError,
    ed25519_verifies,
    load_public_key,
    public_key_info,
    sign_digest,
    verify_digest,
)
from chain.errors import KeystoreError
from chain.keys import decrypt_private_key, encrypt_private_key, generate_private_key
from chain.service.files import write_secret_file

DIGEST = bytes(range(32))


@pytest.mark.parametrize(
    ("kind", "algorithm", "der_length"),
    [("ed25519", KeyAlgorithm.ED25519, 44), ("rsa-2048", KeyAlgorithm.RSA_PKCS1V15_SHA256, 294)],
)
def test_sign_verify_and_key_id(kind: str, algorithm: KeyAlgorithm, der_length: int) -> None:
    key = generate_private_key(kind)  # type: ignore[arg-type]
    info = public_key_info(key)
    assert info.algorithm is algorithm
    assert len(info.der) == der_length  # what the contract's addKey length check expects
    assert info.key_id == keccak(info.der)
    signature = sign_digest(key, DIGEST)
    assert verify_digest(info, DIGEST, signature)
    assert not verify_digest(info, bytes(32), signature)
    assert not verify_digest(info, DIGEST, signature[:-1] + bytes([signature[-1] ^ 1]))


def test_signature_does_not_verify_under_the_wrong_algorithm_label() -> None:
    key = generate_private_key("ed25519")
    info = public_key_info(key)
    forged = type(info)(KeyAlgorithm.RSA_PKCS1V15_SHA256, info.der)
    assert not verify_digest(forged, DIGEST, sign_digest(key, DIGEST))


def test_encrypted_pem_round_trip_and_wrong_passphrase() -> None:
    key = generate_private_key("ed25519")
    pem = encrypt_private_key(key, "correct horse battery")
    assert b"ENCRYPTED PRIVATE KEY" in pem
    restored = decrypt_private_key(pem, "correct horse battery")
    assert public_key_info(restored) == public_key_info(key)
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        decrypt_private_key(pem, "wrong horse battery")


def test_short_passphrase_is_refused() -> None:
    with pytest.raises(SigningError, match="at least 8"):
        encrypt_private_key(generate_private_key("ed25519"), "short")


def test_rsa_below_2048_bits_is_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - on purpose
    with pytest.raises(SigningError, match="2048"):
        public_key_info(weak)
    pem = weak.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(SigningError):
        load_public_key(pem)


def test_load_public_key_from_pem_and_der() -> None:
    info = public_key_info(generate_private_key("ed25519"))
    public = serialization.load_der_public_key(info.der)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert load_public_key(pem) == info
    assert load_public_key(info.der) == info
    with pytest.raises(SigningError):
        load_public_key(b"not a key")


def test_algorithm_labels_round_trip() -> None:
    for algorithm in KeyAlgorithm:
        assert KeyAlgorithm.from_label(algorithm.label) is algorithm
    with pytest.raises(SigningError):
        KeyAlgorithm.from_label("ecdsa")


def test_secret_files_are_private_from_the_first_byte(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.write_bytes(b"old")
    loose.chmod(0o644)
    for path in (tmp_path / "new", loose):
        write_secret_file(path, b"secret")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes() == b"secret"


#: RFC 8032, section 7.1, TEST 2: a one-byte message.
RFC8032_PUBLIC = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC8032_MESSAGE = bytes.fromhex("72")
RFC8032_SIGNATURE = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
)


def test_ed25519_verifies_the_rfc_8032_vector_and_nothing_else() -> None:
    key = ed25519.Ed25519PublicKey.from_public_bytes(RFC8032_PUBLIC)
    assert ed25519_verifies(key, RFC8032_SIGNATURE, RFC8032_MESSAGE)
    assert not ed25519_verifies(key, RFC8032_SIGNATURE, b"\x73")
    assert not ed25519_verifies(key, RFC8032_SIGNATURE[:-1], RFC8032_MESSAGE)
    assert not ed25519_verifies(key, RFC8032_SIGNATURE + b"\x00", RFC8032_MESSAGE)


@settings(max_examples=60, deadline=None)
@given(message=st.binary(max_size=512), flip=st.integers(min_value=0, max_value=64 * 8 - 1))
def test_ed25519_verifies_what_openssl_verifies_and_no_flipped_bit(message: bytes, flip: int) -> None:
    """For honest keys libsodium and OpenSSL agree: every signature verifies, every bit flipped in
    it fails (under both)."""
    private = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    key, signature = private.public_key(), private.sign(message)
    assert ed25519_verifies(key, signature, message)
    forged = bytearray(signature)
    forged[flip // 8] ^= 1 << (flip % 8)
    assert not ed25519_verifies(key, bytes(forged), message)
    with pytest.raises(InvalidSignature):
        key.verify(bytes(forged), message)


def test_ed25519_refuses_the_identity_key_that_openssl_lets_sign_anything() -> None:
    """The identity point as public key, R the identity and S zero: OpenSSL (cryptography) verifies
    it for every message, which is why FinVault's one Ed25519 check is libsodium's."""
    identity = bytes([1]) + bytes(31)
    key = ed25519.Ed25519PublicKey.from_public_bytes(identity)
    signature = identity + bytes(32)
    for message in (b"", b"any certificate", bytes(range(256))):
        key.verify(signature, message)  # OpenSSL: no exception
        assert not ed25519_verifies(key, signature, message)
