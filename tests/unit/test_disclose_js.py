"""The page's disclosure code (node/static/disclose.js) against the Python core's known answers.

Node runs the same file the browser loads, over tests/vectors/document-digest.json: every field
hash of every vector, and every vector's disclosed form, must come out exactly as the Python core
wrote them.
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
from tests.factories import credential, deterministic_bytes

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


def run_node(payload: dict[str, object]) -> dict[str, object]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: FinVault's setup needs Node 20 (the page's code runs on it here)")
    done = subprocess.run(
        [node, "-e", RUNNER, str(ROOT / "node" / "static" / "disclose.js")],
        input=json.dumps(payload), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_page_computes_the_same_hashes_and_disclosures_as_the_core() -> None:
    vectors = json.loads(VECTORS.read_text())
    out = run_node(vectors)
    expected_hashes = [field["hash"] for vector in vectors["vectors"] for field in vector["fields"]]
    assert out["hashes"] == expected_hashes
    assert len(expected_hashes) > 50
    expected_disclosed = [vector["disclosed"] for vector in vectors["vectors"] if "hide" in vector]
    assert expected_disclosed
    for got, want in zip(out["disclosed"], expected_disclosed, strict=True):  # type: ignore[call-overload]
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
