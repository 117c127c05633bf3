"""Hypothesis strategies for JSON values FinVault accepts (shared by the document and receipt tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from chain.core.canonical import MAX_SAFE_INTEGER

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

# -- hostile input (tests/unit/test_fuzz.py) ---------------------------------------------------

#: Pieces of JSON text, well-formed and not: what a parser meets from a fuzzer or an attacker.
#: Joined at random they make text close enough to JSON to get past the first byte.
JSON_TOKENS = (
    *("{", "}", "[", "]", ",", ":", '"', " ", "\n", "\t"),
    *('"a"', '"format"', '"credential"', "null", "true", "false", "tru", "0", "-0", "01", "1.", ".5"),
    *("1e400", "-1e-400", "1" + "0" * 5000, "0." + "0" * 5000 + "1", str(MAX_SAFE_INTEGER + 1)),
    *("NaN", "Infinity", "-Infinity", "0x10", "'a'", "/* */", "\ufeff", "\x00", "\x7f", "\ud800"),
    *('"\\ud800"', '"\\udc00\\ud800"', '"\\u0000"', '"\\x41"', '"\t"', '"\U0001f600"', '"\\uD83D\\uDE00"'),
    *('"x":1,"x":2', "[" * 300, "]" * 300, '{"a":' * 60, "}" * 60),
)
json_token_soup = st.lists(st.sampled_from(JSON_TOKENS) | unicode_text, max_size=24).map("".join)
#: Python values no JSON parser returns, next to the ones it does: what a caller might hand over.
_foreign_scalars = st.one_of(
    st.binary(max_size=4),
    st.complex_numbers(max_magnitude=10),
    st.decimals(allow_nan=True),
    st.floats(),  # NaN and the infinities too
    st.integers(),  # beyond ±(2^53 - 1) too
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2),  # lone surrogates
    st.just(()),
    st.just(frozenset()),
)
hostile_values = st.recursive(
    scalars | _foreign_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(keys, children, max_size=4),
        st.dictionaries(st.integers() | st.none() | st.just(("t",)), children, max_size=2),
    ),
    max_leaves=24,
)
