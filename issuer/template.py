"""Credential templates: a JSON document with placeholders that one input record fills in.

A template is a JSON object, normally shaped as a W3C Verifiable Credential 2.0. Two kinds of
placeholder stand in for a record's columns:

- **Text placeholders** inside string values: ``"name": "{{name}}"``, or embedded in longer text,
  ``"id": "urn:example:cert:{{id}}"``. The result is always a string. A column that holds a JSON
  number or boolean (JSON Lines input) is written as its JSON text.
- **Typed placeholders**: an object whose only key is one of the types below, naming a column.
  The object is replaced by the converted value:

  =============  ===========================================================================
  ``$str``       the text as it is
  ``$int``       an integer (``"120"`` or JSON ``120``)
  ``$number``    an integer or a finite decimal number (``"3.75"``, ``"1e3"``)
  ``$bool``      ``true/false``, ``yes/no`` or ``1/0`` (any case), or a JSON boolean
  ``$date``      an ISO 8601 calendar date, written as ``YYYY-MM-DD``
  ``$datetime``  an ISO 8601 date-time with a UTC offset (``Z`` or ``+02:00``), written in UTC as
                 ``YYYY-MM-DDTHH:MM:SSZ``; a bare date means midnight UTC. A date-time without
                 an offset is refused: a certificate's validity must not depend on where it is read
  =============  ===========================================================================

  A typed placeholder may add ``"optional": true`` when it is an object member: an empty or
  absent value then removes the member (``"validUntil": {"$datetime": "expires", "optional":
  true}``). Every other placeholder is required: an absent or empty column rejects the record.

Objects with a key starting with ``$`` are reserved for placeholders; an unknown ``$`` key is an
error when the template is loaded, not when the first record is. Example::

    {
      "@context": ["https://www.w3.org/ns/credentials/v2"],
      "type": ["VerifiableCredential", "DegreeCredential"],
      "id": "urn:example:cert:{{id}}",
      "issuer": {"id": "did:web:uni.example", "name": "Example University"},
      "validFrom": {"$datetime": "issued"},
      "validUntil": {"$datetime": "expires", "optional": true},
      "credentialSubject": {"name": "{{name}}", "degree": "{{degree}}", "credits": {"$int": "credits"}}
    }

A template may also be **built in** (``--template ob3``: :mod:`issuer.ob3`, Open Badges 3.0): a
document plus a *finish* step for what placeholders cannot say (a salted recipient hash, one of two
recipient columns). :func:`template_for` resolves a built-in name or reads a file.

Pure: no I/O. :func:`load_template` reads the file at the edge.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from chain.core.canonical import DocumentError, loads_strict
from issuer.errors import IssuerError, TemplateError

PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
#: How much of a bad value a rejection message shows.
SHOWN_VALUE_CHARS = 40

Row = Mapping[str, Any]


class RowError(IssuerError):
    """One record that the template cannot turn into a credential; ``reasons`` lists every problem."""

    code = "row_invalid"

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = tuple(reasons)


def _shown(value: str) -> str:
    return repr(value if len(value) <= SHOWN_VALUE_CHARS else value[:SHOWN_VALUE_CHARS] + "...")


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# -- conversions: column value -> JSON value, or ValueError with a message -----------------------


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise ValueError(f"holds a JSON {type(value).__name__}, not text")


def _as_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    raise ValueError(f"{_shown(str(value))} is not an integer")


def _as_number(value: Any) -> int | float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        if _DECIMAL.fullmatch(text) and math.isfinite(number := float(text)):
            return number
    raise ValueError(f"{_shown(str(value))} is not a finite number")


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"{_shown(str(value))} is not a boolean (true/false, yes/no, 1/0)")


def _as_date(value: Any) -> str:
    try:
        return date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise ValueError(f"{_shown(str(value))} is not an ISO 8601 date (YYYY-MM-DD)") from None


def _as_datetime(value: Any) -> str:
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{_shown(text)} is not an ISO 8601 date-time") from None
    if len(text) <= len("YYYY-MM-DD"):  # a bare date: midnight UTC
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.tzinfo is None:
        raise ValueError(f"{_shown(text)} has no UTC offset (add Z or +hh:mm)")
    try:
        return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")
    except OverflowError:  # the offset moves it past year 1 or 9999
        raise ValueError(f"{_shown(text)} is outside the years 1 to 9999 in UTC") from None


CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "$str": _as_text,
    "$int": _as_int,
    "$number": _as_number,
    "$bool": _as_bool,
    "$date": _as_date,
    "$datetime": _as_datetime,
}

# -- the compiled template ---------------------------------------------------------------------

_OMIT = object()


class _Node(ABC):
    @abstractmethod
    def fill(self, row: Row, problems: list[str]) -> Any:
        """The filled-in value, or :data:`_OMIT`; problems are appended, not raised."""

    def required(self) -> set[str]:
        """Columns that every record must have."""
        return set()


@dataclass(frozen=True)
class _Literal(_Node):
    value: Any

    def fill(self, row: Row, problems: list[str]) -> Any:
        return self.value


def _lookup(row: Row, column: str, problems: list[str]) -> Any:
    value = row.get(column)
    if _is_missing(value):
        problems.append(f"missing column {column!r}")
        return None
    return value


@dataclass(frozen=True)
class _Text(_Node):
    parts: tuple[str, ...]  # literal text at even indices, column names at odd ones

    def fill(self, row: Row, problems: list[str]) -> Any:
        out = []
        for index, part in enumerate(self.parts):
            if index % 2 == 0:
                out.append(part)
                continue
            value = _lookup(row, part, problems)
            if value is not None:
                try:
                    out.append(_as_text(value))
                except ValueError as exc:
                    problems.append(f"column {part!r} {exc}")
        return "".join(out)

    def required(self) -> set[str]:
        return set(self.parts[1::2])


@dataclass(frozen=True)
class _Typed(_Node):
    kind: str
    column: str
    optional: bool

    def fill(self, row: Row, problems: list[str]) -> Any:
        if self.optional and _is_missing(row.get(self.column)):
            return _OMIT
        value = _lookup(row, self.column, problems)
        if value is None:
            return None
        try:
            return CONVERSIONS[self.kind](value)
        except ValueError as exc:
            problems.append(f"column {self.column!r}: {exc}")
            return None

    def required(self) -> set[str]:
        return set() if self.optional else {self.column}


@dataclass(frozen=True)
class _Object(_Node):
    members: tuple[tuple[str, _Node], ...]

    def fill(self, row: Row, problems: list[str]) -> Any:
        filled = {key: node.fill(row, problems) for key, node in self.members}
        return {key: value for key, value in filled.items() if value is not _OMIT}

    def required(self) -> set[str]:
        return set().union(*(node.required() for _, node in self.members))


@dataclass(frozen=True)
class _Array(_Node):
    items: tuple[_Node, ...]

    def fill(self, row: Row, problems: list[str]) -> Any:
        return [item.fill(row, problems) for item in self.items]

    def required(self) -> set[str]:
        return set().union(*(item.required() for item in self.items))


def _compile(value: Any, pointer: str, columns: set[str], *, member: bool) -> _Node:
    if isinstance(value, str):
        parts = PLACEHOLDER.split(value)
        if len(parts) == 1:
            if "{{" in value or "}}" in value:
                raise TemplateError(f"{pointer or '/'}: malformed placeholder in {value!r}")
            return _Literal(value)
        columns.update(parts[1::2])
        return _Text(tuple(parts))
    if isinstance(value, dict):
        reserved = [key for key in value if key.startswith("$")]
        if reserved:
            return _compile_typed(value, reserved, pointer, columns, member=member)
        for key in value:
            if PLACEHOLDER.search(key):
                raise TemplateError(f"{pointer or '/'}: placeholders are not allowed in keys ({key!r})")
        return _Object(
            tuple(
                (key, _compile(child, f"{pointer}/{key}", columns, member=True))
                for key, child in value.items()
            )
        )
    if isinstance(value, list):
        return _Array(
            tuple(_compile(child, f"{pointer}/{i}", columns, member=False) for i, child in enumerate(value))
        )
    return _Literal(value)


def _compile_typed(
    value: dict[str, Any], reserved: list[str], pointer: str, columns: set[str], *, member: bool
) -> _Node:
    where = pointer or "/"
    if len(reserved) != 1 or reserved[0] not in CONVERSIONS:
        known = ", ".join(CONVERSIONS)
        raise TemplateError(f"{where}: unknown placeholder {reserved} (known: {known})")
    kind = reserved[0]
    column = value[kind]
    if not isinstance(column, str) or not column:
        raise TemplateError(f"{where}: {kind} needs a column name")
    if set(value) - {kind, "optional"}:
        raise TemplateError(f"{where}: a {kind} placeholder takes only 'optional' besides the column")
    optional = value.get("optional", False)
    if not isinstance(optional, bool):
        raise TemplateError(f"{where}: 'optional' must be true or false")
    if optional and not member:
        raise TemplateError(f"{where}: only object members can be optional (array indices would shift)")
    columns.add(column)
    return _Typed(kind, column, optional)


#: A built-in template's last step over a filled credential: the record, the credential; returns
#: the finished credential or raises :class:`RowError`. A module-level function: templates are
#: pickled to the intake workers.
Finish = Callable[[Row, dict[str, Any]], dict[str, Any]]


class Template:
    """A compiled credential template.

    ``finish`` (built-in templates only) completes each filled credential; ``optional_columns``
    names the columns it reads besides the document's placeholders (none of them required).
    """

    def __init__(
        self,
        document: Any,
        *,
        finish: Finish | None = None,
        optional_columns: frozenset[str] = frozenset(),
    ) -> None:
        if not isinstance(document, dict):
            raise TemplateError("a credential template must be a JSON object")
        columns: set[str] = set()
        self._root = _compile(document, "", columns, member=False)
        self._finish = finish
        self.columns = frozenset(columns) | optional_columns
        self.required_columns = frozenset(self._root.required())

    def fill(self, row: Row) -> dict[str, Any]:
        """The credential for one record; :class:`RowError` lists every problem the record has."""
        problems: list[str] = []
        credential = self._root.fill(row, problems)
        if problems:
            raise RowError(problems)
        if self._finish is not None:
            credential = self._finish(row, credential)
        return credential  # type: ignore[no-any-return]  # the root is an object


def load_template(path: Path) -> Template:
    """Reads and compiles a template file (strict JSON: no duplicate keys, NaN or Infinity)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror}") from None
    try:
        return Template(loads_strict(raw))
    except DocumentError as exc:
        raise TemplateError(f"template {path}: {exc.message}") from None


def template_for(spec: str, *, issuer_did: str | None = None) -> Template:
    """The template ``spec`` names: a built-in name (:data:`BUILTIN_TEMPLATES`: ``ob3``) or the path
    of a template file. A built-in name wins over a file of that name in the working directory
    (``./ob3`` means the file). ``issuer_did`` is the issuer's DID when known (a built-in template
    writes it as the issuer's ``id``; sealing names the signing DID there either way)."""
    if spec in BUILTIN_TEMPLATES:
        from issuer.ob3 import ob3_template  # it builds on this module

        return ob3_template(issuer_did)
    path = Path(spec)
    if not path.is_file():
        names = ", ".join(BUILTIN_TEMPLATES)
        raise TemplateError(f"template {spec!r} is neither a built-in template ({names}) nor a file")
    return load_template(path)


#: The built-in templates, by the name ``--template`` takes.
BUILTIN_TEMPLATES = ("ob3",)
