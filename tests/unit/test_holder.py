"""``finvault disclose`` and ``finvault qr`` on finvault-receipt/2 (and /1, legacy), through the
real commands, their output verified by the core against facts where the batch is anchored."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from chain.core.issuance import verification_link
from chain.core.merkle import MerkleTree
from chain.core.receipt import Receipt, ReceiptV2, parse_receipt
from chain.core.sd_jwt import parse_sd_jwt, process_credential, withhold
from chain.core.secured import DATA_INTEGRITY, SD_JWT, SecuredCredential
from chain.core.verify import Status, verify
from chain.errors import ConfigError
from chain.holder import disclose, qr_command
from chain.keys import generate_private_key
from chain.qr import qr_png
from tests.factories import (
    SecuredBatch,
    StaticFacts,
    anchored,
    anchored_v2,
    credential,
    make_batch,
    secure,
)

NOW = datetime(2026, 11, 23, tzinfo=UTC)
COURSES = ["Algebra", "Logic", {"title": "Compilers", "grade": "B"}]


def courses_credential(name: str = "Ada") -> dict[str, Any]:
    """A degree with a list of courses: every element is disclosable on its own."""
    claims = credential(name)
    claims["credentialSubject"]["courses"] = COURSES
    return claims


def anchored_receipts(securing: str = SD_JWT) -> tuple[StaticFacts, list[ReceiptV2]]:
    key = generate_private_key("ed25519")
    secured: list[SecuredCredential] = [
        secure(courses_credential(f"Student {i}"), key, securing, seed=f"holder/{i}")  # type: ignore[arg-type]
        for i in range(2)
    ]
    return anchored_v2(SecuredBatch(key, secured, MerkleTree([s.digest for s in secured])))


@pytest.fixture(scope="module")
def v2() -> tuple[StaticFacts, list[ReceiptV2]]:
    return anchored_receipts()


def run(command: Any, *args: str) -> Result:
    return CliRunner(mix_stderr=False).invoke(command, list(args))


def write(tmp_path: Path, receipt: Receipt | ReceiptV2, name: str = "receipt.json") -> Path:
    path = tmp_path / name
    path.write_text(receipt.to_json())
    return path


def disclosed(receipt: Receipt | ReceiptV2) -> dict[str, Any]:
    assert isinstance(receipt, ReceiptV2)
    assert isinstance(receipt.credential, str)
    return process_credential(parse_sd_jwt(receipt.credential))


def test_list_names_every_disclosable_claim_down_to_array_elements(
    v2: tuple[StaticFacts, list[ReceiptV2]], tmp_path: Path
) -> None:
    result = run(disclose, str(write(tmp_path, v2[1][0])), "--list")
    assert result.exit_code == 0, result.stderr
    listed = dict(line.split("  ", 1) for line in result.stdout.splitlines())
    assert listed["/credentialSubject/grade"] == '"A"'
    assert listed["/credentialSubject/courses"] == "[3 elements]"
    assert listed["/credentialSubject/courses/1"] == '"Logic"'
    assert listed["/credentialSubject/courses/2"] == "{2 members}"
    assert listed["/credentialSubject/courses/2/grade"] == '"B"'
    assert not {"/issuer", "/validFrom", "/credentialSubject/type"} & set(listed)


def test_hide_drops_one_array_element_and_the_result_verifies(
    v2: tuple[StaticFacts, list[ReceiptV2]], tmp_path: Path
) -> None:
    facts, [receipt, _] = v2
    out = tmp_path / "shared.json"
    hidden = ["/credentialSubject/courses/1", "/credentialSubject/grade"]
    result = run(disclose, str(write(tmp_path, receipt)), *(f"--hide={p}" for p in hidden), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert "2 claims withheld" in result.stderr
    shared = parse_receipt(out.read_bytes())
    assert isinstance(shared, ReceiptV2)
    assert isinstance(receipt.credential, str)
    assert shared.credential == withhold(receipt.credential, pointers=hidden)
    assert (shared.proof, shared.anchor) == (receipt.proof, receipt.anchor)
    subject = disclosed(shared)["credentialSubject"]
    assert subject["courses"] == ["Algebra", COURSES[2]]
    assert "grade" not in subject
    verdict = verify(shared, facts, NOW)
    assert verdict.status is Status.VALID, verdict.reasons
    assert verdict.credential == disclosed(shared)


def test_hiding_a_parent_drops_its_children(v2: tuple[StaticFacts, list[ReceiptV2]], tmp_path: Path) -> None:
    facts, [receipt, _] = v2
    result = run(disclose, str(write(tmp_path, receipt)), "--hide", "/credentialSubject/courses")
    assert result.exit_code == 0, result.stderr
    shared = parse_receipt(result.stdout)
    assert "courses" not in disclosed(shared)["credentialSubject"]
    assert isinstance(shared.credential, str)
    assert isinstance(receipt.credential, str)
    # the array, its 3 elements and the member inside the third element's object: 6 disclosures
    assert (
        len(parse_sd_jwt(receipt.credential).disclosures) - len(parse_sd_jwt(shared.credential).disclosures)
        == 6
    )
    assert verify(shared, facts, NOW).status is Status.VALID


def test_show_keeps_only_what_is_named_and_what_holds_it(
    v2: tuple[StaticFacts, list[ReceiptV2]], tmp_path: Path
) -> None:
    facts, [receipt, _] = v2
    result = run(disclose, str(write(tmp_path, receipt)), "--show", "/credentialSubject/courses/2/title")
    assert result.exit_code == 0, result.stderr
    shared = parse_receipt(result.stdout)
    shown = disclosed(shared)
    assert shown["credentialSubject"] == {"courses": [{"title": "Compilers"}]}
    assert shown["issuer"] == disclosed(receipt)["issuer"]  # always shown
    assert verify(shared, facts, NOW).status is Status.VALID


@pytest.mark.parametrize(
    ("option", "pointer", "words"),
    [
        (
            "--hide",
            "/credentialSubject/nope",
            "'/credentialSubject/nope' names no selectively disclosed claim",
        ),
        ("--hide", "/issuer", "'/issuer' names no selectively disclosed claim"),
        ("--hide", "/credentialSubject/courses/7", "'/credentialSubject/courses/7' names no"),
        ("--show", "/credentialSubject/nope", "'/credentialSubject/nope': no such claim"),
        ("--show", "credentialSubject", "'credentialSubject' is not a JSON Pointer"),
    ],
)
def test_a_bad_pointer_is_one_line_naming_it_and_nothing_is_written(
    v2: tuple[StaticFacts, list[ReceiptV2]], tmp_path: Path, option: str, pointer: str, words: str
) -> None:
    out = tmp_path / "shared.json"
    result = run(disclose, str(write(tmp_path, v2[1][0])), option, pointer, "-o", str(out))
    assert isinstance(result.exception, ConfigError)  # one line, exit 2 (chain/entry.py)
    assert words in str(result.exception)
    assert "\n" not in str(result.exception)
    assert not out.exists()


def test_a_data_integrity_receipt_cannot_be_disclosed_in_part(tmp_path: Path) -> None:
    _, [receipt, _] = anchored_receipts(DATA_INTEGRITY)
    out = tmp_path / "shared.json"
    for args in (["--hide", "/credentialSubject/grade"], ["--list"]):
        result = run(disclose, str(write(tmp_path, receipt)), *args, "-o", str(out))
        assert isinstance(result.exception, ConfigError)
        assert "Data Integrity credential" in str(result.exception)
        assert "share it whole" in str(result.exception)
        assert result.stdout == ""
    assert not out.exists()


def test_a_legacy_receipt_is_disclosed_as_before(tmp_path: Path) -> None:
    facts, receipts = anchored(make_batch(2, seed="holder-legacy"))
    receipt = next(receipts)
    result = run(disclose, str(write(tmp_path, receipt)), "--hide", "/credentialSubject/grade")
    assert result.exit_code == 0, result.stderr
    shared = parse_receipt(result.stdout)
    assert isinstance(shared, Receipt)
    assert "grade" not in shared.credential["credentialSubject"]
    assert len(shared.obfuscated) == 1
    assert verify(shared, facts, NOW).status is Status.VALID
    refused = run(disclose, str(write(tmp_path, receipt)), "--hide", "/type/0")
    assert isinstance(refused.exception, ConfigError)


def test_qr_of_a_v2_receipt_needs_a_node_url_and_links_to_its_leaf(
    v2: tuple[StaticFacts, list[ReceiptV2]], tmp_path: Path
) -> None:
    facts, [receipt, _] = v2
    path = write(tmp_path, receipt, "cert.json")
    refused = run(qr_command, str(path))
    assert isinstance(refused.exception, ConfigError)
    assert "pass --node-url URL" in str(refused.exception)
    assert not (tmp_path / "cert.png").exists()
    assert isinstance(run(qr_command, str(path), "--node-url", "node.example").exception, ConfigError)

    result = run(qr_command, str(path), "--node-url", "https://node.example/")
    assert result.exit_code == 0, result.stderr
    leaf = bytes.fromhex(verify(receipt, facts, NOW).evidence["leaf"][2:])
    link = verification_link("https://node.example", leaf)
    assert link == f"https://node.example/v/0x{leaf.hex()}"
    assert (tmp_path / "cert.png").read_bytes() == qr_png(link)


def test_qr_of_a_legacy_receipt_uses_its_link(tmp_path: Path) -> None:
    _, receipts = anchored(make_batch(1, seed="holder-qr"))
    receipt = next(receipts).model_copy(update={"link": "https://node.example/v/0x" + "ab" * 32})
    path = write(tmp_path, receipt, "old.json")
    assert run(qr_command, str(path)).exit_code == 0
    assert receipt.link is not None
    assert (tmp_path / "old.png").read_bytes() == qr_png(receipt.link)
    assert json.loads(path.read_text())["format"] == "finvault-receipt/1"
