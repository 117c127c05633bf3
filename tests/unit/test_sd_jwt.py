"""SD-JWT (RFC 9901, chain/core/sd_jwt.py) against the RFC's own bytes, against properties over
arbitrary JSON, and against two independent implementations run offline: OpenWallet Foundation's
TypeScript @sd-jwt/core (tests/tools/sd_jwt_verify.mjs, under Node) and the Python reference
implementation ``sd-jwt`` (PyPI)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, utils
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chain.core.canonical import escape_token
from chain.core.encoding import b64url, from_b64url
from chain.core.errors import FinVaultError
from chain.core.sd_jwt import (
    ALWAYS_DISCLOSED,
    MAX_DEPTH,
    MAX_DISCLOSURES,
    MAX_SD_JWT_CHARS,
    NO_DECOYS,
    RESERVED_NAMES,
    DecoyPolicy,
    JwsSigner,
    SdJwtError,
    SdJwtNotDisclosable,
    SdJwtSignatureInvalid,
    SdJwtTooLarge,
    b64url_decode,
    disclosure_digest,
    encode_disclosure,
    issue_sd_jwt,
    parse_sd_jwt,
    process_disclosures,
    verify_sd_jwt,
    withhold,
)
from tests.factories import credential, deterministic_bytes
from tests.strategies import json_token_soup, keys, scalars
from tests.tools.sd_jwt_peers import public_jwk, reference_payload, sd_jwt_core

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "tests" / "vectors" / "sd-jwt-rfc9901.json").read_text())

# Fixed keys: the tests are reproducible and do not pay for RSA key generation per example.
ED_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def canonical(value: Any) -> str:
    """Type-strict equality: ``1`` vs ``1.0`` vs ``True``, ``-0.0`` vs ``0.0`` stay apart."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def pointers_of(value: Any, prefix: str = "") -> list[str]:
    """Every JSON Pointer below ``value`` (the document itself excluded)."""
    found: list[str] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, item in items:
        pointer = f"{prefix}/{escape_token(str(key))}"
        found.append(pointer)
        found.extend(pointers_of(item, pointer))
    return found


def without(value: Any, dropped: set[str], prefix: str = "") -> Any:
    """``value`` with the members and elements at ``dropped`` (original pointers) removed."""
    if isinstance(value, dict):
        return {
            key: without(item, dropped, f"{prefix}/{escape_token(key)}")
            for key, item in value.items()
            if f"{prefix}/{escape_token(key)}" not in dropped
        }
    if isinstance(value, list):
        return [
            without(item, dropped, f"{prefix}/{index}")
            for index, item in enumerate(value)
            if f"{prefix}/{index}" not in dropped
        ]
    return value


def sign_raw(payload: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """An issuer-signed JWT over any payload (for verifier checks our issuer would never produce)."""
    header = header or {"alg": "EdDSA", "typ": "vc+sd-jwt"}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64url(ED_KEY.sign(signing_input.encode()))}"


# -- RFC 9901 known answers --------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["disclosures"], ids=lambda v: v["section"])
def test_disclosures_match_the_rfc_byte_for_byte(vector: dict[str, Any]) -> None:
    disclosure = encode_disclosure(
        vector["salt"], vector["value"], vector.get("name"), ensure_ascii=vector["ensure_ascii"]
    )
    assert disclosure == vector["disclosure"]
    if "digest" in vector:
        assert disclosure_digest(disclosure) == vector["digest"]


def rfc_issuer_key() -> ec.EllipticCurvePublicKey:
    jwk = VECTORS["issuer_key_a5"]
    x, y = (int.from_bytes(b64url_decode(jwk[c]), "big") for c in ("x", "y"))
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()


