"""The page's disclosure code (node/static/disclose.js) against the Python core.

Node runs the same file the browser loads:

- finvault-receipt/2: for SD-JWTs the core issued, the payload the page reconstructs must be
  :func:`chain.core.sd_jwt.process_credential`'s, its withholdable claims the core's, and every
  withholding it makes (each claim alone, single array elements, a parent with its children, a
  ``__proto__`` claim) exactly :func:`chain.core.sd_jwt.withhold`'s string;
- finvault-receipt/1 (legacy), over tests/vectors/document-digest.json: every field hash of every
  vector, and every vector's disclosed form, must come out exactly as the Python core wrote them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chain.core.canonical import SaltedDocument, salt_document
from chain.core.disclosure import withholdable
from chain.core.receipt import ReceiptV2, build_receipt_v2
from chain.core.sd_jwt import disclosed_claims, parse_sd_jwt, process_credential, withhold
from chain.keys import generate_private_key
from tests.factories import (
    CHAIN_ID,
    ISSUER,
    REGISTRY,
    credential,
    deterministic_bytes,
    make_secured_batch,
    secure,
)

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "document-digest.json"
RUNNER = """
const disclose = require(process.argv[1]);
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
(async () => {
  const subtle = globalThis.crypto.subtle;
  const out = {hashes: [], disclosed: [], withholdable: []};
  for (const vector of input.vectors) {
    for (const field of vector.fields) {
      out.hashes.push(await disclose.fieldHash(field.pointer, field.salt, field.value, subtle));
    }
    out.withholdable.push(disclose.withholdable(vector.credential));
    if (vector.hide) {
      const salts = Object.fromEntries(vector.fields.map((f) => [f.pointer, f.salt]));
      const receipt = {credential: vector.credential, salts, digest: vector.digest};
      const {credential, salts: kept, obfuscated} = await disclose.disclose(receipt, vector.hide, subtle);
      out.disclosed.push({credential, salts: kept, obfuscated});
    }
  }
  try {
    await disclose.disclose({credential: {a: [{b: 1}]}, salts: {"/a/0/b": "0x00"}}, ["/a/0/b"], subtle);
    out.arrayElement = "accepted";
  } catch (error) {
    out.arrayElement = error.message;
  }
  process.stdout.write(JSON.stringify(out));
})();
"""


#: For each SD-JWT: the payload and claims the page reconstructs, and what it makes of each list of
#: pointers to withhold (the smaller SD-JWT, or the error).
RUNNER_V2 = """
const disclose = require(process.argv[1]);
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
(async () => {
  const out = [];
  for (const item of input) {
    const processed = await disclose.processSdJwt(item.sdJwt);
    const withheld = [];
    for (const pointers of item.withhold) {
      try {
        withheld.push(await disclose.withholdSdJwt(item.sdJwt, pointers));
      } catch (error) {
        withheld.push({error: error.message});
      }
    }
    const smaller = await disclose.discloseV2(item.receipt, item.withhold[0]);
    const pointers = processed.claims.map((c) => c.pointer);
    out.push({payload: processed.payload, pointers, withheld, smaller});
  }
  process.stdout.write(JSON.stringify(out));
})().catch((error) => { console.error(error); process.exit(1); });
"""


def run_node(payload: object, runner: str = RUNNER) -> Any:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: FinVault's setup needs Node 20 (the page's code runs on it here)")
    done = subprocess.run(
        [node, "-e", runner, str(ROOT / "node" / "static" / "disclose.js")],
        input=json.dumps(payload), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return json.loads(done.stdout)


def test_the_page_computes_the_same_hashes_and_disclosures_as_the_core() -> None:
    vectors = json.loads(VECTORS.read_text())
    out = run_node(vectors)
    expected_hashes = [field["hash"] for vector in vectors["vectors"] for field in vector["fields"]]
    assert out["hashes"] == expected_hashes
    assert len(expected_hashes) > 50
    expected_disclosed = [vector["disclosed"] for vector in vectors["vectors"] if "hide" in vector]
    assert expected_disclosed
    for got, want in zip(out["disclosed"], expected_disclosed, strict=True):
        assert got == {
            "credential": want["credential"],
            "salts": want["salts"],
            "obfuscated": want["obfuscated"],
        }
    assert out["withholdable"] == [list(withholdable(vector["credential"])) for vector in vectors["vectors"]]
    assert "array elements cannot be hidden one by one" in str(out["arrayElement"])


def page_disclosure(document: SaltedDocument, hide: list[str]) -> dict[str, Any]:
    """What the page's "Share less" makes of ``document`` with ``hide`` withheld, checked equal to
    what the core's :meth:`SaltedDocument.disclose` makes."""
    want = document.disclose(hide)
    vector = {
        "credential": document.credential,
        "fields": [{"pointer": p, "salt": s, "value": "null"} for p, s in document.salts.items()],
        "digest": "0x" + document.digest.hex(),
        "hide": hide,
    }
    disclosed = run_node({"vectors": [vector]})["disclosed"]
    assert isinstance(disclosed, list)
    [got] = disclosed
    assert got == {
        "credential": want.credential,
        "salts": dict(want.salts),
        "obfuscated": list(want.obfuscated),
    }
    return got  # type: ignore[no-any-return]


