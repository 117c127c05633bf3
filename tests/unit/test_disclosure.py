"""Holders withholding fields: the core rules (chain/core/disclosure.py) and ``finvault disclose``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chain.core.disclosure import DisclosureError, show_only, withhold, withholdable
from chain.core.receipt import Receipt, parse_receipt
from chain.core.verify import Status, verify
from chain.entry import main
from tests.factories import StaticFacts, anchored, make_batch

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def issued(tmp_path: Path) -> tuple[StaticFacts, Receipt, Path]:
    facts, receipts = anchored(make_batch(2))
    receipt = next(receipts)
    path = tmp_path / "receipt.json"
    path.write_text(receipt.to_json())
    return facts, receipt, path


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``finvault disclose ARGS`` through the real entry point: its exit code, stdout and stderr."""

    def finvault_disclose(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(["disclose", *args])
            code = 0
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return finvault_disclose


def test_what_can_be_withheld_is_listed_without_array_elements(
    issued: tuple[StaticFacts, Receipt, Path], run: Callable[..., tuple[int, str, str]]
) -> None:
    _, receipt, path = issued
    pointers = list(withholdable(receipt.credential))
    assert "/credentialSubject" in pointers
    assert "/credentialSubject/grade" in pointers
    assert "/type" in pointers
    assert "/type/0" not in pointers  # one element of an array cannot go alone
    code, out, _ = run(str(path), "--list")
    assert code == 0
    assert '/credentialSubject/grade  "A"' in out.splitlines()
    assert "/credentialSubject/degree" in out.splitlines()


def test_a_disclosed_receipt_verifies_valid_and_reports_what_was_withheld(
    issued: tuple[StaticFacts, Receipt, Path], tmp_path: Path, run: Callable[..., tuple[int, str, str]]
) -> None:
    facts, _, path = issued
    out = tmp_path / "shared.json"
    code, _, err = run(
        str(path), "--hide", "/credentialSubject/grade", "--hide", "/credentialSubject/degree", "-o", str(out)
    )
    assert code == 0, err
    shared = parse_receipt(out.read_bytes())
    assert isinstance(shared, Receipt)
    assert "grade" not in shared.credential["credentialSubject"]
    assert "degree" not in shared.credential["credentialSubject"]
    assert len(shared.obfuscated) == 3  # grade, degree/type, degree/name
    assert out.stat().st_mode & 0o777 == 0o600
    verdict = verify(shared, facts, NOW)
    assert verdict.status is Status.VALID
    digest = next(c for c in verdict.checks if str(c.name) == "digest")
    assert "3 withheld by the holder" in (digest.detail or "")

    again = tmp_path / "smaller.json"  # a disclosed receipt can be disclosed again
    assert run(str(out), "--hide", "/credentialSubject/credits", "-o", str(again))[0] == 0
    assert verify(parse_receipt(again.read_bytes()), facts, NOW).status is Status.VALID
    smaller = parse_receipt(again.read_bytes())
    assert isinstance(smaller, Receipt)
    assert len(smaller.obfuscated) == 4


def test_show_is_the_allow_list_form(
    issued: tuple[StaticFacts, Receipt, Path], run: Callable[..., tuple[int, str, str]]
) -> None:
    facts, receipt, path = issued
    shared = show_only(receipt.document, ["/credentialSubject/name", "/type", "/@context"])
    assert shared.credential == {
        "@context": receipt.credential["@context"],
        "type": receipt.credential["type"],
        "credentialSubject": {"name": receipt.credential["credentialSubject"]["name"]},
    }
    code, out, _ = run(str(path), "--show", "/credentialSubject/name")
    assert code == 0
    assert verify(parse_receipt(out), facts, NOW).status is Status.VALID


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hide", "/credentialSubject/nope"], "/credentialSubject/nope: no disclosed field here"),
        (["--hide", "/type/1"], "/type/1: one element of an array cannot be withheld"),
        (["--hide", "credentialSubject"], "a JSON pointer starts with '/'"),
        (["--hide", ""], "withholding the whole credential"),
        (["--show", "/type/0"], "/type/1: showing part of an array"),
        (["--hide", "/grade", "--show", "/name"], "one of the three"),
        ([], "one of the three"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    issued: tuple[StaticFacts, Receipt, Path],
    tmp_path: Path,
    args: list[str],
    message: str,
    run: Callable[..., tuple[int, str, str]],
) -> None:
    _, _, path = issued
    out = tmp_path / "out.json"
    code, stdout, stderr = run(str(path), *args, "-o", str(out))
    assert code == 2
    assert message in stderr
    assert stdout == ""
    assert not out.exists()


def test_a_field_already_withheld_cannot_be_withheld_again(issued: tuple[StaticFacts, Receipt, Path]) -> None:
    _, receipt, _ = issued
    once = withhold(receipt.document, ["/credentialSubject/grade"])
    with pytest.raises(DisclosureError, match="already withheld"):
        withhold(once, ["/credentialSubject/grade"])


def test_what_is_not_a_receipt_is_refused(tmp_path: Path, run: Callable[..., tuple[int, str, str]]) -> None:
    for name, text in (("notes.txt", "hello"), ("other.json", json.dumps({"format": "something/1"}))):
        (tmp_path / name).write_text(text)
        code, _, stderr = run(str(tmp_path / name), "--list")
        assert code == 2
        assert "is not a finvault receipt" in stderr
    code, _, stderr = run(str(tmp_path / "missing.json"), "--list")
    assert code == 2
    assert "cannot read" in stderr
