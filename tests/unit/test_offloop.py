"""node/offloop.py: blocking calls run in the pool's threads and come back to the calling loop, in
batches, with their results and exceptions, and close() lets queued work finish."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from node.offloop import OffLoop


def test_results_and_exceptions_come_back_from_the_pool_threads() -> None:
    off_loop = OffLoop(2, name="t")

    def where(x: int) -> tuple[int, str]:
        return x * 2, threading.current_thread().name

    def fails() -> None:
        raise KeyError("missing")

    async def main() -> None:
        value, thread = await off_loop.run(where, 21)
        assert value == 42
        assert thread.startswith("t-")
        assert thread != threading.current_thread().name
        with pytest.raises(KeyError, match="missing"):
            await off_loop.run(fails)

    try:
        asyncio.run(main())
    finally:
        off_loop.close()


def test_results_finishing_together_take_one_wake_up_of_the_loop() -> None:
    off_loop = OffLoop(1)
    gate = threading.Event()
    wake_ups = 0

    async def main() -> list[int]:
        nonlocal wake_ups
        loop = asyncio.get_running_loop()
        scheduled = loop.call_soon_threadsafe

        def counted(callback: Any, *args: Any) -> asyncio.Handle:
            nonlocal wake_ups
            wake_ups += 1
            return scheduled(callback, *args)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign,assignment]
        first = asyncio.ensure_future(off_loop.run(gate.wait))
        await asyncio.sleep(0.05)  # the thread is blocked in the first call
        finished = threading.Semaphore(0)

        def job(i: int) -> int:
            finished.release()
            return i

        rest = [asyncio.ensure_future(off_loop.run(job, i)) for i in range(50)]
        await asyncio.sleep(0)
        # The loop is held (blocked here) while the thread runs all 50: handed over together.
        gate.set()
        for _ in range(50):
            assert finished.acquire(timeout=10)
        await first
        return [await each for each in rest]

    try:
        assert asyncio.run(main()) == list(range(50))
    finally:
        off_loop.close()
    assert wake_ups == 1


def test_a_cancelled_caller_drops_its_result() -> None:
    off_loop = OffLoop(1)
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait()
        return "late"

    async def main() -> str:
        task = asyncio.ensure_future(off_loop.run(slow))
        await asyncio.get_running_loop().run_in_executor(None, started.wait)
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await off_loop.run(str.upper, "next")  # the thread is free again

    try:
        assert asyncio.run(main()) == "NEXT"
    finally:
        off_loop.close()


def test_close_lets_queued_work_finish_and_refuses_more() -> None:
    off_loop = OffLoop(1)
    done: list[int] = []

    async def main() -> None:
        def step(i: int) -> None:
            time.sleep(0.01)
            done.append(i)

        queued = [asyncio.ensure_future(off_loop.run(step, i)) for i in range(5)]
        await queued[0]  # the loop goes away with four jobs still queued behind it

    asyncio.run(main())
    off_loop.close()
    assert done == [0, 1, 2, 3, 4]

    async def after() -> None:
        await off_loop.run(int)

    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(after())


def test_a_stop_iteration_comes_back_as_an_error_and_strands_no_other_result() -> None:
    """asyncio futures refuse StopIteration: it comes back as a RuntimeError, and the results handed
    over in the same batch still arrive."""
    off_loop = OffLoop(1)

    def stops() -> None:
        raise StopIteration

    async def main() -> list[Any]:
        calls = [off_loop.run(stops), off_loop.run(int, "7")]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    try:
        stopped, seven = asyncio.run(main())
    finally:
        off_loop.close()
    assert isinstance(stopped, RuntimeError)
    assert seven == 7


def test_no_thread_starts_before_the_first_call() -> None:
    before = threading.active_count()
    off_loop = OffLoop(3)
    assert threading.active_count() == before  # safe to build before a serving process forks
    off_loop.close()
    with pytest.raises(ValueError, match="at least one thread"):
        OffLoop(0)
