from pilotfish import failures
from pilotfish.failover import policy

K = failures.FailureKind


def test_the_table_covers_every_failure_kind():
    assert set(policy.POLICY) == set(K)


def test_client_errors_are_answered_once_and_do_not_hurt_the_member():
    for kind in (K.BAD_REQUEST, K.CONTENT_FILTER):
        rule = policy.policy_for(kind)
        assert not rule.failover and not rule.counts_against_health and rule.client_status == 400


def test_capacity_problems_fail_over_and_count_against_the_member():
    for kind in (K.RATE_LIMITED, K.OVERLOADED, K.SERVER_ERROR, K.CONNECT, K.FIRST_TOKEN_TIMEOUT, K.AUTH):
        rule = policy.policy_for(kind)
        assert rule.failover and rule.counts_against_health


def test_context_length_fails_over_only_to_larger_windows_without_blaming_the_member():
    rule = policy.policy_for(K.CONTEXT_LENGTH)
    assert rule.failover and rule.needs_larger_window and not rule.counts_against_health
    assert rule.client_error_code == "context_length_exceeded"


def test_rate_limits_reach_the_client_as_429():
    assert policy.policy_for(K.RATE_LIMITED).client_status == 429
