"""plan_attempts(): the order in which one request will try a class's members. Pure.

Rules, in order:
1. A member whose declared ``contextWindow`` is smaller than the prompt estimate is skipped.
2. Members are grouped by priority (lower first). Within a group the strategy orders them:
   ``priority`` and ``weighted`` draw a weighted random order (equal weights give an even split),
   ``least-latency`` sorts by measured latency, members without measurements first so they get sampled.
3. Members whose circuit is open are skipped. If that leaves nothing, the open member closest to
   the end of its cooldown is kept as a single last resort, so an all-open class still tries once
   instead of failing without a single attempt.
4. A pinned member (conversation pinning) moves to the front unless its circuit is open.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import random
from collections.abc import Mapping, Sequence

from pilotfish.api import modelclass
from pilotfish.failover import breaker, health
from pilotfish.routes import document


class SkipReason(enum.StrEnum):
    CONTEXT_WINDOW = "context_window_too_small"
    CIRCUIT_OPEN = "circuit_open"


@dataclasses.dataclass(frozen=True, slots=True)
class Skip:
    member_id: str
    reason: SkipReason


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    members: tuple[document.MemberRoute, ...]  # in the order to try
    skipped: tuple[Skip, ...] = ()


def plan_attempts(
    route: document.ClassRoute,
    views: Mapping[str, health.MemberView],
    *,
    prompt_tokens: int,
    pinned: str | None,
    rng: random.Random,
) -> Plan:
    skipped: list[Skip] = []
    fitting = []
    for member in route.members:
        if member.context_window is not None and member.context_window < prompt_tokens:
            skipped.append(Skip(member.id, SkipReason.CONTEXT_WINDOW))
        else:
            fitting.append(member)
    ordered = _order(fitting, views, route.routing.strategy, rng)
    available = [m for m in ordered if not _is_open(views.get(m.id))]
    for member in ordered:
        if member not in available:
            skipped.append(Skip(member.id, SkipReason.CIRCUIT_OPEN))
    if not available and len(ordered) > 0:
        available = [min(ordered, key=lambda m: views[m.id].cooldown_left)]
    if pinned is not None:
        available.sort(key=lambda m: m.id != pinned)  # stable: only the pinned member moves
    return Plan(members=tuple(available), skipped=tuple(skipped))


def after_context_length(
    remaining: Sequence[document.MemberRoute],
    failed: document.MemberRoute,
) -> tuple[document.MemberRoute, ...]:
    """Members still worth trying after ``failed`` said the prompt is too long: larger windows only.

    A member with no declared window is kept only when the failed one had none either (nothing is
    known, so it may well be larger); otherwise an undeclared window is not assumed to be larger.
    """
    if failed.context_window is None:
        return tuple(remaining)
    return tuple(m for m in remaining if m.context_window is not None and m.context_window > failed.context_window)


def _order(
    members: list[document.MemberRoute],
    views: Mapping[str, health.MemberView],
    strategy: modelclass.Strategy,
    rng: random.Random,
) -> list[document.MemberRoute]:
    ordered: list[document.MemberRoute] = []
    by_priority = sorted(members, key=lambda m: m.priority)  # stable: list order within a priority
    for _, group_iter in itertools.groupby(by_priority, key=lambda m: m.priority):
        group = list(group_iter)
        if len(group) == 1:
            ordered.extend(group)
        elif strategy is modelclass.Strategy.LEAST_LATENCY:
            ordered.extend(sorted(group, key=lambda m: _latency(views.get(m.id))))
        else:
            ordered.extend(_weighted_shuffle(group, rng))
    return ordered


def _weighted_shuffle(group: list[document.MemberRoute], rng: random.Random) -> list[document.MemberRoute]:
    """A weighted random permutation (Efraimidis-Spirakis): P(first) is proportional to weight."""
    return sorted(group, key=lambda m: -(rng.random() ** (1.0 / m.weight)))


def _latency(view: health.MemberView | None) -> float:
    return -1.0 if view is None or view.latency_ewma is None else view.latency_ewma


def _is_open(view: health.MemberView | None) -> bool:
    return view is not None and view.state is breaker.CircuitState.OPEN
