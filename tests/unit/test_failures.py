"""A failing loop's reason and log (chain/service/failures.py): the driver's own words from real
SQLite and psycopg errors, and one line when a failure starts, none while it repeats, one when it ends."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from chain.errors import RpcUnavailable
from chain.service.failures import MAX_REASON_CHARS, FailureLog, failure_kind, failure_reason
from tests.tools.ports import closed_port

LOGGER = "finvault.test.failures"


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def disk_full(tmp_path: Path) -> OperationalError:
    """A real "database or disk is full" from SQLite: the file may not grow past its size now."""
    engine = create_engine(f"sqlite:///{tmp_path / 'full.db'}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (v BLOB)"))
        with engine.begin() as connection:
            pages = connection.execute(text("PRAGMA page_count")).scalar()
            connection.execute(text(f"PRAGMA max_page_count = {pages}"))
            with pytest.raises(OperationalError) as raised:
                connection.execute(text("INSERT INTO t VALUES (zeroblob(100000))"))
        return raised.value
    finally:
        engine.dispose()


def test_a_database_error_gives_the_drivers_message_not_the_wrapper(tmp_path: Path) -> None:
    error = disk_full(tmp_path)
    assert "[SQL:" in str(error)  # what a log line showed: the wrapper, the statement, a link
    assert failure_reason(error) == "database or disk is full"


def test_a_database_that_is_down_gives_connection_refused() -> None:
    with closed_port() as port:
        engine = create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{port}/mirror?connect_timeout=5")
        with pytest.raises(OperationalError) as raised:
            engine.connect()
        engine.dispose()
    reason = failure_reason(raised.value)
    assert "Connection refused" in reason
    assert "\n" not in reason


def test_other_reasons() -> None:
    assert failure_reason(RpcUnavailable("eth_blockNumber: no RPC endpoint answered")) == (
        "rpc_unavailable: eth_blockNumber: no RPC endpoint answered"
    )
    assert failure_reason(TypeError("int() can't convert non-string\nmore")) == (
        "TypeError: int() can't convert non-string"
    )
    assert failure_reason(KeyError()) == "KeyError"
    long = failure_reason(ValueError("x" * 1_000))
    assert len(long) == MAX_REASON_CHARS
    assert long.endswith("…")


def test_the_kind_of_a_failure_ignores_numbers_and_hashes() -> None:
    one = RpcUnavailable("block 1234 (0xabcdef) is not available after 4 rounds")
    other = RpcUnavailable("block 1240 (0x123456) is not available after 4 rounds")
    assert failure_kind(one) == failure_kind(other)
    assert failure_kind(one) != failure_kind(ValueError("block 1234 (0xabcdef) is not available"))


def test_a_repeated_failure_logs_one_line_when_it_starts_and_one_when_it_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    failures = FailureLog(logging.getLogger(LOGGER), "sync step", clock=clock)
    error = disk_full(tmp_path)
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    failures.succeeded()  # nothing was failing: nothing to say
    for _ in range(45):  # 90 s of polls every 2 s
        assert failures.failed(error) == "database or disk is full"
        clock.now += 2.0
    assert (failures.failing, failures.attempts) == (True, 45)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "sync step failing: database or disk is full")
    ]
    assert caplog.records[0].exc_info is None  # an expected failure: no traceback

    failures.succeeded()
    assert (failures.failing, failures.reason, failures.attempts) == (False, None, 0)
    assert [(r.levelname, r.getMessage()) for r in caplog.records][1:] == [
        ("INFO", "sync step recovered after 90 s, 45 failed attempts (last: database or disk is full)")
    ]
    failures.succeeded()
    assert len(caplog.records) == 2


def test_a_different_failure_is_logged_once_more(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    failures = FailureLog(logging.getLogger(LOGGER), "sync step", clock=clock)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    for attempt in range(3):
        failures.failed(RpcUnavailable(f"eth_blockNumber: no endpoint answered after {attempt} rounds"))
        clock.now += 2.0
    for _ in range(3):
        failures.failed(OperationalError("COMMIT", {}, Exception("database is locked")))
        clock.now += 2.0
    failures.succeeded()
    assert [r.getMessage() for r in caplog.records] == [
        "sync step failing: rpc_unavailable: eth_blockNumber: no endpoint answered after 0 rounds",
        "sync step still failing, now: database is locked (was: rpc_unavailable: eth_blockNumber: no "
        "endpoint answered after 2 rounds, for 6 s)",
        "sync step recovered after 12 s, 6 failed attempts (last: database is locked)",
    ]


def parse_head(raw: Any) -> int:
    return int(raw, 16)


def test_an_unexpected_failure_carries_its_traceback_once(caplog: pytest.LogCaptureFixture) -> None:
    failures = FailureLog(logging.getLogger(LOGGER), "sync step", clock=Clock())
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    for _ in range(5):
        try:
            parse_head(None)  # the bug a null head used to hit
        except TypeError as exc:
            failures.failed(exc)
    [record] = caplog.records
    assert (
        record.getMessage()
        == "sync step failing: TypeError: int() can't convert non-string with explicit base"
    )
    assert record.exc_info is not None
    failures.succeeded()
    assert caplog.records[-1].getMessage() == (
        "sync step recovered after 0 s, 5 failed attempts "
        "(last: TypeError: int() can't convert non-string with explicit base)"
    )


def test_one_failed_attempt_reads_in_the_singular(caplog: pytest.LogCaptureFixture) -> None:
    failures = FailureLog(logging.getLogger(LOGGER), "sync step", clock=Clock())
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    failures.failed(RpcUnavailable("down"))
    failures.succeeded()
    assert caplog.records[-1].getMessage() == (
        "sync step recovered after 0 s, 1 failed attempt (last: rpc_unavailable: down)"
    )
