"""Regenerates tests/vectors/receipt-v2.json, the known-answer vector of finvault-receipt/2.

    .venv/bin/python -m tests.vectors.generate_receipt_v2

Everything in it follows from fixed inputs: an Ed25519 key from a seed, a fixed credential, and
deterministic randomness for the SD-JWT's salts and decoys (Ed25519 signatures are deterministic).
The format is frozen: regenerate only on purpose; a changed answer means the format changed.
tests/unit/test_secured.py checks that the file is reproduced byte for byte and recomputes each
digest and leaf from the file's own bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from chain.core.canonical import jcs
from chain.core.encoding import hex0x
from chain.core.merkle import MerkleTree
from chain.core.receipt import build_receipt_v2
from chain.core.sd_jwt import parse_sd_jwt
from chain.core.secured import (
    DATA_INTEGRITY_TAG,
    SD_JWT_TAG,
    default_disclosable,
    secure_data_integrity,
    secure_sd_jwt,
)
from chain.core.signing import public_key_info
from tests.factories import CHAIN_ID, ISSUER, REGISTRY, deterministic_bytes

PATH = Path(__file__).resolve().parent / "receipt-v2.json"
KEY_SEED = "finvault-receipt/2 vector key"
RANDOM_SEED = "finvault-receipt/2 vector"
CREATED = "2026-06-30T00:00:00Z"

CREDENTIAL: dict[str, Any] = {
    "@context": ["https://www.w3.org/ns/credentials/v2"],
    "type": ["VerifiableCredential", "DegreeCredential"],
    "issuer": {"id": "did:web:uni.example", "name": "Université d'Exemple"},
    "validFrom": "2026-06-30T00:00:00Z",
    "validUntil": "2036-06-30T00:00:00Z",
    "credentialSubject": {
        "id": "did:example:ada",
        "name": "Ada Lovelace",
        "degree": {"type": "MasterDegree", "name": "MSc Computer Science"},
        "grade": "A",
        "credits": 120,
        "courses": ["Algebra", "Logic", "Compilers"],
    },
}

DESCRIPTION = (
    "Known-answer vector for finvault-receipt/2 (docs/formats.md), written by "
    "`.venv/bin/python -m tests.vectors.generate_receipt_v2`. key.privateKey is the raw Ed25519 private "
    "key SHA-256(UTF-8(key.seed)); keyId is keccak256 of its DER SubjectPublicKeyInfo. The SD-JWT is "
    "issued over `credential` with `issuer.id` set to the key's did:key, every pointer of `disclosable` "
    "made disclosable, the default decoy policy (at least one decoy, padded to a multiple of 4), and "
    "randomness where the i-th 32-byte block drawn is SHA-256(UTF-8(randomSeed + '/' + i)), i = 0, 1, "
    "... across calls, each call random_bytes(n) taking ceil(n/32) fresh blocks and returning their "
    "first n bytes. sdJwt.digest = SHA-256(UTF-8(tags.sdJwt) || 0x00 || ASCII(issuerSignedJwt)); "
    "dataIntegrity.digest = SHA-256(UTF-8(tags.dataIntegrity) || 0x00 || UTF-8(dataIntegrity.jcs)), "
    "jcs being the RFC 8785 form of dataIntegrity.credential (eddsa-jcs-2022 proof, created as given, its "
    "id the urn:uuid of version 4 made from the first 16 bytes drawn from randomSeed + '/data-integrity'); "
    "leaf = keccak256(keccak256(digest)). `batch` anchors both leaves in one OpenZeppelin "
    "StandardMerkleTree (bytes32) and holds their receipts."
)


def vector_key() -> ed25519.Ed25519PrivateKey:
    """The vector's Ed25519 key: its raw private bytes are SHA-256 of :data:`KEY_SEED`."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(KEY_SEED.encode()).digest())


def build() -> dict[str, Any]:
    """The vector, computed afresh by the code under test."""
    key = vector_key()
    info = public_key_info(key)
    disclosable = default_disclosable(CREDENTIAL)
    sd = secure_sd_jwt(
        CREDENTIAL, key, random_bytes=deterministic_bytes(RANDOM_SEED), disclosable=disclosable
    )
    assert isinstance(sd.value, str)
    parsed = parse_sd_jwt(sd.value)
    di = secure_data_integrity(
        CREDENTIAL, key, created=CREATED, random_bytes=deterministic_bytes(RANDOM_SEED + "/data-integrity")
    )
    assert isinstance(di.value, dict)
    tree = MerkleTree([sd.digest, di.digest])
    receipts = [
        build_receipt_v2(
            item.value,
            path=[hex0x(p) for p in tree.proof(item.leaf)],
            root=hex0x(tree.root),
            chain_id=CHAIN_ID,
            registry=REGISTRY,
            issuer=ISSUER,
        ).to_json_dict()
        for item in (sd, di)
    ]
    return {
        "description": DESCRIPTION,
        "tags": {
            "sdJwt": SD_JWT_TAG.rstrip(b"\x00").decode("ascii"),
            "dataIntegrity": DATA_INTEGRITY_TAG.rstrip(b"\x00").decode("ascii"),
        },
        "key": {
            "seed": KEY_SEED,
            "privateKey": hex0x(hashlib.sha256(KEY_SEED.encode()).digest()),
            "publicKeyDer": hex0x(info.der),
            "keyId": hex0x(info.key_id),
        },
        "credential": CREDENTIAL,
        "disclosable": disclosable,
        "randomSeed": RANDOM_SEED,
        "sdJwt": {
            "compact": sd.value,
            "issuerSignedJwt": parsed.issuer_signed_jwt,
            "header": parsed.header,
            "payload": parsed.payload,
            "disclosures": list(parsed.disclosures),
            "digest": hex0x(sd.digest),
            "leaf": hex0x(sd.leaf),
        },
        "dataIntegrity": {
            "created": CREATED,
            "credential": di.value,
            "jcs": jcs(di.value).decode("utf-8"),
            "digest": hex0x(di.digest),
            "leaf": hex0x(di.leaf),
        },
        "batch": {"root": hex0x(tree.root), "receipts": receipts},
    }


def render(vector: dict[str, Any]) -> str:
    """The file's exact text: two-space indented UTF-8 JSON ending in a newline."""
    return json.dumps(vector, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Writes the vector file."""
    PATH.write_text(render(build()), encoding="utf-8")
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