def test_the_page_and_the_core_agree_on_a_fresh_credential() -> None:
    document: SaltedDocument = salt_document(
        credential('Zoë \u2028 "quoted" \\ \x07'), deterministic_bytes("js")
    )
    page_disclosure(document, ["/credentialSubject/grade", "/credentialSubject/degree"])


def test_a_field_named_proto_is_kept_or_withheld_as_the_core_does() -> None:
    """``__proto__`` is an ordinary key in JSON and in the core; the page once dropped it when it
    rebuilt the credential (an assignment sets the prototype) and kept its salt, so the smaller
    receipt no longer matched its digest."""
    claims = credential("Ada")
    claims["credentialSubject"]["__proto__"] = "a plain field"
    claims["credentialSubject"]["constructor"] = {"__proto__": {"polluted": True}, "kept": 1}
    document: SaltedDocument = salt_document(claims, deterministic_bytes("proto"))
    for hide in (["/credentialSubject/grade"], ["/credentialSubject/__proto__"]):
        got = page_disclosure(document, hide)
        assert ("__proto__" in got["credential"]["credentialSubject"]) is (hide[0].endswith("grade"))


def courses_credential(name: str) -> dict[str, Any]:
    """A degree with nested objects, a list of courses (scalars and an object) and awkward names."""
    claims = credential(name)
    subject = claims["credentialSubject"]
    subject["courses"] = ["Algebra", "Logic", {"title": "Compilers", "grade": "B"}, []]
    subject["__proto__"] = {"polluted": True}
    subject["a/b~c"] = "escaped"
    return claims


def sd_jwts() -> list[str]:
    """SD-JWTs the core issued: Ed25519 and RSA keys, default and chosen disclosable claims, some
    already smaller (withheld by a holder before)."""
    ed25519, rsa = generate_private_key("ed25519"), generate_private_key("rsa-2048")
    full = secure(courses_credential('Zoë \u2028 "quoted"'), ed25519, seed="js/1").value
    assert isinstance(full, str)
    chosen = secure(
        courses_credential("Ada"),
        rsa,
        seed="js/2",
        disclosable=[
            "/credentialSubject/courses/1",
            "/credentialSubject/courses/2/grade",
            "/credentialSubject",
        ],
    ).value
    assert isinstance(chosen, str)
    batch = make_secured_batch(1, seed="js/3").secured[0].value
    assert isinstance(batch, str)
    return [full, chosen, batch, withhold(full, pointers=["/credentialSubject/courses/0"])]


def receipt_of(sd_jwt: str) -> ReceiptV2:
    """A /2 receipt carrying ``sd_jwt`` (its proof and anchor are beside the point here)."""
    return build_receipt_v2(
        sd_jwt,
        path=["0x" + "11" * 32],
        root="0x" + "22" * 32,
        chain_id=CHAIN_ID,
        registry=REGISTRY,
        issuer=ISSUER,
    )


def withholdings(sd_jwt: str) -> list[list[str]]:
    """Every claim alone, then combinations, then pointers the core refuses."""
    pointers = list(disclosed_claims(sd_jwt))
    cases = [[p] for p in pointers]
    elements = [p for p in pointers if p.startswith("/credentialSubject/courses/")]
    cases.append(elements[:2])
    cases.append(pointers)
    cases += [["/credentialSubject/nope"], ["/issuer"], ["/credentialSubject/courses/9"]]
    return [case for case in cases if case]


def test_the_page_reconstructs_and_withholds_sd_jwts_as_the_core_does() -> None:
    items: list[dict[str, Any]] = [
        {"sdJwt": sd_jwt, "withhold": withholdings(sd_jwt), "receipt": receipt_of(sd_jwt).to_json_dict()}
        for sd_jwt in sd_jwts()
    ]
    out = run_node(items, RUNNER_V2)
    for item, got in zip(items, out, strict=True):
        sd_jwt = item["sdJwt"]
        assert isinstance(sd_jwt, str)
        assert got["payload"] == process_credential(parse_sd_jwt(sd_jwt))
        assert sorted(got["pointers"]) == sorted(disclosed_claims(sd_jwt))
        for pointers, page in zip(item["withhold"], got["withheld"], strict=True):
            try:
                core = withhold(sd_jwt, pointers=pointers)
            except ValueError:
                assert page == {"error": f"{pointers[0]}: names no selectively disclosed claim here"}
            else:
                assert page == core, pointers
        smaller = receipt_of(withhold(sd_jwt, pointers=item["withhold"][0]))
        assert got["smaller"] == smaller.to_json_dict()  # the same receipt, but for its credential
    assert any("/credentialSubject/courses/2/grade" in p for p in out[1]["pointers"])
    assert "/credentialSubject/__proto__" in out[0]["pointers"]
    assert "/credentialSubject/a~1b~0c" in out[0]["pointers"]
