"""What a finvault-receipt/2 leaf commits to (chain/core/secured.py): the domain-separated digests,
pinned by a known-answer vector (tests/vectors/receipt-v2.json), and the property the legacy
``finvault-doc/1`` digest lacks: two different credentials never share a leaf, whichever securing,
arrays against integer-keyed objects, ``1`` against ``"1"`` against ``true`` against ``null``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chain.core.canonical import jcs, salt_document
from chain.core.encoding import hex0x
from chain.core.hashing import keccak256
from chain.core.merkle import leaf_hash
from chain.core.sd_jwt import parse_sd_jwt, process_credential
from chain.core.secured import (
    DATA_INTEGRITY_TAG,
    SD_JWT_TAG,
    data_integrity_digest,
    named_issuer,
    sd_jwt_digest,
    secure_data_integrity,
    secure_sd_jwt,
)
from tests.factories import ISSUED_AT, credential, deterministic_bytes
from tests.strategies import credential_twins, credentials, json_model
from tests.vectors import generate_receipt_v2

VECTOR_PATH = Path(__file__).resolve().parents[1] / "vectors" / "receipt-v2.json"
KEY = generate_receipt_v2.vector_key()


def subject(claims: dict[str, Any]) -> dict[str, Any]:
    """The test credential with ``claims`` as its subject."""
    return {**credential(), "credentialSubject": claims}


#: The confusions the issue names, and those of RFC 6901 escaping: each pair must stay apart.
PINNED_PAIRS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"a": ["x"]}, {"a": {"0": "x"}}),  # the finvault-doc/1 collision
    ({"a": ["x", "y"]}, {"a": {"0": "x", "1": "y"}}),
    ({"a": 1}, {"a": "1"}),
    ({"a": 1}, {"a": True}),
    ({"a": None}, {}),
    ({"a": []}, {"a": {}}),
    ({"": 1}, {"~": 1}),
    ({"a/b": 1}, {"a": {"b": 1}}),
    ({"~1": 1}, {"/": 1}),
]


def test_the_leaf_digests_are_domain_separated_hashes_of_what_the_issuer_signed() -> None:
    assert SD_JWT_TAG == b"finvault-receipt/2 sd-jwt\x00"
    assert DATA_INTEGRITY_TAG == b"finvault-receipt/2 data-integrity\x00"
    secured = secure_sd_jwt(credential(), KEY, random_bytes=deterministic_bytes("tags"))
    jwt = secured.value.split("~")[0]  # type: ignore[union-attr]
    assert secured.digest == hashlib.sha256(SD_JWT_TAG + jwt.encode("ascii")).digest()
    assert secured.leaf == keccak256(keccak256(secured.digest)) == leaf_hash(secured.digest)
    whole = secure_data_integrity(
        credential(), KEY, created=ISSUED_AT, random_bytes=deterministic_bytes("tags")
    )
    assert whole.digest == hashlib.sha256(DATA_INTEGRITY_TAG + jcs(whole.value)).digest()
    # The same bytes under the two tags, and a finvault-doc/1 digest of the same credential, differ.
    assert data_integrity_digest(credential()) != hashlib.sha256(SD_JWT_TAG + jcs(credential())).digest()
    legacy = salt_document(credential(), deterministic_bytes("legacy")).digest
    assert legacy not in {secured.digest, whole.digest, data_integrity_digest(credential())}


@settings(max_examples=60, deadline=None)
@given(pair=st.one_of(credential_twins(), st.tuples(credentials(), credentials())))
@example(pair=(subject(PINNED_PAIRS[0][0]), subject(PINNED_PAIRS[0][1])))
@example(pair=(subject({"a": 1}), subject({"a": True})))
@example(pair=(subject({"a/b": 1}), subject({"a": {"b": 1}})))
def test_two_different_credentials_never_share_a_leaf(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    first, second = pair
    different = json_model(first) != json_model(second)
    # Data Integrity: over the unsecured JSON and over the secured credential.
    assert (data_integrity_digest(first) != data_integrity_digest(second)) is different
    # The same proof id for both (it is random in practice): only the credential tells them apart.
    secured = [
        secure_data_integrity(c, KEY, created=ISSUED_AT, random_bytes=deterministic_bytes("twin"))
        for c in pair
    ]
    assert (secured[0].leaf != secured[1].leaf) is different
    # SD-JWT, with the same randomness for both: only the credential tells them apart.
    sd = [secure_sd_jwt(c, KEY, random_bytes=deterministic_bytes("twins")) for c in pair]
    if different:
        assert sd[0].leaf != sd[1].leaf
    # ...and each SD-JWT carries its own credential, whole, once every disclosure is processed.
    for original, issued in zip(pair, sd, strict=True):
        shown = process_credential(parse_sd_jwt(issued.value))  # type: ignore[arg-type]
        controller = shown["issuer"]["id"] if isinstance(shown["issuer"], dict) else shown["issuer"]
        assert json_model(shown) == json_model(named_issuer(original, controller))
    assert {s.leaf for s in sd}.isdisjoint({s.leaf for s in secured})


@pytest.mark.parametrize(("a", "b"), PINNED_PAIRS)
def test_the_pinned_confusions_stay_apart(a: dict[str, Any], b: dict[str, Any]) -> None:
    first, second = subject(a), subject(b)
    assert data_integrity_digest(first) != data_integrity_digest(second)
    sd = [secure_sd_jwt(c, KEY, random_bytes=deterministic_bytes("pinned")) for c in (first, second)]
    assert sd[0].leaf != sd[1].leaf


# -- the known-answer vector -------------------------------------------------------------------


def test_the_vector_file_is_reproduced_byte_for_byte() -> None:
    """The file tests/vectors/generate_receipt_v2.py wrote is what the code makes today."""
    assert VECTOR_PATH.read_text(encoding="utf-8") == generate_receipt_v2.render(generate_receipt_v2.build())


def test_the_vector_digests_follow_from_its_bytes_alone() -> None:
    """Another implementation's view: each digest and leaf recomputed from the vector's own bytes
    with nothing but SHA-256, JCS and keccak256."""
    vector = json.loads(VECTOR_PATH.read_text(encoding="utf-8"))
    sd = vector["sdJwt"]
    jwt = sd["compact"].split("~")[0]
    assert jwt == sd["issuerSignedJwt"]
    assert sd["compact"] == "~".join([jwt, *sd["disclosures"], ""])
    digest = hashlib.sha256(vector["tags"]["sdJwt"].encode("ascii") + b"\x00" + jwt.encode("ascii")).digest()
    assert hex0x(digest) == sd["digest"]
    assert hex0x(keccak256(keccak256(digest))) == sd["leaf"]
    assert parse_sd_jwt(sd["compact"]).header["kid"] == vector["key"]["keyId"]
    di = vector["dataIntegrity"]
    canonical = jcs(di["credential"])
    assert canonical.decode("utf-8") == di["jcs"]
    digest = hashlib.sha256(vector["tags"]["dataIntegrity"].encode("ascii") + b"\x00" + canonical).digest()
    assert hex0x(digest) == di["digest"]
    assert hex0x(keccak256(keccak256(digest))) == di["leaf"]
    assert sd_jwt_digest(jwt.encode("ascii")).hex() == sd["digest"][2:]
