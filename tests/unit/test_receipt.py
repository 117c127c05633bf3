"""chain.core.receipt (finvault-receipt/1): round trips, strict rejection naming the field, fuzzing."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chain.core.canonical import MAX_SAFE_INTEGER, recompute_digest, salt_document
from chain.core.receipt import (
    LEGACY_FORMAT,
    MAX_PROOF_LENGTH,
    MAX_RECEIPT_BYTES,
    Anchor,
    Proof,
    Receipt,
    ReceiptError,
    Signature,
    build_receipt,
    parse_receipt,
)
from chain.core.signing import PublicKeyInfo, public_key_info, sign_digest, verify_digest
from chain.keys import generate_private_key
from tests.strategies import json_values, unicode_text

CREDENTIAL: dict[str, Any] = {
    "@context": ["https://www.w3.org/ns/credentials/v2"],
    "id": "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33",
    "type": ["VerifiableCredential", "UniversityDegreeCredential"],
    "issuer": {"id": "did:web:example.edu", "name": "Example University"},
    "validFrom": "2024-06-30T00:00:00Z",
    "credentialSubject": {
        "id": "did:example:ebfeb1f712ebc6f1c276e12ec21",
        "name": "Zoë Müller 山田",
        "birthDate": "1999-02-03",
        "degree": {"type": "BachelorDegree", "name": "Bachelor of Science"},
        "gpa": 3.85,
        "credits": 180,
    },
}


def fake_hex(label: str, size: int = 32) -> str:
    return "0x" + hashlib.sha256(label.encode()).hexdigest()[: 2 * size]


def make_receipt(hide: tuple[str, ...] = ("/credentialSubject/birthDate",)) -> tuple[Receipt, PublicKeyInfo]:
    document = salt_document(CREDENTIAL, os.urandom).disclose(hide)
    key = generate_private_key("ed25519")
    signature = Signature(
        keyId="0x" + public_key_info(key).key_id.hex(),
        algorithm="ed25519",
        value=base64.b64encode(sign_digest(key, document.digest)).decode(),
    )
    proof = Proof(
        leaf=fake_hex("leaf"), path=[fake_hex(f"sibling{i}") for i in range(5)], root=fake_hex("root")
    )
    anchor = Anchor(
        chainId=11155111,
        registry=fake_hex("registry", 20),
        issuer=fake_hex("issuer", 20),
        txHash=fake_hex("tx"),
        blockNumber=6_543_210,
    )
    receipt = build_receipt(
        document, signature=signature, proof=proof, anchor=anchor, link="https://node.example/v/0x1"
    )
    return receipt, public_key_info(key)


RECEIPT, _ = make_receipt()
GOOD: dict[str, Any] = RECEIPT.to_json_dict()


def test_built_receipt_is_consistent() -> None:
    receipt, info = make_receipt()
    assert receipt.format == LEGACY_FORMAT
    assert "birthDate" not in receipt.credential["credentialSubject"]
    assert len(receipt.obfuscated) == 1
    document = receipt.document
    assert recompute_digest(document.credential, document.salts, document.obfuscated) == document.digest
    assert receipt.digest == "0x" + document.digest.hex()
    assert receipt.signature.key_id == "0x" + info.key_id.hex()
    assert len(receipt.signature.raw) == 64
    assert verify_digest(info, document.digest, receipt.signature.raw)
    other = public_key_info(generate_private_key("ed25519"))
    assert not verify_digest(other, document.digest, receipt.signature.raw)
    assert not verify_digest(info, bytes(32), receipt.signature.raw)


def test_signature_verifies() -> None:
    document = salt_document(CREDENTIAL, os.urandom)
    key = generate_private_key("ed25519")
    info = public_key_info(key)
    raw = sign_digest(key, document.digest)
    receipt = build_receipt(
        document,
        signature=Signature(
            keyId="0x" + info.key_id.hex(), algorithm="ed25519", value=base64.b64encode(raw).decode()
        ),
        proof=Proof(leaf=fake_hex("l"), path=[], root=fake_hex("l")),
        anchor=Anchor(
            chainId=1,
            registry=fake_hex("r", 20),
            issuer=fake_hex("i", 20),
            txHash=fake_hex("t"),
            blockNumber=1,
        ),
    )
    parsed = parse_receipt(receipt.to_json())
    assert verify_digest(info, parsed.document.digest, parsed.signature.raw)
    assert parsed.link is None
    assert "link" not in parsed.to_json_dict()


def test_round_trip() -> None:
    text = RECEIPT.to_json()
    assert text.endswith("\n")
    assert parse_receipt(text) == RECEIPT
    assert parse_receipt(text.encode()) == RECEIPT
    assert parse_receipt(RECEIPT.to_json(indent=None)) == RECEIPT
    assert parse_receipt(GOOD) == RECEIPT
    assert parse_receipt(RECEIPT.to_json()).to_json() == text
    assert "Zoë Müller 山田" in text  # ensure_ascii=False
    assert list(GOOD) == [
        "format",
        "credential",
        "salts",
        "obfuscated",
        "digest",
        "signature",
        "proof",
        "anchor",
        "link",
    ]
    assert list(GOOD["signature"]) == ["keyId", "algorithm", "value"]
    assert list(GOOD["anchor"]) == ["chainId", "registry", "issuer", "txHash", "blockNumber"]


def test_optional_fields() -> None:
    minimal = copy.deepcopy(GOOD)
    del minimal["obfuscated"], minimal["link"]
    parsed = parse_receipt(json.dumps(minimal))
    assert parsed.obfuscated == []
    assert parsed.link is None
    assert parse_receipt(json.dumps({**GOOD, "link": None})).link is None


def test_rsa_algorithm_is_accepted() -> None:
    key = generate_private_key("rsa-2048")
    raw = sign_digest(key, RECEIPT.document.digest)
    signature = {
        "keyId": fake_hex("rsa"),
        "algorithm": "rsa-pkcs1v15-sha256",
        "value": base64.b64encode(raw).decode(),
    }
    assert parse_receipt({**GOOD, "signature": signature}).signature.raw == raw


# --- hypothesis round trip ----------------------------------------------------------------------

hex32 = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
text = unicode_text
json_objects = st.dictionaries(text, json_values, max_size=6)

signatures = st.builds(
    Signature,
    keyId=hex32,
    algorithm=st.sampled_from(["ed25519", "rsa-pkcs1v15-sha256"]),
    value=st.binary(min_size=1, max_size=512).map(lambda b: base64.b64encode(b).decode()),
)
proofs = st.builds(Proof, leaf=hex32, path=st.lists(hex32, max_size=MAX_PROOF_LENGTH), root=hex32)
anchors = st.builds(
    Anchor,
    chainId=st.integers(1, MAX_SAFE_INTEGER),
    registry=addresses,
    issuer=addresses,
    txHash=hex32,
    blockNumber=st.integers(1, MAX_SAFE_INTEGER),
)
receipts = st.builds(
    Receipt,
    format=st.just(LEGACY_FORMAT),
    credential=json_objects,
    salts=st.dictionaries(text, hex32, max_size=6),
    obfuscated=st.lists(hex32, max_size=6),
    digest=hex32,
    signature=signatures,
    proof=proofs,
    anchor=anchors,
    link=st.none() | st.text(st.characters(exclude_categories=["Cs"]), max_size=2048),
)


@settings(max_examples=150, deadline=None)
@given(receipt=receipts)
@example(receipt=RECEIPT)
def test_round_trip_of_random_receipts(receipt: Receipt) -> None:
    assert parse_receipt(receipt.to_json()) == receipt
    assert parse_receipt(receipt.to_json(indent=None).encode()) == receipt
    assert parse_receipt(receipt.to_json_dict()) == receipt


# --- strict rejection naming the field ----------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def drop(*path: str) -> Mutation:
    def mutate(receipt: dict[str, Any]) -> None:
        node = receipt
        for step in path[:-1]:
            node = node[step]
        del node[path[-1]]

    return mutate


def put(*path: str | int, value: Any) -> Mutation:
    def mutate(receipt: dict[str, Any]) -> None:
        node: Any = receipt
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value

    return mutate


UPPER = "0x" + "AB" * 32
SHORT = "0x" + "ab" * 31
NO_PREFIX = "ab" * 32

REJECTIONS: list[tuple[str, Mutation, str]] = [
    *[(f"missing {name}", drop(name), name) for name in ("format", "credential", "salts", "digest")],
    *[(f"missing {name}", drop(name), name) for name in ("signature", "proof", "anchor")],
    ("missing signature.keyId", drop("signature", "keyId"), "signature.keyId"),
    ("missing signature.algorithm", drop("signature", "algorithm"), "signature.algorithm"),
    ("missing signature.value", drop("signature", "value"), "signature.value"),
    ("missing proof.leaf", drop("proof", "leaf"), "proof.leaf"),
    ("missing proof.path", drop("proof", "path"), "proof.path"),
    ("missing proof.root", drop("proof", "root"), "proof.root"),
    ("missing anchor.chainId", drop("anchor", "chainId"), "anchor.chainId"),
    ("missing anchor.registry", drop("anchor", "registry"), "anchor.registry"),
    ("missing anchor.issuer", drop("anchor", "issuer"), "anchor.issuer"),
    ("missing anchor.txHash", drop("anchor", "txHash"), "anchor.txHash"),
    ("missing anchor.blockNumber", drop("anchor", "blockNumber"), "anchor.blockNumber"),
    ("extra top-level", put("extra", value=1), "extra"),
    ("extra in signature", put("signature", "note", value="x"), "signature.note"),
    ("extra in proof", put("proof", "leaves", value=[]), "proof.leaves"),
    ("extra in anchor", put("anchor", "network", value="sepolia"), "anchor.network"),
    ("format version", put("format", value="finvault-receipt/3"), "format"),
    ("format case", put("format", value="FINVAULT-RECEIPT/1"), "format"),
    ("format not a string", put("format", value=1), "format"),
    ("digest uppercase", put("digest", value=UPPER), "digest"),
    ("digest short", put("digest", value=SHORT), "digest"),
    ("digest long", put("digest", value="0x" + "ab" * 33), "digest"),
    ("digest without 0x", put("digest", value=NO_PREFIX), "digest"),
    ("digest trailing newline", put("digest", value="0x" + "ab" * 32 + "\n"), "digest"),
    ("digest as bytes list", put("digest", value=list(range(32))), "digest"),
    ("salt uppercase", put("salts", "/name", value=UPPER), "salts./name"),
    ("salt short", put("salts", "/name", value=SHORT), "salts./name"),
    ("salts not an object", put("salts", value=[]), "salts"),
    ("obfuscated entry uppercase", put("obfuscated", 0, value=UPPER), "obfuscated.0"),
    ("obfuscated not a list", put("obfuscated", value=UPPER), "obfuscated"),
    ("credential not an object", put("credential", value=[1]), "credential"),
    ("keyId uppercase", put("signature", "keyId", value=UPPER), "signature.keyId"),
    ("keyId without 0x", put("signature", "keyId", value=NO_PREFIX), "signature.keyId"),
    ("signature value not base64", put("signature", "value", value="not base64!"), "signature.value"),
    ("signature value bad padding", put("signature", "value", value="AAA"), "signature.value"),
    ("signature value url-safe", put("signature", "value", value="ab-_"), "signature.value"),
    ("signature value non-ASCII", put("signature", "value", value="é="), "signature.value"),
    ("signature value too long", put("signature", "value", value="AAAA" * 1025), "signature.value"),
    ("signature value not a string", put("signature", "value", value=12), "signature.value"),
    ("algorithm unknown", put("signature", "algorithm", value="ecdsa-p256"), "signature.algorithm"),
    ("algorithm case", put("signature", "algorithm", value="Ed25519"), "signature.algorithm"),
    ("algorithm on-chain code", put("signature", "algorithm", value=1), "signature.algorithm"),
    ("proof.leaf short", put("proof", "leaf", value=SHORT), "proof.leaf"),
    ("proof.root uppercase", put("proof", "root", value=UPPER), "proof.root"),
    ("proof.path entry", put("proof", "path", 3, value=NO_PREFIX), "proof.path.3"),
    (
        "proof.path too long",
        put("proof", "path", value=[fake_hex("p")] * (MAX_PROOF_LENGTH + 1)),
        "proof.path",
    ),
    ("proof.path not a list", put("proof", "path", value=fake_hex("p")), "proof.path"),
    ("chainId string", put("anchor", "chainId", value="1"), "anchor.chainId"),
    ("chainId float", put("anchor", "chainId", value=1.0), "anchor.chainId"),
    ("chainId bool", put("anchor", "chainId", value=True), "anchor.chainId"),
    ("chainId zero", put("anchor", "chainId", value=0), "anchor.chainId"),
    ("chainId negative", put("anchor", "chainId", value=-1), "anchor.chainId"),
    ("chainId null", put("anchor", "chainId", value=None), "anchor.chainId"),
    ("blockNumber negative", put("anchor", "blockNumber", value=-5), "anchor.blockNumber"),
    ("blockNumber zero", put("anchor", "blockNumber", value=0), "anchor.blockNumber"),
    ("blockNumber hex string", put("anchor", "blockNumber", value="0x10"), "anchor.blockNumber"),
    (
        "registry uppercase (checksummed)",
        put("anchor", "registry", value="0x" + "AB" * 20),
        "anchor.registry",
    ),
    ("issuer too short", put("anchor", "issuer", value="0x" + "ab" * 19), "anchor.issuer"),
    ("txHash without 0x", put("anchor", "txHash", value=NO_PREFIX), "anchor.txHash"),
    ("link too long", put("link", value="https://x/" + "a" * 2039), "link"),
    ("link not a string", put("link", value=5), "link"),
]


@pytest.mark.parametrize(("mutation", "field"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS])
def test_rejection_names_the_field(mutation: Mutation, field: str) -> None:
    receipt = copy.deepcopy(GOOD)
    mutation(receipt)
    for source in (json.dumps(receipt), json.dumps(receipt).encode(), receipt):
        with pytest.raises(ReceiptError) as exc_info:
            parse_receipt(source)
        assert exc_info.value.field == field
        assert str(exc_info.value).startswith(f"{field}: ")
        assert exc_info.value.code == "receipt_malformed"


def test_link_at_the_limit_is_accepted() -> None:
    assert parse_receipt({**GOOD, "link": "a" * 2048}).link == "a" * 2048
    path = [fake_hex("p")] * MAX_PROOF_LENGTH
    assert len(parse_receipt({**GOOD, "proof": {**GOOD["proof"], "path": path}}).proof.path) == 64


def test_several_errors_are_counted() -> None:
    with pytest.raises(ReceiptError, match=r"\(and 2 more\)") as exc_info:
        parse_receipt({k: v for k, v in GOOD.items() if k not in ("digest", "proof", "anchor")})
    assert exc_info.value.field in ("digest", "proof", "anchor")


GOOD_TEXT = json.dumps(GOOD)

TEXT_REJECTIONS: list[tuple[str, str | bytes, str]] = [
    (
        "duplicate top-level key",
        GOOD_TEXT[:-1] + ', "digest": "' + GOOD["digest"] + '"}',
        "duplicate key 'digest'",
    ),
    (
        "duplicate nested key",
        GOOD_TEXT.replace('"algorithm": "ed25519"', '"algorithm": "ed25519", "algorithm": "ed25519"'),
        "duplicate key",
    ),
    (
        "duplicate credential key",
        GOOD_TEXT.replace('"validFrom"', '"id": 1, "validFrom"'),
        "duplicate key 'id'",
    ),
    ("array", "[" + GOOD_TEXT + "]", "a receipt must be a JSON object"),
    ("string", '"receipt"', "a receipt must be a JSON object"),
    ("number", "1", "a receipt must be a JSON object"),
    ("null", "null", "a receipt must be a JSON object"),
    ("empty", "", "invalid JSON"),
    ("truncated", GOOD_TEXT[:-1], "invalid JSON"),
    ("trailing garbage", GOOD_TEXT + "x", "invalid JSON"),
    ("single quotes", "{'format': 1}", "invalid JSON"),
    ("NaN", GOOD_TEXT.replace('"gpa": 3.85', '"gpa": NaN'), "NaN is not valid JSON"),
    ("Infinity", GOOD_TEXT.replace('"gpa": 3.85', '"gpa": Infinity'), "Infinity is not valid JSON"),
    ("oversized", GOOD_TEXT + " " * MAX_RECEIPT_BYTES, "524,288"),
    ("oversized bytes", GOOD_TEXT.encode() + b" " * MAX_RECEIPT_BYTES, "the limit is 524,288"),
    (
        "invalid UTF-8",
        GOOD_TEXT.encode().replace(b"Example University", b"Example \xff University"),
        "not UTF-8",
    ),
    ("truncated UTF-8", RECEIPT.to_json().encode().replace("Zoë".encode(), b"Zo\xc3"), "not UTF-8"),
    ("overlong UTF-8", GOOD_TEXT.encode().replace(b"/name", b"\xc0\xafname"), "not UTF-8"),
]


@pytest.mark.parametrize(
    ("source", "message"), [r[1:] for r in TEXT_REJECTIONS], ids=[r[0] for r in TEXT_REJECTIONS]
)
def test_json_level_rejection(source: str | bytes, message: str) -> None:
    assert source not in (GOOD_TEXT, GOOD_TEXT.encode(), RECEIPT.to_json().encode())  # the edit took
    with pytest.raises(ReceiptError, match=message) as exc_info:
        parse_receipt(source)
    assert exc_info.value.field is None


def test_deep_nesting_is_a_receipt_error() -> None:
    text = '{"credential": ' + "[" * 60_000 + "]" * 60_000 + "}"  # under the receipt's 65,536 values
    # See test_canonical.test_pathologically_deep_json_is_a_document_error: needs the default limit.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        with pytest.raises(ReceiptError, match="nested too deeply") as exc_info:
            parse_receipt(text)
    finally:
        sys.setrecursionlimit(limit)
    assert exc_info.value.field is None


def test_values_beyond_a_receipts_limit_are_refused_before_parsing() -> None:
    with pytest.raises(ReceiptError, match="more than 65,536 JSON values"):
        parse_receipt('{"credential": ' + "[" * 70_000 + "]" * 70_000 + "}")


def test_size_limit_boundary() -> None:
    padded = GOOD_TEXT + " " * (MAX_RECEIPT_BYTES - len(GOOD_TEXT))
    assert len(padded) == MAX_RECEIPT_BYTES
    assert parse_receipt(padded) == RECEIPT
    assert parse_receipt(padded.encode()) == RECEIPT
    with pytest.raises(ReceiptError, match="524,288 bytes"):
        parse_receipt(padded + " ")
    with pytest.raises(ReceiptError, match="524,289 bytes; the limit is 524,288"):
        parse_receipt((padded + " ").encode())


def test_receipt_error_is_a_value_error() -> None:
    error = ReceiptError("boom", field="anchor.chainId")
    assert isinstance(error, ValueError)
    assert error.field == "anchor.chainId"
    assert str(error) == "anchor.chainId: boom"
    assert str(ReceiptError("boom")) == "boom"


# --- fuzzing: only ever ReceiptError ------------------------------------------------------------


def parse_or_error(source: Any) -> Receipt | ReceiptError:
    try:
        return parse_receipt(source)
    except ReceiptError as exc:
        return exc


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400))
@example(data=b"\xff\xfe")
@example(data=b"\x00\x00\x00{")
@example(data=b"\xef\xbb\xbf")
@example(data=b'{"a": "\\ud800"}')
@example(data=b"-")
@example(data=b"1e999999")
def test_arbitrary_bytes_only_raise_receipt_error(data: bytes) -> None:
    assert isinstance(parse_or_error(data), ReceiptError)  # no random bytes are a receipt
    assert isinstance(parse_or_error(data.decode("latin-1")), ReceiptError)


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_arbitrary_json_only_raises_receipt_error(value: Any) -> None:
    assert isinstance(parse_or_error(json.dumps(value)), ReceiptError)
    assert isinstance(parse_or_error(json.dumps(value, ensure_ascii=False).encode()), ReceiptError)
    assert isinstance(parse_or_error(value), ReceiptError)  # also objects handed over already parsed


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_receipts_only_raise_receipt_error(data: Any) -> None:
    receipt = copy.deepcopy(GOOD)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(paths(receipt)[1:]), label="path")
        parent: Any = receipt
        for step in path[:-1]:
            parent = parent[step]
        action = data.draw(st.sampled_from(["replace", "delete", "insert"]), label="action")
        if action == "replace":
            parent[path[-1]] = data.draw(json_values, label="value")
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(text, label="key")] = data.draw(json_values, label="value")
        else:
            parent.insert(path[-1], data.draw(json_values, label="value"))
    for source in (json.dumps(receipt), json.dumps(receipt, ensure_ascii=False).encode(), receipt):
        result = parse_or_error(source)
        if isinstance(result, Receipt):
            assert parse_receipt(result.to_json()) == result


# --- formerly bugs, now pinned ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "alias", "name"),
    [
        ("signature", "keyId", "key_id"),
        ("anchor", "chainId", "chain_id"),
        ("anchor", "txHash", "tx_hash"),
        ("anchor", "blockNumber", "block_number"),
    ],
)
def test_snake_case_field_names_are_rejected(section: str, alias: str, name: str) -> None:
    """The frozen format spells fields in camelCase only: one receipt, one JSON shape."""
    renamed = copy.deepcopy(GOOD)
    renamed[section][name] = renamed[section].pop(alias)
    with pytest.raises(ReceiptError) as exc_info:
        parse_receipt(json.dumps(renamed))
    assert exc_info.value.field in (f"{section}.{alias}", f"{section}.{name}")
    both = copy.deepcopy(GOOD)
    both[section][name] = both[section][alias]
    with pytest.raises(ReceiptError, match="Extra inputs"):
        parse_receipt(both)


@pytest.mark.parametrize("digits", [17, 4300, 5000, 50_000])
def test_huge_integer_literal_is_a_receipt_error(digits: int) -> None:
    with pytest.raises(ReceiptError, match="too large") as exc_info:
        parse_receipt(GOOD_TEXT.replace('"credits": 180', '"credits": ' + "9" * digits))
    assert exc_info.value.field is None


@pytest.mark.parametrize(
    "source",
    [
        GOOD_TEXT.encode().replace(b'"validFrom"', b'"\xed\xa0\x80"'),  # an encoded surrogate key
        GOOD_TEXT.encode().replace(b'"urn:uuid:', b'"\xed\xb0\x80'),
        GOOD_TEXT.encode("utf-16"),
        GOOD_TEXT.encode("utf-32"),
        b"\xef\xbb\xbf" + GOOD_TEXT.encode(),  # a UTF-8 byte order mark
    ],
    # GOOD_TEXT holds fresh salts and keys: ids from the bytes would differ between xdist workers.
    ids=["surrogate-key", "surrogate-value", "utf-16", "utf-32", "utf-8-bom"],
)
def test_only_utf8_bytes_are_accepted(source: bytes) -> None:
    assert source != GOOD_TEXT.encode()
    with pytest.raises(ReceiptError, match=r"not UTF-8|invalid JSON"):
        parse_receipt(source)


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "1.7976931348623159e308"])
def test_overflowing_number_is_rejected(literal: str) -> None:
    with pytest.raises(ReceiptError, match="does not fit a double"):
        parse_receipt(GOOD_TEXT.replace('"gpa": 3.85', '"gpa": ' + literal))


def test_size_limit_counts_utf8_bytes() -> None:
    source = GOOD_TEXT.replace('"Example University"', '"' + "山" * (MAX_RECEIPT_BYTES // 3) + '"')
    assert len(source) <= MAX_RECEIPT_BYTES < len(source.encode())
    with pytest.raises(ReceiptError, match="524,288 bytes"):
        parse_receipt(source)
    with pytest.raises(ReceiptError, match="524,288"):
        parse_receipt(source.encode())


# --- regressions of bugs found while writing these tests --------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [('"validFrom"', '"\\ud800"'), ('"2024-06-30T00:00:00Z"', '"\\udc00x"'), ('"/issuer/name"', '"\\ud800"')],
)
def test_lone_surrogate_escapes_are_rejected(old: str, new: str) -> None:
    source = GOOD_TEXT.replace(old, new)
    assert source != GOOD_TEXT
    with pytest.raises(ReceiptError):
        parse_receipt(source)


@pytest.mark.parametrize("field", ["chainId", "blockNumber"])
def test_every_receipt_the_model_accepts_parses(field: str) -> None:
    anchor = {**GOOD["anchor"], field: 10**16}
    try:
        receipt = Receipt.model_validate({**GOOD, "anchor": anchor})
    except ValidationError:
        return  # the model refuses it too: consistent
    assert parse_receipt(receipt.to_json()) == receipt
