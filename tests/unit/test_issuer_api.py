"""The issuer API in-process (no chain): keys and scopes, idempotency, intake, the error shape.

A real SQLite store in a temporary directory; the app is driven through Starlette's TestClient.
The chain-facing routes (revocations, anchoring) are covered by tests/integration/test_issuer_api.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from chain.service.web import RateLimiter, Unauthorized, token_digest
from issuer.api import IssuerApi, create_app
from issuer.api_keys import authenticate, create_api_key, list_api_keys, revoke_api_key
from issuer.settings import IssuerApiSettings
from issuer.store import Certificate, Store
from issuer.template import load_template

TEMPLATE = Path(__file__).resolve().parents[1] / "fixtures" / "issuer" / "degree-template.json"
MAX_BODY = 64 * 1024


def record(i: int, **changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "id": f"cert-{i:05d}",
        "name": f"Student {i}",
        "degree": "MSc Data Science",
        "grade": "A",
        "credits": 120,
        "issued": "2026-07-01",
        "graduated": "2026-06-30",
    }
    values.update(changes)
    return values


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(str(tmp_path / "issuer.db")) as opened:
        yield opened


@pytest.fixture
def client(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    api = IssuerApi(store, load_template(TEMPLATE), tmp_path / "receipts")
    with TestClient(
        create_app(IssuerApiSettings.model_validate({"issuer_api_max_body": MAX_BODY}), api),
        raise_server_exceptions=False,
    ) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def stored(store: Store) -> int:
    with store.reading() as session:
        return int(session.scalar(select(func.count()).select_from(Certificate)) or 0)


def assert_error(response: object, status: int, code: str) -> dict[str, str]:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["correlation_id"] == response.headers["x-correlation-id"]
    return error  # type: ignore[no-any-return]


def test_keys_are_stored_hashed_and_revocable(store: Store) -> None:
    token = create_api_key(store, "registrar", ["issue", "read"])
    (key,) = list_api_keys(store)
    assert token.startswith(f"fvk_{key.id}_")
    assert key.key_hash == token_digest(token)
    assert token not in key.key_hash
    assert key.scopes == "issue read"
    assert authenticate(store, token).scopes == {"issue", "read"}
    for wrong in (
        None,
        "",
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        "fvk_" + "0" * 12 + "_" + "A" * 43,
    ):
        with pytest.raises(Unauthorized):
            authenticate(store, wrong)
    revoke_api_key(store, key.id)
    with pytest.raises(Unauthorized):
        authenticate(store, token)


def test_scopes_are_enforced(client: TestClient, store: Store) -> None:
    reader = create_api_key(store, "auditor", ["read"])
    response = client.post("/certificates", json=record(1))
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert_error(client.post("/certificates", json=record(1), headers=bearer(reader)), 403, "forbidden")
    assert_error(
        client.post("/revocations", json={"batch": "0x" + "1" * 64, "reason": 1}, headers=bearer(reader)),
        403,
        "forbidden",
    )
    credential = {"credential": {"@context": ["https://www.w3.org/ns/credentials/v2"]}}
    assert_error(client.post("/credentials/issue", json=credential), 401, "unauthorized")
    assert_error(client.post("/credentials/issue", json=credential, headers=bearer(reader)), 403, "forbidden")
    assert stored(store) == 0


def test_submit_keeps_good_records_and_reports_bad_ones_by_index(client: TestClient, store: Store) -> None:
    token = create_api_key(store, "registrar", ["issue", "read"])
    body = [record(1), record(2, graduated="30/06/2026"), record(3), record(1)]
    response = client.post("/certificates", json=body, headers=bearer(token))
    assert response.status_code == 202, response.text
    result = response.json()
    assert [c["id"] for c in result["accepted"]] == ["cert-00001", "cert-00003"]
    assert all(c["status"] == "pending" and "leaf" not in c for c in result["accepted"])
    assert [(r["index"], r["id"]) for r in result["rejected"]] == [(2, "cert-00002"), (4, "cert-00001")]
    assert "graduated" in result["rejected"][0]["reason"]
    assert "duplicate" in result["rejected"][1]["reason"]
    assert stored(store) == 2

    view = client.get("/certificates/cert-00001", headers=bearer(token)).json()
    assert view["status"] == "pending"
    assert view["receipt"] is None
    assert view["batch"] is None
    assert_error(client.get("/certificates/nope", headers=bearer(token)), 404, "not_found")

    again = client.post("/certificates", json=record(1), headers=bearer(token))
    assert "already in the store" in assert_error(again, 422, "certificates_rejected")["message"]
    strict = client.post(
        "/certificates?strict=true", json=[record(9), record(10, credits="x")], headers=bearer(token)
    )
    assert_error(strict, 422, "intake_rejected")
    assert stored(store) == 2


def test_idempotency_key_replays_and_refuses_another_body(client: TestClient, store: Store) -> None:
    token = create_api_key(store, "registrar", ["issue"])
    headers = {**bearer(token), "Idempotency-Key": "batch-2026-11-23"}
    first = client.post("/certificates", json=[record(1), record(2)], headers=headers)
    assert first.status_code == 202
    assert "idempotent-replayed" not in first.headers
    replay = client.post("/certificates", json=[record(1), record(2)], headers=headers)
    assert replay.status_code == 202
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert stored(store) == 2
    other = client.post("/certificates", json=[record(3)], headers=headers)
    assert_error(other, 409, "idempotency_key_reused")
    # Keys are per API key: another client's identical key is its own.
    other_token = create_api_key(store, "second registrar", ["issue"])
    fresh = client.post(
        "/certificates",
        json=[record(3)],
        headers={**bearer(other_token), "Idempotency-Key": "batch-2026-11-23"},
    )
    assert fresh.status_code == 202
    # A client error is a final answer too, and replays as such.
    bad_headers = {**bearer(token), "Idempotency-Key": "bad-one"}
    assert_error(
        client.post("/certificates", json=[record(1)], headers=bad_headers), 422, "certificates_rejected"
    )
    replayed = client.post("/certificates", json=[record(1)], headers=bad_headers)
    assert replayed.status_code == 422
    assert replayed.headers["idempotent-replayed"] == "true"
    assert_error(
        client.post(
            "/certificates", json=[record(4)], headers={**bearer(token), "Idempotency-Key": "has space"}
        ),
        400,
        "bad_request",
    )


def test_hostile_bodies_get_structured_4xx(client: TestClient, store: Store) -> None:
    token = create_api_key(store, "registrar", ["issue", "revoke"])
    auth = bearer(token)
    assert_error(
        client.post("/certificates", content=b"id=1", headers={**auth, "Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    json_headers = {**auth, "Content-Type": "application/json"}
    assert_error(client.post("/certificates", content=b"{", headers=json_headers), 400, "invalid_json")
    assert_error(client.post("/certificates", content=b"", headers=json_headers), 400, "invalid_json")
    assert_error(
        client.post("/certificates", content=b'{"id": 1, "id": 2}', headers=json_headers), 400, "invalid_json"
    )
    assert_error(
        client.post("/certificates", content=b'{"id": "\xff"}', headers=json_headers), 400, "invalid_json"
    )
    assert_error(
        client.post("/certificates", content=b"[" * 5000 + b"]" * 5000, headers=json_headers),
        400,
        "invalid_json",
    )
    assert_error(
        client.post("/certificates", content=b'{"n": 1' + b"0" * 5000 + b"}", headers=json_headers),
        400,
        "invalid_json",
    )
    assert_error(client.post("/certificates", content=b"42", headers=json_headers), 422, "invalid_request")
    assert_error(client.post("/certificates", content=b"[]", headers=json_headers), 400, "bad_request")
    big = json.dumps([record(i) for i in range(1000)]).encode()
    assert len(big) > MAX_BODY
    assert_error(client.post("/certificates", content=big, headers=json_headers), 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        for _ in range(100):
            yield b" " * 1024

    assert_error(
        client.post("/certificates", content=chunks(), headers=json_headers), 413, "payload_too_large"
    )
    assert_error(client.post("/revocations", json={"reason": 1}, headers=auth), 422, "invalid_request")
    assert_error(
        client.post("/revocations", json={"batch": "0x12", "reason": 1}, headers=auth), 422, "invalid_request"
    )
    assert_error(
        client.post("/revocations", json={"batch": "0x" + "1" * 64, "reason": 1}, headers=auth),
        409,
        "read_only",
    )
    assert_error(
        client.get("/batches/zz", headers=bearer(create_api_key(store, "r", ["read"]))), 400, "bad_request"
    )
    assert_error(client.get("/no/such/route"), 404, "not_found")
    assert stored(store) == 0


def test_correlation_id_is_echoed_when_well_formed(client: TestClient) -> None:
    assert client.get("/health", headers={"X-Request-ID": "req-123"}).headers["x-correlation-id"] == "req-123"
    generated = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"}).headers[
        "x-correlation-id"
    ]
    assert len(generated) == 32
    assert generated != "bad id\twith spaces"
    assert client.get("/health").headers["x-content-type-options"] == "nosniff"


def test_rate_limit_answers_429_with_retry_after(store: Store, tmp_path: Path) -> None:
    api = IssuerApi(store, load_template(TEMPLATE), tmp_path)
    app = create_app(IssuerApiSettings.model_validate({"issuer_api_rate": 0.5, "issuer_api_burst": 2}), api)
    with TestClient(app) as limited:  # the test client's address is not loopback
        assert [limited.get("/certificates/x").status_code for _ in range(2)] == [401, 401]
        refused = limited.get("/certificates/x")
        assert_error(refused, 429, "rate_limited")
        assert refused.headers["retry-after"] == "2"
        assert limited.get("/health").status_code == 200  # liveness is never limited


def test_rate_limiter_refills_and_forgets_old_clients() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=2, max_clients=2, clock=lambda: now[0])
    assert [limiter.wait_time("a") for _ in range(3)] == [0.0, 0.0, 0.5]
    now[0] += 0.5
    assert limiter.wait_time("a") == 0.0
    limiter.wait_time("b")
    limiter.wait_time("c")  # "a" is forgotten: it starts again with a full bucket
    assert limiter.wait_time("a") == 0.0
