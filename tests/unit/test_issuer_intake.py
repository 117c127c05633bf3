"""Intake: streaming CSV, JSON Lines and JSON arrays, with line-numbered rejections."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from issuer import intake
from issuer.errors import IntakeError
from issuer.intake import Accepted, InputFormat, IntakeResult, Rejected, read_input
from issuer.template import Template, load_template

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "issuer"
TEMPLATE = load_template(FIXTURES / "degree-template.json")
VC: dict[str, Any] = {
    "@context": ["https://www.w3.org/ns/credentials/v2"],
    "type": ["VerifiableCredential"],
    "issuer": "did:example:issuer",
    "credentialSubject": {"name": "{{name}}", "credits": {"$int": "credits"}},
}
SIMPLE = Template(VC)
ROW = {"id": "c-1", "name": "Ada", "credits": 120}


class Mentions(str):
    """Equal to any text containing it: for reasons whose wording comes from chain.core.canonical."""

    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self in other


def results(
    data: bytes | BinaryIO, fmt: InputFormat, template: Template = SIMPLE, **options: Any
) -> list[IntakeResult]:
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    return list(read_input(stream, template, fmt=fmt, **options))


def summary(items: list[IntakeResult]) -> list[tuple[int, str]]:
    return [(r.line, r.certificate_id if isinstance(r, Accepted) else r.reason) for r in items]


def test_bad_rows_fixture() -> None:
    found = list(read_input(FIXTURES / "bad-rows.csv", TEMPLATE))
    assert summary(found) == [
        (2, "cert-1"),
        (3, "missing column 'name'"),
        (4, "column 'issued': '2026-13-01' is not an ISO 8601 date-time"),
        (5, "duplicate certificate id 'cert-1' (also on line 2)"),
        (6, "column 'name': byte 0xe9 is not UTF-8"),
        (7, "cert-6"),  # a quoted field spanning lines 7 and 8
        (9, Mentions("/credentialSubject/credits: integer 9007199254740993 is beyond 2^53 - 1")),
        (10, "cert-8"),
    ]
    multi_line = found[5]
    assert isinstance(multi_line, Accepted)
    assert multi_line.credential["credentialSubject"]["name"] == "Grace\nHopper"
    assert all(r.certificate_id for r in found if isinstance(r, Rejected) and r.line in (4, 5, 9))
    assert str(found[1]) == "line 3: missing column 'name'"


@pytest.mark.parametrize("name", ["students.csv", "students.jsonl", "students.json"])
def test_the_three_formats(name: str) -> None:
    found = list(read_input(FIXTURES / name, TEMPLATE))
    assert all(isinstance(r, Accepted) for r in found), found
    for result in found:
        assert isinstance(result, Accepted)
        assert result.credential["credentialSubject"]["credits"] in (120, 180, 240)
    lines = {"students.csv": [2, 3, 4], "students.jsonl": [1, 3], "students.json": [2, 4]}[name]
    assert [r.line for r in found] == lines


def test_jsonl_numeric_id_and_string_typed_values() -> None:
    found = list(read_input(FIXTURES / "students.jsonl", TEMPLATE))
    assert isinstance(found[1], Accepted)
    assert found[1].certificate_id == "102"
    assert found[1].credential["credentialSubject"]["credits"] == 240


def test_a_credential_that_is_no_vc_2_0_is_rejected_naming_the_rule() -> None:
    template = Template(
        {
            **VC,
            "validFrom": "2027-01-01T00:00:00Z",
            "validUntil": {"$datetime": "until"},
        }
    )
    found = results(
        b"id,name,credits,until\nc-1,Ada,1,2026-01-01T00:00:00Z\nc-2,Bo,2,2028-01-01T00:00:00Z\n",
        InputFormat.CSV,
        template,
    )
    assert summary(found) == [(2, "VC 2.0 validity: validFrom is after validUntil"), (3, "c-2")]


def test_a_credential_sd_jwt_cannot_carry_is_rejected_at_intake() -> None:
    """Sealing must never meet a credential it cannot secure: a claim named as SD-JWT reserves is
    refused where the record comes in, with its line."""
    template = Template({"credentialSubject": {"_sd": "{{name}}"}})
    [rejected] = results(b"id,name\nc-1,Ada\n", InputFormat.CSV, template)
    assert isinstance(rejected, Rejected)
    assert rejected.line == 2
    assert "reserved by SD-JWT" in rejected.reason


def test_csv_defects_of_the_whole_input() -> None:
    with pytest.raises(IntakeError, match="lacks column\\(s\\) 'credits', 'id'"):
        results(b"name\nAda\n", InputFormat.CSV)
    with pytest.raises(IntakeError, match="empty"):
        results(b"", InputFormat.CSV)
    with pytest.raises(IntakeError, match="names a column twice"):
        results(b"id,name,name,credits\n", InputFormat.CSV)
    with pytest.raises(IntakeError, match="header is not UTF-8"):
        results(b"id,n\xffame,credits\n", InputFormat.CSV)


def test_csv_row_defects() -> None:
    data = (
        b"\xef\xbb\xbfid,name,credits\n"  # a byte-order mark is ignored
        b"c-1,Ada,1,extra\n"
        b"c-2,Bob\n"
        b"\n"
        b" c-3 ,Cy,3\n"
        b",Di,4\n"
        b"c-5,Ed,5\n"
    )
    assert summary(results(data, InputFormat.CSV)) == [
        (2, "4 fields, but the header names 3 columns"),
        (3, "missing column 'credits'"),
        (5, "column 'id': the certificate id has leading/trailing spaces or control characters"),
        (6, "column 'id': no certificate id"),
        (7, "c-5"),
    ]


def test_id_column_is_configurable_and_bounded() -> None:
    data = b"number,name,credits\nA-1,Ada,1\n" + b"x" * 201 + b",Bob,2\n"
    found = results(data, InputFormat.CSV, id_column="number")
    assert summary(found) == [
        (2, "A-1"),
        (3, "column 'number': the certificate id is longer than 200 characters"),
    ]


def test_jsonl_keeps_going_after_bad_lines() -> None:
    lines = [
        json.dumps(ROW).encode(),
        b"{not json",
        b"[1, 2]",
        b'{"id": "c-4", "name": "Dup", "name": "Key", "credits": 1}',
        b'{"id": "c-5", "name": "Caf\xe9", "credits": 1}',
        b'{"id": "c-6", "name": "NaN", "credits": NaN}',
        b'{"id": "c-7", "name": "\\ud800", "credits": 1}',
        b"   ",
        json.dumps({**ROW, "id": "c-9"}).encode(),
    ]
    assert summary(results(b"\n".join(lines), InputFormat.JSONL)) == [
        (1, "c-1"),
        (2, Mentions("invalid JSON")),
        (3, "a record must be a JSON object"),
        (4, Mentions("duplicate key 'name'")),
        (5, "byte 0xe9 at column 27 is not UTF-8"),
        (6, Mentions("NaN")),
        (7, Mentions("lone surrogate")),
        (9, "c-9"),
    ]


def test_jsonl_oversized_line_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake, "MAX_RECORD_BYTES", 100)
    data = json.dumps({**ROW, "name": "x" * 500}).encode() + b"\n" + json.dumps(ROW).encode() + b"\n"
    assert summary(results(data, InputFormat.JSONL)) == [(1, "record larger than 100 bytes"), (2, "c-1")]


def json_array(records: list[object]) -> bytes:
    return ("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n").encode()


@pytest.mark.parametrize("chunk", [1, 7, 64 * 1024])
def test_json_array_is_read_element_by_element(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(intake, "READ_CHUNK", chunk)
    records: list[object] = [{**ROW, "id": f"c-{i}", "credits": 10**i} for i in range(6)]
    records.insert(2, "not an object")
    data = json_array(records).replace(b'"c-4"', b'"c-\xff"')
    assert summary(results(data, InputFormat.JSON)) == [
        (2, "c-0"),
        (3, "c-1"),
        (4, "a record must be a JSON object"),
        (5, "c-2"),
        (6, "c-3"),
        (7, "byte 0xff is not UTF-8"),
        (8, "c-5"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"id": "c-1"}', "line 1: a JSON input must be an array"),
        (b"[\n" + json.dumps(ROW).encode() + b",\n\n{oops}]", "line 4: invalid JSON"),
        (b"[" + json.dumps(ROW).encode() + b" " + json.dumps(ROW).encode() + b"]", "expected ',' or ']'"),
        (b"[" + json.dumps(ROW).encode() + b",]", "invalid JSON"),
        (b"[" + json.dumps(ROW).encode() + b"]\n\n[]", "line 3: unexpected data after the JSON array"),
        (b"[" + json.dumps(ROW).encode(), "ends inside the JSON array"),
    ],
)
def test_json_array_defects_stop_the_input(data: bytes, message: str) -> None:
    with pytest.raises(IntakeError) as caught:
        results(data, InputFormat.JSON)
    assert message in caught.value.message


def test_empty_json_array() -> None:
    assert results(b" [ ] ", InputFormat.JSON) == []


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = super().readinto(buffer)
        self.consumed += count
        return count

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        self.consumed += len(line)
        return line


@pytest.mark.parametrize("fmt", list(InputFormat))
def test_100k_rows_are_streamed_not_loaded(fmt: InputFormat) -> None:
    rows = [{**ROW, "id": f"c-{i}"} for i in range(100_000)]
    if fmt is InputFormat.CSV:
        data = b"id,name,credits\n" + b"".join(f"{r['id']},Ada,120\n".encode() for r in rows)
    elif fmt is InputFormat.JSONL:
        data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    else:
        data = json_array(list(rows))
    stream = CountingStream(data)
    reader = read_input(stream, SIMPLE, fmt=fmt)
    first = [next(reader) for _ in range(3)]
    assert [r.line for r in first] == ([1, 2, 3] if fmt is InputFormat.JSONL else [2, 3, 4])
    assert len(data) > 20 * intake.READ_CHUNK
    assert stream.consumed <= 2 * intake.READ_CHUNK, stream.consumed


def test_format_from_the_file_name(tmp_path: Path) -> None:
    assert InputFormat.for_path(Path("a.CSV")) is InputFormat.CSV
    assert InputFormat.for_path(Path("a.ndjson")) is InputFormat.JSONL
    assert InputFormat.for_path(Path("a.json")) is InputFormat.JSON
    with pytest.raises(IntakeError, match="pass --format"):
        InputFormat.for_path(Path("a.txt"))
    with pytest.raises(IntakeError, match="cannot read"):
        list(read_input(tmp_path / "absent.csv", SIMPLE))
    with pytest.raises(IntakeError, match="format is needed"):
        list(read_input(io.BytesIO(b""), SIMPLE))
