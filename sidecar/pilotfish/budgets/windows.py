"""Counting windows and allowance sizes: the arithmetic the operator and every sidecar must agree on. Pure.

Rate limits count in fixed UTC minutes, spend in UTC days or months. Both sides compute the window a
moment falls in from the wall clock, so a sidecar that cannot reach the operator still knows when its
window (and its fail-open allowance) ends. A grant is a fiftieth of the limit: small enough that the
allowances scattered over many pods are a small part of the limit, large enough that a sidecar asks
the operator about once per fifty requests' worth.
"""

from __future__ import annotations

import dataclasses
import datetime
import math

from pilotfish.specs import budget

GRANT_DIVISOR = 50  # a grant is 1/50 of the limit (at least one unit)
BLOCK_DIVISOR = 10  # an operator replica reserves 1/10 of the limit in the Budget's status at a time


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    key: str  # "2026-12-02T01:35" (a minute), "2026-12-02" (a day) or "2026-12" (a month)
    ends_at: float  # wall-clock seconds (epoch) when the next window starts


def window_of(limit: budget.Limit, period: budget.Period, *, wall: float) -> Window:
    """The window ``wall`` (epoch seconds) falls in, for this limit."""
    moment = datetime.datetime.fromtimestamp(wall, datetime.UTC)
    if limit is not budget.Limit.SPEND:
        start = moment.replace(second=0, microsecond=0)
        return Window(start.strftime("%Y-%m-%dT%H:%M"), (start + datetime.timedelta(minutes=1)).timestamp())
    if period is budget.Period.DAY:
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return Window(start.strftime("%Y-%m-%d"), (start + datetime.timedelta(days=1)).timestamp())
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (
        start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    )
    return Window(start.strftime("%Y-%m"), following.timestamp())


def grant_size(limit_value: int) -> int:
    """Units one grant carries; also a sidecar's fail-open allowance per window."""
    return max(1, math.ceil(limit_value / GRANT_DIVISOR))


def block_size(limit_value: int) -> int:
    """Units an operator replica reserves from the Budget's status at once (at least one grant)."""
    return max(grant_size(limit_value), math.ceil(limit_value / BLOCK_DIVISOR))


def micro_usd(cost_usd: float) -> int:
    """Spend is counted in integer micro-dollars, so counters add exactly."""
    return max(0, round(cost_usd * 1_000_000))
