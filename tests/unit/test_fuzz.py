"""Hostile input to the pure parsers: only their typed errors come out, never a crash or a hang.

- receipts (:func:`chain.core.receipt.parse_receipt`): :class:`ReceiptError` or a receipt that
  survives a round trip through UTF-8 bytes;
- canonicalization (:mod:`chain.core.canonical`): :class:`DocumentError` or canonical text that
  parsing and canonicalizing again leaves byte for byte the same;
- intake (:mod:`issuer.intake`): accepted records and line-numbered rejections, or one
  :class:`IntakeError` for an input that is unreadable as a whole.

Bounded twice: ``max_examples`` per property, and a deadline per example that catches work growing
out of proportion to its input (the ``timeout`` marker interrupts a real hang). The properties
about *valid* input are in test_receipt.py, test_canonical.py and test_issuer_intake.py; these
are about the rest.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from chain.core.canonical import (
    MAX_DOCUMENT_BYTES,
    DocumentError,
    field_preimage,
    flatten,
    loads_strict,
    recompute_digest,
    salt_document,
)
from chain.core.merkle import MerkleTree
from chain.core.receipt import AnyReceipt, Receipt, ReceiptError, parse_receipt
from chain.core.secured import DATA_INTEGRITY, SD_JWT, Securing, check_securable
from chain.core.verify import CheckName, Code, Status, Verdict, verify
from chain.keys import generate_private_key
from issuer.errors import IntakeError
from issuer.intake import Accepted, InputFormat, IntakeResult, Record, Rejected, read_input, validate
from issuer.template import Template
from tests.factories import (
    SecuredBatch,
    StaticFacts,
    anchored,
    anchored_v2,
    credential,
    deterministic_bytes,
    make_batch,
    secure,
)
from tests.strategies import (
    JSON_TOKENS,
    b64url_text,
    hostile_values,
    json_model,
    json_token_soup,
    json_values,
    keys,
    mutated_receipts,
    mutated_v2_receipts,
    receipt_values,
    unicode_text,
)
from tests.unit.test_verify_v2 import parents_of

pytestmark = pytest.mark.timeout(120)

fuzz = settings(
    max_examples=200,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

RECEIPT = make_batch(1, seed="fuzz").receipt(0, tx_hash="0x" + "ab" * 32, block_number=7)
RECEIPT_TEXT = json.dumps(RECEIPT.to_json_dict(), separators=(",", ":"), ensure_ascii=False)


def receipt_text_with(old: str, new: str) -> str:
    """The receipt's JSON text with one piece replaced (which must be there)."""
    assert old in RECEIPT_TEXT, old
    return RECEIPT_TEXT.replace(old, new)


def max_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


# --- receipts ---------------------------------------------------------------------------------


def parse_or_error(source: str | bytes) -> AnyReceipt | ReceiptError:
    try:
        return parse_receipt(source)
    except ReceiptError as exc:
        error = exc
    assert error.code == "receipt_malformed"
    return error


@st.composite
def spliced_receipts(draw: st.DrawFn) -> str:
    """A valid receipt's JSON text with a stretch of it replaced by hostile tokens."""
    start = draw(st.integers(0, len(RECEIPT_TEXT)))
    end = draw(st.integers(start, min(len(RECEIPT_TEXT), start + 40)))
    middle = draw(st.lists(st.sampled_from(JSON_TOKENS) | unicode_text, max_size=3).map("".join))
    return RECEIPT_TEXT[:start] + middle + RECEIPT_TEXT[end:]


@fuzz
@given(text=st.one_of(json_token_soup, spliced_receipts(), st.text(st.characters(), max_size=64)))
@example(text=RECEIPT_TEXT)
@example(text=receipt_text_with('"name":"Student 0"', '"name":"\ud800"'))  # a raw lone surrogate
@example(text=receipt_text_with('"name":"Student 0"', '"name":"\\ud800"'))
@example(text=receipt_text_with('"grade":"A"', '"grade":"A","grade":"A"'))
@example(text=receipt_text_with('"credits":120', '"credits":1' + "0" * 5000))
@example(text=receipt_text_with('"credits":120', '"credits":' + "[" * 5000 + "]" * 5000))
@example(text="\ufeff" + RECEIPT_TEXT)
def test_receipt_parsing_gives_a_receipt_or_a_receipt_error(text: str) -> None:
    as_bytes = text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes CESU-8 bytes
    for source in (text, as_bytes):
        result = parse_or_error(source)
        if isinstance(result, Receipt):  # what parses must write back out as UTF-8, and read back
            assert parse_receipt(result.to_json().encode("utf-8")) == result


