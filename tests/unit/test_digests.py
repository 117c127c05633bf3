"""The mirror's per-block digests (indexer/digests.py): the leaf encoding, held to its definition."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chain.core.hashing import keccak256
from indexer.digests import fold, row_leaf

#: Computed by the first implementation of the format (before the per-table fast path).
KNOWN = "cc362ebe65dafda936936d7aa9a11ad82d633a62c0aa6574ee7a56b38a904852"


def event_leaf(table: str, row: dict[str, Any]) -> bytes:
    """:func:`row_leaf` of a row given as a mapping."""
    names = tuple(row)
    return row_leaf(table, names, [row[name] for name in names])


def reference_leaf(table: str, row: dict[str, Any]) -> bytes:
    """``keccak256(table ‖ for each column, by name: name ‖ value)``, every part length-prefixed,
    written out as the module docstring states it."""

    def part(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    out = part(table.encode())
    for name in sorted(row):
        value = row[name]
        if isinstance(value, bytes | memoryview):
            encoded = b"b" + part(bytes(value))
        elif isinstance(value, bool):
            encoded = b"t" if value else b"f"
        elif isinstance(value, int):
            encoded = b"i" + value.to_bytes(32, "big", signed=True)
        else:
            encoded = b"s" + part(value.encode("utf-8"))
        out += part(name.encode()) + encoded
    return keccak256(out)


values = st.one_of(
    st.binary(max_size=70),
    st.binary(max_size=40).map(lambda data: memoryview(data)),
    st.booleans(),
    st.integers(min_value=-(2**255), max_value=2**255 - 1),
    st.text(max_size=30),
)
rows = st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=12)


@given(table=st.sampled_from(["anchors", "leaf_revocations", "issuers"]), row=rows)
def test_leaf_is_its_definition(table: str, row: dict[str, Any]) -> None:
    expected = reference_leaf(table, row)
    assert event_leaf(table, row) == expected
    names = tuple(reversed(row))  # the column order given does not matter
    assert row_leaf(table, names, [row[name] for name in names]) == expected


def test_leaf_tells_types_and_columns_apart() -> None:
    assert event_leaf("t", {"a": 1}) != event_leaf("t", {"a": True})
    assert event_leaf("t", {"a": b"1"}) != event_leaf("t", {"a": "1"})
    assert event_leaf("t", {"a": 1, "b": 2}) != event_leaf("t", {"a": 2, "b": 1})
    assert event_leaf("t", {"a": 1}) != event_leaf("u", {"a": 1})


def test_fold_known_answer() -> None:
    """A fixed vector: the digest format is shared between nodes, so it must never change."""
    leaf = event_leaf(
        "anchors", {"block_number": 7, "root": bytes(range(32)), "uri": "ipfs://x", "final": True}
    )
    digest = fold(bytes(32), 7, bytes([0xAB]) * 32, [leaf])
    assert digest.hex() == KNOWN
