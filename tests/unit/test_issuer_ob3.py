"""Open Badges 3.0 issuance: the built-in ``ob3`` template, the recipient's hashed identity, the
structural check intake runs (every required field missing gives its own clear error), and sealing,
which secures an Open Badge whole under a Data Integrity proof whatever the issuer's securing."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from chain.core import data_integrity
from chain.core.data_integrity import verify_proof
from chain.core.encoding import hex0x
from chain.core.merkle import leaf_hash
from chain.core.secured import (
    CRYPTOSUITES,
    SD_JWT,
    check_securable,
    data_integrity_digest,
    secure_data_integrity,
)
from chain.errors import ConfigError
from chain.keys import generate_private_key
from issuer import cli
from issuer.errors import TemplateError
from issuer.intake import Accepted, InputFormat, Rejected, read_input
from issuer.ob3 import (
    ISSUER_NAMED_AT_SEALING,
    OB3_CONTEXT,
    OB3_CRYPTOSUITE,
    OPTIONAL_COLUMNS,
    VC2_CONTEXT,
    check_open_badge,
    finish_open_badge,
    identity_hash,
    is_open_badge,
    ob3_document,
    ob3_template,
    require_ed25519,
)
from issuer.pipeline import SealContext, seal_certificates
from issuer.template import RowError, template_for

ROW: dict[str, str] = {
    "id": "badge-1",
    "issuer_name": "Example University",
    "issuer_url": "https://uni.example",
    "issued": "2026-07-01",
    "expires": "",
    "achievement_id": "https://uni.example/achievements/python-101",
    "achievement_name": "Python 101",
    "achievement_description": "Writes and tests small Python programs.",
    "criteria_narrative": "Passed the final project with a mark of 60% or more.",
    "achievement_image": "",
    "recipient_id": "",
    "recipient_email": "Ada.Lovelace@Example.org",
    "recipient_student_id": "",
}


def badge(**changes: str) -> dict[str, Any]:
    return ob3_template("did:web:uni.example").fill({**ROW, **changes})


# -- the template ------------------------------------------------------------------------------


def test_the_template_fills_an_open_badge_credential() -> None:
    credential = badge(expires="2030-01-01", recipient_id="did:example:ada")
    assert credential["@context"] == [VC2_CONTEXT, OB3_CONTEXT]
    assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", credential["id"])
    assert credential["name"] == "Python 101"
    assert credential["issuer"] == {
        "id": "did:web:uni.example",
        "type": ["Profile"],
        "name": "Example University",
        "url": "https://uni.example",
    }
    assert credential["validFrom"] == "2026-07-01T00:00:00Z"
    assert credential["validUntil"] == "2030-01-01T00:00:00Z"
    subject = credential["credentialSubject"]
    assert subject["type"] == ["AchievementSubject"]
    assert subject["id"] == "did:example:ada"
    assert subject["achievement"] == {
        "id": "https://uni.example/achievements/python-101",
        "type": ["Achievement"],
        "name": "Python 101",
        "description": "Writes and tests small Python programs.",
        "criteria": {"narrative": "Passed the final project with a mark of 60% or more."},
    }
    assert check_open_badge(credential) == []
    check_securable(credential)  # a VC 2.0 credential within the limits
    assert is_open_badge(credential)


def test_optional_columns_are_left_out_when_empty() -> None:
    credential = badge(issuer_url="")
    assert "url" not in credential["issuer"]
    assert "validUntil" not in credential
    assert "id" not in credential["credentialSubject"]
    assert "image" not in credential["credentialSubject"]["achievement"]


def test_the_recipient_email_is_hashed_with_a_salt_never_written_plain() -> None:
    credential = badge()
    [identity] = credential["credentialSubject"]["identifier"]
    assert identity["type"] == "IdentityObject"
    assert identity["hashed"] is True
    assert identity["identityType"] == "emailAddress"
    salt = identity["salt"]
    assert re.fullmatch(r"[0-9a-f]{32}", salt)
    # An e-mail address is compared case-blind: hashed lowercased, with the salt appended (B.3).
    expected = hashlib.sha256(("ada.lovelace@example.org" + salt).encode()).hexdigest()
    assert identity["identityHash"] == f"sha256${expected}"
    assert "lovelace" not in json.dumps(credential).lower()
    # A fresh salt per badge: the same address in two badges gives two unrelated hashes.
    [other] = badge()["credentialSubject"]["identifier"]
    assert other["salt"] != salt
    assert other["identityHash"] != identity["identityHash"]


def test_a_student_id_is_hashed_too_and_both_identities_may_be_given() -> None:
    credential = badge(recipient_student_id="S-1234")
    email, student = credential["credentialSubject"]["identifier"]
    assert email["identityType"] == "emailAddress"
    assert student["identityType"] == "sisSourcedId"
    assert student["identityHash"] == identity_hash("S-1234", student["salt"])
    assert check_open_badge(credential) == []


def test_identity_hash_known_answer() -> None:
    # Computed independently with coreutils: printf 'a@b.csalt' | sha256sum
    assert identity_hash("a@b.c", "salt") == (
        "sha256$171a48afd51855d0da3e5cc625b7b5bc0147a0be0cdce2d27dd2865c0a80f62b"
    )
    assert identity_hash("S-1234", "abc") == (
        "sha256$6978dc1fb71a9237324feaf0082347b274bfdeaddb9aa555bf7dd026f79763cd"
    )


def test_an_image_and_a_credential_id_come_from_their_columns() -> None:
    credential = badge(achievement_image="https://uni.example/python.png", credential_id="urn:example:b:1")
    assert credential["id"] == "urn:example:b:1"
    assert credential["credentialSubject"]["achievement"]["image"] == {
        "id": "https://uni.example/python.png",
        "type": "Image",
    }
    assert check_open_badge(credential) == []


def test_a_row_without_a_recipient_is_refused_naming_the_columns() -> None:
    with pytest.raises(RowError) as raised:
        badge(recipient_email="")
    assert raised.value.reasons == (
        "no recipient: fill one of the columns recipient_id, recipient_email, recipient_student_id",
    )


def test_a_credential_id_that_is_no_uri_is_refused() -> None:
    with pytest.raises(RowError, match="column 'credential_id': 'badge 1' is not a URI"):
        badge(credential_id="badge 1")


def test_missing_required_columns_are_listed_together() -> None:
    with pytest.raises(RowError) as raised:
        badge(achievement_name="", criteria_narrative="")
    assert raised.value.reasons == (
        "missing column 'achievement_name'",
        "missing column 'achievement_name'",
        "missing column 'criteria_narrative'",
    )


def test_the_issuer_id_waits_for_sealing_when_the_did_is_unknown() -> None:
    credential = ob3_template().fill(ROW)
    assert credential["issuer"]["id"] == ISSUER_NAMED_AT_SEALING
    assert check_open_badge(credential) == []


def test_template_for_resolves_a_builtin_name_or_a_file(tmp_path: Any) -> None:
    assert template_for("ob3").required_columns == {
        "issuer_name",
        "issued",
        "achievement_id",
        "achievement_name",
        "achievement_description",
        "criteria_narrative",
    }
    assert "recipient_email" in template_for("ob3").columns
    path = tmp_path / "ob3"
    path.write_text(json.dumps({"name": "{{name}}"}))
    assert template_for(str(path)).required_columns == {"name"}  # a path: the file
    with pytest.raises(TemplateError, match="neither a built-in template \\(ob3\\) nor a file"):
        template_for(str(tmp_path / "missing.json"))


def test_the_cli_offers_the_cryptosuites_the_core_implements() -> None:
    """Three spellings of one list (the CLI's keeps `--help` light, secured.py's is a type): equal."""
    assert cli.CRYPTOSUITES == CRYPTOSUITES == data_integrity.CRYPTOSUITES
    assert OB3_CRYPTOSUITE in CRYPTOSUITES
    assert data_integrity.CRYPTOSUITE in CRYPTOSUITES


# -- the structural check: each required member missing gives its own error ---------------------


def _without(credential: dict[str, Any], path: str) -> dict[str, Any]:
    changed = copy.deepcopy(credential)
    *parents, last = path.split(".")
    node = changed
    for name in parents:
        node = node[name]
    del node[last]
    return changed


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("@context", "credential.@context: must include the OB 3.0 context"),
        ("id", "credential.id: missing (required by OB 3.0 AchievementCredential)"),
        ("name", "credential.name: missing (required by OB 3.0 AchievementCredential)"),
        ("validFrom", "credential.validFrom: missing (required by OB 3.0 AchievementCredential)"),
        ("issuer", "credential.issuer: missing (required: a Profile)"),
        ("issuer.id", "issuer.id: missing (required by OB 3.0 Profile)"),
        ("issuer.type", "issuer.type: missing (required by OB 3.0 Profile)"),
        ("credentialSubject", "credential.credentialSubject: missing (required: a AchievementSubject)"),
        ("credentialSubject.type", "credentialSubject.type: missing (required by OB 3.0 AchievementSubject)"),
        ("credentialSubject.identifier", "credentialSubject: needs an id or at least one identifier"),
        ("credentialSubject.achievement", "credentialSubject.achievement: missing (required: a Achievement)"),
        (
            "credentialSubject.achievement.id",
            "credentialSubject.achievement.id: missing (required by OB 3.0 Achievement)",
        ),
        (
            "credentialSubject.achievement.type",
            "credentialSubject.achievement.type: missing (required by OB 3.0 Achievement)",
        ),
        (
            "credentialSubject.achievement.name",
            "credentialSubject.achievement.name: missing (required by OB 3.0 Achievement)",
        ),
        (
            "credentialSubject.achievement.description",
            "credentialSubject.achievement.description: missing (required by OB 3.0 Achievement)",
        ),
        (
            "credentialSubject.achievement.criteria",
            "credentialSubject.achievement.criteria: missing (required: a Criteria)",
        ),
        (
            "credentialSubject.achievement.criteria.narrative",
            "credentialSubject.achievement.criteria: needs a narrative or an id",
        ),
    ],
)
def test_each_required_member_missing_is_named(path: str, message: str) -> None:
    problems = check_open_badge(_without(badge(), path))
    assert len(problems) == 1, problems
    assert problems[0].startswith(message), problems


def test_each_required_member_of_an_identity_object_missing_is_named() -> None:
    credential = badge()
    for member in ("type", "hashed", "identityHash", "identityType"):
        changed = copy.deepcopy(credential)
        del changed["credentialSubject"]["identifier"][0][member]
        problems = check_open_badge(changed)
        assert len(problems) == 1, (member, problems)
        assert problems[0].startswith(f"credentialSubject.identifier[0].{member}: missing"), problems


def test_wrong_shapes_are_named() -> None:
    credential = badge()
    credential["type"] = ["VerifiableCredential", "DegreeCredential", "OpenBadgeCredential"]
    assert check_open_badge(credential) == []  # more types are allowed
    credential["issuer"] = "did:web:uni.example"
    credential["credentialSubject"]["achievement"]["image"] = {"id": "not a uri", "type": "Picture"}
    credential["credentialSubject"]["identifier"][0]["identityHash"] = "sha256$abc"
    credential["validUntil"] = "2030-01-01"
    assert check_open_badge(credential) == [
        "credential.validUntil: must be a date-time with a UTC offset",
        "credential.issuer: must be a Profile object",
        "credentialSubject.identifier[0].identityHash: a hashed identity is sha256$<64 hex> or md5$<32 hex>",
        "credentialSubject.achievement.image.id: must be a URI (scheme:...)",
        "credentialSubject.achievement.image.type: must be 'Image'",
    ]


def test_a_plain_credential_is_no_open_badge() -> None:
    assert not is_open_badge({"type": ["VerifiableCredential", "DegreeCredential"]})
    assert is_open_badge({"type": "AchievementCredential"})
    assert not is_open_badge(["OpenBadgeCredential"])


# -- intake: a bad row is reported, the others go on ----------------------------------------------


def test_intake_rejects_a_bad_badge_row_and_keeps_the_others() -> None:
    columns = list(ROW)
    rows = [
        {**ROW, "id": "badge-1"},
        {**ROW, "id": "badge-2", "recipient_email": ""},  # no recipient
        {**ROW, "id": "badge-3", "achievement_id": "python-101"},  # not a URI
        {**ROW, "id": "badge-4", "recipient_email": "", "recipient_id": "did:example:grace"},
    ]
    text = ",".join(columns) + "\n" + "".join(",".join(row[c] for c in columns) + "\n" for row in rows)
    results = list(read_input(io.BytesIO(text.encode()), template_for("ob3"), fmt=InputFormat.CSV))
    assert [type(r) for r in results] == [Accepted, Rejected, Rejected, Accepted]
    assert str(results[1]) == (
        "line 3: no recipient: fill one of the columns recipient_id, recipient_email, recipient_student_id"
    )
    assert str(results[2]) == "line 4: credentialSubject.achievement.id: must be a URI (scheme:...)"


def test_intake_checks_an_open_badge_from_a_template_file_too() -> None:
    from issuer.template import Template

    document = {
        "@context": [VC2_CONTEXT, OB3_CONTEXT],
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "id": "urn:example:{{id}}",
        "issuer": {"id": "did:web:uni.example", "type": ["Profile"]},
        "validFrom": {"$datetime": "issued"},
        "credentialSubject": {"id": "{{subject}}", "type": ["AchievementSubject"]},
    }
    text = "id,subject,issued\nb1,did:example:ada,2026-07-01\n"
    [result] = read_input(io.BytesIO(text.encode()), Template(document), fmt=InputFormat.CSV)
    assert isinstance(result, Rejected)
    assert result.reason == (
        "credential.name: missing (required by OB 3.0 AchievementCredential); "
        "credentialSubject.achievement: missing (required: a Achievement)"
    )


def test_intake_refuses_a_badge_whose_json_ld_does_not_expand() -> None:
    """A badge from a template file with a term no shipped context defines: its eddsa-rdfc-2022
    proof could not sign it, so the row is refused at intake (at sealing it would stop the batch)."""
    from issuer.template import Template

    document = {**ob3_document("did:web:uni.example"), "nickname": "{{achievement_name}}"}
    template = Template(document, finish=finish_open_badge, optional_columns=OPTIONAL_COLUMNS)
    columns = list(ROW)
    text = ",".join(columns) + "\n" + ",".join(ROW[c] for c in columns) + "\n"
    [result] = read_input(io.BytesIO(text.encode()), template, fmt=InputFormat.CSV)
    assert isinstance(result, Rejected)
    assert "'nickname'" in result.reason
    assert "defines no such term" in result.reason


# -- sealing: Data Integrity, always -------------------------------------------------------------


SEALED_AT = datetime(2026, 7, 2, tzinfo=UTC)


def test_sealing_secures_an_open_badge_with_data_integrity_even_under_sd_jwt() -> None:
    key = generate_private_key("ed25519")
    context = SealContext.for_key(key, SEALED_AT, "did:web:uni.example", SD_JWT)
    credential = badge()
    [(certificate_id, text, digest, leaf)] = seal_certificates(
        context, [("badge-1", json.dumps(credential), "", "")]
    )
    secured = json.loads(text)
    assert certificate_id == "badge-1"
    assert secured["proof"]["type"] == "DataIntegrityProof"
    assert secured["proof"]["cryptosuite"] == OB3_CRYPTOSUITE
    assert secured["issuer"]["id"] == "did:web:uni.example"
    assert secured["issuer"]["type"] == ["Profile"]  # the Profile keeps its members
    assert {k: v for k, v in secured.items() if k != "proof"} == {**credential}
    assert verify_proof(secured).controller == "did:web:uni.example"
    assert digest == hex0x(data_integrity_digest(secured))  # the leaf commits to the whole badge
    assert leaf == hex0x(leaf_hash(data_integrity_digest(secured)))
    # One field changed: the proof no longer holds.
    secured["credentialSubject"]["achievement"]["name"] = "Python 999"
    with pytest.raises(data_integrity.DataIntegrityError, match="does not verify"):
        verify_proof(secured)


def test_sealing_an_open_badge_with_an_rsa_key_is_a_clear_error() -> None:
    key = generate_private_key("rsa-2048")
    context = SealContext.for_key(key, SEALED_AT, None, SD_JWT)
    with pytest.raises(ConfigError, match=r"Open Badges 3\.0 credentials are secured with a Data Integrity"):
        seal_certificates(context, [("badge-1", json.dumps(badge()), "", "")])
    with pytest.raises(ConfigError, match="needs an Ed25519 signing key"):
        require_ed25519(key)


def test_the_seal_context_carries_its_cryptosuite_to_the_workers() -> None:
    import pickle

    key = generate_private_key("ed25519")
    context = SealContext.for_key(key, SEALED_AT, None, "data-integrity", "eddsa-rdfc-2022")
    again = pickle.loads(pickle.dumps(context))  # noqa: S301  # our own bytes
    assert again.cryptosuite == "eddsa-rdfc-2022"
    assert "cryptosuite=eddsa-rdfc-2022" in repr(again)


def test_an_unknown_cryptosuite_is_refused() -> None:
    key = generate_private_key("ed25519")
    with pytest.raises(ValueError, match="cryptosuite 'ecdsa-rdfc-2019' is not available"):
        secure_data_integrity(
            badge(), key, created="2026-07-02T00:00:00Z", random_bytes=bytes, cryptosuite="ecdsa-rdfc-2019"
        )
