"""verify(): every check, every reason code, and the order in which they decide the status."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from chain.core.canonical import salt_document
from chain.core.issuance import secure_credential
from chain.core.merkle import MerkleTree
from chain.core.receipt import Receipt, ReceiptV2
from chain.core.signing import SignatureCache, public_key_info
from chain.core.verify import (
    ChainHead,
    CheckName,
    Code,
    KeyFact,
    Policy,
    RevocationFact,
    Status,
    Verdict,
    examine,
    malformed,
    verify,
)
from chain.keys import generate_private_key
from tests.factories import (
    ISSUER,
    Batch,
    StaticFacts,
    anchored,
    credential,
    deterministic_bytes,
    event,
    make_batch,
)

NOW = datetime(2026, 11, 23, tzinfo=UTC)
OTHER = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"


@pytest.fixture(scope="module")
def batch() -> Batch:
    return make_batch(5)


@pytest.fixture
def setup(batch: Batch) -> tuple[StaticFacts, list[Receipt]]:
    facts, receipts = anchored(batch)
    return facts, list(receipts)


def check(verdict: Verdict, name: CheckName) -> tuple[str, Code | None]:
    found = next(c for c in verdict.checks if c.name is name)
    return found.outcome, found.code


def tampered(receipt: Receipt | ReceiptV2, **changes: Any) -> dict[str, Any]:
    """``receipt`` as JSON data with ``changes`` made (``a__b`` names the member ``b`` of ``a``)."""
    data = receipt.to_json_dict()
    for path, value in changes.items():
        target = data
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        target[last] = value
    return data


def test_valid_receipt_passes_every_check_with_evidence(setup: tuple[StaticFacts, list[Receipt]]) -> None:
    facts, receipts = setup
    verdict = verify(receipts[0], facts, NOW)
    assert verdict.status is Status.VALID
    assert verdict.valid
    assert [c.outcome for c in verdict.checks] == ["pass"] * len(CheckName)
    assert verdict.anchor is not None
    assert verdict.anchor.block_number == 100
    assert verdict.anchor.confirmations == 101
    assert verdict.anchor.final
    assert verdict.anchor.anchored_at.endswith("Z")
    assert verdict.issuer is not None
    assert verdict.issuer.name == "Example University"
    assert verdict.evidence["leaf"] == receipts[0].proof.leaf
    assert verdict.evidence["proof"] == receipts[0].proof.path
    assert verdict.to_dict()["reasons"] == []


def test_every_receipt_of_the_batch_verifies(setup: tuple[StaticFacts, list[Receipt]]) -> None:
    facts, receipts = setup
    assert {verify(r, facts, NOW).status for r in receipts} == {Status.VALID}


def test_rsa_keys_verify_too() -> None:
    facts, receipts = anchored(make_batch(2, kind="rsa-2048"))
    assert verify(next(receipts), facts, NOW).status is Status.VALID


@pytest.mark.parametrize(
    "source",
    ["not json", "[]", '{"format": "finvault-receipt/1"}', b"\xff\xfe", '{"a": 1, "a": 2}'],
)
def test_malformed_input_is_a_verdict_not_an_exception(
    setup: tuple[StaticFacts, list[Receipt]], source: Any
) -> None:
    verdict = verify(source, setup[0], NOW)
    assert verdict.status is Status.INVALID
    assert check(verdict, CheckName.WELL_FORMED) == ("fail", Code.MALFORMED)
    assert all(c.outcome == "skip" for c in verdict.checks[1:])


def test_tampered_value_is_a_digest_mismatch(setup: tuple[StaticFacts, list[Receipt]]) -> None:
    facts, receipts = setup
    verdict = verify(tampered(receipts[0], credential__credentialSubject={"name": "Mallory"}), facts, NOW)
    assert verdict.status is Status.INVALID
    assert Code.DIGEST_MISMATCH in verdict.reasons


def test_added_unsalted_field_is_a_digest_mismatch(setup: tuple[StaticFacts, list[Receipt]]) -> None:
    facts, receipts = setup
    data = tampered(receipts[0])
    data["credential"]["honours"] = "first class"
    assert check(verify(data, facts, NOW), CheckName.DIGEST) == ("fail", Code.DIGEST_MISMATCH)


def test_hidden_fields_still_verify(setup: tuple[StaticFacts, list[Receipt]]) -> None:
    facts, receipts = setup
    document = receipts[0].document.disclose(["/credentialSubject/grade", "/issuer"])
    data = tampered(receipts[0], credential=dict(document.credential), salts=dict(document.salts))
    data["obfuscated"] = list(document.obfuscated)
    verdict = verify(data, facts, NOW)
    assert verdict.status is Status.VALID
    assert "grade" not in data["credential"]["credentialSubject"]


def test_forged_signature(setup: tuple[StaticFacts, list[Receipt]]) -> None:
    facts, receipts = setup
    forged = base64.b64encode(bytes(64)).decode()
    verdict = verify(tampered(receipts[0], signature__value=forged), facts, NOW)
    assert check(verdict, CheckName.SIGNATURE) == ("fail", Code.SIGNATURE_INVALID)
    assert verdict.status is Status.INVALID


def test_signature_by_an_unregistered_key(setup: tuple[StaticFacts, list[Receipt]], batch: Batch) -> None:
    facts, _ = setup
    stranger = replace(batch, key=generate_private_key("ed25519"))
    receipt = stranger.receipt(0, tx_hash=event(100).tx_hash, block_number=100)
    assert check(verify(receipt, facts, NOW), CheckName.SIGNATURE) == ("fail", Code.KEY_UNKNOWN)


@pytest.mark.parametrize(
    ("key_change", "code"),
    [
        ({"revoked_block": 90}, Code.KEY_REVOKED),  # revoked before the anchor
        ({"revoked_block": 100}, Code.KEY_REVOKED),  # revoked in the anchor's block
        ({"added_block": 101}, Code.KEY_UNKNOWN),  # registered after the anchor
        ({"issuer": OTHER}, Code.KEY_UNKNOWN),  # another issuer's key
    ],
)
def test_key_status_at_anchor_time(
    setup: tuple[StaticFacts, list[Receipt]], batch: Batch, key_change: dict[str, Any], code: Code
) -> None:
    facts, receipts = setup
    key_id = batch.key_info.key_id
    facts.keys[key_id] = replace(facts.keys[key_id], **key_change)
    assert check(verify(receipts[0], facts, NOW), CheckName.SIGNATURE) == ("fail", code)


def test_key_revoked_after_the_anchor_does_not_invalidate(
    setup: tuple[StaticFacts, list[Receipt]], batch: Batch
) -> None:
    facts, receipts = setup
    key_id = batch.key_info.key_id
    facts.keys[key_id] = replace(facts.keys[key_id], revoked_block=150)
    assert verify(receipts[0], facts, NOW).status is Status.VALID


def test_key_fact_with_a_mismatching_public_key_is_unknown(
    setup: tuple[StaticFacts, list[Receipt]], batch: Batch
) -> None:
    facts, receipts = setup
    other = public_key_info(generate_private_key("ed25519"))
    key_id = batch.key_info.key_id
    facts.keys[key_id] = KeyFact(key_id, ISSUER, other.algorithm, other.der, 50, None)
    assert check(verify(receipts[0], facts, NOW), CheckName.SIGNATURE) == ("fail", Code.KEY_UNKNOWN)


@pytest.mark.parametrize(
    "change",
    [
        {"proof__path": ["0x" + "00" * 32, "0x" + "11" * 32]},
        {"proof__leaf": "0x" + "22" * 32},
        {"proof__path": []},
    ],
)
def test_broken_proof(setup: tuple[StaticFacts, list[Receipt]], change: dict[str, Any]) -> None:
    facts, receipts = setup
    verdict = verify(tampered(receipts[0], **change), facts, NOW)
    assert check(verdict, CheckName.PROOF) == ("fail", Code.PROOF_INVALID)
    assert verdict.status is Status.INVALID


def test_unknown_root(setup: tuple[StaticFacts, list[Receipt]], batch: Batch) -> None:
    facts, receipts = setup
    facts.anchors.clear()
    verdict = verify(receipts[0], facts, NOW)
    assert check(verdict, CheckName.ANCHOR) == ("fail", Code.NOT_ANCHORED)
    assert check(verdict, CheckName.REVOCATION)[0] == "skip"
    assert verdict.status is Status.INVALID


def test_receipt_naming_another_issuer(setup: tuple[StaticFacts, list[Receipt]]) -> None:
    facts, receipts = setup
    verdict = verify(tampered(receipts[0], anchor__issuer=OTHER), facts, NOW)
    assert check(verdict, CheckName.ANCHOR) == ("fail", Code.ISSUER_MISMATCH)
    assert verdict.status is Status.INVALID


def test_suspended_issuer(setup: tuple[StaticFacts, list[Receipt]]) -> None:
    facts, receipts = setup
    facts.issuers[ISSUER] = replace(facts.issuers[ISSUER], active=False)
    assert check(verify(receipts[0], facts, NOW), CheckName.ISSUER) == ("fail", Code.ISSUER_INACTIVE)


@pytest.mark.parametrize("change", [{"anchor__chainId": 137}, {"anchor__registry": "0x" + "ab" * 20}])
def test_wrong_chain_or_registry(setup: tuple[StaticFacts, list[Receipt]], change: dict[str, Any]) -> None:
    facts, receipts = setup
    verdict = verify(tampered(receipts[0], **change), facts, NOW)
    assert check(verdict, CheckName.CHAIN) == ("fail", Code.WRONG_CHAIN)
    assert verdict.status is Status.INVALID


@pytest.mark.parametrize(("scope", "code"), [("leaf", Code.LEAF_REVOKED), ("root", Code.ROOT_REVOKED)])
def test_revoked(setup: tuple[StaticFacts, list[Receipt]], batch: Batch, scope: str, code: Code) -> None:
    facts, receipts = setup
    leaf = bytes.fromhex(receipts[0].proof.leaf[2:])
    key = (batch.tree.root, leaf if scope == "leaf" else None)
    facts.revocations[key] = RevocationFact(4, 1_780_100_000, event(120, 3))
    verdict = verify(receipts[0], facts, NOW)
    assert verdict.status is Status.REVOKED
    assert check(verdict, CheckName.REVOCATION) == ("fail", code)
    assert verdict.revocation is not None
    assert (verdict.revocation.scope, verdict.revocation.reason, verdict.revocation.log_index) == (
        scope,
        4,
        3,
    )
    assert verify(receipts[1], facts, NOW).status is (Status.REVOKED if scope == "root" else Status.VALID)


def test_revocation_outranks_expiry_but_not_integrity(
    setup: tuple[StaticFacts, list[Receipt]], batch: Batch
) -> None:
    facts, receipts = setup
    facts.revocations[(batch.tree.root, None)] = RevocationFact(1, 1_780_100_000, event(120))
    expired = salt_document({**credential(), "validUntil": "2026-01-01T00:00:00Z"}, deterministic_bytes("x"))
    facts_x, receipts_x = anchored(
        Batch(generate_private_key("ed25519"), [expired], MerkleTree([expired.digest]))
    )
    receipt_x = next(receipts_x)
    facts_x.revocations[(bytes.fromhex(receipt_x.proof.root[2:]), None)] = RevocationFact(
        1, 1_780_100_000, event(120)
    )
    assert verify(receipt_x, facts_x, NOW).status is Status.REVOKED  # revoked beats expired
    forged = tampered(receipts[0], signature__value=base64.b64encode(bytes(64)).decode())
    assert verify(forged, facts, NOW).status is Status.INVALID  # a forgery is never just "revoked"


@pytest.mark.parametrize(
    ("head", "policy", "status", "detail"),
    [
        (ChainHead(100, 36), Policy(), Status.PENDING, "above the finalized block 36"),
        (ChainHead(120, 99), Policy(), Status.PENDING, "above the finalized block"),
        (ChainHead(120, 100), Policy(), Status.VALID, "finalized"),
        (ChainHead(105, None), Policy(confirmations=12), Status.PENDING, "6 of 12"),
        (ChainHead(111, None), Policy(confirmations=12), Status.VALID, "12 confirmations"),
        (ChainHead(120, 50), Policy(use_finalized_tag=False), Status.VALID, "21 confirmations"),
        (ChainHead(120, 200), Policy(), Status.PENDING, "inconsistent"),
        (ChainHead(100, 36), Policy(unsafe_skip_finality=True), Status.VALID, "NOT checked"),
    ],
)
def test_finality(
    setup: tuple[StaticFacts, list[Receipt]], head: ChainHead, policy: Policy, status: Status, detail: str
) -> None:
    facts, receipts = setup
    verdict = verify(receipts[0], facts.with_head(head.number, head.finalized), NOW, policy)
    assert verdict.status is status
    finality = next(c for c in verdict.checks if c.name is CheckName.FINALITY)
    assert detail in finality.detail
    assert (finality.code is Code.NOT_FINAL) == (status is Status.PENDING)


@pytest.mark.parametrize(
    ("dates", "now", "code"),
    [
        ({"validUntil": "2026-12-31T23:59:59Z"}, datetime(2027, 1, 1, tzinfo=UTC), Code.EXPIRED),
        ({"expirationDate": "2026-01-01T00:00:00Z"}, NOW, Code.EXPIRED),
        ({"validUntil": "2026-12-31T23:59:59Z"}, NOW, None),
        ({"validFrom": "2027-01-01T00:00:00Z"}, NOW, Code.NOT_YET_VALID),
        ({"validUntil": "next tuesday"}, NOW, Code.MALFORMED),
    ],
)
def test_expiry_is_judged_at_the_given_time(dates: dict[str, str], now: datetime, code: Code | None) -> None:
    document = salt_document({**credential(), **dates}, deterministic_bytes("dates"))
    batch = Batch(generate_private_key("ed25519"), [document], MerkleTree([document.digest]))
    facts, receipts = anchored(batch)
    verdict = verify(next(receipts), facts, now)
    assert check(verdict, CheckName.EXPIRY)[1] is code
    assert verdict.status is (Status.VALID if code is None else Status.INVALID)


def test_policy_and_clock_inputs_are_checked(setup: tuple[StaticFacts, list[Receipt]]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Policy(confirmations=0)
    with pytest.raises(ValueError, match="timezone"):
        verify(setup[1][0], setup[0], datetime(2026, 1, 1))


def test_the_credentials_own_data_integrity_proof_is_a_check(
    setup: tuple[StaticFacts, list[Receipt]],
) -> None:
    facts, receipts = setup
    verdict = verify(receipts[0], facts, NOW)
    assert check(verdict, CheckName.DATA_INTEGRITY) == ("pass", None)
    assert receipts[0].credential["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert receipts[0].credential["issuer"]["id"].startswith("did:key:z6Mk")

    rsa_facts, rsa_receipts = anchored(make_batch(1, kind="rsa-2048"))
    rsa = verify(next(rsa_receipts), rsa_facts, NOW)
    assert rsa.status is Status.VALID
    assert check(rsa, CheckName.DATA_INTEGRITY) == ("skip", None)

    document = receipts[0].document.disclose(["/credentialSubject/grade"])
    disclosed = tampered(receipts[0], credential=dict(document.credential), salts=dict(document.salts))
    disclosed["obfuscated"] = list(document.obfuscated)
    withheld = verify(disclosed, facts, NOW)
    assert withheld.status is Status.VALID  # not a failure: the holder's choice
    skipped = next(c for c in withheld.checks if c.name is CheckName.DATA_INTEGRITY)
    assert (skipped.outcome, skipped.detail.split(":")[0]) == ("skip", "not applicable")


def test_a_data_integrity_proof_by_another_key_makes_the_receipt_invalid(batch: Batch) -> None:
    """The digest, signature and anchor all hold, but the credential's proof is someone else's."""
    intruder = generate_private_key("ed25519")
    secured = secure_credential(credential("Eve"), intruder, created="2026-06-30T00:00:00Z")
    document = salt_document(secured, deterministic_bytes("intruder"))
    tree = MerkleTree([document.digest])
    forged = Batch(batch.key, [document], tree)
    facts, receipts = anchored(forged)
    verdict = verify(next(receipts), facts, NOW)
    assert verdict.status is Status.INVALID
    assert check(verdict, CheckName.SIGNATURE) == ("pass", None)
    assert check(verdict, CheckName.DATA_INTEGRITY) == ("fail", Code.DATA_INTEGRITY_INVALID)


# -- the signature cache ------------------------------------------------------------------------------


def test_signature_cache_remembers_successes_only_under_the_exact_triple() -> None:
    cache = SignatureCache(entries=4)
    calls: list[tuple[bytes, bytes, bytes]] = []

    def checked(key: bytes, message: bytes, signature: bytes, outcome: bool) -> bool:
        def check() -> bool:
            calls.append((key, message, signature))
            return outcome

        return cache.verified(key, message, signature, check)

    assert checked(b"k", b"m", b"s", True)
    assert checked(b"k", b"m", b"s", False)  # remembered: the check did not run again
    assert len(calls) == 1
    for other in ((b"K", b"m", b"s"), (b"k", b"M", b"s"), (b"k", b"m", b"S"), (b"km", b"", b"s")):
        assert not checked(*other, False)  # any part changed is another check, and it ran
    assert len(calls) == 5
    assert not checked(b"k", b"m", b"bad", False)
    assert not checked(b"k", b"m", b"bad", False)  # failures are checked every time
    assert len(calls) == 7
    assert len(cache) == 1


def test_signature_cache_is_bounded_by_two_generations() -> None:
    cache = SignatureCache(entries=3)
    for i in range(10):
        assert cache.verified(b"k", bytes([i]), b"s", lambda: True)
        assert len(cache) <= 6
    ran: list[int] = []

    def check(i: int) -> bool:
        ran.append(i)
        return True

    assert cache.verified(b"k", bytes([0]), b"s", lambda: check(0))
    assert ran == [0]  # the oldest entries were dropped, so it was checked again
    assert cache.verified(b"k", bytes([9]), b"s", lambda: check(9))
    assert ran == [0]  # the newest was still there
    with pytest.raises(ValueError, match="at least one"):
        SignatureCache(entries=0)


def test_signature_cache_never_caches_verdicts(
    setup: tuple[StaticFacts, list[Receipt]], batch: Batch
) -> None:
    """Once its signatures are remembered, a receipt still follows the chain facts: a key revoked
    before the anchor, a revoked leaf, an unknown root all change the verdict."""
    facts, receipts = setup
    cache = SignatureCache(entries=100)
    first = verify(receipts[0], facts, NOW, signatures=cache)
    assert first.status is Status.VALID
    assert len(cache) == 2  # the receipt's signature and its credential's Data Integrity proof
    assert verify(receipts[0], facts, NOW, signatures=cache).to_dict() == first.to_dict()

    key_id = batch.key_info.key_id
    original_key = facts.keys[key_id]
    facts.keys[key_id] = replace(original_key, revoked_block=90)
    revoked_key = verify(receipts[0], facts, NOW, signatures=cache)
    assert check(revoked_key, CheckName.SIGNATURE) == ("fail", Code.KEY_REVOKED)
    assert revoked_key.status is Status.INVALID
    facts.keys[key_id] = original_key

    leaf = bytes.fromhex(receipts[0].proof.leaf[2:])
    facts.revocations[(batch.tree.root, leaf)] = RevocationFact(4, 1_780_100_000, event(120, 3))
    assert verify(receipts[0], facts, NOW, signatures=cache).status is Status.REVOKED

    forged = base64.b64encode(bytes(64)).decode()
    bad = verify(tampered(receipts[1], signature__value=forged), facts, NOW, signatures=cache)
    assert check(bad, CheckName.SIGNATURE) == ("fail", Code.SIGNATURE_INVALID)
    assert len(cache) == 3  # the second credential's own proof holds; the forged signature is not kept


def test_an_examined_receipt_is_judged_against_any_facts_as_if_whole(
    setup: tuple[StaticFacts, list[Receipt]], batch: Batch
) -> None:
    """What the node's consistency retry relies on: the document's checks, made once by examine(),
    give the verdict verify() gives from scratch, against the facts before and after a revocation."""
    facts, receipts = setup
    examined = examine(receipts[0].to_json_dict())
    assert {name for name in examined.checks} == {
        CheckName.WELL_FORMED,
        CheckName.DIGEST,
        CheckName.DATA_INTEGRITY,
        CheckName.PROOF,
    }
    assert verify(examined, facts, NOW) == verify(receipts[0], facts, NOW)
    assert verify(examined, facts, NOW).status is Status.VALID
    facts.revocations[(batch.tree.root, None)] = RevocationFact(4, 1_780_100_000, event(120, 3))
    assert verify(examined, facts, NOW) == verify(receipts[0], facts, NOW)
    assert verify(examined, facts, NOW).status is Status.REVOKED


def test_a_receipt_refused_unread_is_malformed(setup: tuple[StaticFacts, list[Receipt]]) -> None:
    facts, _ = setup
    verdict = verify(malformed("the receipt is 600,000 bytes; the limit is 524,288"), facts, NOW)
    assert verdict.status is Status.INVALID
    assert verdict.reasons == (Code.MALFORMED,)
    assert check(verdict, CheckName.WELL_FORMED) == ("fail", Code.MALFORMED)
