"""Document-signing keys at rest (chain/keys.py): the container, its KDF, and old keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from Crypto.IO import PEM, PKCS8
from cryptography.hazmat.primitives import serialization

from chain.core.signing import public_key_info
from chain.errors import ConfigError, KeystoreError
from chain.keys import (
    PBKDF2_ITERATIONS,
    UNOPENED_KEY_MESSAGE,
    KeyProtection,
    decrypt_private_key,
    encrypt_private_key,
    generate_private_key,
    key_protection,
)
from chain.service.files import replace_secret_file, require_private, write_secret_file

PASSPHRASE = "correct horse battery"


def legacy_pem(kind: str = "ed25519") -> bytes:
    """What FinVault wrote before: ``cryptography``'s best available encryption (PBKDF2 x 2,048)."""
    key = generate_private_key(kind)  # type: ignore[arg-type]
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    )


@pytest.mark.parametrize("kind", ["ed25519", "rsa-2048"])
def test_new_keys_meet_current_guidance_and_round_trip(kind: str) -> None:
    key = generate_private_key(kind)  # type: ignore[arg-type]
    pem = encrypt_private_key(key, PASSPHRASE)
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert key_protection(pem) == KeyProtection("pbkdf2-hmac-sha256", iterations=PBKDF2_ITERATIONS)
    assert PBKDF2_ITERATIONS >= 600_000
    assert key_protection(pem).meets_guidance
    assert public_key_info(decrypt_private_key(pem, PASSPHRASE)) == public_key_info(key)


def test_another_implementation_reads_the_container() -> None:
    """pycryptodome's PKCS#8 code, independent of OpenSSL, opens what chain.keys writes (at fewer
    iterations: its PBKDF2 is slow, and the count does not change the container)."""
    key = generate_private_key("ed25519")
    der, marker, _ = PEM.decode(encrypt_private_key(key, PASSPHRASE, iterations=2_000).decode())
    assert marker == "ENCRYPTED PRIVATE KEY"
    oid, private, _ = PKCS8.unwrap(der, PASSPHRASE.encode())
    assert oid == "1.3.101.112"  # Ed25519
    plain = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert PKCS8.unwrap(plain)[1] == private


def test_legacy_keys_are_recognized_as_weak_and_still_open() -> None:
    pem = legacy_pem()
    protection = key_protection(pem)
    assert protection == KeyProtection("pbkdf2-hmac-sha256", iterations=2048)
    assert not protection.meets_guidance
    assert protection.describe() == "PBKDF2-HMAC-SHA256 at 2,048 iterations"
    decrypt_private_key(pem, PASSPHRASE)


def test_scrypt_keys_are_judged_by_their_parameters() -> None:
    key = generate_private_key("ed25519")
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    oid, private, _ = PKCS8.unwrap(der)
    for cost, meets in ((2**14, False), (2**17, True)):
        wrapped = PKCS8.wrap(
            private,
            oid,
            PASSPHRASE.encode(),
            protection="scryptAndAES256-CBC",
            prot_params={"iteration_count": cost, "block_size": 8, "parallelization": 1},
        )
        pem = PEM.encode(wrapped, "ENCRYPTED PRIVATE KEY").encode()
        protection = key_protection(pem)
        assert (protection.kdf, protection.n, protection.r, protection.p) == ("scrypt", cost, 8, 1)
        assert protection.meets_guidance is meets


def test_what_is_not_an_encrypted_key_is_refused_clearly() -> None:
    key = generate_private_key("ed25519")
    plain = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeystoreError, match="not an encrypted PKCS#8 key"):
        decrypt_private_key(plain, PASSPHRASE)
    with pytest.raises(KeystoreError, match="not an encrypted PKCS#8 key"):
        key_protection(plain)
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        decrypt_private_key(encrypt_private_key(key, PASSPHRASE), "not the passphrase")
    damaged = bytearray(encrypt_private_key(key, PASSPHRASE))
    damaged[60:64] = b"AAAA"
    with pytest.raises(KeystoreError):
        decrypt_private_key(bytes(damaged), PASSPHRASE)


#: Wrong passphrases tried: at about 1 in 300 passing AES-CBC's padding check, some 30 do.
WRONG_TRIES = 10_000


def test_every_wrong_passphrase_gets_the_one_message() -> None:
    """A wrong passphrase always says so, also when its noise passes the padding check (it once
    said "not a PEM private key: ... ASN.1 parsing error" about 0.3% of the time)."""
    key = generate_private_key("ed25519")
    pem = encrypt_private_key(key, PASSPHRASE, iterations=1)  # the count changes nothing here
    messages, past_padding = set(), 0
    for attempt in range(WRONG_TRIES):
        wrong = f"wrong passphrase {attempt}"
        try:
            serialization.load_pem_private_key(pem, wrong.encode())
        except ValueError as exc:  # the loader's own words: padding failed, or DER after it
            past_padding += "password" not in str(exc).lower()
        with pytest.raises(KeystoreError) as caught:
            decrypt_private_key(pem, wrong)
        messages.add(str(caught.value))
    assert messages == {UNOPENED_KEY_MESSAGE}
    assert past_padding > 0  # the case that used to escape was exercised


def test_secrets_others_can_read_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    write_secret_file(secret, b"x")
    assert secret.stat().st_mode & 0o777 == 0o600
    require_private(secret, "passphrase file")
    for mode in (0o640, 0o604, 0o660):
        os.chmod(secret, mode)
        with pytest.raises(ConfigError, match=f"mode 0{mode:o}.*chmod 600 {secret}"):
            require_private(secret, "passphrase file")


def test_replacing_a_secret_is_atomic_and_private(tmp_path: Path) -> None:
    target = tmp_path / "signing-key.pem"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    replace_secret_file(target, b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signing-key.pem"]  # no temporary left
