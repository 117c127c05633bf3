"""check_bare_credential: what a bare credential's checks say, and what they say they did not check."""

from __future__ import annotations

from datetime import UTC, datetime

from chain.core.credential_checks import check_bare_credential
from chain.core.secured import secure_data_integrity
from chain.keys import generate_private_key
from tests.factories import ISSUED_AT, credential, deterministic_bytes

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def test_a_did_web_issuers_key_is_a_warning_a_did_key_issuers_is_not() -> None:
    """A did:key names its key in the DID itself; a did:web's key is whatever the proof names, which
    only the chain (POST /verify) ties to the issuer."""
    key = generate_private_key("ed25519")
    random_bytes = deterministic_bytes("bare")
    by_key = secure_data_integrity(credential(), key, created=ISSUED_AT, random_bytes=random_bytes)
    by_web = secure_data_integrity(
        credential(), key, created=ISSUED_AT, random_bytes=random_bytes, controller="did:web:uni.example"
    )
    for secured, warned in ((by_key, set()), (by_web, {"issuer_key_not_checked"})):
        assert isinstance(secured.value, dict)
        result = check_bare_credential(secured.value, NOW)
        assert result.checks == ("proof", "vc-data-model", "validity")
        assert {w.code for w in result.warnings} - {"status_not_checked"} == warned
