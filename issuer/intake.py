"""Intake: records from CSV, JSON Lines or a JSON array, checked and turned into credentials.

Everything streams: the readers are generators over a binary file, so a 100,000-row input is
never in memory at once (only the set of certificate ids seen so far, to catch duplicates).

Each record becomes a credential through a :class:`~issuer.template.Template`, checked with
:func:`chain.core.secured.check_securable` (sealing secures it later). A record that cannot be
used is *rejected* with its line number (the line it starts on, as an editor shows it) and a
reason, and reading goes on:

- bytes that are not UTF-8 (the line is reported, the rest of the file is still read);
- a missing or empty column the template needs (or the id column);
- an invalid value for a typed placeholder (an ISO 8601 date that is not one, ...);
- a certificate id seen earlier in the same input;
- a credential that cannot be secured (integers beyond 2^53-1, too large, a claim named ``_sd``, ...);
- an Open Badge 3.0 lacking what the spec requires (:func:`issuer.ob3.check_open_badge`).

Only a defect in the input as a whole stops it (:class:`~issuer.errors.IntakeError`): a CSV
header without a needed column, a JSON array that is not valid JSON, an unreadable file. Whether
the store already holds an id is checked where the records are stored (:mod:`issuer.service`).

Formats:

- **CSV**: a header row names the columns; cells are text. A UTF-8 byte-order mark is ignored.
- **JSON Lines**: one JSON object per line; blank lines are skipped.
- **JSON**: one array of objects, read element by element.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from chain.core.canonical import DocumentError, loads_strict
from issuer.errors import IntakeError
from issuer.template import RowError, Template

if TYPE_CHECKING:
    from issuer.pipeline import WorkerPool

#: Certificate ids become primary keys and file names: keep them short.
MAX_ID_LENGTH = 200
#: One record of JSON Lines or a JSON array; canonical documents are limited to 256 KiB anyway.
MAX_RECORD_BYTES = 1024 * 1024
READ_CHUNK = 64 * 1024
#: What ``errors="surrogateescape"`` turns each undecodable byte into.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InputFormat(StrEnum):
    """The input formats intake reads."""

    CSV = "csv"
    JSONL = "jsonl"
    JSON = "json"

    @classmethod
    def for_path(cls, path: Path) -> InputFormat:
        """The format a file name suggests: ``.csv``, ``.jsonl``/``.ndjson`` or ``.json``."""
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return cls.CSV
        if suffix in (".jsonl", ".ndjson"):
            return cls.JSONL
        if suffix == ".json":
            return cls.JSON
        raise IntakeError(f"cannot tell the format of {path.name}: pass --format csv|jsonl|json")


@dataclass(frozen=True)
class Record:
    """One record as read: its column values, or why it could not be read."""

    line: int
    values: Mapping[str, Any] | None
    problem: str | None = None


@dataclass(frozen=True)
class Accepted:
    """A record turned into a credential that can be secured, ready to be stored."""

    line: int
    certificate_id: str
    credential: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    """A record that cannot be issued: where it starts and why."""

    line: int
    reason: str
    certificate_id: str | None = None

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


IntakeResult = Accepted | Rejected


def _bad_byte(text: str) -> str | None:
    """Describes the first byte that was not UTF-8, if ``text`` (decoded with surrogateescape) has one."""
    found = _ESCAPED_BYTE.search(text)
    return None if found is None else f"byte 0x{ord(found.group()) - 0xDC00:02x} is not UTF-8"


# -- readers -----------------------------------------------------------------------------------


@contextmanager
def _decoded(stream: BinaryIO, newline: str | None = None) -> Iterator[io.TextIOWrapper]:
    """UTF-8 text over ``stream`` (byte-order mark dropped, bad bytes kept as surrogate escapes)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline=newline)
    try:
        yield text
    finally:
        text.detach()  # the stream is the caller's to close


def _csv_records(stream: BinaryIO, needed: frozenset[str]) -> Iterator[Record]:
    with _decoded(stream, newline="") as text:
        yield from _csv_rows(text, needed)


def _csv_rows(text: io.TextIOWrapper, needed: frozenset[str]) -> Iterator[Record]:
    reader = csv.reader(text)
    try:
        header = [name.strip() for name in next(reader, [])]
        if not header:
            raise IntakeError("the CSV input is empty: it needs a header row")
        if (problem := _bad_byte("".join(header))) is not None:
            raise IntakeError(f"line 1: the CSV header is not UTF-8 ({problem})")
        if len(set(header)) != len(header):
            raise IntakeError("line 1: the CSV header names a column twice")
        if missing := sorted(needed - set(header)):
            raise IntakeError(f"line 1: the CSV header lacks column(s) {', '.join(map(repr, missing))}")
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not cells:
                continue  # a blank line
            if len(cells) > len(header):
                yield Record(line, None, f"{len(cells)} fields, but the header names {len(header)} columns")
                continue
            values = dict(zip(header, cells, strict=False))  # absent trailing cells are missing columns
            if _ESCAPED_BYTE.search("".join(cells)):  # one search a row; which column, only then
                name, problem = next((n, p) for n, cell in values.items() if (p := _bad_byte(cell)))
                yield Record(line, None, f"column {name!r}: {problem}")
                continue
            yield Record(line, values)
    except csv.Error as exc:
        raise IntakeError(f"line {reader.line_num}: malformed CSV ({exc})") from None


