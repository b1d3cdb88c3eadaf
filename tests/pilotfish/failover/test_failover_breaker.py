import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.pilotfish.failover.builders import FakeClock

from pilotfish.failover import breaker

S = breaker.CircuitState


def _breaker(clock, threshold=3, cooldown=10.0, jitter=0.0, **kwargs):
    return breaker.CircuitBreaker(
        failure_threshold=threshold, cooldown=cooldown, now=clock.now, rng=random.Random(1), jitter=jitter, **kwargs
    )


def _tripped(clock, **kwargs):
    b = _breaker(clock, threshold=1, **kwargs)
    b.record_failure()
    return b


def _half_open(clock, **kwargs):
    b = _tripped(clock, **kwargs)
    clock.advance(b.cooldown_left())
    assert b.state is S.HALF_OPEN
    return b


def test_a_new_breaker_is_closed_and_lets_everyone_through():
    b = _breaker(FakeClock())
    assert b.state is S.CLOSED and b.cooldown_left() == 0.0 and b.consecutive_failures == 0
    assert all(b.allow() for _ in range(100))


def test_state_values_are_the_strings_the_debug_page_shows():
    assert [s.value for s in S] == ["closed", "open", "half_open"]


@pytest.mark.parametrize(
    "settings",
    [
        {"failure_threshold": 0, "cooldown": 1.0},
        {"failure_threshold": 1, "cooldown": 0.0},
        {"failure_threshold": 1, "cooldown": math.nan},
        {"failure_threshold": 1, "cooldown": 1.0, "jitter": -0.1},
        {"failure_threshold": 1, "cooldown": 1.0, "jitter": 1.0},
        {"failure_threshold": 1, "cooldown": 1.0, "probe_timeout": 0.0},
    ],
)
def test_nonsense_settings_are_refused(settings):
    with pytest.raises(ValueError):
        breaker.CircuitBreaker(now=FakeClock().now, **settings)


def test_opens_only_after_the_threshold_of_consecutive_failures():
    b = _breaker(FakeClock())
    b.record_failure()
    b.record_failure()
    assert b.state is S.CLOSED and b.allow() and b.consecutive_failures == 2
    b.record_failure()
    assert b.state is S.OPEN and not b.allow() and b.cooldown_left() == 10.0


def test_a_success_resets_the_consecutive_count():
    b = _breaker(FakeClock())
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert b.state is S.CLOSED and b.consecutive_failures == 1


def test_an_open_circuit_refuses_everyone_until_its_cooldown_has_passed():
    clock = FakeClock()
    b = _tripped(clock)
    clock.advance(9.999)
    assert b.state is S.OPEN and not b.allow() and b.cooldown_left() == pytest.approx(0.001)
    clock.advance(0.001)
    assert b.state is S.HALF_OPEN and b.cooldown_left() == 0.0


def test_retry_after_opens_at_once_for_exactly_that_long_below_the_threshold():
    clock = FakeClock()
    b = _breaker(clock, threshold=5)
    b.record_failure(retry_after=12.0)
    assert b.state is S.OPEN and b.cooldown_left() == 12.0
    clock.advance(12.0)
    assert b.state is S.HALF_OPEN


def test_retry_after_is_not_jittered():
    clock = FakeClock()
    b = _breaker(clock, jitter=0.5)
    b.record_failure(retry_after=7.0)
    assert b.cooldown_left() == 7.0


def test_a_huge_retry_after_is_capped():
    b = _breaker(FakeClock())
    b.record_failure(retry_after=86400)
    assert b.cooldown_left() == breaker.RETRY_AFTER_CAP_SECONDS
    b2 = _breaker(FakeClock())
    b2.record_failure(retry_after=math.inf)
    assert b2.cooldown_left() == breaker.RETRY_AFTER_CAP_SECONDS


@pytest.mark.parametrize("retry_after", [0.0, -5.0])
def test_a_zero_or_negative_retry_after_goes_straight_to_a_single_probe(retry_after):
    b = _breaker(FakeClock())
    b.record_failure(retry_after=retry_after)
    assert b.state is S.HALF_OPEN
    assert b.allow() and not b.allow()


def test_a_nan_retry_after_is_ignored_and_the_failure_counts_as_usual():
    b = _breaker(FakeClock())
    b.record_failure(retry_after=math.nan)
    assert b.state is S.CLOSED and b.consecutive_failures == 1


