import dataclasses
import random

import msgspec
import pytest
from tests.pilotfish.failover.builders import FakeClock, member

from pilotfish import failures
from pilotfish.failover import breaker, health, policy
from pilotfish.routes import document
from pilotfish.specs import modelclass, refs

S = breaker.CircuitState
OVERLOADED = failures.Failure(kind=failures.FailureKind.OVERLOADED, status=503)
BAD_REQUEST = failures.Failure(kind=failures.FailureKind.BAD_REQUEST, status=400)


def _doc(threshold=2, cooldown=30.0, members=("a", "b"), **more_classes):
    def route(name, names, spec):
        return document.ClassRoute(name=name, members=tuple(member(n) for n in names), health=spec)

    spec = modelclass.HealthSpec(failure_threshold=threshold, cooldown_seconds=cooldown)
    classes = {"c": route("c", members, spec)}
    classes.update({name: route(name, names, modelclass.HealthSpec()) for name, names in more_classes.items()})
    return document.RoutesDocument(classes=classes)


def _registry(clock=None, **doc):
    registry = health.HealthRegistry(now=(clock or FakeClock()).now, rng=random.Random(0))
    registry.reconcile(_doc(**doc))
    return registry


def _member_health(clock, threshold=3, cooldown=30.0):
    spec = modelclass.HealthSpec(failure_threshold=threshold, cooldown_seconds=cooldown)
    return health.MemberHealth(spec=spec, now=clock.now, rng=random.Random(0))


def test_a_new_member_has_no_measurements_and_a_closed_circuit():
    view = _member_health(FakeClock()).view()
    assert view == health.MemberView(
        state=S.CLOSED,
        consecutive_failures=0,
        cooldown_left=0.0,
        latency_ewma=None,
        ttft_ewma=None,
        error_rate=0.0,
        requests=0,
        client_errors=0,
    )


def test_the_first_sample_is_taken_as_is_and_later_ones_are_smoothed():
    tracked = _member_health(FakeClock())
    tracked.record_success(latency=1.0, ttft=0.2)
    assert (tracked.latency_ewma, tracked.ttft_ewma) == (1.0, 0.2)
    tracked.record_success(latency=2.0, ttft=0.4)
    view = tracked.view()
    assert view.latency_ewma == pytest.approx(1.0 + health.EWMA_ALPHA * 1.0)
    assert view.ttft_ewma == pytest.approx(0.2 + health.EWMA_ALPHA * 0.2)


def test_a_success_without_a_first_token_time_leaves_that_average_alone():
    tracked = _member_health(FakeClock())
    tracked.record_success(latency=1.0, ttft=0.3)
    tracked.record_success(latency=1.0, ttft=None)
    assert tracked.view().ttft_ewma == 0.3


def test_failures_that_count_open_the_breaker_at_the_class_threshold():
    tracked = _member_health(FakeClock(), threshold=2)
    tracked.record_failure(failure=OVERLOADED, counts_against_health=True)
    assert tracked.view().state is S.CLOSED and tracked.view().consecutive_failures == 1
    tracked.record_failure(failure=OVERLOADED, counts_against_health=True)
    assert tracked.view().state is S.OPEN and tracked.view().cooldown_left > 0


def test_a_retry_after_on_the_failure_opens_the_breaker_for_that_long():
    tracked = _member_health(FakeClock(), threshold=5)
    limited = failures.Failure(kind=failures.FailureKind.RATE_LIMITED, status=429, retry_after=12.0)
    tracked.record_failure(failure=limited, counts_against_health=True)
    assert tracked.view().state is S.OPEN and tracked.view().cooldown_left == 12.0


def test_failures_that_do_not_count_leave_the_breaker_alone_but_are_tallied():
    tracked = _member_health(FakeClock(), threshold=1)
    for _ in range(5):
        tracked.record_failure(failure=BAD_REQUEST, counts_against_health=False)
    view = tracked.view()
    assert view.state is S.CLOSED and view.consecutive_failures == 0
    assert view.client_errors == 5 and view.requests == 5 and view.error_rate == 0.0


def test_a_failure_that_does_not_count_hands_back_a_half_open_probe():
    clock = FakeClock()
    tracked = _member_health(clock, threshold=1, cooldown=10.0)
    tracked.record_failure(failure=OVERLOADED, counts_against_health=True)
    clock.advance(20.0)
    assert tracked.breaker.allow()
    tracked.record_failure(failure=BAD_REQUEST, counts_against_health=False)
    assert tracked.view().state is S.HALF_OPEN and tracked.breaker.allow()


