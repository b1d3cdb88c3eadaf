import random

from tests.pilotfish.failover.builders import FakeClock, member

from pilotfish import failures
from pilotfish.api import modelclass
from pilotfish.failover import breaker, health, pinning
from pilotfish.routes import document

OVERLOADED = failures.Failure(kind=failures.FailureKind.OVERLOADED, status=503)


def _doc(threshold=2, members=("a", "b")):
    route = document.ClassRoute(
        name="c",
        members=tuple(member(n) for n in members),
        health=modelclass.HealthSpec(failure_threshold=threshold, cooldown_seconds=30),
    )
    return document.RoutesDocument(classes={"c": route})


def test_failures_that_do_not_count_leave_the_breaker_alone():
    registry = health.HealthRegistry(now=FakeClock(), rng=random.Random(0))
    registry.reconcile(_doc(threshold=1))
    tracked = registry.member("c", member("a"))
    bad_request = failures.Failure(kind=failures.FailureKind.BAD_REQUEST, status=400)
    tracked.record_failure(failure=bad_request, counts_against_health=False)
    assert tracked.view().state is breaker.CircuitState.CLOSED
    tracked.record_failure(failure=OVERLOADED, counts_against_health=True)
    assert tracked.view().state is breaker.CircuitState.OPEN


def test_latency_and_error_rate_are_tracked():
    registry = health.HealthRegistry(now=FakeClock(), rng=random.Random(0))
    tracked = registry.member("c", member("a"))
    tracked.record_success(latency=1.0, ttft=0.2)
    tracked.record_success(latency=2.0, ttft=0.4)
    tracked.record_failure(failure=OVERLOADED, counts_against_health=True)
    view = tracked.view()
    assert view.latency_ewma == 1.2 and abs(view.ttft_ewma - 0.24) < 1e-9
    assert 0 < view.error_rate < 0.2 and view.attempts == 3


def test_a_reload_keeps_the_state_of_surviving_members_and_forgets_removed_ones():
    registry = health.HealthRegistry(now=FakeClock(), rng=random.Random(0))
    registry.reconcile(_doc(threshold=1))
    registry.member("c", member("a")).record_failure(failure=OVERLOADED, counts_against_health=True)
    registry.member("c", member("b")).record_success(latency=0.1, ttft=None)
    registry.reconcile(_doc(threshold=1, members=("a",)))
    assert set(registry.snapshot("c")) == {"a/m"}
    assert registry.snapshot("c")["a/m"].state is breaker.CircuitState.OPEN


def test_new_health_settings_rebuild_the_breaker_but_keep_measurements():
    registry = health.HealthRegistry(now=FakeClock(), rng=random.Random(0))
    registry.reconcile(_doc(threshold=1))
    tracked = registry.member("c", member("a"))
    tracked.record_success(latency=0.5, ttft=None)
    tracked.record_failure(failure=OVERLOADED, counts_against_health=True)
    registry.reconcile(_doc(threshold=5))
    view = registry.snapshot("c")["a/m"]
    assert view.state is breaker.CircuitState.CLOSED and view.latency_ewma == 0.5


def test_pins_expire_and_the_store_stays_bounded():
    clock = FakeClock()
    pins = pinning.PinStore(now=clock, max_entries=3)
    pins.set("c", "conv-1", "a/m", ttl=10)
    assert pins.get("c", "conv-1") == "a/m"
    assert pins.get("other-class", "conv-1") is None
    clock.advance(10)
    assert pins.get("c", "conv-1") is None
    for n in range(5):
        pins.set("c", f"conv-{n}", "a/m", ttl=100)
    assert len(pins) == 3 and pins.get("c", "conv-0") is None and pins.get("c", "conv-4") == "a/m"