def test_late_failures_while_open_do_not_push_the_cooldown_further_out():
    clock = FakeClock()
    b = _tripped(clock)
    clock.advance(6.0)
    b.record_failure()
    assert b.cooldown_left() == 4.0 and b.consecutive_failures == 2


def test_a_retry_after_while_open_extends_the_wait_but_never_shortens_it():
    clock = FakeClock()
    b = _tripped(clock)
    b.record_failure(retry_after=3.0)
    assert b.cooldown_left() == 10.0
    b.record_failure(retry_after=30.0)
    assert b.cooldown_left() == 30.0


def test_a_late_success_does_not_close_an_open_circuit():
    clock = FakeClock()
    b = _breaker(clock, threshold=1)
    b.record_failure(retry_after=30.0)
    b.record_success()  # a call admitted before the 429 finished fine
    assert b.state is S.OPEN and b.cooldown_left() == 30.0 and b.consecutive_failures == 1


def test_half_open_admits_exactly_one_probe_until_it_reports():
    clock = FakeClock()
    b = _half_open(clock)
    assert b.allow() is True
    assert [b.allow() for _ in range(5)] == [False] * 5
    assert b.state is S.HALF_OPEN and b.cooldown_left() == 0.0
    b.record_success()
    assert b.state is S.CLOSED and b.consecutive_failures == 0
    assert all(b.allow() for _ in range(5))


def test_a_failed_probe_reopens_for_a_fresh_cooldown():
    clock = FakeClock()
    b = _half_open(clock)
    assert b.allow()
    b.record_failure()
    assert b.state is S.OPEN and b.cooldown_left() == 10.0 and not b.allow()
    clock.advance(10.0)
    assert b.allow() and not b.allow()  # and one new probe after it


def test_a_probe_answered_with_retry_after_reopens_for_exactly_that_long():
    clock = FakeClock()
    b = _half_open(clock)
    assert b.allow()
    b.record_failure(retry_after=2.5)
    assert b.cooldown_left() == 2.5


def test_a_probe_that_never_reports_expires_so_the_breaker_is_not_stuck():
    clock = FakeClock()
    b = _half_open(clock, probe_timeout=5.0)
    assert b.allow()
    clock.advance(4.9)
    assert not b.allow()
    clock.advance(0.1)
    assert b.allow() and not b.allow()


def test_the_probe_lease_defaults_to_the_cooldown():
    clock = FakeClock()
    b = _half_open(clock)
    assert b.allow()
    clock.advance(9.99)
    assert not b.allow()
    clock.advance(0.01)
    assert b.allow()


def test_a_released_probe_lets_the_next_caller_probe():
    clock = FakeClock()
    b = _half_open(clock)
    assert b.allow()
    b.release_probe()
    assert b.state is S.HALF_OPEN
    assert b.allow() and not b.allow()


def test_releasing_a_probe_when_none_is_out_changes_nothing():
    clock = FakeClock()
    b = _breaker(clock)
    b.release_probe()
    assert b.state is S.CLOSED and b.allow()
    opened = _tripped(clock)
    opened.release_probe()
    assert opened.state is S.OPEN and not opened.allow()


def test_consecutive_failures_keep_counting_through_an_open_circuit_until_a_probe_succeeds():
    clock = FakeClock()
    b = _tripped(clock)
    b.record_failure()
    clock.advance(10.0)
    assert b.allow()
    b.record_failure()
    assert b.consecutive_failures == 3
    clock.advance(10.0)
    assert b.allow()
    b.record_success()
    assert b.consecutive_failures == 0


def test_cooldown_jitter_spreads_recovery_within_bounds():
    cooldowns = set()
    for seed in range(300):
        b = breaker.CircuitBreaker(
            failure_threshold=1, cooldown=60.0, now=FakeClock().now, rng=random.Random(seed), jitter=0.1
        )
        b.record_failure()
        cooldowns.add(round(b.cooldown_left(), 3))
    assert min(cooldowns) >= 54.0 and max(cooldowns) <= 66.0
    assert min(cooldowns) < 56.0 and max(cooldowns) > 64.0  # the whole ±10% is used
    assert len(cooldowns) > 250  # sidecars that tripped together do not all probe together


def test_a_reopened_circuit_gets_a_freshly_jittered_cooldown():
    clock = FakeClock()
    b = breaker.CircuitBreaker(failure_threshold=1, cooldown=60.0, now=clock.now, rng=random.Random(3), jitter=0.1)
    waits = []
    for _ in range(20):
        b.record_failure()
        waits.append(b.cooldown_left())
        clock.advance(b.cooldown_left())
        assert b.allow()
    assert all(54.0 <= w <= 66.0 for w in waits) and len(set(waits)) == 20