def test_a_success_closes_a_half_open_probe():
    clock = FakeClock()
    tracked = _member_health(clock, threshold=1, cooldown=10.0)
    tracked.record_failure(failure=OVERLOADED, counts_against_health=True)
    clock.advance(20.0)
    assert tracked.breaker.allow()
    tracked.record_success(latency=0.5, ttft=0.1)
    assert tracked.view().state is S.CLOSED


def test_the_error_rate_covers_the_last_minute_of_attempts():
    clock = FakeClock(start=0.0)
    tracked = _member_health(clock, threshold=100)
    for _ in range(3):
        tracked.record_success(latency=1.0, ttft=None)
    tracked.record_failure(failure=OVERLOADED, counts_against_health=True)
    assert tracked.view().error_rate == 0.25
    clock.advance(30.0)
    tracked.record_failure(failure=OVERLOADED, counts_against_health=True)
    assert tracked.view().error_rate == 0.4
    clock.advance(30.0)  # the first five seconds' bucket has left the window
    assert tracked.view().error_rate == 1.0
    clock.advance(30.0)
    assert tracked.view().error_rate == 0.0 and tracked.view().requests == 5


def test_requests_count_every_reported_attempt():
    tracked = _member_health(FakeClock(), threshold=100)
    tracked.record_success(latency=1.0, ttft=None)
    tracked.record_failure(failure=OVERLOADED, counts_against_health=True)
    tracked.record_failure(failure=BAD_REQUEST, counts_against_health=False)
    assert tracked.view().requests == 3


def test_a_view_is_a_frozen_copy_that_does_not_follow_later_changes():
    tracked = _member_health(FakeClock())
    view = tracked.view()
    tracked.record_success(latency=1.0, ttft=None)
    assert view.requests == 0 and view.latency_ewma is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.requests = 3  # type: ignore[misc]


def test_a_view_renders_as_camel_case_json_for_the_debug_page():
    view = health.MemberView(
        state=S.OPEN,
        consecutive_failures=3,
        cooldown_left=12.34567,
        latency_ewma=0.123456,
        ttft_ewma=None,
        error_rate=0.333333,
        requests=9,
        client_errors=1,
        ttft_p95=0.3004,
        ttft_samples=20,
        credential_problem=failures.CredentialProblem.INVALID_KEY,
    )
    assert view.to_dict() == {
        "state": "open",
        "consecutiveFailures": 3,
        "cooldownLeftSeconds": 12.346,
        "latencyEwmaSeconds": 0.1235,
        "ttftEwmaSeconds": None,
        "errorRate": 0.3333,
        "requests": 9,
        "clientErrors": 1,
        "ttftP95Seconds": 0.3004,
        "ttftSamples": 20,
        "canContinue": True,
        "credentialProblem": "invalid_key",
    }


def test_members_are_created_on_first_use_with_their_class_settings():
    registry = _registry(threshold=1, cooldown=7.0)
    tracked = registry.member("c", member("a"))
    assert tracked.spec == modelclass.HealthSpec(failure_threshold=1, cooldown_seconds=7.0)
    assert registry.member("c", member("a")) is tracked


def test_a_member_of_a_class_the_registry_has_not_seen_gets_the_default_settings():
    registry = health.HealthRegistry(now=FakeClock().now, rng=random.Random(0))
    tracked = registry.member("elsewhere", member("a"))
    assert tracked.spec == modelclass.HealthSpec()
    assert set(registry.snapshot("elsewhere")) == {"a/m"}


def test_the_same_member_id_in_two_classes_has_two_healths():
    registry = _registry(other=("a",))
    registry.member("c", member("a")).record_failure(failure=OVERLOADED, counts_against_health=True)
    assert registry.snapshot("c")["a/m"].consecutive_failures == 1
    assert registry.snapshot("other")["a/m"].consecutive_failures == 0


def test_every_member_of_a_reconciled_document_has_a_view_before_any_request():
    registry = _registry(members=("a", "b", "c"))
    assert set(registry.snapshot("c")) == {"a/m", "b/m", "c/m"}
    assert all(view.state is S.CLOSED for view in registry.snapshot("c").values())


def test_an_unknown_class_has_an_empty_snapshot():
    assert _registry().snapshot("nope") == {}