def test_the_unspliced_receipt_parses() -> None:
    assert isinstance(parse_or_error(RECEIPT_TEXT), Receipt)  # so the splices start from valid text


# --- canonicalization -------------------------------------------------------------------------


def self_referential() -> dict[str, Any]:
    loop: list[Any] = []
    loop.append(loop)
    return {"loop": loop}


@fuzz
@given(value=hostile_values)
@example(value=self_referential())
@example(value={"a": float("nan")})
@example(value={"a": 2**53})
@example(value={"\ud800": 1})
@example(value={1: "one"})
@example(value={"a": {"b": [{}] * 5000}})
def test_canonicalization_of_any_value_gives_leaves_or_a_document_error(value: Any) -> None:
    try:
        leaves = flatten(value)
    except DocumentError:
        leaves = None
    try:
        document = salt_document(value, deterministic_bytes("fuzz"))
    except DocumentError:
        salt = "0x" + "00" * 32
        size = sum(len(field_preimage(pointer, salt, text)) for pointer, text in leaves or [])
        assert leaves is None or not leaves or size > MAX_DOCUMENT_BYTES
        return
    assert leaves is not None
    assert recompute_digest(document.credential, document.salts, ()) == document.digest


@fuzz
@given(credential=st.dictionaries(keys, json_values, min_size=1, max_size=6))
@example(credential={"n": -0.0, "f": 1e-7, "big": 2**53 - 1, "e": 1e21, "s": "\u2028\x00\U0001f600"})
@example(credential={"f": 1e19, "g": 2.0**53})  # canonical text "10000000000000000000", "9007199254740992"
def test_canonicalization_is_idempotent(credential: dict[str, Any]) -> None:
    """Canonical text read back as RFC 8785 reads it (every number a double) canonicalizes to itself.

    Not through loads_strict(): a double from 2^53 up to 1e21 is written with no exponent, and
    loads_strict() refuses integer literals beyond 2^53 - 1, as it refuses them in any input.
    """
    leaves = flatten(credential)
    salt = "0x" + "5a" * 32
    for pointer, text in leaves:
        preimage = field_preimage(pointer, salt, text)
        parsed_pointer, parsed_salt, value = json.loads(preimage, parse_int=float)
        ((_, again),) = flatten({"v": value})
        assert field_preimage(parsed_pointer, parsed_salt, again) == preimage
    serialized = json.dumps(credential, ensure_ascii=False).encode("utf-8")
    assert flatten(loads_strict(serialized)) == leaves  # canonical text does not see the serialization


@fuzz
@given(text=json_token_soup)
@example(text="[" * 100_000)
@example(text='{"a": 1' + "0" * 5000 + "}")
@example(text='"\\ud83d"')
@example(text="\ud83d")
def test_strict_json_gives_a_value_or_a_document_error(text: str) -> None:
    for source in (text, text.encode("utf-8", "surrogatepass")):
        try:
            value = loads_strict(source)
        except DocumentError:
            continue
        if max_depth(value) < 200:  # deeper values may be beyond json.dumps' own recursion limit
            text_out = json.dumps(value, ensure_ascii=False, allow_nan=False)
            assert loads_strict(text_out.encode("utf-8")) == value


# --- intake -----------------------------------------------------------------------------------

TEMPLATE = Template(
    {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "id": "urn:example:{{id}}",
        "issuer": "did:example:issuer",
        "validFrom": {"$datetime": "t", "optional": True},
        "credentialSubject": {
            "name": "{{name}}",
            "credits": {"$int": "n"},
            "score": {"$number": "x"},
            "honours": {"$bool": "b"},
            "graduated": {"$date": "d"},
            "note": {"$str": "s", "optional": True},
        },
    }
)
COLUMNS = ["id", "name", "n", "x", "b", "d", "t", "s"]
#: csv's default limit on one field; one cell over it makes the whole input unreadable.
FIELD_LIMIT = csv.field_size_limit()
FORMULAS = ("=1+1", "+1", "-1", "@SUM(A1:A9)", '=HYPERLINK("http://x")', "\t=1", "\r=1", "=cmd|'/C calc'!A0")
offsets = st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))
#: The whole calendar: with an offset, its first and last hours leave it in UTC (a rejection; pinned
#: by test_datetime_at_the_ends_of_the_calendar_is_a_rejection).
datetimes = st.builds(
    lambda moment, tz: moment.replace(tzinfo=tz).isoformat(),
    st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)),
    st.none() | offsets,
)
cells = st.one_of(
    unicode_text,
    st.text(st.characters(), max_size=12),
    st.sampled_from(FORMULAS),
    st.sampled_from(["", " ", '"', '""', "a,b", "a\nb", "a\r\nb", "\x00", "\ufeff", "١٢٣", "1e999", "NaN"]),
    st.integers(-(2**60), 2**60).map(str),
    st.just("9" * 5000),
    st.just("x" * (FIELD_LIMIT + 1)),
    st.dates().map(str),
    datetimes,
    st.sampled_from(["true", "No", "1", "0", "maybe"]),
)