@pytest.mark.parametrize("vector", VECTORS["sd_jwts"], ids=lambda v: v["section"])
def test_the_rfc_examples_verify_and_process_to_the_rfc_payload(vector: dict[str, Any]) -> None:
    """The RFC's examples are ES256 (not a FinVault algorithm): the signature is checked here with
    the key of appendix A.5, the digests and the processing by the core."""
    parsed = parse_sd_jwt(vector["sd_jwt"])
    assert parsed.header == {"alg": "ES256", "typ": "example+sd-jwt"}
    r, s = int.from_bytes(parsed.signature[:32], "big"), int.from_bytes(parsed.signature[32:], "big")
    rfc_issuer_key().verify(utils.encode_dss_signature(r, s), parsed.signing_input, ec.ECDSA(hashes.SHA256()))
    assert canonical(process_disclosures(parsed.payload, parsed.disclosures)) == canonical(
        vector["processed"]
    )
    # Each disclosure re-encodes to the RFC's bytes from its decoded content, in the RFC's spelling.
    for disclosure in parsed.disclosures:
        salt, *rest = json.loads(b64url_decode(disclosure))
        value, name = (rest[0], None) if len(rest) == 1 else (rest[1], rest[0])
        ascii_only = b"\\u" in b64url_decode(disclosure)
        assert encode_disclosure(salt, value, name, ensure_ascii=ascii_only) == disclosure
    # Withholding a claim the RFC disclosed still processes; an RFC digest appearing twice does not.
    fewer = withhold(vector["sd_jwt"], disclosures=[parsed.disclosures[0]])
    assert len(parse_sd_jwt(fewer).disclosures) == len(parsed.disclosures) - 1
    doubled = dict(parsed.payload, again={"_sd": parsed.payload["_sd"][:1]})
    with pytest.raises(SdJwtError, match="digest appears twice"):
        process_disclosures(doubled, parsed.disclosures)


# -- issuance ----------------------------------------------------------------------------------


def vc() -> dict[str, Any]:
    document = credential()
    document["credentialSubject"]["courses"] = ["Logic", "Algebra", {"name": "Topology", "grade": "B"}]
    document["credentialStatus"] = {
        "id": "https://uni.example/status/1#94567",
        "type": "BitstringStatusListEntry",
    }
    document["validUntil"] = "2036-06-30T00:00:00Z"
    return document


def test_a_credential_round_trips_and_the_header_is_vc_sd_jwt() -> None:
    disclosable = [
        "/credentialSubject/name",
        "/credentialSubject/grade",
        "/credentialSubject/courses/1",
        "/credentialSubject/courses/2",
        "/credentialSubject/courses/2/grade",
    ]
    issued = issue_sd_jwt(vc(), disclosable, signer=ED_KEY, random_bytes=deterministic_bytes("vc"))
    verified = verify_sd_jwt(issued.compact, ED_KEY.public_key(), expected_alg="EdDSA")
    assert verified.payload == vc()
    assert verified.header == {"alg": "EdDSA", "typ": "vc+sd-jwt"}
    assert verified.issuer_signed_jwt == issued.jwt.encode("ascii")
    signed = parse_sd_jwt(issued.compact).payload
    assert signed["_sd_alg"] == "sha-256"
    for claim in ALWAYS_DISCLOSED:
        assert signed[claim] == vc()[claim]  # in the clear, in the signed payload itself
    subject = signed["credentialSubject"]
    assert "name" not in subject
    assert len(subject["_sd"]) == 4
    assert subject["_sd"] == sorted(subject["_sd"])
    assert len(subject["courses"]) == 4
    assert subject["courses"].count("Logic") == 1
    # Same randomness, same bytes: issuance is a pure function of its inputs.
    again = issue_sd_jwt(vc(), disclosable, signer=ED_KEY, random_bytes=deterministic_bytes("vc"))
    assert again == issued


