"""The sync loop's small parts on their own: the adaptive eth_getLogs range and the circuit breaker."""

from __future__ import annotations

import pytest

from indexer.fetch import AdaptiveRange
from indexer.sync import CircuitBreaker, StepResult, SyncStatus


def state(breaker: CircuitBreaker) -> str:
    return "open" if breaker.open else "closed"


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


# -- AdaptiveRange ----------------------------------------------------------------------------------


def test_shrink_halves_down_to_the_minimum_and_forgets_successes() -> None:
    window = AdaptiveRange(size=100, minimum=10, grow_after=3)
    window.succeeded()
    window.succeeded()
    sizes = []
    for _ in range(5):
        window.shrink()
        sizes.append(window.size)
    assert sizes == [50, 25, 12, 10, 10]
    assert window.successes == 0


def test_heavy_answers_shrink_the_range_toward_the_log_target() -> None:
    window = AdaptiveRange(size=64, target_logs=1_000)
    window.succeeded(8_000)  # eight times too many logs: an eighth of the blocks next time
    assert window.size == 8
    window.succeeded(700)  # within a factor two of the target: stay
    assert window.size == 8
    window.succeeded(100)  # light: grow
    assert window.size == 16


def test_grows_after_a_run_of_successes_up_to_the_maximum() -> None:
    window = AdaptiveRange(size=8, maximum=40, grow_after=3)
    sizes = []
    for _ in range(12):
        window.succeeded()
        sizes.append(window.size)
    assert sizes == [8, 8, 16, 16, 16, 32, 32, 32, 40, 40, 40, 40]


def test_a_refusal_restarts_the_run_needed_to_grow() -> None:
    window = AdaptiveRange(size=64, grow_after=3)
    window.succeeded()
    window.succeeded()
    window.shrink()
    window.succeeded()
    window.succeeded()
    assert window.size == 32
    window.succeeded()
    assert window.size == 64


# -- CircuitBreaker -----------------------------------------------------------------------------------


def test_breaker_stays_closed_below_the_threshold() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown=10.0, clock=Clock())
    breaker.failure()
    breaker.failure()
    assert state(breaker) == "closed"


def test_breaker_opens_at_the_threshold_and_half_opens_after_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=10.0, clock=clock)
    for _ in range(3):
        breaker.failure()
    assert state(breaker) == "open"
    clock.now += 9.999
    assert state(breaker) == "open"
    clock.now += 0.001
    assert state(breaker) == "closed"  # half-open: one attempt may go through


def test_a_failure_while_half_open_reopens_at_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=10.0, clock=clock)
    for _ in range(3):
        breaker.failure()
    clock.now += 10.0
    assert state(breaker) == "closed"
    breaker.failure()
    assert state(breaker) == "open"
    clock.now += 9.0
    assert state(breaker) == "open"  # the cooldown restarted at the last failure


def test_a_success_while_half_open_closes_and_resets() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, cooldown=5.0, clock=clock)
    breaker.failure()
    breaker.failure()
    clock.now += 5.0
    breaker.success()
    assert state(breaker) == "closed"
    assert breaker.failures == 0
    breaker.failure()
    assert state(breaker) == "closed"  # needs the full threshold again


def test_an_open_breaker_never_holds_the_next_poll_back() -> None:
    """A live loop waits one poll interval after a failure, breaker open or not: the first poll
    after the cause is gone succeeds and closes the breaker, long before the cooldown is over."""
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=30.0, clock=clock)
    for _ in range(3):
        breaker.failure()
    assert state(breaker) == "open"
    assert breaker.wait_after_failure(2.0) == 2.0  # not the 30 s cooldown
    for _ in range(20):  # while the cause lasts, every poll fails and keeps the breaker open
        clock.now += breaker.wait_after_failure(2.0)
        breaker.failure()
        assert state(breaker) == "open"
    clock.now += breaker.wait_after_failure(2.0)
    breaker.success()  # the cause is gone: the next poll works
    assert state(breaker) == "closed"
    assert breaker.wait_after_failure(2.0) == 2.0


# -- status values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "head", "caught_up"), [(10, 10, True), (11, 10, True), (9, 10, False), (0, 0, True)]
)
def test_step_result_caught_up(last: int, head: int, caught_up: bool) -> None:
    assert StepResult(first_block=0, last_block=last, events=0, head=head).caught_up is caught_up


def test_lag_never_goes_negative() -> None:
    assert SyncStatus(head=100, indexed_block=90).lag == 10
    assert SyncStatus(head=90, indexed_block=100).lag == 0
