import random

from hypothesis import given
from hypothesis import strategies as st
from tests.pilotfish.failover.builders import FakeClock

from pilotfish.failover import breaker

S = breaker.CircuitState


def _breaker(clock, threshold=3, cooldown=10.0, jitter=0.0):
    return breaker.CircuitBreaker(
        failure_threshold=threshold, cooldown=cooldown, now=clock, rng=random.Random(1), jitter=jitter
    )


def test_opens_only_after_the_threshold_of_consecutive_failures():
    clock = FakeClock()
    b = _breaker(clock)
    b.record_failure()
    b.record_failure()
    assert b.state is S.CLOSED and b.allow()
    b.record_failure()
    assert b.state is S.OPEN and not b.allow()


def test_a_success_resets_the_consecutive_count():
    clock = FakeClock()
    b = _breaker(clock)
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert b.state is S.CLOSED and b.consecutive_failures == 1


def test_retry_after_opens_at_once_for_exactly_that_long():
    clock = FakeClock()
    b = _breaker(clock)
    b.record_failure(retry_after=12.0)
    assert b.state is S.OPEN and b.cooldown_left() == 12.0
    clock.advance(12.0)
    assert b.state is S.HALF_OPEN


def test_a_huge_retry_after_is_capped():
    clock = FakeClock()
    b = _breaker(clock)
    b.record_failure(retry_after=86400)
    assert b.cooldown_left() == breaker.RETRY_AFTER_CAP_SECONDS


def test_half_open_admits_exactly_one_probe_until_it_reports():
    clock = FakeClock()
    b = _breaker(clock, threshold=1)
    b.record_failure()
    clock.advance(10.0)
    assert b.state is S.HALF_OPEN
    assert b.allow() is True
    assert [b.allow() for _ in range(5)] == [False] * 5
    b.record_success()
    assert b.state is S.CLOSED and b.allow()


def test_a_failed_probe_reopens_for_a_fresh_cooldown():
    clock = FakeClock()
    b = _breaker(clock, threshold=1)
    b.record_failure()
    clock.advance(10.0)
    assert b.allow()
    b.record_failure()
    assert b.state is S.OPEN and b.cooldown_left() == 10.0


def test_a_probe_that_never_reports_expires_so_the_breaker_is_not_stuck():
    clock = FakeClock()
    b = breaker.CircuitBreaker(failure_threshold=1, cooldown=10.0, now=clock, jitter=0.0, probe_timeout=5.0)
    b.record_failure()
    clock.advance(10.0)
    assert b.allow()
    clock.advance(4.9)
    assert not b.allow()
    clock.advance(0.2)
    assert b.allow()


def test_a_released_probe_lets_the_next_caller_probe():
    clock = FakeClock()
    b = _breaker(clock, threshold=1)
    b.record_failure()
    clock.advance(10.0)
    assert b.allow()
    b.release_probe()
    assert b.allow()


def test_cooldown_jitter_spreads_recovery_within_bounds():
    cooldowns = set()
    for seed in range(200):
        clock = FakeClock()
        b = breaker.CircuitBreaker(failure_threshold=1, cooldown=60.0, now=clock, rng=random.Random(seed), jitter=0.1)
        b.record_failure()
        cooldowns.add(round(b.cooldown_left(), 3))
    assert min(cooldowns) >= 54.0 and max(cooldowns) <= 66.0
    assert len(cooldowns) > 150  # sidecars that tripped together do not all probe together


@given(st.lists(st.sampled_from(["fail", "ok", "allow", "tick", "retry_after"]), max_size=60))
def test_never_two_probes_out_at_once(operations):
    clock = FakeClock()
    b = breaker.CircuitBreaker(failure_threshold=2, cooldown=5.0, now=clock, rng=random.Random(0), probe_timeout=5.0)
    outstanding = 0
    for op in operations:
        half_open = b.state is S.HALF_OPEN
        if op == "fail":
            b.record_failure()
            outstanding = 0
        elif op == "retry_after":
            b.record_failure(retry_after=3.0)
            outstanding = 0
        elif op == "ok":
            b.record_success()
            outstanding = 0
        elif op == "tick":
            clock.advance(2.0)
            outstanding = 0 if b.state is not S.HALF_OPEN else outstanding
        elif op == "allow" and b.allow() and half_open:
            outstanding += 1
        assert outstanding <= 1