def test_rsa_and_a_callable_signer() -> None:
    issued = issue_sd_jwt(
        vc(), ["/credentialSubject/grade"], signer=RSA_KEY, random_bytes=deterministic_bytes("r")
    )
    assert verify_sd_jwt(issued.compact, RSA_KEY.public_key(), expected_alg="RS256").payload == vc()
    with pytest.raises(SdJwtSignatureInvalid):
        verify_sd_jwt(issued.compact, ED_KEY.public_key(), expected_alg="EdDSA")  # alg mismatch
    with pytest.raises(SdJwtError):
        verify_sd_jwt(issued.compact, ED_KEY.public_key(), expected_alg="RS256")  # wrong key type
    hsm = JwsSigner("EdDSA", ED_KEY.sign)
    made = issue_sd_jwt(vc(), ["/credentialSubject/grade"], signer=hsm, random_bytes=deterministic_bytes("h"))
    assert verify_sd_jwt(made.compact, ED_KEY.public_key(), expected_alg="EdDSA").payload == vc()
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505  # refused below
    with pytest.raises(SdJwtError, match="2048"):
        issue_sd_jwt(vc(), [], signer=small, random_bytes=deterministic_bytes("s"))
    with pytest.raises(SdJwtError, match="2048"):
        verify_sd_jwt(issued.compact, small.public_key(), expected_alg="RS256")
    with pytest.raises(SdJwtError):
        issue_sd_jwt(vc(), [], signer=JwsSigner("none", lambda _: b""), random_bytes=deterministic_bytes("n"))


@pytest.mark.parametrize(
    ("payload", "pointer", "message"),
    [
        (vc(), "/type", "always shown"),
        (vc(), "/type/1", "always shown"),
        (vc(), "/issuer/name", "always shown"),
        (vc(), "/credentialStatus/id", "always shown"),
        (vc(), "/validUntil", "always shown"),
        (vc(), "/@context/0", "always shown"),
        (vc(), "", "whole payload"),
        (vc(), "credentialSubject", "not a JSON Pointer"),
        (vc(), "/credentialSubject/nobody", "no such claim"),
        (vc(), "/credentialSubject/courses/3", "no such array element"),
        (vc(), "/credentialSubject/courses/01", "no such array element"),
        (vc(), "/credentialSubject/courses/-", "no such array element"),
        (vc(), "/credentialSubject/~2", "invalid ~ escape"),
        ({"a": {"_sd": []}}, "/a", "reserved"),
        ({"a": [{"...": "x"}]}, "/a/0", "reserved"),
        ({"_sd_alg": "sha-256", "b": 1}, "/b", "reserved"),
    ],
)
def test_issuance_refuses(payload: dict[str, Any], pointer: str, message: str) -> None:
    with pytest.raises(SdJwtNotDisclosable, match=message):
        issue_sd_jwt(payload, [pointer], signer=ED_KEY, random_bytes=deterministic_bytes("x"))


@pytest.mark.parametrize(
    "payload",
    [{"a": float("nan")}, {"a": 2**53}, {"a": object()}, {1: "a"}, {"a": "\ud800"}, {"a": [[[[]]]] * 1}],
)
def test_issuance_refuses_what_is_not_plain_json(payload: dict[Any, Any]) -> None:
    if payload == {"a": [[[[]]]]}:  # plain JSON: nested beyond the limit only when deep enough
        deep: Any = "x"
        for _ in range(MAX_DEPTH + 1):
            deep = [deep]
        payload = {"a": deep}
    with pytest.raises(SdJwtError):
        issue_sd_jwt(payload, [], signer=ED_KEY, random_bytes=deterministic_bytes("j"))


def test_decoy_policy() -> None:
    assert [DecoyPolicy().count(n) for n in range(1, 9)] == [3, 2, 1, 4, 3, 2, 1, 4]
    assert [NO_DECOYS.count(n) for n in range(5)] == [0] * 5
    assert DecoyPolicy(2, 1).count(7) == 2
    with pytest.raises(SdJwtError):
        DecoyPolicy(-1, 4)
    issued = issue_sd_jwt(
        {"a": 1, "b": [1, 2]},
        ["/a", "/b/0"],
        signer=ED_KEY,
        random_bytes=deterministic_bytes("d"),
        decoys=NO_DECOYS,
    )
    assert parse_sd_jwt(issued.compact).payload["_sd"] == [disclosure_digest(issued.disclosures[0])]


