"""A Budget's counters in its status: reservations capped at the limit, windows rolled, thresholds crossed once."""

from __future__ import annotations

from pilotfish.budgets import windows
from pilotfish.specs import budget
from pilotfish_operator.budgets import accounts

MINUTE = windows.Window("2026-12-02T01:35", 0.0)
NEXT_MINUTE = windows.Window("2026-12-02T01:36", 0.0)
SPEC = budget.BudgetSpec(requests_per_minute=100)


def change(window: windows.Window = MINUTE, *, reserve: int = 0, **used: int) -> accounts.Change:
    return accounts.Change(budget.Limit.REQUESTS, window, reserve=reserve, used=dict(used))


def test_reservations_never_exceed_the_limit_whatever_replicas_ask():
    applied = accounts.apply(None, SPEC, [change(reserve=60)])
    assert applied.reserved == {budget.Limit.REQUESTS: 60}
    applied = accounts.apply(applied.status, SPEC, [change(reserve=60)])
    assert applied.reserved == {budget.Limit.REQUESTS: 40}  # what is left of the limit
    applied = accounts.apply(applied.status, SPEC, [change(reserve=10)])
    assert applied.reserved == {budget.Limit.REQUESTS: 0}
    assert applied.status["requests"] == {"window": MINUTE.key, "reserved": 100, "used": 0, "limit": 100}


def test_usage_taken_on_fail_open_allowances_is_not_granted_again_when_the_operator_returns():
    applied = accounts.apply(None, SPEC, [change(reserve=10, **{MINUTE.key: 96})])  # 96 served while unreachable
    assert applied.reserved == {budget.Limit.REQUESTS: 4}  # only what is left of the limit
    applied = accounts.apply(applied.status, SPEC, [change(reserve=10, **{MINUTE.key: 10})])
    assert applied.reserved == {budget.Limit.REQUESTS: 0}  # 106 used: nothing left, the overshoot stays visible
    assert applied.status["requests"]["used"] == 106


def test_a_new_window_starts_from_zero_and_keeps_the_last_one_under_previous():
    status = accounts.apply(None, SPEC, [change(reserve=100, **{MINUTE.key: 97})]).status
    rolled = accounts.apply(status, SPEC, [change(NEXT_MINUTE, reserve=10)])
    assert rolled.status["requests"]["reserved"] == 10 and rolled.status["requests"]["used"] == 0
    assert rolled.status["previous"]["requests"]["used"] == 97
    late = accounts.apply(rolled.status, SPEC, [change(NEXT_MINUTE, **{MINUTE.key: 5})])  # reported after the roll
    assert late.status["previous"]["requests"]["used"] == 102  # the overshoot stays visible
    assert late.status["requests"]["used"] == 0


def test_the_80_and_100_percent_thresholds_fire_once_a_window():
    first = accounts.apply(None, SPEC, [change(**{MINUTE.key: 79})])
    assert first.crossed == [] and first.status["usedPercent"] == 79
    second = accounts.apply(first.status, SPEC, [change(**{MINUTE.key: 1})])
    assert second.crossed == [(budget.Limit.REQUESTS, 80)]
    third = accounts.apply(second.status, SPEC, [change(**{MINUTE.key: 25})])
    assert third.crossed == [(budget.Limit.REQUESTS, 100)] and third.status["usedPercent"] == 105
    assert accounts.apply(third.status, SPEC, [change(**{MINUTE.key: 1})]).crossed == []
    again = accounts.apply(third.status, SPEC, [change(NEXT_MINUTE, **{NEXT_MINUTE.key: 100})])
    assert again.crossed == [(budget.Limit.REQUESTS, 80), (budget.Limit.REQUESTS, 100)]


def test_spend_is_shown_in_usd_beside_the_micro_dollar_counter():
    spec = budget.BudgetSpec(spend=budget.SpendLimit(usd=2.5))
    day = windows.Window("2026-12-02", 0.0)
    applied = accounts.apply(None, spec, [accounts.Change(budget.Limit.SPEND, day, used={day.key: 1_250_000})])
    assert applied.status["spend"]["usedUSD"] == 1.25
    assert applied.status["usedPercent"] == 50
    assert accounts.ratio(applied.status, spec, budget.Limit.SPEND) == 0.5
