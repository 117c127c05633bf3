"""Hypothesis strategies for JSON values FinVault accepts (shared by the document and receipt tests)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

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

# -- hostile receipts (tests/unit/test_fuzz.py, tests/integration/test_hostile_cost.py) --------


def _nested_lists(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
#: Values that each aim at one check's edge: numbers at the ends of what RFC 8785 allows, hex and
#: base58 of every length, DIDs and verification methods, dates, long and deep and wide values.
receipt_values = st.one_of(
    json_values,
    st.sampled_from(
        [
            MAX_SAFE_INTEGER,
            MAX_SAFE_INTEGER + 1,
            -MAX_SAFE_INTEGER - 2,
            10**15 * 9,
            1e308,
            5e-324,
            -0.0,
            1.8e2,
        ]
    ),
    st.binary(max_size=40).map(lambda raw: "0x" + raw.hex()),
    st.text(st.sampled_from(_BASE58), max_size=120).map(lambda text: "z" + text),
    st.integers(0, 300_000).map(lambda n: "z" + "6" * n),
    st.sampled_from(["did:key:", "did:web:", "did:web:uni.example%2Fx", "did:web:[::1]", "#", "##"]).flatmap(
        lambda prefix: st.text(st.sampled_from(_BASE58 + ":#%/."), max_size=60).map(lambda t: prefix + t)
    ),
    st.sampled_from(["2026-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59", "0001-01-01", "2026-13-40", ""]),
    st.integers(0, 200_000).map(lambda n: "x" * n),
    st.integers(0, 5_000).map(lambda n: [0] * n),
    st.integers(30, 800).map(_nested_lists),
    st.integers(0, 100_000).map(lambda n: {"k" * n: [0] * 64}),
)


def _node_paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path below ``value`` (containers included), in document order."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    paths: list[tuple[str | int, ...]] = []
    for key, child in items:
        paths.append((*prefix, key))
        paths.extend(_node_paths(child, (*prefix, key)))
    return paths


@st.composite
def mutated_receipts(
    draw: st.DrawFn, genuine: dict[str, object], values: st.SearchStrategy[object]
) -> object:
    """A genuine receipt (JSON data) with one to three nodes replaced, removed, or joined by a new
    key or element, each drawn from ``values``; or, now and then, one value with no receipt around it."""
    if draw(st.integers(0, 19)) == 0:
        return draw(values)
    receipt = copy.deepcopy(genuine)
    for _ in range(draw(st.integers(1, 3))):
        paths = _node_paths(receipt)
        if not paths:
            break
        *parents, key = draw(st.sampled_from(paths))
        parent: Any = receipt
        for step in parents:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if action == "replace":
            parent[key] = draw(values)
        elif action == "remove":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(keys)] = draw(values)
        else:
            parent.insert(draw(st.integers(0, len(parent))), draw(values))
    return receipt


# -- credentials for finvault-receipt/2 (tests/unit/test_secured.py, tests/unit/test_verify_v2.py) --

#: Claim names SD-JWT reserves (chain.core.sd_jwt.RESERVED_NAMES): an issuer refuses them.
_SD_JWT_RESERVED = frozenset(("_sd", "...", "_sd_alg"))
#: Keys for credential claims: the edge cases of JSON Pointers and of the legacy flattening (empty,
#: integer-like, with "~" and "/"), beside arbitrary Unicode.
claim_keys = st.one_of(
    keys, st.sampled_from(["", "0", "1", "01", "~", "/", "~0", "~1", "a/b", "a~b", "é", "\U0001f600"])
).filter(lambda key: key not in _SD_JWT_RESERVED)
#: JSON values with claim keys, and the scalars a careless encoding confuses.
claim_values = st.recursive(
    scalars | st.sampled_from([0, 1, -1, "0", "1", "", True, False, None, "true", "null", 1.5]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(claim_keys, children, max_size=4),
    max_leaves=16,
)
#: Top-level claims a /2 securing leaves alone: not the issuer (set to the key's controller) nor
#: ``proof`` (replaced), nor the always-shown claims an SD-JWT never makes disclosable.
_FREE_TOP = frozenset(("issuer", "proof", "@context", "type", "validFrom", "validUntil", "credentialStatus"))


@st.composite
def credentials(draw: st.DrawFn) -> dict[str, Any]:
    """A VC 2.0 shaped credential with an arbitrary subject and arbitrary extra top-level claims."""
    extra = draw(
        st.dictionaries(claim_keys.filter(lambda key: key not in _FREE_TOP), claim_values, max_size=3)
    )
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": draw(
            st.sampled_from([["VerifiableCredential"], ["VerifiableCredential", "DegreeCredential"]])
        ),
        "issuer": "did:web:uni.example",
        **extra,
        "credentialSubject": draw(st.dictionaries(claim_keys, claim_values, max_size=5)),
    }


def json_model(value: Any) -> Any:
    """``value`` in the JSON data model, hashable: what two credentials must differ in to be
    different. Numbers compare by value (``1`` and ``1.0`` are one JSON number, so are ``0`` and
    ``-0``); ``true``, ``1``, ``"1"`` and ``null`` stay apart; an array is not an object."""
    if value is None or isinstance(value, bool):
        return ("literal", value)
    if isinstance(value, int | float):
        return ("number", float(value) + 0.0)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(json_model(item) for item in value))
    return ("object", frozenset((key, json_model(item)) for key, item in value.items()))


def _confusions(value: Any) -> list[Any]:
    """Values an ambiguous encoding might not tell from ``value``."""
    if isinstance(value, list):
        return [{str(i): item for i, item in enumerate(value)}, value[:-1], [*value, None], {}]
    if isinstance(value, dict):
        return [
            list(value.values()),
            {f"{key}/": item for key, item in value.items()},
            {**value, "": None},
            [],
        ]
    alternatives: tuple[Any, ...] = (0, 1, "1", "", True, False, None, "null", [], {})
    return [alternative for alternative in alternatives if alternative is not value]


@st.composite
def credential_twins(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A credential and a near twin: one node of its subject swapped for a value an ambiguous
    encoding might confuse with it (an array for an integer-keyed object, ``1`` for ``"1"``...)."""
    original = draw(credentials())
    twin = copy.deepcopy(original)
    paths = [("credentialSubject", *path) for path in _node_paths(twin["credentialSubject"])]
    if not paths:
        twin["credentialSubject"] = draw(st.sampled_from([[], {"": None}, {"0": "x"}]))
        return original, twin
    *parents, last = draw(st.sampled_from(paths))
    parent: Any = twin
    for step in parents:
        parent = parent[step]
    parent[last] = draw(st.sampled_from(_confusions(parent[last])))
    return original, twin


