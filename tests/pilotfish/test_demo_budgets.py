"""The demo's budget act fails the demo unless the budgets acted as declared: frontier, then cheap, then 429."""

from pilotfish.demo import budgets

FRONTIER = budgets.Outcome(200, "frontier", "", "")
CHEAP = budgets.Outcome(200, "cheap", "frontier-spend", "")
REFUSED = budgets.Outcome(429, "", "cheap-rate", "budget_exceeded, Retry-After 41s")


def test_frontier_then_downgrades_then_a_429_with_retry_after_passes():
    assert budgets._problems([FRONTIER, FRONTIER, CHEAP, CHEAP, REFUSED]) == []


def test_a_budget_that_never_downgraded_or_refused_fails_the_demo():
    assert budgets._problems([FRONTIER] * 20) == [
        "budgets: no request was downgraded to cheap",
        f"budgets: the last request was not refused by cheap-rate with Retry-After: {FRONTIER}",
    ]


def test_frontier_serving_again_after_the_downgrade_fails_the_demo():
    assert budgets._problems([FRONTIER, CHEAP, FRONTIER, REFUSED]) == [
        "budgets: frontier served again after the downgrade began"
    ]


def test_a_refusal_without_retry_after_fails_the_demo():
    bare = budgets.Outcome(429, "", "cheap-rate", "budget_exceeded")
    assert budgets._problems([FRONTIER, CHEAP, bare]) == [
        f"budgets: the last request was not refused by cheap-rate with Retry-After: {bare}"
    ]
