"""Hypothesis strategies for JSON values FinVault accepts (shared by the document and receipt tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from chain.canonical import MAX_SAFE_INTEGER

#: Any Unicode text except lone surrogates (which canonicalization refuses).
unicode_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=16)
#: Keys that exercise RFC 6901 escaping ("~" and "/") as well as arbitrary text.
keys = st.one_of(unicode_text, st.text(st.sampled_from("~/01a"), max_size=5))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.floats(allow_nan=False, allow_infinity=False),
    unicode_text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=24,
)
