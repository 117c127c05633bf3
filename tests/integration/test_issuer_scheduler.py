"""BatchScheduler on anvil with short intervals: by time, by pending count, after a failure, and
with worker processes started from its thread without forking the threaded process."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chain.core.signing import public_key_info
from chain.rpc import RpcClient
from issuer.scheduler import BatchScheduler
from issuer.service import ProgressBar, no_progress
from issuer.store import BatchStatus
from tests.integration.conftest import Deployed
from tests.integration.issuer_fixtures import IssuerEnv

#: Only a bound on how long a broken scheduler may hang the suite, never a measurement.
PATIENCE = 30.0


@pytest.fixture
def env(registry: Deployed, rpc: RpcClient, tmp_path: Path) -> IssuerEnv:
    return IssuerEnv(registry, rpc, tmp_path)


def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, "the scheduler never got there"
        time.sleep(0.02)


def anchored(env: IssuerEnv) -> list[int]:
    return [b.leaf_count for b in env.store.batches([BatchStatus.ANCHORED])]


def test_threshold_starts_a_cycle_early(env: IssuerEnv) -> None:
    with BatchScheduler(env.service(), interval=3600, threshold=3, check_every=0.05) as scheduler:
        eventually(lambda: scheduler.cycles >= 1)  # the start-up cycle: nothing to do
        env.ingest_csv(2)
        time.sleep(0.2)  # several checks see 2 < 3 pending (no assertion rests on this pause)
        assert anchored(env) == []
        env.ingest_csv(1, first=2)
        eventually(lambda: anchored(env) == [3])
    assert scheduler.last_error is None
    assert env.assert_all_valid() == 3


def test_interval_anchors_whatever_is_pending(env: IssuerEnv) -> None:
    env.ingest_csv(2)
    with BatchScheduler(env.service(), interval=0.1, threshold=1000, check_every=3600) as scheduler:
        eventually(lambda: anchored(env) == [2])
        env.ingest_csv(1, first=5)
        eventually(lambda: anchored(env) == [2, 1])
    assert scheduler.last_error is None
    assert env.anchor_count() == 2


def test_a_failed_batch_does_not_stop_the_scheduler(env: IssuerEnv) -> None:
    env.deployed.owner.set_issuer_active(env.address, False)
    env.ingest_csv(2)
    with BatchScheduler(env.service(), interval=0.1, threshold=1000, check_every=3600):
        eventually(lambda: bool(env.store.batches([BatchStatus.FAILED])))
        env.deployed.owner.set_issuer_active(env.address, True)
        env.ingest_csv(1, first=5)  # a new batch goes through; the failed one waits for a retry
        eventually(lambda: anchored(env) == [1])
    assert env.store.batches([BatchStatus.FAILED])[0].leaf_count == 2


def test_a_failed_cycle_is_kept_and_the_next_one_tries_again(env: IssuerEnv) -> None:
    env.deployed.issuer.revoke_key(public_key_info(env.key).key_id)
    env.ingest_csv(1)
    with BatchScheduler(env.service(), interval=0.05, threshold=1000, check_every=3600) as scheduler:
        eventually(lambda: scheduler.cycles >= 2)
        assert scheduler.last_error is not None
        assert scheduler.last_error.code == "signing_key_unusable"
    assert env.store.pending_count() == 1


def test_a_cycle_on_the_scheduler_thread_seals_in_workers_without_forking(
    env: IssuerEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26: the cycle runs on an APScheduler thread beside others (as in the API process); its
    workers come from the forkserver, and this process never calls fork() (Python 3.12 would warn,
    and the suite makes that warning an error)."""
    forks: list[int] = []

    def no_fork() -> int:
        forks.append(threading.active_count())
        raise AssertionError("the issuer process forked")

    monkeypatch.setattr(os, "fork", no_fork)
    env.ingest_csv(25)
    service = env.service(workers=2)
    seen: dict[str, tuple[str | None, int, int]] = {}

    @contextmanager
    def progress(phase: str, total: int) -> Iterator[ProgressBar]:
        with service.workers() as pool, no_progress(phase, total) as bar:  # the run's own pool
            yield bar
            seen[phase] = (pool.start_method, len(set(pool.pids()) - {os.getpid()}), threading.active_count())

    service.progress = progress
    with BatchScheduler(service, interval=3600, threshold=1000, check_every=3600) as scheduler:
        eventually(lambda: anchored(env) == [25])
    assert scheduler.last_error is None
    assert forks == []
    for phase in ("seal", "receipts"):
        start_method, workers, threads = seen[phase]
        assert (start_method, workers) == ("forkserver", 2)
        assert threads > 1  # the scheduler's threads ran meanwhile
    assert env.assert_all_valid() == 25