def test_the_same_seed_gives_the_same_jitter():
    def first_wait(seed):
        b = breaker.CircuitBreaker(failure_threshold=1, cooldown=60.0, now=FakeClock().now, rng=random.Random(seed))
        b.record_failure()
        return b.cooldown_left()

    assert first_wait(7) == first_wait(7) != first_wait(8)


def test_reconfiguring_keeps_an_open_circuit_open():
    clock = FakeClock()
    b = _tripped(clock)
    b.reconfigure(failure_threshold=5, cooldown=20.0)
    assert b.state is S.OPEN and b.cooldown_left() == 10.0
    assert (b.failure_threshold, b.cooldown) == (5, 20.0)


def test_a_shorter_cooldown_shortens_an_open_circuits_wait_at_once():
    clock = FakeClock()
    b = _tripped(clock, cooldown=600.0)
    b.reconfigure(failure_threshold=1, cooldown=5.0)
    assert b.cooldown_left() == 5.0


def test_a_new_threshold_applies_from_the_next_failure():
    clock = FakeClock()
    b = _breaker(clock, threshold=5)
    b.record_failure()
    b.record_failure()
    b.reconfigure(failure_threshold=2, cooldown=10.0)
    assert b.state is S.CLOSED
    b.record_failure()
    assert b.state is S.OPEN


def test_a_default_probe_lease_follows_a_new_cooldown():
    clock = FakeClock()
    b = _half_open(clock)
    b.reconfigure(failure_threshold=1, cooldown=2.0)
    assert b.allow()
    clock.advance(2.0)
    assert b.allow()


def test_reconfiguring_refuses_nonsense_settings():
    b = _breaker(FakeClock())
    with pytest.raises(ValueError):
        b.reconfigure(failure_threshold=0, cooldown=1.0)
    with pytest.raises(ValueError):
        b.reconfigure(failure_threshold=1, cooldown=-1.0)


OPERATIONS = st.one_of(
    st.just(("fail", None)),
    st.tuples(st.just("retry_after"), st.floats(min_value=-1.0, max_value=20.0)),
    st.just(("ok", None)),
    st.just(("allow", None)),
    st.just(("release", None)),
    st.tuples(st.just("tick"), st.floats(min_value=0.0, max_value=8.0)),
)


def _apply(b, clock, op, arg):
    if op == "tick":
        clock.advance(arg)
    elif op == "allow":
        b.allow()
    elif op == "retry_after":
        b.record_failure(retry_after=arg)
    elif op == "fail":
        b.record_failure()
    elif op == "ok":
        b.record_success()
    else:
        b.release_probe()


@given(st.lists(OPERATIONS, max_size=80), st.integers(0, 1000))
def test_never_two_live_probes_out_at_once(operations, seed):
    clock = FakeClock()
    b = breaker.CircuitBreaker(failure_threshold=2, cooldown=5.0, now=clock.now, rng=random.Random(seed))
    probes: list[float] = []  # admission times of probes that have not reported or been released
    for op, arg in operations:
        if op == "allow":
            half_open = b.state is S.HALF_OPEN
            live = [t for t in probes if clock.t < t + 5.0]
            if b.allow() and half_open:
                assert not live, "a second probe was admitted while one was out"
                probes.append(clock.t)
        else:
            _apply(b, clock, op, arg)
            if op != "tick":
                probes.clear()


@given(st.lists(OPERATIONS, max_size=80), st.integers(0, 1000))
def test_open_means_a_positive_bounded_wait_and_nothing_is_admitted(operations, seed):
    clock = FakeClock()
    b = breaker.CircuitBreaker(failure_threshold=2, cooldown=5.0, now=clock.now, rng=random.Random(seed))
    for op, arg in operations:
        _apply(b, clock, op, arg)
        left = b.cooldown_left()
        assert (b.state is S.OPEN) == (left > 0)
        assert 0.0 <= left <= max(20.0, 5.0 * 1.1) + 1e-9  # clock arithmetic in floats
        if b.state is S.OPEN:
            assert not b.allow()


def test_a_trip_opens_a_closed_circuit_at_once_whatever_the_threshold():
    clock = FakeClock()
    b = _breaker(clock, threshold=5)
    b.record_failure(trip=True)
    assert b.state is S.OPEN and b.cooldown_left() == 10.0
