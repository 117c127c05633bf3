"""``eddsa-jcs-2022`` Data Integrity proofs (chain/core/data_integrity.py) against the W3C spec's
own test vectors, then round trips and the ways a proof must fail."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric import ed25519

from chain.core.data_integrity import (
    DataIntegrityError,
    add_proof,
    base58btc,
    did_key,
    from_base58btc,
    hash_data,
    multikey,
    public_key_of,
    verify_proof,
)

SPEC = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "eddsa-jcs-2022.json").read_text())
_ED25519_PRIV = b"\x80\x26"  # multicodec ed25519-priv


def spec_key() -> ed25519.Ed25519PrivateKey:
    raw = from_base58btc(SPEC["keyPair"]["privateKeyMultibase"][1:])
    assert raw[:2] == _ED25519_PRIV
    return ed25519.Ed25519PrivateKey.from_private_bytes(raw[2:])


def test_the_spec_vectors_step_by_step() -> None:
    key = spec_key()
    assert multikey(key.public_key()) == SPEC["keyPair"]["publicKeyMultibase"]
    assert rfc8785.dumps(SPEC["unsigned"]).decode() == SPEC["canonicalDocument"]
    assert hashlib.sha256(SPEC["canonicalDocument"].encode()).hexdigest() == SPEC["documentHash"]
    assert rfc8785.dumps(SPEC["proofConfig"]).decode() == SPEC["canonicalProofConfig"]
    assert hash_data(SPEC["unsigned"], SPEC["proofConfig"]).hex() == SPEC["hashData"]
    signature = key.sign(bytes.fromhex(SPEC["hashData"]))
    assert signature.hex() == SPEC["signatureHex"]
    assert "z" + base58btc(signature) == SPEC["proofValue"]


def test_we_secure_the_spec_credential_byte_for_byte_and_bind_the_issuer() -> None:
    signed: dict[str, Any] = SPEC["signed"]
    unsigned = {**SPEC["unsigned"], "issuer": "did:key:" + SPEC["keyPair"]["publicKeyMultibase"]}
    # The spec's issuer is a URL, not the key's DID: verify_proof insists on the DID as issuer.
    with pytest.raises(DataIntegrityError, match="is not the credential's issuer"):
        verify_proof(signed)
    ours = add_proof(SPEC["unsigned"], spec_key(), controller=did_key(spec_key().public_key()),
                     created=SPEC["proofConfig"]["created"])  # fmt: skip
    assert ours == signed  # byte for byte the spec's secured credential
    secured = add_proof(unsigned, spec_key(), controller=unsigned["issuer"], created="2026-12-01T00:00:00Z")
    check = verify_proof(secured)
    assert multikey(check.public_key) == SPEC["keyPair"]["publicKeyMultibase"]
    assert check.controller == unsigned["issuer"]


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda c: c["credentialSubject"].update(alumniOf="Elsewhere"), "does not verify"),
        (lambda c: c["proof"].update(created="2030-01-01T00:00:00Z"), "does not verify"),
        (lambda c: c["proof"].update(proofPurpose="authentication"), "proofPurpose"),
        (lambda c: c["proof"].update(cryptosuite="eddsa-2022"), "'eddsa-2022' is not one FinVault verifies"),
        # Relabelled rdfc, the proof is judged as one: the spec's examples context is not shipped.
        (
            lambda c: c["proof"].update(cryptosuite="eddsa-rdfc-2022"),
            "examples/v2' is not one FinVault ships",
        ),
        (lambda c: c.update(issuer="did:web:someone.example"), "is not the credential's issuer"),
        (lambda c: c["proof"].update(proofValue="z" + "1" * 80), "does not verify"),
        (lambda c: c["proof"].update(proofValue="u0OlnC"), "starts with 'z'"),
        (lambda c: c["proof"].update(verificationMethod="did:key:zX"), "DID#Multikey"),
        (lambda c: c.pop("proof"), "no single Data Integrity proof"),
    ],
)
def test_a_tampered_credential_or_proof_fails(tamper: Any, message: str) -> None:
    key = spec_key()
    issuer = did_key(key.public_key())
    secured = add_proof(
        {**SPEC["unsigned"], "issuer": issuer}, key, controller=issuer, created="2026-12-01T00:00:00Z"
    )
    copy = json.loads(json.dumps(secured))
    tamper(copy)
    with pytest.raises(DataIntegrityError, match=message):
        verify_proof(copy)


def test_a_did_key_of_the_identity_point_signs_nothing() -> None:
    """The identity point's did:key, and the signature OpenSSL accepts under it for every message
    (R the identity, S zero): refused, whatever the credential says."""
    identity = bytes([1]) + bytes(31)
    issuer = did_key(ed25519.Ed25519PublicKey.from_public_bytes(identity))
    key = spec_key()
    secured = add_proof(
        {**SPEC["unsigned"], "issuer": issuer}, key, controller=issuer, created="2026-12-01T00:00:00Z"
    )
    secured["proof"]["verificationMethod"] = f"{issuer}#{issuer.removeprefix('did:key:')}"
    secured["proof"]["proofValue"] = "z" + base58btc(identity + bytes(32))
    with pytest.raises(DataIntegrityError, match="does not verify"):
        verify_proof(secured)


def test_did_web_names_the_same_key_and_base58_round_trips() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    credential = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "issuer": {"id": "did:web:uni.example"},
    }
    secured = add_proof(credential, key, controller="did:web:uni.example", created="2026-12-01T00:00:00Z")
    assert secured["proof"]["verificationMethod"] == f"did:web:uni.example#{multikey(key.public_key())}"
    assert verify_proof(secured).controller == "did:web:uni.example"
    assert public_key_of(multikey(key.public_key())).public_bytes_raw() == key.public_key().public_bytes_raw()
    for data in (b"", b"\0", b"\0\0\x01", bytes(range(90))):
        assert from_base58btc(base58btc(data)) == data
    # Decoding is quadratic in the length: what cannot be a key or a signature is refused unread.
    with pytest.raises(DataIntegrityError, match="at most 128"):
        from_base58btc(base58btc(bytes(range(256))))
    with pytest.raises(DataIntegrityError, match="already carries a proof"):
        add_proof(secured, key, controller="did:web:uni.example", created="2026-12-01T00:00:00Z")
