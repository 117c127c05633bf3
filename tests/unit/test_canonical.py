"""chain.core.canonical (finvault-doc/1) against an independent reference, pinned vectors and properties.

The reference below (``ref_*``) shares no code with chain.core.canonical: it walks the credential by the
letter of RFC 6901, serializes every preimage with the ``rfc8785`` package and hashes with hashlib.
tests/vectors/document-digest.json was written by this reference, not by the code under test:

    .venv/bin/python -m tests.unit.test_canonical --write-vectors
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from chain.core.canonical import (
    DOC_FORMAT,
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_FIELDS,
    MAX_SAFE_INTEGER,
    SALT_BYTES,
    DisclosureMismatch,
    DocumentError,
    SaltedDocument,
    escape_token,
    field_hash,
    field_preimage,
    flatten,
    loads_strict,
    parse_credential,
    recompute_digest,
    salt_document,
    unescape_token,
)
from tests.strategies import json_values, keys, scalars

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "document-digest.json"

Path_ = tuple[str | int, ...]

# --- the reference ------------------------------------------------------------------------------


def ref_escape(token: str) -> str:
    """RFC 6901 section 3: '~' is written '~0' and '/' is written '~1' (in that order)."""
    return token.replace("~", "~0").replace("/", "~1")


def ref_pointer(path: Path_) -> str:
    """RFC 6901: a pointer is a sequence of '/'-prefixed reference tokens; array indices in decimal."""
    return "".join("/" + (ref_escape(step) if isinstance(step, str) else str(step)) for step in path)


def ref_leaves(credential: dict[str, Any]) -> list[tuple[str, Path_, Any]]:
    """``(pointer, path, value)`` of every leaf (scalar, [] or {}) of a credential, in document order."""
    out: list[tuple[str, Path_, Any]] = []

    def walk(node: Any, path: Path_) -> None:
        if isinstance(node, dict) and len(node) > 0:
            for key in node:
                walk(node[key], (*path, key))
        elif isinstance(node, list) and len(node) > 0:
            for index in range(len(node)):
                walk(node[index], (*path, index))
        else:
            out.append((ref_pointer(path), path, node))

    for key in credential:  # the top level is an object and never a leaf itself
        walk(credential[key], (key,))
    return out


def ref_field_hash(pointer: str, salt: str, value: Any) -> str:
    return "0x" + hashlib.sha256(rfc8785.dumps([pointer, salt, value])).hexdigest()


def ref_digest(hashes: list[str]) -> bytes:
    return hashlib.sha256(rfc8785.dumps(sorted(hashes))).digest()


def counter_stream(seed: bytes) -> Callable[[int], bytes]:
    """Deterministic ``random_bytes``: block k is SHA-256(seed || uint64_be(k)), so salt k is block k."""

    def random_bytes(n: int) -> bytes:
        blocks = (hashlib.sha256(seed + k.to_bytes(8, "big")).digest() for k in range(-(-n // 32)))
        return b"".join(blocks)[:n]

    return random_bytes


def ref_salts(credential: dict[str, Any], seed: bytes) -> dict[str, str]:
    """Salt k (k-th leaf in document order) = SHA-256(seed || uint64_be(k)), as 0x-lowercase hex."""
    return {
        pointer: "0x" + hashlib.sha256(seed + k.to_bytes(8, "big")).hexdigest()
        for k, (pointer, _, _) in enumerate(ref_leaves(credential))
    }


class ArrayHole(Exception):
    """Hiding would remove an array element (the remaining indices would shift)."""


_GONE = object()


def ref_hidden_leaves(credential: dict[str, Any], targets: list[str]) -> set[str]:
    return {
        pointer
        for pointer, _, _ in ref_leaves(credential)
        if any(pointer == t or pointer.startswith(t + "/") for t in targets)
    }


def ref_disclose(credential: dict[str, Any], targets: list[str]) -> dict[str, Any] | None:
    """The disclosed credential, or None when an array element would vanish from an array that
    stays. A target removes its whole subtree; containers emptied by hiding disappear; containers
    that were empty to begin with are leaves and stay."""

    def prune(node: Any, path: Path_) -> Any:
        pointer = ref_pointer(path)
        if any(pointer == t or pointer.startswith(t + "/") for t in targets):
            return _GONE
        if isinstance(node, dict) and node:
            kept = {k: r for k, v in node.items() if (r := prune(v, (*path, k))) is not _GONE}
            return kept if kept else _GONE
        if isinstance(node, list) and node:
            items = [prune(v, (*path, i)) for i, v in enumerate(node)]
            if any(item is _GONE for item in items):
                raise ArrayHole
            return items
        return node

    try:
        return {k: r for k, v in credential.items() if (r := prune(v, (k,))) is not _GONE}
    except ArrayHole:
        return None


def member_pointers(credential: dict[str, Any]) -> list[str]:
    """Pointers of every node (leaf or container) whose parent is an object: what may be hidden."""
    out: list[str] = []

    def walk(node: Any, path: Path_, is_member: bool) -> None:
        if is_member:
            out.append(ref_pointer(path))
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k), True)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i), False)

    for k, v in credential.items():
        walk(v, (k,), True)
    return out


def exact_number(text: str) -> int | float:
    """json.loads ``parse_int``: RFC 8785 writes integral doubles >= 2^53 as plain digits (1e20 is
    '100000000000000000000'), which only round-trip through rfc8785 as floats."""
    value = int(text)
    return value if abs(value) <= MAX_SAFE_INTEGER else float(value)


# --- strategies ---------------------------------------------------------------------------------

credentials = st.dictionaries(keys, json_values, min_size=1, max_size=6)
hex0x = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
seeds = st.binary(max_size=8)

EDGE_CASES: list[dict[str, Any]] = [
    {"": 0},
    {"a/b": {"m~n": [1, "x"]}, "~1": "~0", "/": {"": {"": None}}},
    {"zero": -0.0, "tiny": 5e-324, "big": 1e21, "small": 1e-7, "one": 1.0, "int": 1e20, "f16": 1e16},
    {"max": MAX_SAFE_INTEGER, "min": -MAX_SAFE_INTEGER, "maxfloat": 1.7976931348623157e308},
    {"empty": [[], {}, [[]], [{}]], "e": {}},
    {"s": '\u2028\u2029\x00\x1f\x7f"\\/\b\f\n\r\t\u00e9e\u0301\U0001f393\ufeff\uffff'},
]


def with_examples(cases: list[dict[str, Any]], **extra: Any) -> Callable[[Any], Any]:
    def decorate(test: Any) -> Any:
        for case in cases:
            test = example(credential=case, **extra)(test)
        return test

    return decorate


# --- reference equivalence ----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@with_examples(EDGE_CASES)
@given(credential=credentials)
def test_flatten_and_preimages_match_rfc8785(credential: dict[str, Any]) -> None:
    leaves = flatten(credential)
    reference = ref_leaves(credential)
    assert [pointer for pointer, _ in leaves] == [pointer for pointer, _, _ in reference]
    salt = "0x" + bytes(range(32)).hex()
    for (pointer, text), (_, _, value) in zip(leaves, reference, strict=True):
        expected = rfc8785.dumps([pointer, salt, value])
        assert text.encode() == rfc8785.dumps(value)
        assert field_preimage(pointer, salt, text) == expected
        assert field_preimage(pointer, salt, text) == rfc8785.dumps(
            [pointer, salt, json.loads(text, parse_int=exact_number)]
        )
        assert field_hash(pointer, salt, text) == "0x" + hashlib.sha256(expected).hexdigest()


@settings(max_examples=200, deadline=None)
@with_examples(EDGE_CASES, seed=b"edge")
@given(credential=credentials, seed=seeds)
@example(credential={"a": 1}, seed=b"")
def test_digest_matches_reference(credential: dict[str, Any], seed: bytes) -> None:
    doc = salt_document(credential, counter_stream(seed))
    salts = ref_salts(credential, seed)
    hashes = [ref_field_hash(p, salts[p], v) for p, _, v in ref_leaves(credential)]
    assert dict(doc.salts) == salts
    assert list(doc.salts) == list(salts)  # salts are drawn in document order
    assert doc.obfuscated == ()
    assert doc.credential is credential
    assert doc.digest == ref_digest(hashes)
    assert len(doc.digest) == 32
    assert recompute_digest(credential, doc.salts, ()) == doc.digest


@settings(max_examples=200, deadline=None)
@given(token=keys)
@example(token="~01")
@example(token="/~")
def test_escape_token_round_trips(token: str) -> None:
    assert escape_token(token) == ref_escape(token)
    assert unescape_token(escape_token(token)) == token
    assert "/" not in escape_token(token)


# --- selective disclosure -----------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), credential=credentials, seed=seeds)
@example(data=None, credential={"a": [{"b": 1}]}, seed=b"").via("array element emptied by hiding")
def test_hiding_never_changes_the_digest(data: Any, credential: dict[str, Any], seed: bytes) -> None:
    doc = salt_document(credential, counter_stream(seed))
    members = member_pointers(credential)
    if data is None:  # the explicit example above
        targets = ["/a/0/b"]
    else:
        targets = data.draw(st.lists(st.sampled_from(members), unique=True)) if members else []
    expected = ref_disclose(credential, targets)
    if expected is None:
        with pytest.raises(DocumentError, match="array elements cannot be hidden"):
            doc.disclose(targets)
        return
    disclosed = doc.disclose(targets)
    hidden = ref_hidden_leaves(credential, targets)
    assert disclosed.credential == expected
    assert dict(disclosed.salts) == {p: s for p, s in doc.salts.items() if p not in hidden}
    values = {p: v for p, _, v in ref_leaves(credential)}
    assert list(disclosed.obfuscated) == sorted(ref_field_hash(p, doc.salts[p], values[p]) for p in hidden)
    assert disclosed.digest == doc.digest
    assert recompute_digest(disclosed.credential, disclosed.salts, disclosed.obfuscated) == doc.digest
    assert recompute_digest(disclosed.credential, disclosed.salts, disclosed.obfuscated[::-1]) == doc.digest
    assert doc.credential == credential  # disclose() does not mutate


def related(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), credential=credentials)
def test_hiding_is_composable(data: Any, credential: dict[str, Any]) -> None:
    doc = salt_document(credential, os.urandom)
    members = member_pointers(credential)
    assume(members)
    first = data.draw(st.lists(st.sampled_from(members), unique=True), label="first")
    rest = [m for m in members if not any(related(m, a) for a in first)]
    assume(rest)
    second = data.draw(st.lists(st.sampled_from(rest), min_size=1, unique=True), label="second")
    if ref_disclose(credential, first + second) is None:
        with pytest.raises(DocumentError, match="array elements"):
            doc.disclose(first).disclose(second)
        return
    stepwise = doc.disclose(first).disclose(second)
    at_once = doc.disclose(first + second)
    assert stepwise == at_once
    assert recompute_digest(stepwise.credential, stepwise.salts, stepwise.obfuscated) == doc.digest


def test_hiding_fields_inside_array_elements() -> None:
    credential = {"grades": [{"course": "A", "mark": 1}, {"course": "B", "mark": 2}], "name": "X"}
    doc = salt_document(credential, os.urandom)
    by_field = doc.disclose(["/grades/0/mark", "/grades/1/mark"])
    assert by_field.credential == {"grades": [{"course": "A"}, {"course": "B"}], "name": "X"}
    assert recompute_digest(by_field.credential, by_field.salts, by_field.obfuscated) == doc.digest
    everything = doc.disclose(["/name", "/grades/0/mark", "/grades/1/mark"])
    assert everything.credential == {"grades": [{"course": "A"}, {"course": "B"}]}
    with pytest.raises(DocumentError, match="array elements cannot be hidden"):
        doc.disclose(["/grades/0/mark", "/grades/0/course"])  # element 0 would vanish


@pytest.mark.parametrize(
    ("credential", "target", "expected"),
    [
        ({"a": [1, 2], "b": 1}, "/a", {"b": 1}),
        ({"grades": [{"course": "A"}], "name": "X"}, "/grades", {"name": "X"}),
        ({"s": {"arr": [[1]], "t": 1}, "b": 1}, "/s", {"b": 1}),
        ({"s": {"arr": ["x"], "t": 1}}, "/s/arr", {"s": {"t": 1}}),
        ({"a": [1, 2], "b": 1}, ["/a", "/a/0"], {"b": 1}),  # the element goes with its array
        ({"a": [1], "b": [{"c": 2}]}, [""], {}),  # the root: everything
    ],
)
def test_hiding_a_subtree_that_contains_an_array(
    credential: dict[str, Any], target: str | list[str], expected: dict[str, Any]
) -> None:
    targets = [target] if isinstance(target, str) else target
    doc = salt_document(credential, os.urandom)
    disclosed = doc.disclose(targets)
    assert disclosed.credential == expected == ref_disclose(credential, targets)
    assert recompute_digest(disclosed.credential, disclosed.salts, disclosed.obfuscated) == doc.digest


def test_hiding_errors() -> None:
    doc = salt_document({"a": [1, 2], "b": {"c": 1}}, os.urandom)
    with pytest.raises(DocumentError, match="array elements cannot be hidden") as exc_info:
        doc.disclose(["/a/0"])
    assert exc_info.value.pointer == "/a/0"
    with pytest.raises(DocumentError, match="no disclosed field") as exc_info:
        doc.disclose(["/nope"])
    assert exc_info.value.pointer == "/nope"
    with pytest.raises(DocumentError, match="no disclosed field"):
        doc.disclose(["/b/c"]).disclose(["/b/c"])  # already hidden
    with pytest.raises(DocumentError, match="no disclosed field"):
        doc.disclose(["/b/"])  # a prefix is not a pointer


# --- any single change changes the digest -------------------------------------------------------


def outcome(credential: dict[str, Any], salts: dict[str, str], obfuscated: tuple[str, ...] = ()) -> Any:
    """The recomputed digest, or the class of the DocumentError that refused the document."""
    try:
        return recompute_digest(credential, salts, obfuscated)
    except DocumentError as exc:
        return type(exc)


def set_at(root: dict[str, Any], path: Path_, value: Any) -> None:
    node: Any = root
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


def get_at(root: Any, path: Path_) -> Any:
    for step in path:
        root = root[step]
    return root


def dict_paths(credential: dict[str, Any]) -> list[Path_]:
    """Paths of every object in the credential, the root included."""
    out: list[Path_] = []

    def walk(node: Any, path: Path_) -> None:
        if isinstance(node, dict):
            out.append(path)
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(credential, ())
    return out


@settings(max_examples=100, deadline=None)
@given(data=st.data(), credential=credentials, seed=seeds)
def test_changing_a_value_or_salt_changes_the_digest(
    data: Any, credential: dict[str, Any], seed: bytes
) -> None:
    doc = salt_document(credential, counter_stream(seed))
    pointer, path, old = data.draw(st.sampled_from(ref_leaves(credential)))
    new = data.draw(scalars.filter(lambda v: rfc8785.dumps(v) != rfc8785.dumps(old)), label="new value")
    changed = copy.deepcopy(credential)
    set_at(changed, path, new)
    assert outcome(changed, dict(doc.salts)) not in (doc.digest, DocumentError)

    salt = data.draw(hex0x.filter(lambda s: s != doc.salts[pointer]), label="new salt")
    assert outcome(credential, {**doc.salts, pointer: salt}) not in (doc.digest, DocumentError)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), credential=credentials, seed=seeds)
def test_renaming_a_key_changes_the_digest(data: Any, credential: dict[str, Any], seed: bytes) -> None:
    doc = salt_document(credential, counter_stream(seed))
    parent_path = data.draw(st.sampled_from([p for p in dict_paths(credential) if get_at(credential, p)]))
    parent = get_at(credential, parent_path)
    old_key = data.draw(st.sampled_from(list(parent)))
    new_key = data.draw(keys.filter(lambda k: k not in parent))
    renamed_parent = {(new_key if k == old_key else k): v for k, v in parent.items()}
    renamed = copy.deepcopy(credential) if parent_path else renamed_parent
    if parent_path:
        set_at(renamed, parent_path, renamed_parent)
    # Same salts under the old pointers: refused, not silently accepted.
    assert outcome(renamed, dict(doc.salts)) is DisclosureMismatch
    # Salts carried over to the new pointers: a valid document with a different digest.
    old_pointers = [p for p, _, _ in ref_leaves(credential)]
    new_pointers = [p for p, _, _ in ref_leaves(renamed)]
    moved = {new: doc.salts[old] for old, new in zip(old_pointers, new_pointers, strict=True)}
    assert outcome(renamed, moved) not in (doc.digest, DocumentError, DisclosureMismatch)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), credential=credentials, seed=seeds)
def test_adding_a_field_changes_the_digest(data: Any, credential: dict[str, Any], seed: bytes) -> None:
    doc = salt_document(credential, counter_stream(seed))
    parent_path = data.draw(st.sampled_from(dict_paths(credential)))
    parent = get_at(credential, parent_path)
    key = data.draw(keys.filter(lambda k: k not in parent))
    added = copy.deepcopy(credential)
    get_at(added, parent_path)[key] = data.draw(scalars)
    new_pointer = ref_pointer((*parent_path, key))
    assert outcome(added, dict(doc.salts)) is DisclosureMismatch  # an unsalted field never rides along
    salt = data.draw(hex0x)
    result = outcome(added, {**doc.salts, new_pointer: salt})
    if parent or not parent_path:
        assert result not in (doc.digest, DocumentError, DisclosureMismatch)
    else:  # the parent was an empty-object leaf, whose salt now matches nothing
        assert result is DisclosureMismatch


@settings(max_examples=100, deadline=None)
@given(data=st.data(), credential=credentials, seed=seeds)
def test_removing_a_field_without_obfuscating_it_is_detected(
    data: Any, credential: dict[str, Any], seed: bytes
) -> None:
    doc = salt_document(credential, counter_stream(seed))
    pointers_before = {p for p, _, _ in ref_leaves(credential)}
    parent_path = data.draw(st.sampled_from([p for p in dict_paths(credential) if get_at(credential, p)]))
    key = data.draw(st.sampled_from(list(get_at(credential, parent_path))))
    removed = copy.deepcopy(credential)
    del get_at(removed, parent_path)[key]
    assert outcome(removed, dict(doc.salts)) is DisclosureMismatch
    remaining = {p for p, _, _ in ref_leaves(removed)}
    trimmed = {p: s for p, s in doc.salts.items() if p in remaining}
    result = outcome(removed, trimmed)
    assert result != doc.digest
    if remaining - pointers_before:  # the parent became an empty-object leaf without a salt
        assert result is DisclosureMismatch
    elif not remaining:
        assert result is DocumentError  # nothing left at all
    else:
        assert isinstance(result, bytes)


def test_obfuscated_hashes_are_checked() -> None:
    doc = salt_document({"a": 1, "b": 2}, os.urandom)
    hidden = doc.disclose(["/b"])
    # Dropping or replacing the obfuscated hash changes the digest.
    assert recompute_digest(hidden.credential, hidden.salts, ()) != doc.digest
    assert recompute_digest(hidden.credential, hidden.salts, ["0x" + "00" * 32]) != doc.digest
    # A disclosed field's hash repeated in obfuscated.
    leaf = field_hash("/a", hidden.salts["/a"], "1")
    with pytest.raises(DisclosureMismatch, match="appears twice"):
        recompute_digest(hidden.credential, hidden.salts, [*hidden.obfuscated, leaf])
    with pytest.raises(DisclosureMismatch, match="appears twice"):
        recompute_digest(hidden.credential, hidden.salts, [*hidden.obfuscated, *hidden.obfuscated])


# --- rejections ---------------------------------------------------------------------------------


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_loads_strict_rejects_non_finite_literals(literal: str) -> None:
    with pytest.raises(DocumentError, match=f"{literal} is not valid JSON"):
        loads_strict(f'{{"a": {literal}}}')
    with pytest.raises(DocumentError, match="not valid JSON"):
        parse_credential(f'{{"a": [1, {{"b": {literal}}}]}}'.encode())


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_flatten_rejects_non_finite_floats(value: float) -> None:
    with pytest.raises(DocumentError, match="is not a JSON number") as exc_info:
        flatten({"x": {"a": value}})
    assert exc_info.value.pointer == "/x/a"
    with pytest.raises(DocumentError, match="is not a JSON number"):
        salt_document({"a": [value]}, os.urandom)


@pytest.mark.parametrize("value", [2**53, -(2**53), 10**16 - 1, 2**64, -(10**30)])
def test_integers_beyond_the_safe_range_are_rejected(value: int) -> None:
    with pytest.raises(DocumentError, match=r"outside ±\(2\^53 - 1\)") as exc_info:
        flatten({"n": value})
    assert exc_info.value.pointer == "/n"
    # Literals longer than 2^53 - 1 are refused by the parser already, shorter ones by flatten().
    with pytest.raises(DocumentError, match=r"outside|too large"):
        parse_credential(json.dumps({"a": {"n": value}}))


@pytest.mark.parametrize("digits", [17, 30, 4300, 5000, 100_000])
def test_huge_integer_literals_are_a_document_error(digits: int) -> None:
    """Python refuses int() of over 4,300 digits with a bare ValueError; the parser must not leak it."""
    for literal in ("9" * digits, "-" + "9" * digits):
        with pytest.raises(DocumentError, match="too large"):
            loads_strict('{"a": ' + literal + "}")


def test_safe_integer_bounds_are_accepted() -> None:
    assert flatten({"a": MAX_SAFE_INTEGER, "b": -MAX_SAFE_INTEGER}) == [
        ("/a", "9007199254740991"),
        ("/b", "-9007199254740991"),
    ]


@pytest.mark.parametrize(
    "text", ['{"a": 1, "a": 1}', '{"a": 1, "b": {"c": 1, "c": 2}}', '{"l": [{"x": 1, "x": 1}]}']
)
def test_duplicate_keys_are_rejected(text: str) -> None:
    with pytest.raises(DocumentError, match="duplicate key"):
        loads_strict(text)
    with pytest.raises(DocumentError, match="duplicate key"):
        parse_credential(text.encode())


@pytest.mark.parametrize("text", ["[]", '[{"a": 1}]', '"text"', "1", "1.5", "null", "true"])
def test_non_object_top_level_is_rejected(text: str) -> None:
    with pytest.raises(DocumentError, match="a credential must be a JSON object"):
        parse_credential(text)
    with pytest.raises(DocumentError, match="a credential must be a JSON object"):
        flatten(json.loads(text))
    with pytest.raises(DocumentError, match="a credential must be a JSON object"):
        salt_document(json.loads(text), os.urandom)


@pytest.mark.parametrize("text", ["", "{", '{"a": 1,}', "{'a': 1}", '{"a": 1} x', '{"a": 01}'])
def test_invalid_json_is_rejected(text: str) -> None:
    with pytest.raises(DocumentError, match="invalid JSON at line"):
        parse_credential(text)


@pytest.mark.parametrize("data", [b'{"a": "\xff"}', b'{"a": "\xc3"}', b'{"\xc0\xaf": 1}'])
def test_invalid_utf8_is_rejected(data: bytes) -> None:
    with pytest.raises(DocumentError, match="not UTF-8"):
        parse_credential(data)


def test_input_size_limit() -> None:
    fits = '{"a":"' + "x" * (MAX_DOCUMENT_BYTES - 8) + '"}'
    assert len(fits) == MAX_DOCUMENT_BYTES
    assert loads_strict(fits) == {"a": "x" * (MAX_DOCUMENT_BYTES - 8)}
    assert loads_strict(fits.encode()) == loads_strict(fits)
    with pytest.raises(DocumentError, match="262,144"):
        loads_strict(fits + " ")
    with pytest.raises(DocumentError, match="262,145 bytes; the limit is 262,144"):
        parse_credential((fits + " ").encode())
    assert loads_strict(fits + " ", max_bytes=MAX_DOCUMENT_BYTES + 1)


def test_canonical_size_limit_in_salt_document() -> None:
    salt = "0x" + "00" * SALT_BYTES
    overhead = len(rfc8785.dumps(["/a", salt, ""]))
    at_limit = {"a": "x" * (MAX_DOCUMENT_BYTES - overhead)}
    assert len(salt_document(at_limit, os.urandom).salts) == 1
    with pytest.raises(DocumentError, match="canonical document is 262,145 bytes; the limit is 262,144"):
        salt_document({"a": "x" * (MAX_DOCUMENT_BYTES - overhead + 1)}, os.urandom)
    # Escaping counts: each newline is two canonical bytes (flattening refuses it before salting).
    with pytest.raises(DocumentError, match="over 262,144 characters"):
        salt_document({"a": "\n" * (MAX_DOCUMENT_BYTES // 2)}, os.urandom)


def nested(depth: int, leaf: Any = 1, *, arrays: bool = False) -> dict[str, Any]:
    """A credential whose only leaf is ``depth`` pointer tokens deep."""
    node = leaf
    for _ in range(depth - 1):
        node = [node] if arrays else {"k": node}
    return {"k": node}


@pytest.mark.parametrize("arrays", [False, True])
@pytest.mark.parametrize("leaf", [1, {}, []])
def test_depth_limit(arrays: bool, leaf: Any) -> None:
    ok = nested(MAX_DEPTH, leaf, arrays=arrays)
    ((pointer, _),) = flatten(ok)
    assert pointer.count("/") == MAX_DEPTH
    assert parse_credential(json.dumps(ok)) == ok
    assert recompute_digest(ok, salt_document(ok, os.urandom).salts, ()) is not None
    too_deep = nested(MAX_DEPTH + 1, leaf, arrays=arrays)
    with pytest.raises(DocumentError, match=f"nested deeper than {MAX_DEPTH} levels"):
        flatten(too_deep)
    with pytest.raises(DocumentError, match="nested deeper"):
        parse_credential(json.dumps(too_deep))
    with pytest.raises(DocumentError, match="nested deeper"):
        salt_document(too_deep, os.urandom)


def test_pathologically_deep_json_is_a_document_error() -> None:
    text = '{"a":' + "[" * 100_000 + "]" * 100_000 + "}"
    # json's C scanner relies on the interpreter recursion limit to protect the C stack: with a raised
    # limit (importing py_ecc sets 100,000) this input crashes the process instead. Pin the default.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        with pytest.raises(DocumentError, match="nested too deeply"):
            loads_strict(text)
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize("leaf", [0, None, 1.5, True, {}, []])
def test_field_count_limit(leaf: Any) -> None:
    assert len(flatten({"a": [leaf] * MAX_FIELDS})) == MAX_FIELDS
    with pytest.raises(DocumentError, match=f"more than {MAX_FIELDS} fields"):
        flatten({"a": [leaf] * (MAX_FIELDS + 1)})
    with pytest.raises(DocumentError, match=f"more than {MAX_FIELDS} fields"):
        parse_credential(json.dumps({"a": [leaf] * (MAX_FIELDS + 1)}))


@pytest.mark.parametrize("leaf", ["x", "", {"k": "v"}])
def test_field_count_limit_applies_to_string_leaves(leaf: Any) -> None:
    with pytest.raises(DocumentError, match=f"more than {MAX_FIELDS} fields"):
        flatten({"a": [leaf] * (MAX_FIELDS + 1)})
    with pytest.raises(DocumentError, match=f"more than {MAX_FIELDS} fields"):
        flatten({f"k{i}": "v" for i in range(MAX_FIELDS + 1)})


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "\udc00\ud800"])
def test_lone_surrogate_values_are_rejected(value: str) -> None:
    with pytest.raises(DocumentError, match="lone surrogate") as exc_info:
        flatten({"a": {"b": value}})
    assert exc_info.value.pointer == "/a/b"
    with pytest.raises(DocumentError, match="lone surrogate"):
        parse_credential(json.dumps({"a": value}))  # "\ud800" escapes are legal JSON text


@pytest.mark.parametrize(
    "credential", [{"\ud800": 1}, {"a": {"b\udc00": "x"}}, {"\udc00": {"b": [1]}}, {"k": [{"\ud800": {}}]}]
)
def test_lone_surrogate_keys_are_rejected(credential: dict[str, Any]) -> None:
    with pytest.raises(DocumentError, match="lone surrogate"):
        flatten(credential)
    with pytest.raises(DocumentError, match="lone surrogate"):
        salt_document(credential, os.urandom)
    with pytest.raises(DocumentError, match="lone surrogate"):
        parse_credential(json.dumps(credential))


@pytest.mark.parametrize(
    "data",
    [
        b'{"\xed\xa0\x80": 1}',  # an encoded surrogate (CESU-8): ill-formed UTF-8
        b'{"a": "\xed\xbf\xbf"}',
        '{"a": 1}'.encode("utf-16"),
        '{"a": 1}'.encode("utf-16-le"),
        '{"a": 1}'.encode("utf-32"),
    ],
)
def test_bytes_must_be_utf8(data: bytes) -> None:
    with pytest.raises(DocumentError, match=r"not UTF-8|invalid JSON"):
        loads_strict(data)


def test_utf8_bom_is_rejected() -> None:
    with pytest.raises(DocumentError, match="invalid JSON"):
        loads_strict(b'\xef\xbb\xbf{"a": 1}')


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "1.8e308", "123456789e999"])
def test_overflowing_number_literals_are_rejected(literal: str) -> None:
    with pytest.raises(DocumentError, match="does not fit a double"):
        loads_strict('{"a": ' + literal + "}")
    with pytest.raises(DocumentError, match="does not fit a double"):
        parse_credential('{"a": [' + literal + "]}")


def test_input_size_limit_counts_utf8_bytes() -> None:
    text = '{"a": "' + "名" * (MAX_DOCUMENT_BYTES // 3 + 10) + '"}'
    assert len(text) < MAX_DOCUMENT_BYTES < len(text.encode())
    with pytest.raises(DocumentError, match="262,144 bytes"):
        loads_strict(text)
    with pytest.raises(DocumentError, match="262,144"):
        loads_strict(text.encode())
    fits = '{"a": "' + "名" * ((MAX_DOCUMENT_BYTES - 9) // 3) + '"}'
    assert len(fits.encode()) <= MAX_DOCUMENT_BYTES
    assert loads_strict(fits) == loads_strict(fits.encode())


@pytest.mark.parametrize(
    "credential", [{1: "a"}, {"a": {2: "b"}}, {None: 1}, {"a": [{b"k": 1}]}, {("t",): 1}, {True: 1}]
)
def test_non_string_keys_are_rejected(credential: dict[Any, Any]) -> None:
    with pytest.raises(DocumentError, match="is not a string"):
        flatten(credential)
    with pytest.raises(DocumentError, match="is not a string"):
        salt_document(credential, os.urandom)


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ((1, 2), "tuple"),
        ({1, 2}, "set"),
        (b"x", "bytes"),
        (Decimal("1.5"), "Decimal"),
        (1j, "complex"),
        (object(), "object"),
        (frozenset(), "frozenset"),
    ],
)
def test_non_json_python_values_are_rejected(value: Any, name: str) -> None:
    with pytest.raises(DocumentError, match=f"{name} is not a JSON value") as exc_info:
        flatten({"a": [0, value]})
    assert exc_info.value.pointer == "/a/1"


def test_salt_document_needs_fields_and_enough_randomness() -> None:
    with pytest.raises(DocumentError, match="at least one field"):
        salt_document({}, os.urandom)
    with pytest.raises(DocumentError, match="too few bytes"):
        salt_document({"a": 1, "b": 2}, lambda n: os.urandom(n - 1))


GOOD_SALT = "0x" + "ab" * 32
BAD_HEX = [
    "0x" + "AB" * 32,  # uppercase
    "0X" + "ab" * 32,
    "ab" * 33,  # no 0x
    "0x" + "ab" * 31,  # short
    "0x" + "ab" * 33,  # long
    "0x" + "ab" * 31 + "g0",
    "0x" + "ab" * 31 + "a ",
    " 0x" + "ab" * 32,
    "0x" + "\u0660" * 64,  # Arabic-Indic digit zero: str.isdigit() but not hex
    "",
    None,
    0,
    bytes(32),
]


@pytest.mark.parametrize("bad", BAD_HEX)
def test_recompute_digest_rejects_malformed_salts_and_obfuscated(bad: Any) -> None:
    with pytest.raises(DocumentError, match="is not a 0x-prefixed 32-byte lowercase hex string"):
        recompute_digest({"a": 1}, {"/a": bad}, ())
    with pytest.raises(DocumentError, match="is not a 0x-prefixed 32-byte lowercase hex string"):
        recompute_digest({"a": 1}, {"/a": GOOD_SALT}, [GOOD_SALT, bad])


def test_recompute_digest_rejects_mismatched_salts() -> None:
    with pytest.raises(DisclosureMismatch, match="field has no salt") as exc_info:
        recompute_digest({"a": 1, "b": 2}, {"/a": GOOD_SALT}, ())
    assert exc_info.value.pointer == "/b"
    with pytest.raises(DisclosureMismatch, match="salt matches no disclosed field") as exc_info:
        recompute_digest({"a": 1}, {"/a": GOOD_SALT, "/c": GOOD_SALT}, ())
    assert exc_info.value.pointer == "/c"
    with pytest.raises(DisclosureMismatch, match="no salt"):
        recompute_digest({"a/b": 1}, {"/a/b": GOOD_SALT}, ())  # unescaped pointer
    with pytest.raises(DocumentError, match="at least one field"):
        recompute_digest({}, {}, ())
    assert issubclass(DisclosureMismatch, DocumentError)
    assert DisclosureMismatch("x").code == "disclosure_mismatch"
    assert DocumentError("x").code == "document_invalid"


# --- fixed cases --------------------------------------------------------------------------------

FIXED: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
    ({"名前": "山田太郎"}, [("/名前", '"山田太郎"')]),
    ({"🎓": "🎓 PhD"}, [("/🎓", '"🎓 PhD"')]),
    ({"e\u0301": "e\u0301", "\u00e9": "\u00e9"}, [("/e\u0301", '"e\u0301"'), ("/\u00e9", '"\u00e9"')]),
    ({"\u2028": "\u2028\u2029"}, [("/\u2028", '"\u2028\u2029"')]),  # not escaped by RFC 8785
    (
        {"ctl": "\x00\x01\x1f\x7f\b\f\n\r\t"},
        [("/ctl", '"\\u0000\\u0001\\u001f\x7f\\b\\f\\n\\r\\t"')],
    ),
    ({'q"uote\\': 'a"b\\c/d'}, [('/q"uote\\', '"a\\"b\\\\c/d"')]),
    (
        {"n": [0, -0.0, 1.0, 1e21, 1e-7, 5e-324, 2**53 - 1, 0.1, 1e20, 123e-20, -1.5, 1e16]},
        [
            (f"/n/{i}", text)
            for i, text in enumerate(
                [
                    "0",
                    "0",
                    "1",
                    "1e+21",
                    "1e-7",
                    "5e-324",
                    "9007199254740991",
                    "0.1",
                    "100000000000000000000",
                    "1.23e-18",
                    "-1.5",
                    "10000000000000000",
                ]
            )
        ],
    ),
    ({"t": True, "f": False, "z": None}, [("/t", "true"), ("/f", "false"), ("/z", "null")]),
    (
        {"a": [], "o": {}, "aa": [[]], "ao": [{}]},
        [("/a", "[]"), ("/o", "{}"), ("/aa/0", "[]"), ("/ao/0", "{}")],
    ),
    ({"m": [[1], [[2, [3]]]]}, [("/m/0/0", "1"), ("/m/1/0/0", "2"), ("/m/1/0/1/0", "3")]),
    (
        {"a/b": 1, "m~n": 2, "~1": 3, "": 4, "x": {"": {"/": 5}}},
        [
            ("/a~1b", "1"),
            ("/m~0n", "2"),
            ("/~01", "3"),
            ("/", "4"),
            ("/x//~1", "5"),
        ],
    ),
]


@pytest.mark.parametrize(("credential", "expected"), FIXED)
def test_fixed_documents(credential: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert flatten(credential) == expected
    assert parse_credential(json.dumps(credential)) == credential
    assert parse_credential(json.dumps(credential, ensure_ascii=False).encode()) == credential
    doc = salt_document(credential, counter_stream(b"fixed"))
    for pointer, text in expected:
        value = get_at(credential, tuple(ref_leaves_by_pointer(credential)[pointer]))
        assert field_preimage(pointer, doc.salts[pointer], text) == rfc8785.dumps(
            [pointer, doc.salts[pointer], value]
        )
    salts = ref_salts(credential, b"fixed")
    assert doc.digest == ref_digest([ref_field_hash(p, salts[p], v) for p, _, v in ref_leaves(credential)])


def ref_leaves_by_pointer(credential: dict[str, Any]) -> dict[str, Path_]:
    return {pointer: path for pointer, path, _ in ref_leaves(credential)}


def test_escape_token_examples() -> None:
    assert escape_token("a/b") == "a~1b"
    assert escape_token("m~n") == "m~0n"
    assert escape_token("~1") == "~01"
    assert escape_token("/~") == "~1~0"
    assert unescape_token("~01") == "~1"
    assert unescape_token("a~1b") == "a/b"


def test_unicode_is_not_normalized() -> None:
    composed = salt_document({"n": "\u00e9"}, counter_stream(b"x")).digest
    decomposed = salt_document({"n": "e\u0301"}, counter_stream(b"x")).digest
    assert composed != decomposed


def test_numerically_equal_values_share_a_digest() -> None:
    """1, 1.0 and 1e0 are the same RFC 8785 number; -0.0 is 0. Strings and numbers differ."""
    digests = {salt_document({"n": v}, counter_stream(b"x")).digest for v in (1, 1.0, json.loads("1e0"))}
    assert len(digests) == 1
    assert (
        salt_document({"n": -0.0}, counter_stream(b"x")).digest
        == salt_document({"n": 0}, counter_stream(b"x")).digest
    )
    assert salt_document({"n": "1"}, counter_stream(b"x")).digest not in digests


def test_member_order_matters_only_through_salts() -> None:
    """Pointers, not positions, are hashed: reordering members with their salts keeps the digest."""
    doc = salt_document({"a": 1, "b": {"c": 2, "d": 3}}, os.urandom)
    reordered = {"b": {"d": 3, "c": 2}, "a": 1}
    assert recompute_digest(reordered, doc.salts, ()) == doc.digest


# --- known-answer vectors -----------------------------------------------------------------------

VECTOR_DESCRIPTION = (
    "Known-answer vectors for finvault-doc/1 (chain/core/canonical.py), written by the independent reference "
    "in tests/unit/test_canonical.py (rfc8785 + hashlib only) with "
    "`.venv/bin/python -m tests.unit.test_canonical --write-vectors`. They pin the format: never "
    "regenerate them to make a test pass. For each vector, the credential is flattened into its leaves "
    "(scalars, [] and {}) in document order, each addressed by an RFC 6901 JSON Pointer. Salts are "
    "deterministic for reproducibility (real issuance uses os.urandom): salt_document() is given "
    "random_bytes(n) = first n bytes of SHA-256(seed || uint64_be(0)) || SHA-256(seed || uint64_be(1)) "
    "|| ..., where seed is the UTF-8 'seed' string, so the k-th leaf's salt is "
    "'0x' + hex(SHA-256(seed || uint64_be(k))). For each field: 'value' is the RFC 8785 text of the "
    "leaf, 'preimage' is RFC8785([pointer, salt, value]) as text, and 'hash' is '0x' + "
    "hex(SHA-256(preimage)). 'digest' is '0x' + hex(SHA-256(RFC8785(sorted list of all field-hash "
    "strings)))). Where 'hide' is present, 'disclosed' is SaltedDocument.disclose(hide): the credential "
    "without the hidden leaves (containers emptied by hiding disappear), the remaining salts, and the "
    "sorted hashes of hidden fields in 'obfuscated'; its digest is the same. All hex is 0x-prefixed "
    "lowercase. The file is ASCII JSON (non-ASCII characters are \\u escapes) so no tool can "
    "re-normalize its Unicode."
)

VECTOR_DOCUMENTS: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "vc2-degree",
        {
            "@context": [
                "https://www.w3.org/ns/credentials/v2",
                "https://www.w3.org/ns/credentials/examples/v2",
            ],
            "id": "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33",
            "type": ["VerifiableCredential", "UniversityDegreeCredential"],
            "issuer": {"id": "did:web:example.edu", "name": "Example University"},
            "validFrom": "2024-06-30T00:00:00Z",
            "credentialSubject": {
                "id": "did:example:ebfeb1f712ebc6f1c276e12ec21",
                "name": "Jane Doe",
                "degree": {"type": "BachelorDegree", "name": "Bachelor of Science and Arts"},
                "grade": "First Class Honours",
            },
        },
        [],
    ),
    (
        "unicode",
        {
            "名前": "山田 太郎",
            "🎓": "Doctorat ès sciences 🎓",
            "e\u0301": "decomposed (e + U+0301)",
            "\u00e9": "composed (U+00E9)",
            "sep": "line\u2028paragraph\u2029end",
            "ctl": "\x00\x01\x1f\x7f\b\f\n\r\t",
            'q"uote\\': 'say "hi" \\ bye / slash',
            "a/b": "slash key",
            "m~n": "tilde key",
            "": "empty key",
            "nested": {"~1": {"": "escaped-looking key and empty key"}},
            "bom": "\ufeff",
            "astral": "\U0001d11e\U0010ffff",
        },
        [],
    ),
    (
        "numbers",
        {
            "zero": 0,
            "negativeZero": -0.0,
            "oneFloat": 1.0,
            "big": 1e21,
            "justBelowExponent": 1e20,
            "small": 1e-7,
            "justAboveExponent": 1e-6,
            "denormal": 5e-324,
            "maxDouble": 1.7976931348623157e308,
            "maxSafe": 2**53 - 1,
            "minSafe": -(2**53 - 1),
            "tenth": 0.1,
            "third": 1 / 3,
            "negative": -1.5,
            "gpa": 3.85,
            "flags": [True, False, None],
        },
        [],
    ),
    (
        "empty-containers",
        {"a": [], "o": {}, "aa": [[]], "ao": [{}], "mixed": {"x": [], "y": {}, "z": ""}, "s": ""},
        [],
    ),
    (
        "nested-arrays",
        {
            "matrix": [[1, 2], [3, [4, [5, []]]]],
            "records": [{"k": "v"}, {"k": ["x", {"y": None}]}],
            "ids": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"],
        },
        [],
    ),
    (
        "vc2-with-hidden-fields",
        {
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "id": "urn:uuid:0f2b7f0e-3c3e-4a0d-9a57-4a6f0f7d1c2e",
            "type": ["VerifiableCredential", "ProfessionalCertificate"],
            "issuer": {"id": "did:web:certs.example.org", "name": "Example Professional Board"},
            "validFrom": "2025-01-15T09:30:00Z",
            "validUntil": "2030-01-15T09:30:00Z",
            "credentialSubject": {
                "id": "did:example:123456789abcdefghi",
                "name": "Ana Pérez",
                "birthDate": "1990-04-01",
                "certificate": {"title": "Certified Auditor", "level": 3, "score": 91.5},
                "address": {"city": "Madrid", "postalCode": "28001"},
                "courses": [{"code": "AUD-101", "mark": 9}, {"code": "AUD-202", "mark": 8.5}],
                "awards": ["Dean's List", {"title": "Best Thesis", "year": 2024}],
            },
        },
        [
            "/credentialSubject/birthDate",
            "/credentialSubject/address",
            "/credentialSubject/certificate/score",
            "/credentialSubject/courses/1/mark",
            "/credentialSubject/awards",
        ],
    ),
]


def ref_vector(name: str, credential: dict[str, Any], hide: list[str]) -> dict[str, Any]:
    seed = f"finvault-doc-vector/{name}"
    salts = ref_salts(credential, seed.encode())
    fields = []
    for pointer, _, value in ref_leaves(credential):
        preimage = rfc8785.dumps([pointer, salts[pointer], value])
        fields.append(
            {
                "pointer": pointer,
                "value": rfc8785.dumps(value).decode(),
                "salt": salts[pointer],
                "preimage": preimage.decode(),
                "hash": "0x" + hashlib.sha256(preimage).hexdigest(),
            }
        )
    vector: dict[str, Any] = {
        "name": name,
        "seed": seed,
        "credential": credential,
        "fields": fields,
        "digest": "0x" + ref_digest([f["hash"] for f in fields]).hex(),
    }
    if hide:
        disclosed = ref_disclose(credential, hide)
        assert disclosed is not None
        hidden = ref_hidden_leaves(credential, hide)
        vector["hide"] = hide
        vector["disclosed"] = {
            "credential": disclosed,
            "salts": {p: s for p, s in salts.items() if p not in hidden},
            "obfuscated": sorted(f["hash"] for f in fields if f["pointer"] in hidden),
        }
    return vector


def vector_file() -> dict[str, Any]:
    return {
        "description": VECTOR_DESCRIPTION,
        "format": DOC_FORMAT,
        "vectors": [ref_vector(*doc) for doc in VECTOR_DOCUMENTS],
    }


VECTORS: dict[str, Any] = (
    json.loads(VECTORS_PATH.read_text(encoding="ascii")) if VECTORS_PATH.exists() else {}
)


def test_vector_file_is_what_the_reference_writes() -> None:
    """Guards the reference itself: the pinned answers and today's reference agree."""
    assert render_vectors() == VECTORS_PATH.read_text(encoding="ascii")
    assert VECTORS["format"] == DOC_FORMAT
    assert len(VECTORS["vectors"]) >= 6


