import dataclasses

import pytest

from pilotfish import failures
from pilotfish.failover import policy
from pilotfish.specs import modelclass

K = failures.FailureKind

MEMBER_PROBLEMS = (
    K.CONNECT,
    K.CONNECT_TIMEOUT,
    K.FIRST_TOKEN_TIMEOUT,
    K.TOTAL_TIMEOUT,
    K.SERVER_ERROR,
    K.OVERLOADED,
    K.RATE_LIMITED,
    K.AUTH,
    K.NOT_FOUND,
    K.BAD_RESPONSE,
    K.STREAM_INTERRUPTED,
)
OPENAI_ERROR_TYPES = {"invalid_request_error", "requests", "tokens", "server_error"}


def test_the_table_covers_every_failure_kind_and_nothing_else():
    assert set(policy.POLICY) == set(K)


@pytest.mark.parametrize("kind", list(K))
def test_policy_for_returns_the_table_entry(kind):
    assert policy.policy_for(kind) is policy.POLICY[kind]


def test_the_table_cannot_be_changed_at_run_time():
    with pytest.raises(TypeError):
        policy.POLICY[K.BAD_REQUEST] = policy.POLICY[K.SERVER_ERROR]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.POLICY[K.BAD_REQUEST].failover = True  # type: ignore[misc]


@pytest.mark.parametrize("kind", MEMBER_PROBLEMS)
def test_member_problems_fail_over_and_count_against_the_member(kind):
    rule = policy.policy_for(kind)
    assert rule.failover and rule.counts_against_health and not rule.needs_larger_window


def test_a_bad_request_is_answered_once_with_400_and_does_not_hurt_the_member():
    rule = policy.policy_for(K.BAD_REQUEST)
    assert not rule.failover and not rule.counts_against_health
    assert (rule.client_status, rule.client_error_type) == (400, "invalid_request_error")


def test_refused_content_is_not_sent_to_another_vendor_and_reaches_the_client_as_content_filter():
    rule = policy.policy_for(K.CONTENT_FILTER)
    assert not rule.failover and not rule.counts_against_health
    assert (rule.client_status, rule.client_error_type, rule.client_error_code) == (
        400,
        "invalid_request_error",
        "content_filter",
    )


def test_context_length_fails_over_only_to_larger_windows_without_blaming_the_member():
    rule = policy.policy_for(K.CONTEXT_LENGTH)
    assert rule.failover and rule.needs_larger_window and not rule.counts_against_health
    assert (rule.client_status, rule.client_error_code) == (400, "context_length_exceeded")


def test_only_context_length_restricts_failover_to_larger_windows():
    assert [kind for kind, rule in policy.POLICY.items() if rule.needs_larger_window] == [K.CONTEXT_LENGTH]


def test_a_rate_limited_member_fails_over_counts_and_reaches_the_client_as_openai_429():
    rule = policy.policy_for(K.RATE_LIMITED)
    assert rule.failover and rule.counts_against_health
    assert (rule.client_status, rule.client_error_type, rule.client_error_code) == (
        429,
        "requests",
        "rate_limit_exceeded",
    )


@pytest.mark.parametrize("kind", [K.CONNECT_TIMEOUT, K.FIRST_TOKEN_TIMEOUT, K.TOTAL_TIMEOUT])
def test_timeouts_reach_the_client_as_504(kind):
    assert policy.policy_for(kind).client_status == 504


def test_an_overloaded_class_reaches_the_client_as_503_and_other_upstream_failures_as_502():
    assert policy.policy_for(K.OVERLOADED).client_status == 503
    for kind in (K.CONNECT, K.SERVER_ERROR, K.BAD_RESPONSE, K.STREAM_INTERRUPTED):
        assert policy.policy_for(kind).client_status == 502


@pytest.mark.parametrize("kind", [K.AUTH, K.NOT_FOUND])
def test_a_misconfigured_member_is_never_reported_to_the_client_as_its_own_401_or_404(kind):
    rule = policy.policy_for(kind)
    assert rule.client_status == 502 and rule.client_error_type == "server_error"


def test_a_broken_stream_fails_over_before_commit_and_counts_against_the_member():
    rule = policy.policy_for(K.STREAM_INTERRUPTED)
    assert rule.failover and rule.counts_against_health


def _failure(kind, retry_after=None):
    return failures.Failure(kind=kind, status=None, retry_after=retry_after)


def _retries(failure: failures.Failure, routing=None, *, retried=0, attempts_left=2, members_waiting=0) -> bool:
    return policy.retry_same_member(
        failure,
        routing or modelclass.RoutingSpec(),  # sameMemberRetries 1, maxRetryAfterWaitSeconds 5
        retried=retried,
        attempts_left=attempts_left,
        members_waiting=members_waiting,
    )


def test_only_a_transient_5xx_or_reset_and_a_short_retry_after_retry_the_same_member():
    assert _retries(_failure(K.SERVER_ERROR))
    assert not _retries(_failure(K.SERVER_ERROR), retried=1)
    assert _retries(_failure(K.CONNECT))
    assert _retries(_failure(K.RATE_LIMITED, 2.0))
    assert not _retries(_failure(K.RATE_LIMITED, 30.0))
    assert not _retries(_failure(K.RATE_LIMITED))
    retried_kinds = {k for k in K if _retries(_failure(k, 1.0))}
    assert retried_kinds == {K.SERVER_ERROR, K.CONNECT, K.RATE_LIMITED}  # never an overload or a timeout
    assert not _retries(_failure(K.SERVER_ERROR), modelclass.RoutingSpec(same_member_retries=0))


def test_a_quick_retry_after_a_5xx_takes_only_a_spare_attempt_but_a_short_retry_after_is_always_waited_out():
    # three members, maxAttempts 3, the first just failed: two attempts left, two members waiting
    assert not _retries(_failure(K.SERVER_ERROR), attempts_left=2, members_waiting=2)
    assert _retries(_failure(K.RATE_LIMITED, 0.2), attempts_left=2, members_waiting=2)
    assert not _retries(_failure(K.RATE_LIMITED, 0.2), attempts_left=0, members_waiting=0)  # maxAttempts is a cap


def test_refused_content_fails_by_default_and_fails_over_only_when_the_class_says_so():
    assert not policy.fails_over(_failure(K.CONTENT_FILTER), modelclass.RoutingSpec())
    assert policy.fails_over(_failure(K.CONTENT_FILTER), modelclass.RoutingSpec(on_content_filter="failover"))
    assert not policy.fails_over(_failure(K.BAD_REQUEST), modelclass.RoutingSpec(on_content_filter="failover"))


@pytest.mark.parametrize("kind", list(K))
def test_whatever_ends_without_failover_is_the_clients_fault_and_never_the_members(kind):
    rule = policy.policy_for(kind)
    if not rule.failover:
        assert 400 <= rule.client_status < 500 and not rule.counts_against_health
    if rule.counts_against_health:
        assert rule.failover and (rule.client_status == 429 or rule.client_status >= 500)


@pytest.mark.parametrize("kind", list(K))
def test_every_client_error_uses_an_openai_error_type_and_a_code(kind):
    rule = policy.policy_for(kind)
    assert rule.client_error_type in OPENAI_ERROR_TYPES and rule.client_error_code


def test_only_a_first_token_timeout_trips_a_circuit_at_once():
    tripping = {kind for kind in failures.FailureKind if policy.policy_for(kind).trips_circuit}
    assert tripping == {failures.FailureKind.FIRST_TOKEN_TIMEOUT}