@st.composite
def csv_inputs(draw: st.DrawFn) -> bytes:
    """CSV bytes, from well-formed to broken: shuffled or missing columns, ragged rows, hostile
    cells, broken quoting, other encodings, byte-order marks, stray bytes."""
    header = draw(st.permutations(COLUMNS))
    if draw(st.booleans()):
        header = draw(st.lists(st.sampled_from([*COLUMNS, "extra", "", "id"]), max_size=10))
    rows = draw(st.lists(st.lists(cells, max_size=10), max_size=6))
    newline = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    if draw(st.booleans()):
        out = io.StringIO()
        csv.writer(out, lineterminator=newline).writerows([header, *rows])
        text = out.getvalue()
    else:  # no quoting at all: quotes, commas and newlines in cells break the rows
        text = "".join(",".join(row) + newline for row in [header, *rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]))
    data = text.encode(encoding, errors="surrogatepass" if encoding.startswith("utf") else "replace")
    if draw(st.booleans()):  # stray bytes: a truncated multi-byte sequence, a NUL, a lone BOM
        at = draw(st.integers(0, len(data)))
        data = (
            data[:at]
            + draw(st.sampled_from([b"\xc3", b"\xff", b"\x00", codecs.BOM_UTF8, b"\xed\xa0\x80"]))
            + data[at:]
        )
    return data


def intake(data: bytes, fmt: InputFormat, template: Template = TEMPLATE) -> list[IntakeResult] | IntakeError:
    try:
        return list(read_input(io.BytesIO(data), template, fmt=fmt))
    except IntakeError as exc:
        error = exc
    assert error.code == "intake_invalid"
    return error


def check_results(found: list[IntakeResult] | IntakeError) -> None:
    if isinstance(found, IntakeError):
        return
    lines = [result.line for result in found]
    assert lines == sorted(lines)
    assert all(line >= 1 for line in lines)
    ids = [result.certificate_id for result in found if isinstance(result, Accepted)]
    assert len(ids) == len(set(ids))
    for result in found:
        if isinstance(result, Accepted):
            check_securable(result.credential)  # what sealing will need; never a surprise there
        else:
            assert isinstance(result, Rejected)
            assert result.reason


@fuzz
@given(data=csv_inputs())
@example(data=b"")
@example(data=codecs.BOM_UTF8)
@example(data=b"\x00\x00\x00")
@example(data=",".join(COLUMNS).encode() + b"\n" + b'"unterminated,' * 3)
@example(data=",".join(COLUMNS).encode() + b"\n" + b"x" * (FIELD_LIMIT + 1))
@example(data=",".join(COLUMNS).encode() + b"\nc-1,\xff,1,1,1,2020-01-01,,\n")
def test_csv_intake_gives_results_or_an_intake_error(data: bytes) -> None:
    check_results(intake(data, InputFormat.CSV))


