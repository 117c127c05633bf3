"""A finvault-receipt/2 credential is a standard one: independent verifiers, pinned and offline,
accept what a holder shares and refuse what was altered, and reconstruct what FinVault's verdict
reports.

- The SD-JWT of a holder-disclosed receipt (a claim withheld, and a single array element
  withheld): npm @sd-jwt/core 0.19.0 and PyPI sd-jwt 0.10.4 (tests/tools/sd_jwt_peers.py), given the
  key the chain registered under the JWS ``kid``.
- A whole Data Integrity credential: @digitalbazaar/vc with eddsa-jcs-2022 (tests/tools/di_verify.mjs).

No chain is needed: the receipts are anchored in facts the test states (tests/factories.py).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from chain.core.encoding import hex0x, to_bytes32
from chain.core.merkle import MerkleTree
from chain.core.sd_jwt import b64url_decode, encode_disclosure, parse_sd_jwt, withhold
from chain.core.secured import DATA_INTEGRITY, SD_JWT, Securing
from chain.core.signing import PrivateKey, parsed_public_key
from chain.core.verify import CheckName, Status, verify
from chain.keys import generate_private_key
from tests.factories import SecuredBatch, StaticFacts, anchored_v2, credential, secure
from tests.tools.sd_jwt_peers import public_jwk, reference_payload, sd_jwt_core
from tests.tools.stock_verifier import stock_verifier

NOW = datetime(2026, 11, 23, tzinfo=UTC)
#: What the holder withholds, by case: a claim, and one element of an array.
WITHHELD = {"claim": ["/credentialSubject/grade"], "array-element": ["/credentialSubject/courses/1"]}


def canonical(value: Any) -> str:
    """Type-strict equality: ``1`` vs ``1.0`` vs ``True`` stay apart."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def anchored_receipt(key: PrivateKey, securing: Securing) -> tuple[StaticFacts, dict[str, Any]]:
    """One /2 receipt (a degree with an array of courses), anchored with two others."""
    documents = [credential(f"Student {i}") for i in range(3)]
    for document in documents:
        document["credentialSubject"]["courses"] = ["Algebra", "Logic", "Compilers"]
    secured = [secure(d, key, securing, seed=f"interop/{i}") for i, d in enumerate(documents)]
    facts, receipts = anchored_v2(SecuredBatch(key, secured, MerkleTree([s.digest for s in secured])))
    return facts, receipts[0].to_json_dict()


def altered_disclosure(sd_jwt: str) -> str:
    """``sd_jwt`` with its ``name`` disclosure replaced by a well-formed one with another name."""
    jwt, *disclosures, end = sd_jwt.split("~")
    index = next(i for i, d in enumerate(disclosures) if json.loads(b64url_decode(d))[1] == "name")
    salt = json.loads(b64url_decode(disclosures[index]))[0]
    disclosures[index] = encode_disclosure(salt, "Mallory", "name")
    return "~".join([jwt, *disclosures, end])


def flipped_character(sd_jwt: str) -> str:
    """``sd_jwt`` with one character of its second disclosure changed."""
    jwt, *disclosures, end = sd_jwt.split("~")
    d = disclosures[1]
    disclosures[1] = d[:12] + ("A" if d[12] != "A" else "B") + d[13:]
    return "~".join([jwt, *disclosures, end])


@pytest.mark.parametrize("withheld", list(WITHHELD))
@pytest.mark.parametrize(
    ("kind", "alg"), [("ed25519", "EdDSA"), ("rsa-2048", "RS256")], ids=["EdDSA", "RS256"]
)
def test_a_holder_disclosed_sd_jwt_verifies_with_two_independent_implementations(
    kind: str, alg: str, withheld: str
) -> None:
    facts, receipt = anchored_receipt(generate_private_key(kind), SD_JWT)  # type: ignore[arg-type]
    shown = withhold(receipt["credential"], pointers=WITHHELD[withheld])
    receipt["credential"] = shown
    verdict = verify(receipt, facts, NOW)
    assert verdict.status is Status.VALID, verdict.to_dict()
    ours = verdict.credential
    assert ours is not None
    if withheld == "claim":
        assert "grade" not in ours["credentialSubject"]
    else:
        assert ours["credentialSubject"]["courses"] == ["Algebra", "Compilers"]

    # The peers get the key the chain registered under the header's kid, nothing FinVault-specific.
    kid = parse_sd_jwt(shown).header["kid"]
    registered = facts.key(to_bytes32(kid))
    assert registered is not None
    assert kid == verdict.evidence["keyId"] == hex0x(registered.key_id)
    public = parsed_public_key(registered.public_key)
    assert isinstance(public, ed25519.Ed25519PublicKey | rsa.RSAPublicKey)
    jwk = public_jwk(public)

    changed, flipped = altered_disclosure(shown), flipped_character(shown)
    for sd_jwt in (changed, flipped):
        assert verify({**receipt, "credential": sd_jwt}, facts, NOW).status is Status.INVALID
    typescript = sd_jwt_core([(sd_jwt, jwk, alg) for sd_jwt in (shown, changed, flipped)])
    assert typescript[0]["verified"], typescript[0]
    assert canonical(typescript[0]["payload"]) == canonical(ours)
    assert typescript[0]["header"] == {"alg": alg, "typ": "vc+sd-jwt", "kid": kid}
    assert canonical(reference_payload(shown, jwk)) == canonical(ours)
    # A well-formed substitute is an unreferenced disclosure: ours refuses the whole SD-JWT (RFC
    # 9901 section 7.1 step 5); both peers ignore it, so the forged name never shows.
    substituted = typescript[1]
    assert not substituted["verified"] or "name" not in substituted["payload"]["credentialSubject"]
    by_reference = reference_payload(changed, jwk)
    assert by_reference is None or "name" not in by_reference["credentialSubject"]
    assert not typescript[2]["verified"], typescript[2]  # a character changed in a disclosure
    assert reference_payload(flipped, jwk) is None


def test_a_data_integrity_credential_verifies_with_a_stock_verifier() -> None:
    key = generate_private_key("ed25519")
    facts, receipt = anchored_receipt(key, DATA_INTEGRITY)
    verdict = verify(receipt, facts, NOW)
    assert verdict.status is Status.VALID, verdict.to_dict()
    whole = receipt["credential"]
    check = next(c for c in verdict.checks if c.name is CheckName.DATA_INTEGRITY)
    assert check.detail == f"eddsa-jcs-2022 by {whole['issuer']['id']}"

    altered = copy.deepcopy(whole)
    altered["credentialSubject"]["courses"] = {"0": "Algebra", "1": "Logic", "2": "Compilers"}
    withheld = copy.deepcopy(whole)
    del withheld["credentialSubject"]["grade"]
    results = stock_verifier([whole, altered, withheld])
    assert [r["verified"] for r in results] == [True, False, False], results
    for other in (altered, withheld):
        assert verify({**receipt, "credential": other}, facts, NOW).status is Status.INVALID