def test_a_reload_keeps_the_state_of_surviving_members_and_forgets_removed_ones():
    registry = _registry(threshold=1)
    registry.member("c", member("a")).record_failure(failure=OVERLOADED, counts_against_health=True)
    registry.member("c", member("b")).record_success(latency=0.1, ttft=None)
    registry.reconcile(_doc(threshold=1, members=("a",)))
    assert set(registry.snapshot("c")) == {"a/m"}
    assert registry.snapshot("c")["a/m"].state is S.OPEN


def test_a_member_removed_and_added_back_starts_fresh():
    registry = _registry(threshold=1)
    registry.member("c", member("b")).record_failure(failure=OVERLOADED, counts_against_health=True)
    registry.reconcile(_doc(threshold=1, members=("a",)))
    registry.reconcile(_doc(threshold=1, members=("a", "b")))
    assert registry.snapshot("c")["b/m"].state is S.CLOSED


def test_a_removed_class_is_forgotten():
    registry = _registry(other=("a",))
    registry.member("other", member("a")).record_success(latency=1.0, ttft=None)
    registry.reconcile(_doc())
    assert registry.snapshot("other") == {}


def test_a_reload_with_the_same_settings_keeps_the_very_same_member_health():
    registry = _registry()
    tracked = registry.member("c", member("a"))
    registry.reconcile(_doc())
    assert registry.member("c", member("a")) is tracked


def test_new_health_settings_apply_in_place_and_keep_state_and_measurements():
    clock = FakeClock()
    registry = _registry(clock, threshold=1, cooldown=30.0)
    tracked = registry.member("c", member("a"))
    tracked.record_success(latency=0.5, ttft=None)
    tracked.record_failure(failure=OVERLOADED, counts_against_health=True)
    registry.reconcile(_doc(threshold=5, cooldown=60.0))
    assert registry.member("c", member("a")) is tracked  # in-flight attempts still report here
    view = registry.snapshot("c")["a/m"]
    assert view.state is S.OPEN and view.latency_ewma == 0.5 and view.requests == 2
    assert tracked.breaker.failure_threshold == 5 and tracked.spec.cooldown_seconds == 60.0


def test_a_shorter_cooldown_from_a_reload_shortens_an_open_circuit():
    registry = _registry(threshold=1, cooldown=600.0)
    registry.member("c", member("a")).record_failure(failure=OVERLOADED, counts_against_health=True)
    registry.reconcile(_doc(threshold=1, cooldown=5.0))
    assert registry.snapshot("c")["a/m"].cooldown_left <= 5.0 * 1.1


def test_a_member_whose_endpoint_changed_starts_fresh():
    registry = _registry(threshold=1)
    registry.member("c", member("a")).record_failure(failure=OVERLOADED, counts_against_health=True)
    moved = document.ClassRoute(
        name="c",
        members=(member("a", base_url="https://fixed"), member("b")),
        health=modelclass.HealthSpec(failure_threshold=1, cooldown_seconds=30),
    )
    registry.reconcile(document.RoutesDocument(classes={"c": moved}))
    assert registry.snapshot("c")["a/m"].state is S.CLOSED


def test_the_snapshot_is_a_copy_of_views():
    registry = _registry()
    snapshot = registry.snapshot("c")
    registry.member("c", member("a")).record_success(latency=1.0, ttft=None)
    assert snapshot["a/m"].requests == 0 and registry.snapshot("c")["a/m"].requests == 1


def test_a_first_token_timeout_trips_the_circuit_for_everyone_at_once():
    tracked = _member_health(FakeClock(), threshold=3)
    timeout = failures.Failure(kind=failures.FailureKind.FIRST_TOKEN_TIMEOUT, detail="deadline exceeded")
    tracked.record_failure(failure=timeout, counts_against_health=True, trips=True)
    assert tracked.view().state is S.OPEN


def test_a_member_is_steady_until_it_fails_and_again_once_it_answers():
    tracked = _member_health(FakeClock(), threshold=3)
    assert tracked.steady()
    tracked.record_failure(failure=OVERLOADED, counts_against_health=True)
    assert not tracked.steady()
    for _ in range(10):
        tracked.record_success(latency=0.1, ttft=0.05)
    assert tracked.steady()


def test_a_member_with_many_recent_errors_is_not_steady_even_after_a_success():
    tracked = _member_health(FakeClock(), threshold=100)
    for _ in range(3):
        tracked.record_failure(failure=OVERLOADED, counts_against_health=True)
        tracked.record_success(latency=0.1, ttft=0.05)
    assert tracked.view().consecutive_failures == 0 and not tracked.steady()


