"""``POST /credentials/verify`` (W3C VC-API) on the node's app, in this process over a real runtime
(anvil, the registry's code check, a SQLite mirror): a bare credential's proof, VC 2.0 data model and
validity, and the warnings for what only a receipt can show (status) or the network could (digests).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient

from chain.core.merkle import leaf_hash
from chain.core.receipt import MAX_RECEIPT_BYTES
from chain.core.secured import DATA_INTEGRITY, SD_JWT
from chain.core.vc_model import VC2_CONTEXT
from chain.dev.devchain import DevChain
from chain.service.settings import load_settings
from node.app import create_app
from node.settings import NodeSettings
from tests.factories import credential, secure
from tests.integration.conftest import Deployed
from tests.integration.node_fixtures import assert_error, writer_and_runtime
from tests.tools.stock_verifier import stock_verifier

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
VALID_DATES = {"validFrom": "2020-01-01T00:00:00Z", "validUntil": "2999-01-01T00:00:00Z"}


def signed(seed: str = "vcapi", **extra: Any) -> dict[str, Any]:
    value = secure(credential(**{**VALID_DATES, **extra}), KEY, DATA_INTEGRITY, seed=seed).value
    assert isinstance(value, dict)
    return value


@pytest.fixture
def client(anvil: DevChain, registry: Deployed, tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        NodeSettings,
        rpc_urls=[anvil.rpc_url],
        registry=registry.address,
        database_url=f"sqlite:///{tmp_path / 'mirror.db'}",
        poll_interval=0.1,
    )
    with (
        writer_and_runtime(settings) as (_, runtime),
        TestClient(create_app(runtime, static_dir=None)) as http,
    ):
        yield http


def post(client: TestClient, body: Any) -> Any:
    return client.post("/credentials/verify", json=body)


def refused(response: Any, check: str, code: str) -> dict[str, Any]:
    """A 400 in both shapes: VC-API's (``errors``, each with a message) and the node's ``error``."""
    body = assert_error(response, 400, code)
    assert body["verified"] is False
    assert [(e["check"], e["code"]) for e in body["errors"]] == [(check, code)], body
    assert all(e["message"] for e in body["errors"])
    return body


def test_genuine_credential_passes_with_status_as_a_warning(client: TestClient) -> None:
    secured = signed()
    response = post(client, {"verifiableCredential": secured, "options": {}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verified"] is True
    assert body["checks"] == ["proof", "vc-data-model", "validity"]
    assert body["errors"] == []
    [status] = body["warnings"]
    assert (status["check"], status["code"]) == ("status", "status_not_checked")
    assert "POST /verify" in status["message"]
    leaf = leaf_hash(secure(credential(**VALID_DATES), KEY, DATA_INTEGRITY, seed="vcapi").digest)
    assert "0x" + leaf.hex() in status["message"]  # what a holder can look up with the receipt
    assert "error" not in body
    # options are not required, and the ones given are named as ignored
    assert post(client, {"verifiableCredential": secured}).status_code == 200
    named = post(client, {"verifiableCredential": secured, "options": {"challenge": "x"}}).json()
    assert [w["code"] for w in named["warnings"]] == ["status_not_checked", "options_ignored"]
    assert "challenge" in named["warnings"][1]["message"]


def test_tampered_or_unproved_credentials_fail_the_proof(client: TestClient) -> None:
    tampered = signed()
    tampered["credentialSubject"]["grade"] = "A+"
    body = refused(post(client, {"verifiableCredential": tampered}), "proof", "proof_invalid")
    assert body["checks"] == []
    unproved = {name: value for name, value in signed().items() if name != "proof"}
    refused(post(client, {"verifiableCredential": unproved}), "proof", "proof_missing")
    other_suite = signed()
    other_suite["proof"]["cryptosuite"] = "ecdsa-rdfc-2019"
    refused(post(client, {"verifiableCredential": other_suite}), "proof", "proof_invalid")
    # Deeper than a credential may nest (parsing allows more: the body is a level up): refused
    # before anything recursive walks it, not a 500
    deep = signed()
    nested: dict[str, Any] = {}
    deep["credentialSubject"]["deep"] = nested
    for _ in range(40):
        nested["x"] = nested = {}
    refused(post(client, {"verifiableCredential": deep}), "proof", "malformed")


def test_data_model_violations_are_named_by_rule(client: TestClient) -> None:
    no_vc_type = signed(type=["DegreeCredential"])
    body = refused(post(client, {"verifiableCredential": no_vc_type}), "vc-data-model", "vc_model_type")
    assert body["checks"] == ["proof"]
    assert "type" in body["errors"][0]["message"]
    backwards = signed(validFrom="2030-01-01T00:00:00Z", validUntil="2029-01-01T00:00:00Z")
    refused(post(client, {"verifiableCredential": backwards}), "vc-data-model", "vc_model_validity")
    unlisted = signed(relatedResource=[{"id": "https://x.example/a"}])
    refused(post(client, {"verifiableCredential": unlisted}), "vc-data-model", "vc_model_relatedResource")


def test_validity_is_judged_on_the_nodes_clock(client: TestClient) -> None:
    expired = signed(validFrom="2020-01-01T00:00:00Z", validUntil="2021-01-01T00:00:00Z")
    body = refused(post(client, {"verifiableCredential": expired}), "validity", "expired")
    assert body["checks"] == ["proof", "vc-data-model"]
    assert "2021-01-01T00:00:00Z" in body["errors"][0]["message"]
    future = signed(validFrom="2999-01-01T00:00:00Z", validUntil="2999-12-31T00:00:00Z")
    refused(post(client, {"verifiableCredential": future}), "validity", "not_yet_valid")


def test_related_resource_digests_are_warnings_never_fetched(client: TestClient) -> None:
    related = [{"id": VC2_CONTEXT, "digestSRI": "sha384-not-checked"}]
    response = post(client, {"verifiableCredential": signed(relatedResource=related)})
    assert response.status_code == 200, response.text
    warnings = response.json()["warnings"]
    assert [w["code"] for w in warnings] == ["status_not_checked", "digest_not_checked"]
    assert "base context" in warnings[1]["message"]


def test_an_sd_jwt_is_sent_to_post_verify(client: TestClient) -> None:
    sd_jwt = secure(credential(**VALID_DATES), KEY, SD_JWT, seed="sd").value
    assert isinstance(sd_jwt, str)
    body = refused(post(client, {"verifiableCredential": sd_jwt}), "input", "sd_jwt_not_accepted")
    assert "POST /verify" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    "body",
    [
        [],
        "credential",
        {},
        {"credential": {}},
        {"verifiableCredential": {}, "extra": 1},
        {"verifiableCredential": [{}]},
        {"verifiableCredential": "eyJhbGciOiJFZERTQSJ9.e30.sig"},
        {"verifiableCredential": {}, "options": []},
    ],
    ids=["array", "string", "empty", "wrong-member", "extra-member", "list", "jwt", "options-list"],
)
def test_wrong_shapes_are_400_in_both_shapes(client: TestClient, body: Any) -> None:
    refused(post(client, body), "input", "invalid_input")


def test_unreadable_and_oversized_bodies(client: TestClient) -> None:
    headers = {"Content-Type": "application/json"}
    broken = client.post("/credentials/verify", content=b'{"verifiableCredential": ', headers=headers)
    refused(broken, "input", "invalid_json")
    duplicate = b'{"verifiableCredential": {}, "verifiableCredential": {}}'
    refused(client.post("/credentials/verify", content=duplicate, headers=headers), "input", "invalid_json")
    assert_error(client.post("/credentials/verify", content=b"{}"), 415, "unsupported_media_type")
    # over one receipt's size, as POST /verify: 413 before parsing
    padded = signed(description="x" * MAX_RECEIPT_BYTES)
    oversized = json.dumps({"verifiableCredential": padded}).encode()
    assert_error(
        client.post("/credentials/verify", content=oversized, headers=headers), 413, "payload_too_large"
    )
    for path in ("/verify", "/credentials/verify"):
        assert_error(client.post(path, content=oversized, headers=headers), 413, "payload_too_large")


def test_a_large_credential_is_checked_off_the_event_loop(client: TestClient) -> None:
    # Over INLINE_VERIFY_BYTES (16 KiB): the same answer from the thread pool.
    large = signed(description="y" * 40_000)
    response = post(client, {"verifiableCredential": large})
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == ["proof", "vc-data-model", "validity"]


def test_openapi_declares_the_endpoint(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/credentials/verify"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["verifiableCredential"]
    assert {"200", "400", "413", "415", "429"} <= set(operation["responses"])


def test_the_node_agrees_with_a_stock_verifier(client: TestClient) -> None:
    """A second implementation (@digitalbazaar/vc, eddsa-jcs-2022, offline) judges the same
    credentials alike: genuine ones verified, tampered ones not."""
    genuine = signed(seed="stock")
    tampered = signed(seed="stock")
    tampered["credentialSubject"]["name"] = "Mallory"
    stock = [result["verified"] for result in stock_verifier([genuine, tampered])]
    ours = [post(client, {"verifiableCredential": c}).json()["verified"] for c in (genuine, tampered)]
    assert stock == ours == [True, False]
