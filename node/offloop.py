"""The threads a serving process reads the mirror and verifies in, never on its event loop.

A verification is CPU work under one GIL plus a short database read: run on the event loop it
would hold ``/health`` and every request being read or written meanwhile. :class:`OffLoop` runs it
in a few threads instead, and hands results back for less than ``run_in_executor`` costs:

- no ``concurrent.futures.Future`` (its lock and condition) between the thread and the loop: a
  job is a tuple on a :class:`queue.SimpleQueue`, its result set straight on the loop's future;
- one wake-up of the loop for as many results as finish before the loop runs again: under load
  the loop collects a batch per turn instead of being signalled (a write to its self-pipe, a
  thread switch, the GIL handed over) once a result.

Measured with ``bench/node.py`` (cold, 2 readers), the hand-over through ``run_in_executor`` cost
about 15% of a verification's CPU; docs/performance.md has the figures.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

#: What a job's thread did: (True, its result) or (False, the exception it raised).
Outcome = tuple[bool, Any]
Future = asyncio.Future[Any]
Job = tuple[asyncio.AbstractEventLoop, Future, Callable[..., Any], tuple[Any, ...]]


class OffLoop:
    """``threads`` threads that run blocking calls for coroutines (``await off_loop.run(f, x)``).

    Sized on purpose (``FINVAULT_VERIFY_THREADS``): the work is CPU under one GIL, so more threads
    than a request or two waiting on the database buys nothing; more processes do
    (``FINVAULT_WORKERS``)."""

    def __init__(self, threads: int, *, name: str = "finvault-verify") -> None:
        if threads < 1:
            raise ValueError("an OffLoop needs at least one thread")
        self._jobs: SimpleQueue[Job | None] = SimpleQueue()
        self._lock = threading.Lock()
        #: Results finished for each loop and not yet handed over; a loop is a key while a
        #: hand-over is scheduled on it.
        self._done: dict[asyncio.AbstractEventLoop, list[tuple[Future, Outcome]]] = {}
        self._closed = False
        #: Started by the first call, in the process that serves (an app may be built before its
        #: serving processes are forked, and threads do not survive a fork).
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(threads)
        ]
        self._started = False

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in one of the threads; its result (or exception) here. Cancelling
        the caller does not stop a call already started: its result is dropped."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:  # never queued behind close()'s stop marks, where no thread would take it
            if self._closed:
                raise RuntimeError("this OffLoop is closed")
            if not self._started:
                for thread in self._threads:
                    thread.start()
                self._started = True
            self._jobs.put((loop, future, function, args))
        return await future

    def close(self) -> None:
        """Lets the jobs already queued finish, then stops the threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if not self._started:
                return
            for _ in self._threads:
                self._jobs.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, function, args = job
            try:
                outcome: Outcome = (True, function(*args))
            except StopIteration as exc:  # a future refuses it (asyncio's rule): as run_in_executor does
                outcome = (False, RuntimeError(f"StopIteration raised in {function!r}: {exc}"))
            except BaseException as exc:  # handed to the caller, as run_in_executor does
                outcome = (False, exc)
            del job, function, args  # nothing of the call outlives it in this thread
            self._finished(loop, future, outcome)

    def _finished(self, loop: asyncio.AbstractEventLoop, future: Future, outcome: Outcome) -> None:
        with self._lock:
            batch = self._done.get(loop)
            if batch is not None:  # a hand-over is due on that loop already: it takes this too
                batch.append((future, outcome))
                return
            self._done[loop] = [(future, outcome)]
        try:
            loop.call_soon_threadsafe(self._hand_over, loop)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            with self._lock:
                self._done.pop(loop, None)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            batch = self._done.pop(loop)
        for future, (ok, value) in batch:
            if future.done():  # cancelled: its caller has gone
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
