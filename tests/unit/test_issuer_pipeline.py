"""The issuer's fast paths against the reference they replace: worker pools, receipt text, JCS,
progress bars. Every fast path must give exactly the bytes of the slow one, and the worker pool
must keep order, bound what is in flight, survive its failures and never fork the issuer."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from hypothesis import given
from hypothesis import strategies as st

from chain.core.canonical import jcs
from chain.core.secured import SECURINGS, Securing
from chain.core.signing import public_key_info
from chain.keys import generate_private_key
from issuer import pipeline
from issuer.cli import progress_bar
from issuer.errors import WorkerFailed
from issuer.outputs import dumps_indented, receipt_text
from issuer.pipeline import SealContext, WorkerPool, chunked
from tests.factories import make_secured_batch
from tests.strategies import hostile_values, json_values


def _where(context: str, chunk: list[int]) -> tuple[int, str, list[int]]:
    return os.getpid(), context, [n * n for n in chunk]


def _fail_on_three(context: str, chunk: list[int]) -> list[int]:
    if 3 in chunk:
        raise ValueError(f"{context}: chunk {chunk} holds 3")
    return chunk


def _echo_sizes(context: bytes, chunk: bytes) -> tuple[int, bytes]:
    return len(context), chunk * 2


def _die(context: None, chunk: int) -> int:
    if chunk == 2:
        os._exit(3)  # what the kernel's OOM killer would leave behind
    return chunk


class _Unpicklable(Exception):
    def __init__(self, one: str, two: str) -> None:
        super().__init__(f"{one} {two}")


def _raise_unpicklable(context: None, chunk: int) -> int:
    raise _Unpicklable("no", "way")


def _refuse(message: str) -> None:
    raise ValueError(message)


class _BreaksOnArrival:
    """A context that pickles here and cannot be rebuilt in a worker."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _refuse, ("this context cannot be rebuilt",)


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_pool_keeps_order_and_hands_workers_the_context(workers: int) -> None:
    chunks = list(chunked(range(50), 3))
    with WorkerPool(workers) as pool:
        results = list(pool.map(_where, "the context", chunks))
    assert [squares for _, _, squares in results] == [[n * n for n in chunk] for chunk in chunks]
    assert {context for _, context, _ in results} == {"the context"}
    pids = {pid for pid, _, _ in results}
    assert (pids == {os.getpid()}) if workers == 1 else (os.getpid() not in pids)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_error_reaches_the_caller(workers: int) -> None:
    with WorkerPool(workers) as pool, pytest.raises(ValueError, match=r"pool: chunk \[3\] holds 3"):
        list(pool.map(_fail_on_three, "pool", [[1], [2], [3], [4]]))


def test_one_pool_serves_several_maps_each_with_its_context() -> None:
    with WorkerPool(2) as pool:
        assert pool.pids() == []  # nothing starts before the first chunk
        first = list(pool.map(_where, "intake", [[1], [2], [3], [4]]))
        started = set(pool.pids())
        with pytest.raises(ValueError, match="seal"):
            list(pool.map(_fail_on_three, "seal", [[1], [3], [5]]))
        second = list(pool.map(_where, "receipts", [[5], [6], [7]]))
        assert set(pool.pids()) == started  # the same two processes throughout
    assert len(started) == 2
    assert {context for _, context, _ in first} == {"intake"}
    assert {context for _, context, _ in second} == {"receipts"}
    assert {pid for pid, _, _ in first + second} <= started
    assert pool.pids() == []  # stopped with the block


def test_a_map_left_early_leaves_the_pool_ready_for_the_next() -> None:
    with WorkerPool(2) as pool:
        for pid, _, _ in pool.map(_where, "left", [[n] for n in range(20)]):
            assert pid != os.getpid()
            break
        assert [squares for _, _, squares in pool.map(_where, "next", [[2], [3]])] == [[4], [9]]


def test_at_most_two_chunks_per_worker_are_out_at_once() -> None:
    pulled = 0

    def chunks() -> Iterator[list[int]]:
        nonlocal pulled
        for n in range(40):
            pulled += 1
            yield [n]

    with WorkerPool(2) as pool:
        results = pool.map(_where, "bounded", chunks())
        next(results)
        assert pulled == 2 * 2  # two for each worker, then nothing until an answer is yielded
        assert len(list(results)) == 39


def test_contexts_chunks_and_results_larger_than_a_pipe_cross_both_ways() -> None:
    context = os.urandom(3 * 2**20)
    chunks = [os.urandom(2 * 2**20) for _ in range(6)]
    with WorkerPool(2) as pool:
        results = list(pool.map(_echo_sizes, context, chunks))
    assert results == [(len(context), chunk * 2) for chunk in chunks]


def test_a_context_a_worker_cannot_rebuild_fails_its_map_only() -> None:
    with WorkerPool(2) as pool:
        with pytest.raises(ValueError, match="this context cannot be rebuilt"):
            list(pool.map(_where, _BreaksOnArrival(), [[1], [2], [3]]))  # type: ignore[arg-type]
        assert [squares for _, _, squares in pool.map(_where, "next", [[4]])] == [[16]]


def _slow(context: float, chunk: int) -> tuple[int, int]:
    time.sleep(context)
    return os.getpid(), chunk


def test_workers_outlive_the_shutdown_signals_their_group_gets() -> None:
    """Ctrl-C and a service manager's SIGTERM reach the workers too; the issuer decides when they
    stop (a cycle under way finishes)."""
    with WorkerPool(2) as pool:
        answers = pool.map(_slow, 0.1, range(8))
        first_pid, _ = next(answers)
        for pid in pool.pids():
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGINT)
        assert [chunk for _, chunk in answers] == list(range(1, 8))
        assert first_pid in pool.pids()


