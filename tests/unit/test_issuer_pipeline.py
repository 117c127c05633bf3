"""The issuer's fast paths against the reference they replace: worker pools, receipt text, JCS,
progress bars. Every fast path must give exactly the bytes of the slow one."""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from chain.core.canonical import jcs
from chain.core.secured import SECURINGS, Securing
from issuer.cli import progress_bar
from issuer.outputs import dumps_indented, receipt_text
from issuer.pipeline import WorkerPool, chunked
from tests.factories import make_secured_batch
from tests.strategies import hostile_values, json_values


def _where(context: str, chunk: list[int]) -> tuple[int, str, list[int]]:
    return os.getpid(), context, [n * n for n in chunk]


def _fail_on_three(context: str, chunk: list[int]) -> list[int]:
    if 3 in chunk:
        raise ValueError(f"{context}: chunk {chunk} holds 3")
    return chunk


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_pool_keeps_order_and_hands_workers_the_context(workers: int) -> None:
    chunks = list(chunked(range(50), 3))
    with WorkerPool("the context", workers) as pool:
        results = list(pool.map(_where, chunks))
    assert [squares for _, _, squares in results] == [[n * n for n in chunk] for chunk in chunks]
    assert {context for _, context, _ in results} == {"the context"}
    pids = {pid for pid, _, _ in results}
    assert (pids == {os.getpid()}) if workers == 1 else (os.getpid() not in pids)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_error_reaches_the_caller(workers: int) -> None:
    with WorkerPool("pool", workers) as pool, pytest.raises(ValueError, match=r"pool: chunk \[3\] holds 3"):
        list(pool.map(_fail_on_three, [[1], [2], [3], [4]]))


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
