"""``eddsa-rdfc-2022`` against Digital Bazaar's stock implementation (@digitalbazaar/vc 7.3.0 with
@digitalbazaar/eddsa-rdfc-2022-cryptosuite 1.3.0, tests/tools/di_rdfc.mjs), both offline on the
same shipped contexts: what FinVault signs, they verify; what they sign, FinVault verifies; and a
changed field is refused by both. On an Open Badges 3.0 credential and a plain VC 2.0 one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from chain.core.data_integrity import DataIntegrityError, add_proof, did_key, issuer_id, verify_proof
from chain.core.jsonld import OB_V3P0_CONTEXT, VC_V2_CONTEXT
from tests.tools.stock_verifier import rdfc_peer

RDFC = "eddsa-rdfc-2022"


def open_badge(issuer: str) -> dict[str, Any]:
    return {
        "@context": [VC_V2_CONTEXT, OB_V3P0_CONTEXT],
        "id": "urn:uuid:0f3e1c9a-7b2d-4e58-9a61-2c4d8e7f1b30",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"id": issuer, "type": ["Profile"], "name": "Example Training Institute"},
        "validFrom": "2026-09-01T00:00:00Z",
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "achievement": {
                "id": "https://training.example/achievements/solidity-audit",
                "type": ["Achievement"],
                "name": "Smart contract auditing",
                "description": "Audits Solidity contracts for common vulnerability classes.",
                "criteria": {"narrative": "Found every planted bug in the final audit exercise."},
            },
        },
    }


def plain_credential(issuer: str) -> dict[str, Any]:
    return {
        "@context": [VC_V2_CONTEXT],
        "id": "urn:uuid:9b1d2f4e-3c5a-4d6b-8e7f-0a1b2c3d4e5f",
        "type": ["VerifiableCredential"],
        "issuer": issuer,
        "validFrom": "2026-09-01T00:00:00Z",
        "credentialSubject": {"id": "did:example:holder", "name": "Jane Doe", "description": "Graduate"},
    }


def changed(credential: dict[str, Any]) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(credential))
    copy["validFrom"] = "2026-09-02T00:00:00Z"
    return copy


def test_digital_bazaar_verifies_what_we_sign_and_refuses_a_changed_field() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    issuer = did_key(key.public_key())
    ours = [
        add_proof(make(issuer), key, controller=issuer, created="2026-12-01T00:00:00Z", cryptosuite=RDFC)
        for make in (open_badge, plain_credential)
    ]
    tampered = [changed(credential) for credential in ours]
    results = rdfc_peer("verify", [*ours, *tampered])
    assert [r["verified"] for r in results] == [True, True, False, False], results
    for credential in tampered:
        with pytest.raises(DataIntegrityError, match="signature does not verify"):
            verify_proof(credential)


def test_we_verify_what_digital_bazaar_signs_and_refuse_a_changed_field() -> None:
    placeholder = "did:key:placeholder"  # the tool makes a fresh key and sets its did:key as issuer
    theirs = rdfc_peer("sign", [open_badge(placeholder), plain_credential(placeholder)])
    assert all("error" not in credential for credential in theirs), theirs
    for credential in theirs:
        proof = credential["proof"]
        assert (proof["type"], proof["cryptosuite"], proof["proofPurpose"]) == (
            "DataIntegrityProof",
            RDFC,
            "assertionMethod",
        )
        check = verify_proof(credential)
        assert (check.controller, check.cryptosuite) == (issuer_id(credential), RDFC)
        with pytest.raises(DataIntegrityError, match="signature does not verify"):
            verify_proof(changed(credential))
    assert [r["verified"] for r in rdfc_peer("verify", [*theirs, *map(changed, theirs)])] == [
        True, True, False, False,
    ]  # fmt: skip
