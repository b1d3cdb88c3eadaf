from tests.pilotfish.failover.builders import FakeClock

from pilotfish.failover import budget


def test_a_quiet_sidecar_can_still_fail_over_through_its_floor():
    clock = FakeClock()
    b = budget.RetryBudget(percent=20, now=clock, min_retries=10)
    b.record_request()
    assert all(b.try_spend() for _ in range(10))
    assert not b.try_spend()
    assert b.exhausted_total == 1


def test_retries_are_capped_at_the_percentage_of_recent_requests():
    clock = FakeClock()
    b = budget.RetryBudget(percent=20, now=clock, min_retries=0)
    for _ in range(100):
        b.record_request()
    granted = sum(b.try_spend() for _ in range(100))
    assert granted == 20
    assert b.utilisation() == 1.0


def test_the_window_slides_and_the_budget_recovers():
    clock = FakeClock()
    b = budget.RetryBudget(percent=10, now=clock, window=10.0, min_retries=0)
    for _ in range(100):
        b.record_request()
    assert sum(b.try_spend() for _ in range(50)) == 10
    clock.advance(11.0)
    assert not b.try_spend()  # the old requests left the window with the old retries
    for _ in range(10):
        b.record_request()
    assert b.try_spend()


def test_an_outage_cannot_multiply_upstream_load_beyond_the_budget():
    clock = FakeClock()
    b = budget.RetryBudget(percent=20, now=clock, min_retries=10)
    upstream_calls = 0
    for _second in range(60):
        for _ in range(50):  # 50 requests a second, each wanting two more members
            b.record_request()
            upstream_calls += 1 + sum(b.try_spend() for _ in range(2))
        clock.advance(1.0)
    assert upstream_calls <= 60 * 50 * 1.2 + 60 * 10