def _json_object(line: int, text: str) -> Record:
    try:
        value = loads_strict(text, max_bytes=MAX_RECORD_BYTES)
    except DocumentError as exc:
        return Record(line, None, exc.message)
    if not isinstance(value, dict):
        return Record(line, None, "a record must be a JSON object")
    return Record(line, value)


def _jsonl_records(stream: BinaryIO) -> Iterator[Record]:
    line = 0
    while raw := stream.readline(MAX_RECORD_BYTES + 1):
        line += 1
        if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
            while (rest := stream.readline(READ_CHUNK)) and not rest.endswith(b"\n"):
                pass  # skip the rest of an oversized line
            yield Record(line, None, f"record larger than {MAX_RECORD_BYTES:,} bytes")
            continue
        if line == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Record(line, None, f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1} is not UTF-8")
            continue
        yield _json_object(line, text)


class _JsonArrayReader:
    """Reads one JSON array element by element from a text stream, keeping line numbers."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        # Only the end of each value is wanted (loads_strict() parses the element text): literals stay
        # text, so a 5,000-digit number is that record's rejection rather than int()'s ValueError.
        self._decoder = json.JSONDecoder(parse_int=str, parse_float=str, parse_constant=str)
        self._buffer = ""
        self._pos = 0
        self._eof = False
        self.line = 1

    def _more(self) -> bool:
        if self._eof:
            return False
        chunk = self._text.read(READ_CHUNK)
        self._buffer = self._buffer[self._pos :] + chunk
        self._pos = 0
        self._eof = not chunk
        return bool(chunk)

    def _advance(self, end: int) -> str:
        consumed = self._buffer[self._pos : end]
        self.line += consumed.count("\n")
        self._pos = end
        return consumed

    def next_char(self) -> str:
        """The next non-whitespace character ('' at the end), consumed."""
        while True:
            rest = self._buffer[self._pos :]
            stripped = rest.lstrip()
            self._advance(self._pos + len(rest) - len(stripped))
            if stripped:
                self._advance(self._pos + 1)
                return stripped[0]
            if not self._more():
                return ""

    def peek_char(self) -> str:
        """The next non-whitespace character ('' at the end), left in place."""
        char = self.next_char()
        if char:
            self._pos -= 1
        return char

    def next_value_text(self) -> str:
        """The source text of the next JSON value; an error here breaks the whole array."""
        while True:
            try:
                _, end = self._decoder.raw_decode(self._buffer, self._pos)
            except RecursionError:  # where the element ends is unknown, so nothing after it is readable
                raise IntakeError(f"line {self.line}: JSON nested too deeply") from None
            except json.JSONDecodeError as exc:
                if len(self._buffer) - self._pos > MAX_RECORD_BYTES:
                    too_large = f"record larger than {MAX_RECORD_BYTES:,} bytes"
                    raise IntakeError(f"line {self.line}: {too_large}") from None
                if self._more():
                    continue
                line = self.line + self._buffer.count("\n", self._pos, exc.pos)
                raise IntakeError(f"line {line}: invalid JSON ({exc.msg})") from None
            if end == len(self._buffer) and self._more():
                continue  # a number or literal might go on in the next chunk
            return self._advance(end)


def _json_array_records(stream: BinaryIO) -> Iterator[Record]:
    with _decoded(stream) as text:
        yield from _json_array_elements(_JsonArrayReader(text))


def _json_array_elements(reader: _JsonArrayReader) -> Iterator[Record]:
    if reader.next_char() != "[":
        raise IntakeError("line 1: a JSON input must be an array of objects")
    if reader.peek_char() == "]":
        reader.next_char()
    else:
        while True:
            reader.peek_char()
            line = reader.line
            text = reader.next_value_text()
            problem = _bad_byte(text)
            yield _json_object(line, text) if problem is None else Record(line, None, problem)
            separator = reader.next_char()
            if separator == "]":
                break
            if not separator:
                raise IntakeError(f"line {reader.line}: the input ends inside the JSON array (no ']')")
            if separator != ",":
                raise IntakeError(f"line {reader.line}: expected ',' or ']' in the JSON array")
    if reader.next_char():
        raise IntakeError(f"line {reader.line}: unexpected data after the JSON array")


def read_records(stream: BinaryIO, fmt: InputFormat, needed_columns: frozenset[str]) -> Iterator[Record]:
    """Raw records from a binary stream. ``needed_columns`` is checked against a CSV header."""
    if fmt is InputFormat.CSV:
        return _csv_records(stream, needed_columns)
    if fmt is InputFormat.JSONL:
        return _jsonl_records(stream)
    return _json_array_records(stream)


# -- validation --------------------------------------------------------------------------------


def _certificate_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("no certificate id")
    if value != value.strip() or _CONTROL.search(value):
        raise ValueError("the certificate id has leading/trailing spaces or control characters")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"the certificate id is longer than {MAX_ID_LENGTH} characters")
    return value


#: A record that passed the sequential checks: its line, certificate id and column values.
_Checked = tuple[int, str, Mapping[str, Any]]
#: Records per chunk when workers fill and check them.
INTAKE_CHUNK = 1_000


def _checked(records: Iterable[Record], id_column: str) -> Iterator[Rejected | _Checked]:
    """The checks that need every earlier record (ids, duplicates), in order."""
    seen: dict[str, int] = {}
    for record in records:
        if record.values is None:
            yield Rejected(record.line, record.problem or "unreadable record")
            continue
        try:
            certificate_id = _certificate_id(record.values.get(id_column))
        except ValueError as exc:
            yield Rejected(record.line, f"column {id_column!r}: {exc}")
            continue
        if certificate_id in seen:
            reason = f"duplicate certificate id {certificate_id!r} (also on line {seen[certificate_id]})"
            yield Rejected(record.line, reason, certificate_id)
            continue
        seen[certificate_id] = record.line
        yield record.line, certificate_id, record.values


def _filled(template: Template, items: list[Rejected | _Checked]) -> list[IntakeResult]:
    """Fills the template for each checked record and checks the credential can be secured: plain
    JSON within the document limits, and a well-formed Open Badge 3.0 whose JSON-LD expands if it
    says it is one (the part that runs in workers)."""
    from chain.core.errors import DataIntegrityError
    from chain.core.jsonld import expand
    from chain.core.secured import check_securable  # the signing stack: not for `--help`
    from issuer.ob3 import check_open_badge, is_open_badge

    results: list[IntakeResult] = []
    for item in items:
        if isinstance(item, Rejected):
            results.append(item)
            continue
        line, certificate_id, values = item
        try:
            credential = template.fill(values)
            check_securable(credential)
            if is_open_badge(credential):
                if problems := check_open_badge(credential):
                    raise RowError(problems)
                # Its eddsa-rdfc-2022 proof signs the RDF it denotes: a badge that does not expand
                # (an undefined term, a context not shipped) is refused here, not at sealing, where
                # it would stop the whole batch.
                expand(credential)
        except (RowError, DocumentError, DataIntegrityError) as exc:
            results.append(Rejected(line, exc.message, certificate_id))
            continue
        results.append(Accepted(line, certificate_id, credential))
    return results


def validate(
    records: Iterable[Record], template: Template, *, id_column: str = "id", pool: WorkerPool | None = None
) -> Iterator[IntakeResult]:
    """Turns records into credentials, rejecting the ones that cannot be issued.

    With a ``pool``, filling and checking run in its worker processes (each is handed the
    template), a chunk of records at a time; results keep input order. Without one, here.
    """
    from issuer.pipeline import chunked  # the issuer's signing stack: not for --help

    chunks = chunked(_checked(records, id_column), INTAKE_CHUNK)
    if pool is None:
        for chunk in chunks:
            yield from _filled(template, chunk)
    else:
        for results in pool.map(_filled, template, chunks):
            yield from results


def read_input(
    source: Path | BinaryIO,
    template: Template,
    *,
    fmt: InputFormat | None = None,
    id_column: str = "id",
    pool: WorkerPool | None = None,
) -> Iterator[IntakeResult]:
    """Streams an input file (or binary stream) through :func:`read_records` and :func:`validate`
    (in ``pool``'s workers, if given)."""
    if isinstance(source, Path):
        fmt = fmt or InputFormat.for_path(source)
        try:
            stream: BinaryIO = source.open("rb")
        except OSError as exc:
            raise IntakeError(f"cannot read {source}: {exc.strerror}") from None
        with stream:
            yield from read_input(stream, template, fmt=fmt, id_column=id_column, pool=pool)
        return
    if fmt is None:
        raise IntakeError("the input format is needed to read a stream")
    records = read_records(source, fmt, template.required_columns | {id_column})
    yield from validate(records, template, id_column=id_column, pool=pool)