@pytest.mark.parametrize("vector", VECTORS.get("vectors", []), ids=lambda v: v["name"])
def test_known_answer_vectors(vector: dict[str, Any]) -> None:
    credential = vector["credential"]
    fields = vector["fields"]
    assert flatten(credential) == [(f["pointer"], f["value"]) for f in fields]
    doc = salt_document(credential, counter_stream(vector["seed"].encode()))
    assert dict(doc.salts) == {f["pointer"]: f["salt"] for f in fields}
    assert "0x" + doc.digest.hex() == vector["digest"]
    for f in fields:
        assert field_preimage(f["pointer"], f["salt"], f["value"]) == f["preimage"].encode()
        assert field_hash(f["pointer"], f["salt"], f["value"]) == f["hash"]
    assert "0x" + recompute_digest(credential, doc.salts, ()).hex() == vector["digest"]
    if "hide" in vector:
        expected = vector["disclosed"]
        disclosed = doc.disclose(vector["hide"])
        assert disclosed.credential == expected["credential"]
        assert dict(disclosed.salts) == expected["salts"]
        assert list(disclosed.obfuscated) == expected["obfuscated"]
        digest = recompute_digest(expected["credential"], expected["salts"], expected["obfuscated"])
        assert "0x" + digest.hex() == vector["digest"]
        assert isinstance(disclosed, SaltedDocument)


def render_vectors() -> str:
    return json.dumps(vector_file(), indent=1, ensure_ascii=True) + "\n"


def write_vectors() -> None:
    VECTORS_PATH.write_text(render_vectors(), encoding="ascii")
    print(f"wrote {VECTORS_PATH}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-vectors"]:
        sys.exit("usage: python -m tests.unit.test_canonical --write-vectors")
    write_vectors()