# -- the holder --------------------------------------------------------------------------------


def test_withholding_a_parent_withholds_its_children() -> None:
    issued = issue_sd_jwt(
        vc(),
        ["/credentialSubject", "/credentialSubject/grade", "/credentialSubject/courses/2/grade"],
        signer=ED_KEY,
        random_bytes=deterministic_bytes("p"),
    )
    shown = withhold(issued.compact, pointers=["/credentialSubject"])
    assert shown.count("~") == 1  # every disclosure was under credentialSubject
    payload = verify_sd_jwt(shown, ED_KEY.public_key(), expected_alg="EdDSA").payload
    assert "credentialSubject" not in payload
    one = withhold(issued.compact, pointers="/credentialSubject/courses/2/grade")
    subject = verify_sd_jwt(one, ED_KEY.public_key(), expected_alg="EdDSA").payload["credentialSubject"]
    assert subject["courses"][2] == {"name": "Topology"}
    assert subject["grade"] == "A"
    # By disclosure, the same as by pointer.
    grade = next(d for d in issued.disclosures if json.loads(b64url_decode(d))[1:] == ["grade", "A"])
    assert withhold(issued.compact, disclosures=[grade]) == withhold(
        issued.compact, pointers=["/credentialSubject/grade"]
    )
    for wrong in ("/credentialSubject/name", "/issuer", "/nothing", 7):
        with pytest.raises(SdJwtNotDisclosable):
            withhold(issued.compact, pointers=[wrong])  # type: ignore[list-item]
    with pytest.raises(SdJwtNotDisclosable):
        withhold(issued.compact, disclosures=[encode_disclosure("salt", "A", "grade")])


# -- properties over arbitrary JSON ------------------------------------------------------------

sd_keys = keys.filter(lambda key: key not in RESERVED_NAMES)
sd_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(sd_keys, children, max_size=4),
    max_leaves=20,
)
payloads = st.dictionaries(sd_keys.filter(lambda key: key not in ALWAYS_DISCLOSED), sd_values, max_size=5)


def check_round_trip(payload: dict[str, Any], disclosable: set[str], dropped: set[str]) -> None:
    issued = issue_sd_jwt(
        payload, disclosable, signer=ED_KEY, random_bytes=deterministic_bytes(repr(payload))
    )
    full = verify_sd_jwt(issued.compact, ED_KEY.public_key(), expected_alg="EdDSA")
    assert canonical(full.payload) == canonical(payload)
    presented = withhold(issued.compact, pointers=sorted(dropped))
    verified = verify_sd_jwt(presented, ED_KEY.public_key(), expected_alg="EdDSA")
    assert canonical(verified.payload) == canonical(without(payload, dropped))
    assert verified.issuer_signed_jwt == full.issuer_signed_jwt  # withholding never touches the JWT
    # No disclosure of a withheld claim, or of anything under one, is left.
    gone = sum(1 for p in disclosable if any(p == d or p.startswith(d + "/") for d in dropped))
    assert len(parse_sd_jwt(presented).disclosures) == len(issued.disclosures) - gone


PINNED = [
    {"a": ["x"], "b": {"0": "x"}},  # an array and an integer-keyed object: told apart
    {"": {"": [1, "1", True, None, 1.0, -0.0, "true", "null"]}},  # empty keys; 1 vs "1" vs true vs null
    {"~": {"/": ["~1", "~0"]}, "~1": 0, "/": 1, "~0": {"~01": 2}},  # RFC 6901 escapes
    {"ключ": ["𝄞", "\u0000", "\u2028", "é"], "a": [[], {}, [[]]], "b": [{"c": [1]}]},  # unicode, empties
]