@fuzz
@given(data=st.binary(max_size=300) | json_token_soup.map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(data=b"[" + b"[" * 5000 + b"]" * 5000 + b"]")  # once a RecursionError out of the reader
@example(data=b"[1" + b"0" * 5000 + b"]")  # once int()'s ValueError out of the reader
@example(data=b'[{"id": "a", "name": "b"}, NaN, 1e999, "\\ud800"]')
@example(data=b"\xef\xbb\xbf[]")
def test_json_intake_gives_results_or_an_intake_error(data: bytes) -> None:
    check_results(intake(data, InputFormat.JSON))
    check_results(intake(data, InputFormat.JSONL))


def is_plain_text(cell: str) -> bool:
    """Text a UTF-8 CSV can carry that the template does not count as missing."""
    return (
        bool(cell.strip()) and len(cell) < FIELD_LIMIT and not any(0xD800 <= ord(c) <= 0xDFFF for c in cell)
    )


@fuzz
@given(names=st.lists(cells.filter(is_plain_text), min_size=1, max_size=5))
@example(names=list(FORMULAS))
def test_csv_cells_reach_the_credential_verbatim(names: list[str]) -> None:
    """No evaluation, stripping or re-encoding of text: formula prefixes are data like any other."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(
        [f"c-{i}", name, "1", "2.5", "yes", "2026-06-30", "", ""] for i, name in enumerate(names)
    )
    found = intake(out.getvalue().encode("utf-8"), InputFormat.CSV)
    assert not isinstance(found, IntakeError)
    assert all(isinstance(result, Accepted) for result in found), found
    assert [
        result.credential["credentialSubject"]["name"] for result in found if isinstance(result, Accepted)
    ] == names


@pytest.mark.parametrize("moment", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_datetime_at_the_ends_of_the_calendar_is_a_rejection(moment: str) -> None:
    # Records rather than a stream: an exception escaping read_input() would leave the CSV reader
    # suspended, and its clean-up would then fail in whichever test the garbage collector runs in.
    values = dict(zip(COLUMNS, ["c-1", "Ada", "1", "2.5", "yes", "2026-06-30", moment, ""], strict=True))
    (rejected,) = validate([Record(2, values)], TEMPLATE)
    assert isinstance(rejected, Rejected)
    assert "'t'" in rejected.reason


def test_the_fuzzed_template_accepts_a_good_row() -> None:
    row = f"c-1,Ada,120,3.5,yes,2026-06-30,{datetime(2026, 6, 30, tzinfo=UTC).isoformat()},note\n"
    found = intake((",".join(COLUMNS) + "\n" + row).encode(), InputFormat.CSV)
    assert isinstance(found, list)
    assert [type(result) for result in found] == [Accepted]


# --- verification -----------------------------------------------------------------------------

_BATCH = make_batch(2, seed="fuzz-verify")
FACTS, _ANCHORED = anchored(_BATCH)
GENUINE = next(_ANCHORED).to_json_dict()
NOW = datetime(2026, 12, 7, tzinfo=UTC)


def check_verdict(receipt: Any, facts: StaticFacts) -> Verdict:
    """verify()'s verdict on ``receipt``, as data and as text: a verdict with every check listed,
    never an exception (nor a hang: the deadline)."""
    verdict = verify(receipt, facts, NOW)
    assert verdict.status in Status
    assert [check.name for check in verdict.checks] == list(CheckName)
    if verdict.status is Status.INVALID:
        assert verdict.reasons
    try:  # and as the text a node or `finvault verify` reads, where there is one
        text = json.dumps(receipt, ensure_ascii=False).encode("utf-8", "surrogatepass")
        same = json.loads(text) == receipt  # a tuple is written as a list: another receipt then
    except (TypeError, ValueError, RecursionError):
        return verdict
    if same:
        assert verify(text, facts, NOW).status is verdict.status
    return verdict


@settings(fuzz, max_examples=250)
@given(receipt=mutated_receipts(GENUINE, receipt_values | hostile_values))
@example(receipt=GENUINE)
def test_verify_gives_a_verdict_for_any_receipt(receipt: Any) -> None:
    """Whatever /1 receipt it is handed, verify() answers with a verdict."""
    check_verdict(receipt, FACTS)


def test_the_genuine_receipt_of_the_verify_fuzzer_is_valid() -> None:
    assert verify(GENUINE, FACTS, NOW).status is Status.VALID  # so mutations start from a VALID one


def _v2(kind: str, securing: Securing) -> tuple[StaticFacts, dict[str, Any]]:
    """A genuine /2 receipt, anchored; as an SD-JWT, its credential has recursive disclosures (the
    degree and its members) and array-element ones (the courses)."""
    document = credential("Ada")
    document["credentialSubject"]["courses"] = ["Algebra", "Logic"]
    key = generate_private_key(kind)  # type: ignore[arg-type]
    secured = secure(document, key, securing, seed=f"fuzz/{kind}/{securing}")
    facts, [receipt] = anchored_v2(SecuredBatch(key, [secured], MerkleTree([secured.digest])))
    return facts, receipt.to_json_dict()


GENUINE_V2 = {
    "sd-jwt-EdDSA": _v2("ed25519", SD_JWT),
    "sd-jwt-RS256": _v2("rsa-2048", SD_JWT),
    "data-integrity": _v2("ed25519", DATA_INTEGRITY),
}


def _as_json(value: Any) -> Any:
    """``value`` as JSON data model (tuples are arrays, as JCS and the parsers read them)."""
    if isinstance(value, list | tuple):
        return [_as_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    return value


def same_json(one: Any, other: Any) -> bool:
    """Whether two values are one JSON value (``1`` and ``1.0`` are); non-JSON values never are."""
    try:
        return bool(json_model(_as_json(one)) == json_model(_as_json(other)))
    except (AttributeError, TypeError, RecursionError):
        return False


def only_withholds(genuine: dict[str, Any], receipt: Any) -> bool:
    """Whether ``receipt`` is ``genuine`` (as JSON), but for SD-JWT disclosures dropped or reordered
    with nothing kept hanging from a dropped one: what a holder may do (tests/unit/test_verify_v2.py)."""
    if not isinstance(receipt, dict) or set(receipt) != set(genuine):
        return False
    if not all(same_json(receipt[name], genuine[name]) for name in genuine if name != "credential"):
        return False
    if not isinstance(genuine["credential"], str):
        return same_json(receipt["credential"], genuine["credential"])
    shown = receipt["credential"]
    if not isinstance(shown, str):
        return False
    jwt, *disclosures, end = genuine["credential"].split("~")
    kept_jwt, *kept, kept_end = shown.split("~")
    parents = parents_of(disclosures)
    return (
        (kept_jwt, kept_end) == (jwt, end)
        and len(set(kept)) == len(kept)
        and set(kept) <= set(disclosures)
        and all(parents[d] is None or parents[d] in kept for d in kept)
    )


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


_DI = GENUINE_V2["data-integrity"][1]
DEEP_DATA_INTEGRITY = {**_DI, "credential": {**_DI["credential"], "x": _nested(600)}}


def _sd_jwt_examples(genuine: dict[str, Any]) -> list[dict[str, Any]]:
    jwt, *disclosures, _ = genuine["credential"].split("~")
    header, payload, signature = jwt.split(".")
    deep = b64url_text('["s","a",' + "[" * 3000 + "]" * 3000 + "]")
    return [
        {**genuine, "credential": f"{jwt}~{deep}~"},  # once past the parser's own nesting limit
        {**genuine, "credential": "~".join([jwt, *disclosures, *disclosures[:1], ""])},
        {**genuine, "credential": "~".join([jwt, *reversed(disclosures), ""])},  # VALID: order is free
        {**genuine, "credential": "~".join([jwt, *disclosures[1:], ""])},
        {**genuine, "credential": f"{header}.{payload}=.{signature}~"},
        {**genuine, "credential": "~" * 5000},
    ]


@settings(fuzz, max_examples=350)
@given(
    case=st.sampled_from(list(GENUINE_V2)).flatmap(
        lambda kind: st.tuples(
            st.just(kind), mutated_v2_receipts(GENUINE_V2[kind][1], receipt_values | hostile_values)
        )
    )
)
@example(case=("sd-jwt-EdDSA", GENUINE_V2["sd-jwt-EdDSA"][1]))
@example(case=("data-integrity", GENUINE_V2["data-integrity"][1]))
@example(case=("data-integrity", DEEP_DATA_INTEGRITY))  # once a RecursionError out of JCS
def test_verify_gives_a_verdict_for_any_v2_receipt(case: tuple[str, Any]) -> None:
    """Whatever /2 receipt it is handed (SD-JWT with EdDSA or RS256, Data Integrity), verify()
    answers with a verdict, and a VALID one only when the change was a holder's withholding."""
    kind, receipt = case
    facts, genuine = GENUINE_V2[kind]
    verdict = check_verdict(receipt, facts)
    event(f"{kind}: {verdict.status} {'/'.join(verdict.reasons)}")
    if verdict.status is Status.VALID:
        assert only_withholds(genuine, receipt), verdict.to_dict()


@pytest.mark.parametrize("kind", [kind for kind in GENUINE_V2 if kind.startswith("sd-jwt")])
def test_hostile_sd_jwts_pinned(kind: str) -> None:
    facts, genuine = GENUINE_V2[kind]
    for receipt in _sd_jwt_examples(genuine):
        verdict = check_verdict(receipt, facts)
        assert verdict.valid == only_withholds(genuine, receipt), verdict.to_dict()


@pytest.mark.parametrize("kind", list(GENUINE_V2))
def test_the_genuine_v2_receipts_of_the_verify_fuzzer_are_valid(kind: str) -> None:
    facts, genuine = GENUINE_V2[kind]
    assert verify(genuine, facts, NOW).status is Status.VALID
    assert only_withholds(genuine, genuine)


def test_a_data_integrity_credential_nested_600_levels_is_malformed() -> None:
    """Once a RecursionError out of JCS. Hypothesis raises the recursion limit while it runs, so
    its examples cannot show this; the node runs with the default limit."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        verdict = verify(DEEP_DATA_INTEGRITY, GENUINE_V2["data-integrity"][0], NOW)
    finally:
        sys.setrecursionlimit(limit)
    assert verdict.reasons == (Code.MALFORMED,)
    assert "nested deeper than 32 levels" in verdict.checks[0].detail
