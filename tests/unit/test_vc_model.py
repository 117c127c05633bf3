"""The VC Data Model 2.0 rules: each one refused with its name, and good credentials untouched."""

from __future__ import annotations

from typing import Any

import pytest

from chain.core.vc_model import ModelError, check_credential
from tests.factories import credential

V2 = "https://www.w3.org/ns/credentials/v2"


def test_the_test_credentials_and_their_rich_forms_are_vc_2_0() -> None:
    check_credential(credential())
    check_credential(
        {
            **credential(),
            "id": "urn:uuid:5a0c1f4e-1c3b-4c52-8f5e-2f1f0b4f3c2a",
            "type": "VerifiableCredential",
            "issuer": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            "validFrom": "2026-06-30T00:00:00.5+02:00",
            "validUntil": "2030-06-30T00:00:00-01:30",
            "name": [{"@value": "Diplôme", "@language": "fr"}, "Diploma"],
            "description": {"@value": "A degree", "@language": "en", "@direction": "ltr"},
            "credentialSubject": [{"id": "did:example:ada"}, {"name": "Ada"}],
            "credentialStatus": {"type": "BitstringStatusListEntry", "id": "https://x.example/s#1"},
            "credentialSchema": [{"id": "https://x.example/schema.json", "type": "JsonSchema"}],
            "evidence": [{"type": ["Evidence"]}],
            "termsOfUse": {"type": "Policy"},
            "relatedResource": [{"id": "https://x.example/a.png", "digestSRI": "sha384-abc"}],
        }
    )


CASES: dict[str, tuple[dict[str, Any], str]] = {
    "context missing": ({"@context": None}, "context"),
    "context not first": ({"@context": ["https://example.org/ctx", V2]}, "context"),
    "context a string": ({"@context": V2}, "context"),
    "type without VerifiableCredential": ({"type": ["DegreeCredential"]}, "type"),
    "type a number": ({"type": [1]}, "type"),
    "id not a URL": ({"id": "not a url"}, "id"),
    "issuer not a URL": ({"issuer": "Example University"}, "issuer"),
    "issuer object without id": ({"issuer": {"name": "Example University"}}, "issuer"),
    "subject missing": ({"credentialSubject": None}, "credentialSubject"),
    "subject empty list": ({"credentialSubject": []}, "credentialSubject"),
    "subject a string": ({"credentialSubject": "did:example:ada"}, "credentialSubject"),
    "subject id not a URL": ({"credentialSubject": {"id": "ada"}}, "credentialSubject"),
    "validFrom without zone": ({"validFrom": "2026-06-30T00:00:00"}, "validity"),
    "validFrom a date": ({"validFrom": "2026-06-30"}, "validity"),
    "validFrom not a day": ({"validFrom": "2026-02-30T00:00:00Z"}, "validity"),
    "validUntil before validFrom": ({"validUntil": "2026-01-01T00:00:00Z"}, "validity"),
    "name a number": ({"name": 5}, "language"),
    "description without @value": ({"description": {"@language": "en"}}, "language"),
    "description with extras": ({"description": {"@value": "x", "extra": 1}}, "language"),
    "status without type": ({"credentialStatus": {"id": "https://x.example/s#1"}}, "typed"),
    "schema without id": ({"credentialSchema": {"type": "JsonSchema"}}, "typed"),
    "evidence id not a URL": ({"evidence": {"type": "Evidence", "id": "e 1"}}, "typed"),
    "termsOfUse a string": ({"termsOfUse": "be nice"}, "typed"),
    "refreshService empty": ({"refreshService": []}, "typed"),
    "related without digest": ({"relatedResource": [{"id": "https://x.example/a"}]}, "relatedResource"),
    "related twice": (
        {"relatedResource": [{"id": "https://x.example/a", "digestSRI": "s"}] * 2},
        "relatedResource",
    ),
}


@pytest.mark.parametrize(("change", "rule"), list(CASES.values()), ids=list(CASES))
def test_each_rule_is_refused_by_name(change: dict[str, Any], rule: str) -> None:
    document = {**credential(), **change}
    with pytest.raises(ModelError) as refused:
        check_credential({k: v for k, v in document.items() if v is not None})
    assert refused.value.rule == rule
    assert str(refused.value).startswith(f"VC 2.0 {rule}: ")