# -- hostile finvault-receipt/2 (tests/unit/test_fuzz.py, tests/integration/test_hostile_cost.py) --


def b64url_text(text: str | bytes) -> str:
    """Unpadded base64url of ``text`` (UTF-8, lone surrogates kept as their CESU-8 bytes)."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _deep(depth: int, leaf: str = "0") -> str:
    return "[" * depth + leaf + "]" * depth


def _sd_object(depth: int) -> str:
    return '{"_sd":[' * depth + "]}" * depth


_DIGEST = "A" * 43
#: JSON text of disclosures, each aimed at one rule of RFC 9901 section 7.1 or at the parser: wrong
#: arity and types, reserved names, numbers and nesting past the limits, text that is not JSON.
HOSTILE_DISCLOSURE_TEXTS = (
    *('["s","a",1]', '["s",1]', '["s","a"]', '["s"]', "[]", '["s","a",1,2]', '[1,"a",1]', '["s",1,1]'),
    *('{"s":"a"}', '"s"', "1", "null", "", " ", '["s","a",1] x', '["s","a",1', "\ufeff" + '["s","a",1]'),
    *('["s","_sd",["' + _DIGEST + '"]]', '["s","...",1]', '["s","_sd_alg","sha-256"]', '["s","",1]'),
    *('["s","a",{"_sd":["' + _DIGEST + '"]}]', '["s","a",[{"...":"' + _DIGEST + '"}]]'),
    *('["s","a",{"_sd":"' + _DIGEST + '"}]', '["s","a",{"_sd":[1,null,{}]}]', '["s","a",{"...":"x"}]'),
    *('["s","a",1e400]', '["s","a",-1e400]', '["s","a",1' + "0" * 5000 + "]", '["s","a",9007199254740993]'),
    *('["s","a",NaN]', '["s","a",Infinity]', '["s","a",{"x":1,"x":2}]', '["s","a","\\ud800"]'),
    *('["s","\\ud800",1]', '["s","a","\\u0000"]', '["\U0001f600","é",1]', '["s","a",' + _deep(31) + "]"),
    *('["s","a",' + _deep(40) + "]", '["s","a",' + _deep(3000) + "]", '["s","a",' + _sd_object(40) + "]"),
    *(
        '["' + "s" * 100_000 + '","a",1]',
        '["s","' + "k" * 100_000 + '",1]',
        '["s","a",[' + "0," * 50_000 + "0]]",
    ),
)
#: JWS headers: every ``alg``, ``typ``, ``kid`` and ``crit`` a verifier must refuse, and some it takes.
HOSTILE_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["EdDSA", "RS256", "none", "HS256", "ES256", "eddsa", "", None, 1, ["EdDSA"]]),
        "typ": st.sampled_from(["vc+sd-jwt", "dc+sd-jwt", "JWT", "VC+SD-JWT", "", None, 0]),
        "kid": st.sampled_from(["0x" + "00" * 32, "0x" + "AB" * 32, "0x", "", 0, None, ["0x" + "00" * 32]])
        | st.binary(max_size=40).map(lambda raw: "0x" + raw.hex()),
        "crit": st.sampled_from([[], ["b64"], ["exp"], "b64", None]),
        "b64": st.booleans(),
        "jwk": st.just({"kty": "OKP", "crv": "Ed25519", "x": "A" * 43}),
    },
)
#: What a hostile issuer-signed payload puts where digests belong.
hostile_sd_values = st.one_of(
    st.sampled_from(["sha-256", "SHA-256", "sha-512", "", None, 1, ["sha-256"]]),
    st.lists(
        st.one_of(
            st.sampled_from([_DIGEST, "A" * 42, "A" * 44, "A" * 42 + "=", "+" * 43, "", 0, None, [], {}]),
            st.text(st.sampled_from("AQgw_-+/=."), min_size=43, max_size=43),
        ),
        max_size=6,
    ),
    st.sampled_from([_DIGEST, {}, 0, None]),
    st.sampled_from([{"...": _DIGEST}, {"...": _DIGEST, "x": 1}, {"...": 0}, [{"...": _DIGEST}] * 2]),
)


def _split_sd_jwt(compact: str) -> tuple[list[str], list[str], str]:
    """The JWS segments, the disclosures, and what follows the last ``~``."""
    jwt, *rest = compact.split("~")
    return jwt.split("."), rest[:-1], rest[-1] if rest else ""


#: Nesting past which the strategies leave a value's JSON alone: whether json.dumps or json.loads
#: hits Python's recursion limit depends on the stack at the time, and Hypothesis needs generation
#: to behave alike when it replays an example.
_JSON_DEPTH = 200


def _depth(value: Any) -> int:
    """How deeply ``value`` nests, found without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list | tuple):
            stack.extend((child, depth + 1) for child in node)
    return deepest


