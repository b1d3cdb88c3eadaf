import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.pilotfish.failover.builders import FakeClock

from pilotfish.failover import budget


def _budget(clock, percent=20.0, **kwargs):
    return budget.RetryBudget(percent=percent, now=clock.now, **kwargs)


@pytest.mark.parametrize(
    "settings",
    [
        {"percent": -1.0},
        {"percent": 101.0},
        {"percent": math.nan},
        {"percent": 10.0, "window": 0.5},
        {"percent": 10.0, "min_retries": -1},
    ],
)
def test_nonsense_settings_are_refused(settings):
    with pytest.raises(ValueError):
        budget.RetryBudget(now=FakeClock().now, **settings)


def test_a_fresh_budget_has_spent_nothing():
    b = _budget(FakeClock())
    assert b.spent() == 0 and b.utilisation() == 0.0 and b.exhausted_total == 0
    assert b.allowed() == budget.MIN_RETRIES_PER_WINDOW


def test_a_quiet_sidecar_can_still_fail_over_through_its_floor():
    b = _budget(FakeClock(), min_retries=10)
    b.record_request()
    assert all(b.try_spend() for _ in range(10))
    assert not b.try_spend()
    assert b.exhausted_total == 1


def test_the_default_floor_lets_a_lone_request_fail_over_through_a_whole_class():
    b = _budget(FakeClock(), percent=0.0)
    b.record_request()
    assert b.try_spend() and b.try_spend()  # three members: two failovers


def test_retries_are_capped_at_the_percentage_of_recent_requests():
    b = _budget(FakeClock(), min_retries=0)
    for _ in range(100):
        b.record_request()
    granted = sum(b.try_spend() for _ in range(100))
    assert granted == 20 and b.exhausted_total == 80
    assert b.utilisation() == 1.0


def test_the_floor_and_the_percentage_add_up():
    b = _budget(FakeClock(), percent=10.0, min_retries=5)
    for _ in range(50):
        b.record_request()
    assert b.allowed() == 10.0
    assert sum(b.try_spend() for _ in range(20)) == 10


def test_fractions_of_a_retry_are_not_granted():
    b = _budget(FakeClock(), percent=10.0, min_retries=0)
    for _ in range(19):
        b.record_request()
    assert sum(b.try_spend() for _ in range(5)) == 1
    b.record_request()
    assert b.try_spend() and not b.try_spend()


def test_a_hundred_percent_allows_one_retry_per_request():
    b = _budget(FakeClock(), percent=100.0, min_retries=0)
    for _ in range(7):
        b.record_request()
    assert sum(b.try_spend() for _ in range(10)) == 7


def test_a_zero_budget_grants_nothing_and_reads_as_unused_until_asked():
    b = _budget(FakeClock(), percent=0.0, min_retries=0)
    b.record_request()
    assert b.utilisation() == 0.0
    assert not b.try_spend() and b.exhausted_total == 1


def test_every_refusal_is_counted_for_the_metric():
    b = _budget(FakeClock(), min_retries=1)
    results = [b.try_spend() for _ in range(4)]
    assert results == [True, False, False, False] and b.exhausted_total == 3


def test_utilisation_is_spent_over_allowed():
    b = _budget(FakeClock(), percent=0.0, min_retries=4)
    b.try_spend()
    assert b.utilisation() == 0.25
    b.try_spend()
    b.try_spend()
    assert b.utilisation() == 0.75


def test_the_window_slides_and_the_budget_recovers():
    clock = FakeClock()
    b = _budget(clock, percent=10.0, window=10.0, min_retries=0)
    for _ in range(100):
        b.record_request()
    assert sum(b.try_spend() for _ in range(50)) == 10
    clock.advance(11.0)
    assert not b.try_spend()  # the old requests left the window with the old retries
    for _ in range(10):
        b.record_request()
    assert b.try_spend()


def test_spent_retries_are_forgotten_when_they_leave_the_window():
    clock = FakeClock(start=1000.0)
    b = _budget(clock, min_retries=2)
    assert b.try_spend() and b.try_spend() and not b.try_spend()
    clock.advance(9.999)
    assert not b.try_spend()
    clock.advance(0.001)
    assert b.spent() == 0 and b.try_spend()


def test_an_event_is_forgotten_between_window_minus_one_bucket_and_window_seconds_later():
    clock = FakeClock(start=1000.5)
    b = _budget(clock, percent=100.0, min_retries=0)
    b.record_request()
    clock.advance(9.4)  # 1009.9: same window
    assert b.allowed() == 1.0
    clock.advance(0.1)  # 1010.0: the bucket of 1000.x has left
    assert b.allowed() == 0.0


def test_requests_that_leave_the_window_before_their_retries_cannot_push_utilisation_past_one():
    clock = FakeClock()
    b = _budget(clock, percent=100.0, min_retries=0)
    b.record_request()
    clock.advance(5.0)
    assert b.try_spend()
    clock.advance(5.0)
    assert b.spent() == 1 and b.allowed() == 0.0 and b.utilisation() == 1.0


def test_an_outage_cannot_multiply_upstream_load_beyond_the_budget():
    clock = FakeClock()
    b = _budget(clock, min_retries=10)
    upstream_calls = 0
    for _second in range(60):
        for _ in range(50):  # 50 requests a second, each wanting two more members
            b.record_request()
            upstream_calls += 1 + sum(b.try_spend() for _ in range(2))
        clock.advance(1.0)
    assert upstream_calls <= 60 * 50 * 1.2 + 60 * 10
    assert upstream_calls >= 60 * 50 * 1.2  # and the budget is actually used


def test_memory_stays_bounded_however_long_it_runs():
    clock = FakeClock()
    b = _budget(clock, window=10.0)
    for _ in range(10_000):
        b.record_request()
        b.try_spend()
        clock.advance(0.37)
    assert len(b._buckets) <= 11


EVENTS = st.lists(
    st.tuples(st.sampled_from(["request", "spend", "tick"]), st.floats(min_value=0.0, max_value=4.0)),
    max_size=120,
)


@given(EVENTS, st.sampled_from([0.0, 5.0, 20.0, 100.0]), st.integers(0, 3), st.sampled_from([1.0, 3.0, 10.0]))
def test_the_budget_grants_exactly_what_a_naive_recount_of_the_window_allows(events, percent, floor, window):
    clock = FakeClock(start=0.0)
    b = _budget(clock, percent=percent, min_retries=floor, window=window)
    history: list[tuple[int, str]] = []  # (bucket, "request" | "retry")
    for kind, seconds in events:
        if kind == "tick":
            clock.advance(seconds)
            continue
        bucket = math.floor(clock.t)
        recent = [k for t, k in history if t > bucket - math.ceil(window)]
        allowed = floor + recent.count("request") * percent / 100.0
        if kind == "request":
            b.record_request()
            history.append((bucket, "request"))
        else:
            expected = recent.count("retry") + 1 <= allowed + 1e-9
            assert b.try_spend() is expected
            if expected:
                history.append((bucket, "retry"))
        assert 0.0 <= b.utilisation() <= 1.0
