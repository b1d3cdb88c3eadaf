"""A Budget's counters, as its status holds them: reserve, add usage, roll windows, cross thresholds. Pure.

``status.<limit>`` (``requests``, ``tokens``, ``spend``) holds the current window's counters:
``reserved`` (units every operator replica has taken out of the limit to hand to sidecars: it never
goes down within a window, which is why nothing is lost when an operator restarts) and ``used`` (what
the sidecars reported spending). ``status.previous`` keeps the last window's final figures, so an
overshoot stays visible after the window ends. Every write is conditional on the resourceVersion read,
so several replicas can share one Budget.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from pilotfish.api import budget as budget_api  # `budget` names objects below
from pilotfish.budgets import windows
from pilotfish.specs import budget as budget_specs

THRESHOLDS = (80, 100)  # percent of a limit at which an event fires, once per window

Status = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Change:
    """What one write does to one limit: take up to ``reserve`` units, add ``used`` (for ``window``)."""

    limit: budget_api.Limit
    window: windows.Window
    reserve: int = 0
    used: dict[str, int] = dataclasses.field(default_factory=dict)  # window key → units reported


@dataclasses.dataclass(frozen=True)
class Applied:
    status: Status
    reserved: dict[budget_api.Limit, int]  # units actually taken, per limit
    crossed: list[tuple[budget_api.Limit, int]]  # thresholds newly crossed (percent)


def apply(status: Mapping[str, Any] | None, spec: budget_specs.BudgetSpec, changes: list[Change]) -> Applied:
    """The new status after ``changes``; reservations are capped at the limit."""
    out: Status = copy.deepcopy(dict(status or {}))
    previous: Status = out.setdefault("previous", {})
    reserved: dict[budget_api.Limit, int] = {}
    crossed: list[tuple[budget_api.Limit, int]] = []
    for change in changes:
        value = spec.limit_of(change.limit)
        if value is None:
            continue
        counter = _current(out, previous, change.limit, change.window, value)
        for window, used in change.used.items():
            target = counter if window == counter["window"] else previous.get(change.limit.value)
            if target is not None and target.get("window") == window:
                target["used"] = int(target.get("used", 0)) + used
        # usage beyond the reservations (allowances taken while this operator was unreachable, or debts
        # of answers that cost more than their allowance) comes out of what is left of the limit too
        spoken_for = max(int(counter["reserved"]), int(counter["used"]))
        take = max(0, min(change.reserve, value - spoken_for))
        counter["reserved"] = int(counter["reserved"]) + take
        reserved[change.limit] = take
        for threshold in THRESHOLDS:
            if counter["used"] * 100 >= threshold * value and int(counter.get("notified", 0)) < threshold:
                counter["notified"] = threshold
                crossed.append((change.limit, threshold))
        if change.limit is budget_api.Limit.SPEND:
            counter["usedUSD"] = round(int(counter["used"]) / 1_000_000, 6)
    out["usedPercent"] = used_percent(out, spec)
    if not previous:
        out.pop("previous")
    return Applied(out, reserved, crossed)


def used_percent(status: Mapping[str, Any], spec: budget_specs.BudgetSpec) -> int:
    """The highest share of any limit used in its current window, in whole percent."""
    shares = [
        int(status[limit.value].get("used", 0)) * 100 // value
        for limit in spec.limits()
        if (value := spec.limit_of(limit)) and limit.value in status
    ]
    return max(shares, default=0)


def ratio(status: Mapping[str, Any], spec: budget_specs.BudgetSpec, limit: budget_api.Limit) -> float:
    counter, value = status.get(limit.value) or {}, spec.limit_of(limit)
    return int(counter.get("used", 0)) / value if value else 0.0


def _current(out: Status, previous: Status, limit: budget_api.Limit, window: windows.Window, value: int) -> Status:
    """The counter of ``window``; an older one moves to ``previous`` (a newer one is left alone: that
    replica's clock is ahead, and its window will come)."""
    counter: Status | None = out.get(limit.value)
    if counter is None or str(counter.get("window", "")) < window.key:
        if counter is not None:
            previous[limit.value] = counter
        counter = out[limit.value] = {"window": window.key, "reserved": 0, "used": 0, "limit": value}
    counter["limit"] = value
    return counter
