"""The node's pure parts: signed cursors, settings validation, and the documented response shapes
(every verdict :func:`chain.core.verify.verify` can give must fit the OpenAPI model the node declares)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.core.verify import RevocationFact, verify
from chain.errors import ConfigError
from chain.registry import RevocationReason
from chain.service.settings import load_settings
from node.app import verdict_dict
from node.cursor import InvalidCursor, Position, decode_cursor, encode_cursor
from node.health import RETRY_AFTER, as_of, cannot_vouch
from node.models import VerdictOut, bulk_schema, receipt_schema
from node.runtime import not_ready
from node.settings import NodeSettings
from node.state import SyncSnapshot
from tests.factories import anchored, event, make_batch

KEY = b"k" * 32
REGISTRY = "0x" + "ab" * 20
NOW = datetime(2026, 11, 23, tzinfo=UTC)


@given(st.integers(0, 2**53), st.integers(0, 2**53), st.integers(0, 10_000))
def test_cursor_round_trip(since: int, block: int, log_index: int) -> None:
    position = Position(since, block, log_index)
    assert decode_cursor(KEY, encode_cursor(KEY, position)) == position


def test_cursors_are_tamper_evident() -> None:
    cursor = encode_cursor(KEY, Position(0, 120, 3))
    payload, mac = cursor.split(".")
    for forged in (
        cursor[:-1] + ("A" if cursor[-1] != "A" else "B"),
        ("B" if payload[0] != "B" else "C") + payload[1:] + "." + mac,
        payload + ".",
        payload,
        cursor + ".x",
        "",
        "a" * 300,
        "!!!.???",
    ):
        with pytest.raises(InvalidCursor):
            decode_cursor(KEY, forged)
    with pytest.raises(InvalidCursor):
        decode_cursor(b"another node's key", cursor)


def test_settings_defaults_and_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINVAULT_REGISTRY", REGISTRY.upper().replace("0X", "0x"))
    monkeypatch.setenv("FINVAULT_CORS_ORIGINS", "https://HR.example.com, http://localhost:3000")
    settings = load_settings(NodeSettings)
    assert (settings.host, settings.port, settings.url) == ("127.0.0.1", 8000, "http://127.0.0.1:8000")
    assert settings.registry == REGISTRY
    assert settings.cors_origins == ["https://hr.example.com", "http://localhost:3000"]
    assert settings.rate_limit == 0  # off unless asked for
    assert settings.bulk_limit == 1_000
    assert settings.metrics_token is None
    assert settings.cursor_secret is None
    assert load_settings(NodeSettings, rate_limit=5).burst == 10
    assert load_settings(NodeSettings, host="::1", port=9000).url == "http://[::1]:9000"
    # One verification thread a reader on SQLite (reads are CPU in the process), two on PostgreSQL
    # (a read waits on the server); a value given wins.
    assert settings.verification_threads == 1  # the default mirror is a SQLite file
    postgres = load_settings(NodeSettings, database_url="postgresql+psycopg://finvault@db/mirror")
    assert postgres.verification_threads == 2
    assert load_settings(NodeSettings, verify_threads=3).verification_threads == 3


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"registry": None}, "registry"),
        ({"cors_origins": ["*"]}, "cors_origins"),
        ({"cors_origins": ["hr.example.com"]}, "cors_origins"),
        ({"metrics_token": "short"}, "metrics_token"),
        ({"cursor_secret": "short"}, "cursor_secret"),
        ({"host": "bad host"}, "host"),
        ({"port": 70_000}, "port"),
        ({"bulk_limit": 0}, "bulk_limit"),
        ({"max_body_bytes": 10}, "max_body_bytes"),
    ],
)
def test_bad_settings_are_refused(
    overrides: dict[str, object], fragment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINVAULT_REGISTRY", REGISTRY)
    if overrides.get("registry", "") is None:
        monkeypatch.delenv("FINVAULT_REGISTRY")
        overrides = {}
    with pytest.raises(ConfigError) as raised:
        load_settings(NodeSettings, **overrides)
    assert fragment in raised.value.message
    assert "short" not in raised.value.message  # secrets are never echoed


def test_request_schemas_are_self_contained() -> None:
    for schema in (receipt_schema(), bulk_schema(1_000)):
        text = json.dumps(schema)
        assert "$ref" not in text
        assert "$defs" not in text
    assert bulk_schema(7)["properties"]["receipts"]["maxItems"] == 7


def test_every_kind_of_verdict_fits_the_declared_model() -> None:
    batch = make_batch(3, seed="models")
    facts, receipts = anchored(batch)
    valid, tampered, revoked = list(receipts)
    facts.revocations[(batch.tree.root, bytes.fromhex(revoked.proof.leaf[2:]))] = RevocationFact(
        RevocationReason.SUPERSEDED, 1_780_000_500, event(150)
    )
    broken = tampered.to_json_dict()
    broken["credential"]["credentialSubject"]["grade"] = "F"
    cases: dict[str, Any] = {
        "VALID": valid,
        "INVALID": broken,
        "REVOKED": revoked,
        "PENDING": valid,
    }
    state = as_of(SyncSnapshot(indexed_block=200, block_hash=b"\xab" * 32, block_time=1_780_000_000))
    extra = {"checked_at": "2026-11-23T00:00:00Z", "as_of": state}
    for status, receipt in cases.items():
        source = facts.with_head(100, 50) if status == "PENDING" else facts
        verdict = verify(receipt, source, NOW).to_dict()
        assert verdict["status"] == status
        VerdictOut.model_validate({**verdict, **extra})
        fast = verdict_dict(verify(receipt, source, NOW), "2026-11-23T00:00:00Z", state)
        assert fast == {**verdict, **extra}
    malformed = verify(b"null", facts, NOW).to_dict()
    VerdictOut.model_validate({**json.loads(json.dumps(malformed)), **extra})


def test_readiness_rules() -> None:
    settings = load_settings(NodeSettings, registry=REGISTRY, ready_max_lag_blocks=10, max_staleness=60)
    healthy = SyncSnapshot(
        head=100, indexed_block=95, last_success=1_000.0, caught_up_at=1_000.0, running=True
    )
    assert not_ready(healthy, settings, now=1_030.0) == []
    cases = {
        "mirror_stale: the mirror has not reached the chain head yet": SyncSnapshot(
            head=100, indexed_block=100, running=True
        ),
        "lags the head by 11 blocks": SyncSnapshot(
            head=111, indexed_block=100, caught_up_at=1_000.0, running=True
        ),
        "mirror_stale: the mirror last reached the chain head 61 s ago": SyncSnapshot(
            caught_up_at=969.0, running=True, last_error="rpc_error"
        ),
        "circuit breaker open": SyncSnapshot(caught_up_at=1_000.0, running=True, breaker_open=True),
        "mirror_halted: sync halted: reorg_beyond_finality": SyncSnapshot(
            caught_up_at=1_000.0, running=True, fatal="reorg_beyond_finality: x"
        ),
        "mirror_halted: sync paused": SyncSnapshot(
            caught_up_at=1_000.0, running=True, repairing="sync paused"
        ),
        "mirror_diverged: at block 9": SyncSnapshot(
            caught_up_at=1_000.0, running=True, diverged="at block 9"
        ),
        "mirror_drift: run 3": SyncSnapshot(caught_up_at=1_000.0, running=True, drift="run 3"),
        "the mirror's writer is not running": SyncSnapshot(caught_up_at=1_000.0),
        "chain id mismatch": SyncSnapshot(caught_up_at=1_000.0, running=True, chain_mismatch="serves 1"),
    }
    for fragment, snapshot in cases.items():
        reasons = not_ready(snapshot, settings, now=1_030.0)
        assert any(fragment in reason for reason in reasons), (fragment, reasons)


def test_cannot_vouch_names_the_gravest_condition_and_as_of_the_state() -> None:
    clears: dict[str, dict[str, Any]] = {
        "mirror_halted": {"fatal": None},
        "mirror_diverged": {"diverged": None},
        "mirror_drift": {"drift": None},
        "mirror_stale": {"caught_up_at": 1_000.0},
    }
    snapshot = SyncSnapshot(fatal="halt", diverged="diverged", drift="drift", caught_up_at=None)
    order = []
    while (problem := cannot_vouch(snapshot, 120.0, now=1_000.0)) is not None:
        order.append(problem.code)
        snapshot = replace(snapshot, **clears[problem.code])
    assert order == ["mirror_halted", "mirror_diverged", "mirror_drift", "mirror_stale"]
    assert [RETRY_AFTER[code] > 0 for code in order] == [True] * 4
    fresh = SyncSnapshot(indexed_block=7, block_hash=b"\x01" * 32, block_time=0, caught_up_at=990.0)
    assert cannot_vouch(fresh, 120.0, now=1_000.0) is None
    assert cannot_vouch(fresh, 9.0, now=1_000.0) is not None  # 10 s behind, 9 s allowed
    assert as_of(fresh, now=1_000.0) == {
        "block_number": 7,
        "block_hash": "0x" + "01" * 32,
        "block_time": "1970-01-01T00:00:00Z",
        "lag_seconds": 10.0,
    }
    assert as_of(SyncSnapshot(), now=1_000.0)["lag_seconds"] is None
