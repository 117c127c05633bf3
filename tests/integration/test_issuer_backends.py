"""The issuer store behaves the same on SQLite and PostgreSQL, down to the NUL character.

PostgreSQL text cannot hold U+0000. A certificate field may (JSON escapes it, and the store keeps
credentials as JSON), so it round-trips exactly on both; where the store keeps plain text (ids, API
key names) a control character is refused before it reaches the database, with the same error on
both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from chain.errors import ConfigError
from issuer.api_keys import create_api_key
from issuer.intake import read_input
from issuer.service import ingest
from issuer.store import Certificate, Store
from issuer.template import load_template
from tests.integration.conftest import MirrorBackend, on_both_backends
from tests.integration.issuer_fixtures import TEMPLATE

RECORD = {"degree": "MSc", "grade": "A", "credits": 120, "issued": "2026-07-01", "graduated": "2026-06-30"}


@pytest.fixture
def store(mirror_backend: MirrorBackend, tmp_path: Path) -> Iterator[Store]:
    with mirror_backend.database(tmp_path) as url, Store.open(url) as opened:
        yield opened


@on_both_backends
def test_a_nul_in_a_field_round_trips_exactly(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "students.jsonl"
    names = ["Ada\x00Lovelace", "\x00", "tab\tand\x00nul\x7f"]
    source.write_text(
        "".join(json.dumps({"id": f"nul-{i}", "name": n, **RECORD}) + "\n" for i, n in enumerate(names))
    )
    report = ingest(store, read_input(source, load_template(TEMPLATE)))
    assert (report.accepted, list(report.rejected)) == (3, [])
    with store.reading() as session:
        stored = {c.id: c for c in session.scalars(select(Certificate))}
    for i, name in enumerate(names):
        certificate = stored[f"nul-{i}"]
        assert certificate.credential["credentialSubject"]["name"] == name


@on_both_backends
def test_a_nul_where_the_store_keeps_plain_text_is_refused_alike(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "students.jsonl"
    source.write_text(json.dumps({"id": "bad\x00id", "name": "N", **RECORD}) + "\n")
    report = ingest(store, read_input(source, load_template(TEMPLATE)))
    assert report.accepted == 0
    assert [(r.line, r.reason) for r in report.rejected] == [
        (1, "column 'id': the certificate id has leading/trailing spaces or control characters")
    ]
    with pytest.raises(ConfigError, match="printable"):
        create_api_key(store, "ops\x00key", ["read"])