def test_successes_feed_the_members_first_token_times():
    tracked = _member_health(FakeClock())
    for _ in range(3):
        tracked.record_success(latency=1.0, ttft=0.25)
    view = tracked.view()
    assert view.ttft_samples == 3 and view.ttft_p95 == 0.25


def test_a_member_learned_unable_to_continue_is_left_out_for_an_hour_and_says_why():
    clock = FakeClock()
    tracked = _member_health(clock)
    tracked.learn_cannot_continue(failures.ContinuationProblem.PREFILL_REJECTED)
    assert tracked.cannot_continue() is failures.ContinuationProblem.PREFILL_REJECTED
    assert tracked.view().to_dict()["canContinue"] is False
    assert tracked.view().to_dict()["cannotContinueReason"] == "prefill_rejected"
    clock.advance(health.CANNOT_CONTINUE_SECONDS)
    assert tracked.cannot_continue() is None and tracked.view().to_dict()["canContinue"] is True


def test_a_rejected_prefill_fails_over_without_hurting_the_member_and_teaches_it_cannot_continue():
    rule = policy.policy_for(failures.FailureKind.PREFILL_REJECTED)
    assert rule.failover and not rule.counts_against_health
    assert rule.learns_cannot_continue is failures.ContinuationProblem.PREFILL_REJECTED


def test_the_registry_names_each_member_learned_unable_to_continue_by_class_until_the_lesson_expires():
    clock = FakeClock()
    registry = _registry(clock, other=("a", "b"))
    registry.member("c", member("b")).learn_cannot_continue(failures.ContinuationProblem.RESTARTED)
    clock.advance(60.0)
    registry.member("other", member("a")).learn_cannot_continue(failures.ContinuationProblem.PREFILL_REJECTED)
    assert registry.unable_to_continue() == {"c": {"b/m": "restarted"}, "other": {"a/m": "prefill_rejected"}}
    clock.advance(health.CANNOT_CONTINUE_SECONDS - 60.0)
    assert registry.unable_to_continue() == {"other": {"a/m": "prefill_rejected"}}
    clock.advance(60.0)
    assert registry.unable_to_continue() == {}


def _rejected(problem=failures.CredentialProblem.INVALID_KEY):
    return failures.Failure(kind=failures.FailureKind.AUTH, status=401, credential=problem)


def _ref_doc():
    ref = refs.SecretKeyRef(name="keys", key="a")
    route = document.ClassRoute(name="c", members=(msgspec.structs.replace(member("a"), api_key_ref=ref),))
    return document.RoutesDocument(classes={"c": route})


def test_a_rejected_credential_opens_the_circuit_at_once_for_as_long_as_the_policy_says():
    clock = FakeClock()
    registry = _registry(clock, threshold=100, cooldown=1.0)
    tracked = registry.member("c", member("a"))
    tracked.record_failure(failure=_rejected(), counts_against_health=True, open_for=300.0)
    assert tracked.breaker.state is S.OPEN  # one rejection, with a threshold of 100
    clock.advance(299.0)
    assert tracked.breaker.state is S.OPEN  # not the 1 s cooldown of an ordinary failure
    clock.advance(2.0)
    assert tracked.breaker.state is S.HALF_OPEN


def test_the_registry_names_rejected_credentials_until_a_success():
    registry = _registry(FakeClock())
    tracked = registry.member("c", member("a"))
    tracked.record_failure(
        failure=_rejected(failures.CredentialProblem.REGION_NOT_SUPPORTED), counts_against_health=True
    )
    assert registry.rejected_credentials() == {"a": "region_not_supported"}
    tracked.record_success(latency=0.1, ttft=None)
    assert registry.rejected_credentials() == {}


def test_a_rotated_key_starts_its_member_fresh_and_the_same_key_keeps_its_open_circuit():
    registry = health.HealthRegistry(now=FakeClock().now, rng=random.Random(0))
    doc = _ref_doc()
    registry.reconcile(doc, keys={("keys", "a"): refs.ApiKey("revoked")})
    rejected = registry.member("c", doc.classes["c"].members[0])
    rejected.record_failure(failure=_rejected(), counts_against_health=True, open_for=300.0)
    registry.reconcile(doc, keys={("keys", "a"): refs.ApiKey("revoked")})
    assert registry.member("c", doc.classes["c"].members[0]) is rejected  # same key: still rejected
    registry.reconcile(doc, keys={("keys", "a"): refs.ApiKey("rotated")})
    fresh = registry.member("c", doc.classes["c"].members[0])
    assert fresh is not rejected and fresh.breaker.state is S.CLOSED and registry.rejected_credentials() == {}