@pytest.mark.parametrize("payload", PINNED)
def test_pinned_payloads_round_trip_with_every_other_claim_withheld(payload: dict[str, Any]) -> None:
    every = pointers_of(payload)
    check_round_trip(payload, set(every), set(every[::2]))
    check_round_trip(payload, set(every), set(every[1::2]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads, data=st.data())
def test_issue_withhold_verify_gives_the_payload_less_what_was_withheld(
    payload: dict[str, Any], data: Any
) -> None:
    every = pointers_of(payload)
    disclosable = data.draw(st.sets(st.sampled_from(every)) if every else st.just(set()), label="disclosable")
    choices = sorted(disclosable)
    dropped = data.draw(st.sets(st.sampled_from(choices)) if choices else st.just(set()), label="withheld")
    check_round_trip(payload, disclosable, dropped)


@pytest.fixture(scope="module")
def issued_vc() -> str:
    issued = issue_sd_jwt(
        vc(),
        ["/credentialSubject/name", "/credentialSubject/courses/0", "/credentialSubject/courses/2/grade"],
        signer=ED_KEY,
        random_bytes=deterministic_bytes("tamper"),
    )
    return issued.compact


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~=+/ é"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), replacement=st.sampled_from(ALPHABET))
def test_any_character_changed_is_refused(issued_vc: str, position: int, replacement: str) -> None:
    position %= len(issued_vc)
    if issued_vc[position] == replacement:
        replacement = "B" if replacement == "A" else "A"
    tampered = issued_vc[:position] + replacement + issued_vc[position + 1 :]
    with pytest.raises(SdJwtError):
        verify_sd_jwt(tampered, ED_KEY.public_key(), expected_alg="EdDSA")


@settings(max_examples=100, deadline=None)
@given(first=payloads, second=payloads)
@example(first={"a": ["x"]}, second={"a": {"0": "x"}})
@example(first={"a": 1}, second={"a": 1.0})
@example(first={"a": 1}, second={"a": True})
def test_different_payloads_never_share_an_issuer_signed_jwt(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    jwts = [
        issue_sd_jwt(p, pointers_of(p)[:3], signer=ED_KEY, random_bytes=deterministic_bytes("same")).jwt
        for p in (first, second)
    ]
    # Equal JWTs exactly when the payloads are the same JSON text (key order included).
    assert (jwts[0] == jwts[1]) == (json.dumps(first) == json.dumps(second))


# -- strict verification -----------------------------------------------------------------------


def only_our_error(sd_jwt: Any) -> None:
    """Verification either succeeds or raises our error; any other exception fails the test."""
    error: SdJwtError | None = None
    try:
        verify_sd_jwt(sd_jwt, ED_KEY.public_key(), expected_alg="EdDSA")
    except SdJwtError as exc:
        error = exc
    if error is not None:
        assert isinstance(error, FinVaultError)
        assert isinstance(error, ValueError)
        assert error.code.startswith("sd_jwt_")


@settings(max_examples=300, deadline=None)
@given(
    text=json_token_soup | st.text(st.sampled_from("eyJ.~_-AZaz09="), max_size=64) | st.binary(max_size=64)
)
def test_hostile_text_gets_our_error_and_nothing_else(text: str | bytes) -> None:
    only_our_error(text)


@settings(max_examples=300, deadline=None)
@given(
    payload=st.dictionaries(st.sampled_from(["_sd", "...", "_sd_alg", "a", ""]), sd_values, max_size=4),
    disclosures=st.lists(
        st.tuples(st.text(max_size=3), st.sampled_from(["_sd", "...", "a", "b"]) | st.none(), sd_values),
        max_size=3,
    ),
)
def test_hostile_signed_payloads_get_our_error_and_nothing_else(
    payload: dict[str, Any], disclosures: list[tuple[str, str | None, Any]]
) -> None:
    encoded = [encode_disclosure(salt, value, name) for salt, name, value in disclosures]
    digests = [disclosure_digest(d) for d in encoded]
    payload = dict(payload, b={"_sd": digests[:1]}, c=[{"...": d} for d in digests[1:]])
    only_our_error("~".join([sign_raw(payload), *encoded, ""]))


def non_canonical(data: bytes) -> str:
    """base64url of ``data`` with a non-zero trailing bit: the same bytes, spelled differently."""
    text = b64url(data)
    assert len(text) % 4 in (2, 3)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return text[:-1] + alphabet[alphabet.index(text[-1]) + 1]


def test_the_verifier_refuses_what_rfc_9901_forbids() -> None:
    good = encode_disclosure("salt", "A", "grade")
    element = encode_disclosure("salt2", "FR")
    digest, element_digest = disclosure_digest(good), disclosure_digest(element)
    named_sd, named_dots = encode_disclosure("s", [], "_sd"), encode_disclosure("s", 1, "...")
    twice = b'{"alg":"EdDSA","alg":"EdDSA","typ":"vc+sd-jwt"}'
    cases: dict[str, tuple[str, str]] = {
        "unreferenced": (sign_raw({"a": 1}) + f"~{good}~", "not referenced"),
        "repeated disclosure": (sign_raw({"_sd": [digest]}) + f"~{good}~{good}~", "appears twice"),
        "repeated digest": (
            sign_raw({"_sd": [digest], "x": {"_sd": [digest]}}) + f"~{good}~",
            "digest appears twice",
        ),
        "repeated undisclosed digest": (
            sign_raw({"_sd": [digest], "x": [{"...": digest}]}) + "~",
            "digest appears",
        ),
        "name collides": (sign_raw({"_sd": [digest], "grade": "B"}) + f"~{good}~", "repeats the claim"),
        "name _sd": (sign_raw({"_sd": [disclosure_digest(named_sd)]}) + f"~{named_sd}~", "reserved"),
        "name ...": (sign_raw({"_sd": [disclosure_digest(named_dots)]}) + f"~{named_dots}~", "reserved"),
        "element in _sd": (sign_raw({"_sd": [element_digest]}) + f"~{element}~", "array element"),
        "claim in array": (sign_raw({"a": [{"...": digest}]}) + f"~{good}~", "object claim"),
        "sd_alg": (sign_raw({"_sd_alg": "sha-512"}) + "~", "_sd_alg"),
        "_sd not a list": (sign_raw({"_sd": digest}) + "~", "_sd"),
        "digest not a digest": (sign_raw({"_sd": ["abc"]}) + "~", "43"),
        "... with company": (sign_raw({"a": [{"...": digest, "b": 1}]}) + f"~{good}~", "other keys"),
        "... in an object": (sign_raw({"a": {"...": digest}}) + f"~{good}~", "outside an array"),
        "key binding": (sign_raw({"a": 1}) + "~" + sign_raw({"a": 1}), "key binding"),
        "no tilde": (sign_raw({"a": 1}), "no '~'"),
        "empty disclosure": (sign_raw({"_sd": [digest]}) + f"~~{good}~", "empty disclosure"),
        "padding": (sign_raw({"a": 1}) + f"~{good}==~", "base64url"),
        "two spellings": (sign_raw({"a": 1}) + "~" + non_canonical(b'["salt", "A"]') + "~", "non-canonical"),
        "no typ": (sign_raw({"a": 1}, {"alg": "EdDSA"}) + "~", "typ"),
        "crit": (
            sign_raw({"a": 1}, {"alg": "EdDSA", "typ": "vc+sd-jwt", "crit": ["b64"], "b64": False}) + "~",
            "crit",
        ),
        "alg none": (sign_raw({"a": 1}, {"alg": "none", "typ": "vc+sd-jwt"}) + "~", "algorithm"),
        "four segments": (sign_raw({"a": 1}) + ".e30~", "three segments"),
        "duplicate key": (f"{b64url(twice)}.e30.AA~", "duplicate key"),
    }
    for name, (sd_jwt, message) in cases.items():
        with pytest.raises(SdJwtError, match=message):
            verify_sd_jwt(sd_jwt, ED_KEY.public_key(), expected_alg="EdDSA")
        assert name


def test_sizes_are_refused_before_decoding() -> None:
    with pytest.raises(SdJwtTooLarge):
        verify_sd_jwt("a" * (MAX_SD_JWT_CHARS + 1), ED_KEY.public_key(), expected_alg="EdDSA")
    with pytest.raises(SdJwtTooLarge):
        verify_sd_jwt(b"a" * (MAX_SD_JWT_CHARS + 1), ED_KEY.public_key(), expected_alg="EdDSA")
    with pytest.raises(SdJwtTooLarge, match="disclosures"):
        verify_sd_jwt("a.b.c" + "~A" * (MAX_DISCLOSURES + 1) + "~", ED_KEY.public_key(), expected_alg="EdDSA")
    deep: Any = 1
    for _ in range(MAX_DEPTH + 1):
        deep = {"a": deep}
    with pytest.raises(SdJwtTooLarge, match="nested"):
        verify_sd_jwt(sign_raw(deep) + "~", ED_KEY.public_key(), expected_alg="EdDSA")
    very_deep = sign_raw({}).split(".")
    very_deep[1] = b64url(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(SdJwtError):  # Python's JSON recursion limit, caught; never a RecursionError
        verify_sd_jwt(".".join(very_deep) + "~", ED_KEY.public_key(), expected_alg="EdDSA")
    # Nesting through disclosures counts too: each level a disclosure inside the one above.
    value: Any = 1
    chain: list[str] = []
    for _ in range(MAX_DEPTH + 1):
        chain.append(encode_disclosure("s", value, "a"))
        value = {"_sd": [disclosure_digest(chain[-1])]}
    with pytest.raises(SdJwtTooLarge, match="nested"):
        verify_sd_jwt(
            sign_raw(value) + "~" + "~".join(chain) + "~", ED_KEY.public_key(), expected_alg="EdDSA"
        )


# -- independent implementations ---------------------------------------------------------------


def presentations(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> dict[str, str]:
    """One issued SD-JWT as a holder presents it (the second course withheld), and three damaged
    copies: a disclosure with one character changed, a well-formed forged disclosure in place of a
    real one, and a changed signature."""
    issued = issue_sd_jwt(
        vc(),
        [
            "/credentialSubject/grade",
            "/credentialSubject/courses/1",
            "/credentialSubject/courses/2",
            "/credentialSubject/courses/2/grade",
        ],
        signer=key,
        random_bytes=deterministic_bytes("interop"),
    )
    presented = withhold(issued.compact, pointers=["/credentialSubject/courses/1"])
    jwt, *disclosures, _ = presented.split("~")
    grade = next(i for i, d in enumerate(disclosures) if json.loads(b64url_decode(d))[1:] == ["grade", "A"])
    changed = disclosures[grade]
    changed = changed[:12] + ("A" if changed[12] != "A" else "B") + changed[13:]
    forged = encode_disclosure(json.loads(b64url_decode(disclosures[grade]))[0], "A+", "grade")
    signature_changed = jwt[:-6] + ("A" if jwt[-6] != "A" else "B") + jwt[-5:]

    def replace(index: int, disclosure: str) -> str:
        return "~".join([jwt, *disclosures[:index], disclosure, *disclosures[index + 1 :], ""])

    return {
        "presented": presented,
        "changed": replace(grade, changed),
        "forged": replace(grade, forged),
        "signature": "~".join([signature_changed, *disclosures, ""]),
    }


def expected_presented() -> dict[str, Any]:
    payload = vc()
    del payload["credentialSubject"]["courses"][1]
    return payload


@pytest.mark.parametrize(("key", "alg"), [(ED_KEY, "EdDSA"), (RSA_KEY, "RS256")], ids=["EdDSA", "RS256"])
def test_sd_jwt_core_typescript_agrees(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey, alg: str) -> None:
    cases = presentations(key)
    results = dict(
        zip(cases, sd_jwt_core([(sd_jwt, public_jwk(key), alg) for sd_jwt in cases.values()]), strict=True)
    )
    ours = verify_sd_jwt(cases["presented"], key.public_key(), expected_alg=alg).payload
    assert results["presented"]["verified"], results["presented"]
    assert canonical(results["presented"]["payload"]) == canonical(ours) == canonical(expected_presented())
    assert results["presented"]["header"] == {"alg": alg, "typ": "vc+sd-jwt"}
    for damaged in ("changed", "signature"):
        assert not results[damaged]["verified"], (damaged, results[damaged])
        with pytest.raises(SdJwtError):
            verify_sd_jwt(cases[damaged], key.public_key(), expected_alg=alg)
    # A well-formed disclosure whose digest is nowhere in the JWT: RFC 9901 section 7.1 step 5
    # says reject; @sd-jwt/core 0.19.0 ignores it instead (the forged claim does not appear).
    with pytest.raises(SdJwtError, match="not referenced"):
        verify_sd_jwt(cases["forged"], key.public_key(), expected_alg=alg)
    forged = results["forged"]
    assert not forged["verified"] or "grade" not in forged["payload"]["credentialSubject"], forged


@pytest.mark.parametrize(("key", "alg"), [(ED_KEY, "EdDSA"), (RSA_KEY, "RS256")], ids=["EdDSA", "RS256"])
def test_the_python_reference_implementation_agrees(
    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey, alg: str
) -> None:
    def reference(sd_jwt: str) -> dict[str, Any] | None:
        return reference_payload(sd_jwt, public_jwk(key))

    cases = presentations(key)
    ours = verify_sd_jwt(cases["presented"], key.public_key(), expected_alg=alg).payload
    assert canonical(reference(cases["presented"])) == canonical(ours) == canonical(expected_presented())
    for damaged in ("changed", "signature"):
        assert reference(cases[damaged]) is None, damaged
    # Like @sd-jwt/core, the reference ignores a well-formed unreferenced disclosure (RFC 9901
    # section 7.1 step 5 says reject, as ours does): the forged claim does not appear.
    forged = reference(cases["forged"])
    assert forged is None or "grade" not in forged["credentialSubject"], forged


def test_callers_mistakes_are_our_error_too() -> None:
    pointers: Any = [["/credentialSubject/grade"]]
    with pytest.raises(SdJwtNotDisclosable):
        issue_sd_jwt(vc(), pointers, signer=ED_KEY, random_bytes=deterministic_bytes("c"))
    with pytest.raises(SdJwtError):
        issue_sd_jwt(vc(), ["/credentialSubject/grade"], signer=ED_KEY, random_bytes=lambda n: b"short")
    with pytest.raises(SdJwtError):
        process_disclosures({"a": 1}, ["é"])
    with pytest.raises(SdJwtError):
        process_disclosures({"a": 1}, [7])  # type: ignore[list-item]
    with pytest.raises(SdJwtError):
        process_disclosures([], [])  # type: ignore[arg-type]
    with pytest.raises(SdJwtError):
        encode_disclosure(1, "A", "grade")  # type: ignore[arg-type]


@given(st.binary(max_size=100))
@example(b"\xfb\xff")  # both of the letters base64url respells
def test_b64url_is_unpadded_urlsafe_base64(data: bytes) -> None:
    assert b64url(data) == base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
    assert b64url_decode(b64url(data)) == data


@given(
    st.binary(max_size=80),
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
)
def test_strict_base64url_has_one_spelling_per_value(data: bytes, last: str) -> None:
    """from_b64url decodes what b64url writes, and takes no other spelling: a different last
    letter is refused unless it spells other bytes (checked against the standard library)."""
    text = b64url(data)
    assert from_b64url(text) == data
    if not text:
        return
    other = text[:-1] + last
    reference = base64.urlsafe_b64decode(other + "=" * (-len(other) % 4))
    if b64url(reference) == other:
        assert from_b64url(other) == reference
    else:
        with pytest.raises(ValueError, match="non-canonical"):
            from_b64url(other)
    with pytest.raises(ValueError, match="base64url"):
        from_b64url(text + "=")