def _decoded_json(segment: str) -> Any:
    text = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    depth = deepest = 0
    for byte in text:  # brackets inside strings only overcount: the bound stays a bound
        depth += (byte in b"[{") - (byte in b"]}")
        deepest = max(deepest, depth)
    if deepest > _JSON_DEPTH:
        raise ValueError("nested too deeply to decode here")
    return json.loads(text)


@st.composite
def mutated_sd_jwts(draw: st.DrawFn, compact: str, values: st.SearchStrategy[object]) -> str:
    """A genuine SD-JWT (compact form) with one to three changes: its text cut, characters that have
    a meaning (``~``, ``.``, padding, characters outside base64url, trailing bits) put in,
    disclosures dropped, duplicated, emptied, reordered, replaced by hostile JSON or by a genuine
    one's claim re-encoded with a hostile value, the header or the payload re-encoded hostile.
    A change to the issuer-signed JWT breaks its signature; processing meets the rest first."""
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):  # mostly one: each may end processing
        segments, disclosures, tail = _split_sd_jwt(compact)
        action = draw(
            st.sampled_from(
                [
                    *("cut", "splice", "drop", "duplicate", "empty", "reorder", "trailing"),
                    *("disclosure", "reclaim", "header", "payload", "payload", "tail"),
                ]
            )
        )
        if action == "cut":
            start = draw(st.integers(0, len(compact)))
            compact = compact[:start] + compact[draw(st.integers(start, len(compact))) :]
            continue
        if action == "splice":
            at = draw(st.integers(0, len(compact)))
            piece = draw(st.sampled_from(["~", ".", "~~", "=", "==", "+", "/", " ", "\n", "é", "\x00", "%"]))
            compact = compact[:at] + piece + compact[at + draw(st.integers(0, 1)) :]
            continue
        if action == "drop" and disclosures:
            disclosures = draw(st.lists(st.sampled_from(disclosures), unique=True))
        elif action == "duplicate" and disclosures:
            disclosures.insert(draw(st.integers(0, len(disclosures))), draw(st.sampled_from(disclosures)))
        elif action == "empty":
            disclosures.insert(draw(st.integers(0, len(disclosures))), "")
        elif action == "reorder":
            disclosures = draw(st.permutations(disclosures))
        elif action == "trailing":  # the last character of a segment: its trailing bits, or padding
            parts = [*segments, *disclosures]
            index = draw(st.integers(0, len(parts) - 1))
            if parts[index]:
                parts[index] = parts[index][:-1] + draw(st.sampled_from([*"AQgwBCDE_-", "==", "A=", "=="]))
            segments, disclosures = parts[: len(segments)], parts[len(segments) :]
        elif action == "disclosure":
            text = draw(st.sampled_from(HOSTILE_DISCLOSURE_TEXTS))
            new = b64url_text(text)
            if len(disclosures) > 0 and draw(st.booleans()):
                disclosures[draw(st.integers(0, len(disclosures) - 1))] = new
            else:
                disclosures.insert(draw(st.integers(0, len(disclosures))), new)
        elif action == "reclaim" and disclosures:  # a genuine claim with a hostile value or arity
            index = draw(st.integers(0, len(disclosures) - 1))
            try:
                content = _decoded_json(disclosures[index])
            except (ValueError, RecursionError):
                continue
            if isinstance(content, list) and content:
                value = draw(values)
                if _depth(value) > _JSON_DEPTH:
                    continue
                content[-1] = value
                if draw(st.integers(0, 3)) == 0:
                    content = draw(
                        st.sampled_from([content[:1], [*content, 0], [content[-1]], {"0": content}])
                    )
            try:
                disclosures[index] = b64url_text(json.dumps(content, ensure_ascii=False, allow_nan=True))
            except (TypeError, ValueError, RecursionError):
                continue
        elif action == "header" and segments:
            header = draw(HOSTILE_HEADERS)
            segments[0] = b64url_text(json.dumps(header, separators=(",", ":")))
        elif action == "payload" and len(segments) > 1:
            try:
                payload = _decoded_json(segments[1])
            except (ValueError, RecursionError):
                continue
            if isinstance(payload, dict) and draw(st.booleans()):
                target = payload.get("credentialSubject", payload)
                target = target if isinstance(target, dict) else payload
                target[draw(st.sampled_from(["_sd", "_sd", "...", "_sd_alg", "x"]))] = draw(hostile_sd_values)
            else:
                payload = draw(mutated_receipts(payload, values | hostile_sd_values))
            try:
                segments[1] = b64url_text(json.dumps(payload, ensure_ascii=False, allow_nan=True))
            except (TypeError, ValueError, RecursionError):
                continue
        elif action == "tail":
            tail = draw(st.sampled_from(["x", "eyJhbGciOiJFZERTQSJ9.e30.AA", "~", "."]))
        compact = "~".join([".".join(segments), *disclosures, tail])
    return compact


@st.composite
def mutated_v2_receipts(
    draw: st.DrawFn, genuine: dict[str, Any], values: st.SearchStrategy[object]
) -> object:
    """A genuine /2 receipt (JSON data) mutated: its JSON structure as :func:`mutated_receipts` does,
    or, for an SD-JWT, its compact string as :func:`mutated_sd_jwts` does, or both."""
    credential = genuine["credential"]
    if not isinstance(credential, str) or draw(st.integers(0, 3)) == 0:
        return draw(mutated_receipts(genuine, values))
    receipt = copy.deepcopy(genuine)
    receipt["credential"] = draw(mutated_sd_jwts(credential, values))
    if draw(st.integers(0, 5)) == 0:
        return draw(mutated_receipts(receipt, values))
    return receipt
