"""Schemathesis against the /openapi.json of a running issuer API: no 5xx, and every response
(status, content type, body) conforms to what the schema declares.

The API runs with chain access (anvil), a real API key holding every scope, and a store with an
anchored batch, one certificate of it revoked: so that revocations reach the chain, and the views
of anchored and revoked certificates, which generated ids cannot find, are checked by name.
Positive mode checks conformance; negative mode (malformed bodies, parameters of the wrong type)
checks that nothing is a server error (tests/tools/schemathesis_cli.py, as for the node).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chain.rpc import RpcClient
from issuer.api import IssuerApi, create_app
from issuer.api_keys import create_api_key
from issuer.scopes import SCOPES
from issuer.settings import IssuerApiSettings
from tests.integration.conftest import Deployed
from tests.integration.issuer_fixtures import IssuerEnv, serve_in_thread
from tests.tools.schemathesis_cli import negative, output, positive


@dataclass(frozen=True)
class RunningApi:
    url: str
    token: str
    root: str


@pytest.fixture
def issuer_api(registry: Deployed, rpc: RpcClient, tmp_path: Path) -> Iterator[RunningApi]:
    env = IssuerEnv(registry, rpc, tmp_path)
    env.ingest_csv(4)
    [batch] = env.service(store=env.store).run_once()
    token = create_api_key(env.store, "schemathesis", SCOPES)
    api = IssuerApi(env.store, env.template, env.out, service=env.service(store=env.store))
    with serve_in_thread(
        create_app(IssuerApiSettings.model_validate({"issuer_api_max_body": 64 * 1024}), api)
    ) as url:
        revoked = httpx.post(
            f"{url}/revocations",
            json={"certificate_ids": ["cert-00001"], "reason": "superseded"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert revoked.status_code == 200, revoked.text
        yield RunningApi(url, token, batch.root)


@pytest.mark.slow(seconds=8)
def test_schema_conformance(issuer_api: RunningApi, tmp_path: Path) -> None:
    run = positive(issuer_api.url, issuer_api.token, tmp_path, max_examples=40)
    assert run.returncode == 0, output(run)
    run = negative(issuer_api.url, issuer_api.token, tmp_path, max_examples=25)
    assert run.returncode == 0, output(run)

    # What generated values never reach: the views of an anchored, a revoked and a pending
    # certificate, a batch with a revocation in it, and a revocation that is already done.
    schema = schemathesis.openapi.from_url(f"{issuer_api.url}/openapi.json")
    auth = {"Authorization": f"Bearer {issuer_api.token}"}
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    certificate = schema["/certificates/{certificate_id}"]["GET"]
    for certificate_id in ("cert-00000", "cert-00001"):
        case = certificate.Case(path_parameters={"certificate_id": certificate_id}, headers=auth)
        assert case.call_and_validate(checks=checks).json()["receipt"]["format"] == "finvault-receipt/2"
    batch = schema["/batches/{root}"]["GET"].Case(path_parameters={"root": issuer_api.root}, headers=auth)
    assert batch.call_and_validate(checks=checks).json()["status"] == "anchored"
    again = schema["/revocations"]["POST"].Case(
        body={"certificate_ids": ["cert-00001"], "reason": "superseded"}, headers=auth
    )
    assert again.call_and_validate(checks=checks).json()["results"][0]["already_revoked"] is True
    submitted = schema["/certificates"]["POST"].Case(
        body={
            "id": "cert-new",
            "name": "Ada",
            "degree": "MSc",
            "grade": "A",
            "credits": 120,
            "issued": "2026-07-01",
            "graduated": "2026-06-30",
        },
        headers=auth,
    )
    assert submitted.call_and_validate(checks=checks).status_code == 202