def _stuck(started: str, chunk: int) -> None:
    """Says it has its chunk (a file in the folder ``started``), then outlasts any patience."""
    (Path(started) / str(chunk)).touch()
    time.sleep(600)


def test_closing_kills_a_worker_that_does_not_stop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pipeline, "STOP_SECONDS", 0.5)
    pool = WorkerPool(2)
    answers = pool.map(_stuck, str(tmp_path), range(2))
    outcome: list[BaseException] = []

    def wait_for_answers() -> None:
        try:
            list(answers)
        except WorkerFailed as exc:
            outcome.append(exc)

    stuck = threading.Thread(target=wait_for_answers, daemon=True)
    stuck.start()  # a map whose chunks outlast any patience
    deadline = time.monotonic() + 30
    while len(list(tmp_path.iterdir())) < 2:  # each worker is inside its chunk (under load, a fixed
        assert time.monotonic() < deadline  # pause was not always enough: an idle worker exits 0)
        time.sleep(0.05)
    processes = [worker.process for worker in pool._running]
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 10
    assert all(process.exitcode == -signal.SIGKILL for process in processes)
    stuck.join(10)
    assert [type(exc) for exc in outcome] == [WorkerFailed]  # its map learns the pool is gone


def test_a_dead_worker_fails_the_map_and_closes_the_pool() -> None:
    with WorkerPool(2) as pool:
        with pytest.raises(WorkerFailed, match="exited"):
            list(pool.map(_die, None, range(6)))
        assert pool.pids() == []
        with pytest.raises(WorkerFailed, match="closed"):
            list(pool.map(_where, "again", [[1]]))


def test_an_exception_that_does_not_pickle_is_named() -> None:
    with WorkerPool(2) as pool, pytest.raises(WorkerFailed, match="_Unpicklable: no way"):
        list(pool.map(_raise_unpicklable, None, [1]))


def test_workers_come_from_the_forkserver_and_the_issuer_never_forks(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise AssertionError(f"os.fork() called with {threading.active_count()} threads running")

    monkeypatch.setattr(os, "fork", no_fork)
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait, name="as the API's scheduler would be")
    busy.start()
    try:
        with WorkerPool(2) as pool:
            assert pool.start_method == "forkserver"
            results = list(pool.map(_where, "threaded", [[1], [2], [3]]))
    finally:
        stop.set()
        busy.join()
    assert os.getpid() not in {pid for pid, _, _ in results}
    assert WorkerPool(1).start_method is None


@pytest.mark.parametrize("kind", ["ed25519", "rsa-2048"])
def test_a_seal_context_crosses_to_a_worker_whole_and_shows_no_key(kind: str) -> None:
    key = generate_private_key(kind)  # type: ignore[arg-type]
    context = SealContext.for_key(key, datetime(2026, 12, 1, tzinfo=UTC), None)
    again = pickle.loads(pickle.dumps(context))  # noqa: S301 - our own bytes
    assert again == dataclasses.replace(context, key=again.key)
    assert public_key_info(again.key) == public_key_info(key)
    assert again.key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()) == key.private_bytes(
        Encoding.DER, PrivateFormat.PKCS8, NoEncryption()
    )
    assert repr(context) == repr(again)
    assert context.key_id in repr(context)
    assert "key=" not in repr(context)  # the key id only, never the key


def test_chunked_splits_and_keeps_the_rest() -> None:
    assert list(chunked(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 3)) == []


@given(json_values)
def test_dumps_indented_is_json_dumps_with_indent_2(value: Any) -> None:
    assert dumps_indented(value) == json.dumps(value, indent=2, ensure_ascii=False)


def test_dumps_indented_refuses_what_is_not_json() -> None:
    with pytest.raises(TypeError, match="bytes is not JSON data"):
        dumps_indented({"a": b"x"})


@pytest.mark.parametrize("size", [1, 5], ids=["a batch of one: no path", "five"])
@pytest.mark.parametrize("securing", SECURINGS)
def test_receipt_text_is_receipt_to_json(securing: Securing, size: int) -> None:
    batch = make_secured_batch(size, securing=securing, seed="receipt text")
    for index in range(size):
        receipt = batch.receipt(index)
        text = receipt_text(
            credential=receipt.credential,
            path=receipt.proof.path,
            root=receipt.proof.root,
            anchor=receipt.anchor.model_dump(by_alias=True, mode="json"),
        )
        assert text == receipt.to_json()


@given(json_values)
def test_jcs_is_rfc8785(value: Any) -> None:
    assert jcs(value) == rfc8785.dumps(value)


@given(hostile_values)
def test_jcs_refuses_what_rfc8785_refuses(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            jcs(value)
    else:
        assert jcs(value) == expected


@given(st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=3), st.integers(0, 9)))
def test_jcs_orders_keys_by_utf16_code_units(value: dict[str, int]) -> None:
    assert jcs(value) == rfc8785.dumps(value)  # "\U0001f600" sorts before "\uff01" in UTF-16


def test_progress_bars_stay_off_without_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar("seal", 10) as bar:
        assert bar.disable  # type: ignore[attr-defined]  # a tqdm bar
        bar.update(10)
    assert capsys.readouterr().err == ""


class _Terminal(io.StringIO):
    """Text that says it is a terminal, as stderr is when a person runs the command."""

    def isatty(self) -> bool:
        return True


def test_progress_bars_draw_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress_bar("receipts", 4) as bar:
        assert not bar.disable  # type: ignore[attr-defined]  # a tqdm bar
        bar.update(4)
    assert "receipts:" in terminal.getvalue()
    assert "/4 " in terminal.getvalue()
