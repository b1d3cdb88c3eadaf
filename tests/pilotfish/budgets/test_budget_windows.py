"""Windows and allowance sizes: the arithmetic the operator and every sidecar must agree on."""

from __future__ import annotations

import datetime

from pilotfish.budgets import windows
from pilotfish.specs import budget


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC).timestamp()


def test_rate_limits_count_in_utc_minutes_whatever_the_spend_period():
    window = windows.window_of(budget.Limit.REQUESTS, budget.Period.MONTH, wall=at("2026-12-02T01:35:59"))
    assert window.key == "2026-12-02T01:35"
    assert window.ends_at == at("2026-12-02T01:36:00")
    assert windows.window_of(budget.Limit.TOKENS, budget.Period.DAY, wall=at("2026-12-02T01:36:00")).key == (
        "2026-12-02T01:36"
    )


def test_spend_counts_in_utc_days_or_months_and_december_rolls_into_january():
    day = windows.window_of(budget.Limit.SPEND, budget.Period.DAY, wall=at("2026-12-31T23:59:59"))
    assert (day.key, day.ends_at) == ("2026-12-31", at("2027-01-01T00:00:00"))
    month = windows.window_of(budget.Limit.SPEND, budget.Period.MONTH, wall=at("2026-12-31T23:59:59"))
    assert (month.key, month.ends_at) == ("2026-12", at("2027-01-01T00:00:00"))
    february = windows.window_of(budget.Limit.SPEND, budget.Period.MONTH, wall=at("2028-02-29T12:00:00"))
    assert (february.key, february.ends_at) == ("2028-02", at("2028-03-01T00:00:00"))


def test_a_grant_is_a_fiftieth_of_the_limit_and_a_block_a_tenth_never_less_than_one_grant():
    assert windows.grant_size(100) == 2
    assert windows.grant_size(10) == 1  # at least one unit
    assert windows.grant_size(101) == 3  # rounded up
    assert windows.block_size(100) == 10
    assert windows.block_size(5) == 1


def test_spend_is_counted_in_whole_micro_dollars():
    assert windows.micro_usd(0.0000155) == 16
    assert windows.micro_usd(-1.0) == 0
