"""plan_attempts(): the order in which one request will try a class's members. Pure.

``failover.engine`` calls it once per request with the health snapshot, then tries up to
``routing.maxAttempts`` members of the plan in order, asking each member's breaker at attempt time.

Rules, in order:

0. A member the request's exchange says cannot serve it at all (``skip_reason``: an operation or an
   input its provider's API does not have) is skipped with that reason, and is never a last resort.
1. A member whose declared ``contextWindow`` is smaller than the prompt estimate is skipped
   (``context_window_too_small``). A member without a declared window is never skipped here.
2. Members are grouped by priority, lower first; a lower-priority member never precedes a higher
   one. Within a group the strategy orders them:
   ``priority`` and ``weighted`` draw a weighted random order (P(first) proportional to weight, so
   equal priorities split traffic by weight). They differ upstream, in ``routes.render``: under
   ``weighted`` a member without an explicit priority gets priority 0, so all of them share one group
   and split traffic; under ``priority`` it gets its list position, so list order is failover order.
   ``least-latency`` sorts by measured latency EWMA, fastest first, with members that have no
   measurement yet ahead of all measured ones (in list order) so a new member gets sampled.
3. Members whose circuit is open are skipped (``circuit_open``). Half-open members keep their place:
   the engine asks the breaker, which admits one probe. If no member is left at all, the open
   member closest to the end of its cooldown is kept as the single entry and ``last_resort`` is
   set, so an all-open class still tries once instead of failing without a single attempt; it is
   also listed in ``skipped``. Members skipped for their context window are never a last resort:
   they cannot serve the prompt.
4. A pinned member (conversation pinning) moves to the front, unless it was skipped.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import random
from collections.abc import Callable, Mapping, Sequence

from pilotfish.failover import breaker, health
from pilotfish.routes import document
from pilotfish.specs import modelclass


class SkipReason(enum.StrEnum):
    """Why a member is not in the plan; values appear in headers, logs and metrics."""

    CONTEXT_WINDOW = "context_window_too_small"
    CIRCUIT_OPEN = "circuit_open"
    OPERATION_NOT_SUPPORTED = "operation_not_supported"  # e.g. embeddings on an Anthropic member
    INPUT_NOT_SUPPORTED = "input_not_supported"  # e.g. token-array embeddings input on a Gemini member
    QUOTA_SPENT = "quota_spent"  # this pod's share of the member's rpm/tpm is spent for the minute (engine)


@dataclasses.dataclass(frozen=True, slots=True)
class Skip:
    """A member left out of the plan, and why."""

    member_id: str
    reason: SkipReason


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The members one request will try, in order, and the ones it will not."""

    members: tuple[document.MemberRoute, ...]  # in the order to try; the engine stops at maxAttempts
    skipped: tuple[Skip, ...] = ()  # ineligible, then context-window skips in list order, then open circuits
    # True when ``members`` is the one open member kept because nothing else could be tried: the
    # engine should send it without asking its breaker, which would refuse it.
    last_resort: bool = False


def plan_attempts(
    route: document.ClassRoute,
    views: Mapping[str, health.MemberView],
    *,
    prompt_tokens: int,
    pinned: str | None,
    rng: random.Random,
    skip_reason: Callable[[document.MemberRoute], SkipReason | None] | None = None,
) -> Plan:
    """The attempt plan for one request; ``views`` maps member id → health (missing: no data, closed)."""
    skipped: list[Skip] = []
    eligible = list(route.members)
    if skip_reason is not None:
        reasons = [(m, skip_reason(m)) for m in route.members]
        skipped.extend(Skip(m.id, reason) for m, reason in reasons if reason is not None)
        eligible = [m for m, reason in reasons if reason is None]
    fitting: list[document.MemberRoute] = []
    for m in eligible:
        if _fits(m, prompt_tokens):
            fitting.append(m)
        else:
            skipped.append(Skip(m.id, SkipReason.CONTEXT_WINDOW))
    ordered = _ordered(fitting, views, strategy=route.routing.strategy, rng=rng)
    available: list[document.MemberRoute] = []
    for m in ordered:
        if _is_open(views.get(m.id)):
            skipped.append(Skip(m.id, SkipReason.CIRCUIT_OPEN))
        else:
            available.append(m)
    if not available and ordered:
        soonest = min(ordered, key=lambda m: views[m.id].cooldown_left)  # stable: first in plan order on ties
        return Plan(members=(soonest,), skipped=tuple(skipped), last_resort=True)
    if pinned is not None:
        available.sort(key=lambda m: m.id != pinned)  # stable: only the pinned member moves
    return Plan(members=tuple(available), skipped=tuple(skipped))


def after_context_length(
    remaining: Sequence[document.MemberRoute],
    failed: document.MemberRoute,
) -> tuple[document.MemberRoute, ...]:
    """Members still worth trying after ``failed`` said the prompt is too long, in their order.

    Only members whose declared window is larger than the failed member's remain. A member without
    a declared window is not assumed to be larger, so it is dropped, except when the failed member
    had no declared window either: then nothing is known, every remaining member may be larger, and
    all are kept.
    """
    if failed.context_window is None:
        return tuple(remaining)
    return tuple(m for m in remaining if m.context_window is not None and m.context_window > failed.context_window)


def _ordered(
    members: list[document.MemberRoute],
    views: Mapping[str, health.MemberView],
    *,
    strategy: modelclass.Strategy,
    rng: random.Random,
) -> list[document.MemberRoute]:
    if len(members) < 2:
        return members  # nothing to order (a class of one member, or one left): no sort, no draw
    ordered: list[document.MemberRoute] = []
    by_priority = sorted(members, key=lambda m: m.priority)  # stable: list order within a priority
    for _, group_members in itertools.groupby(by_priority, key=lambda m: m.priority):
        group = list(group_members)
        if len(group) == 1:
            ordered.extend(group)
        elif strategy is modelclass.Strategy.LEAST_LATENCY:
            ordered.extend(sorted(group, key=lambda m: _latency_key(views.get(m.id))))
        else:
            ordered.extend(_weighted_shuffle(group, rng=rng))
    return ordered


def _weighted_shuffle(group: list[document.MemberRoute], *, rng: random.Random) -> list[document.MemberRoute]:
    """A weighted random permutation (Efraimidis-Spirakis): each position is drawn in proportion to
    weight among the members not yet placed, so P(first) is weight / total weight."""
    return sorted(group, key=lambda m: -(rng.random() ** (1.0 / m.weight)))  # one draw per member, in order


def _fits(member: document.MemberRoute, prompt_tokens: int) -> bool:
    return member.context_window is None or member.context_window >= prompt_tokens


def _latency_key(view: health.MemberView | None) -> tuple[bool, float]:
    if view is None or view.latency_ewma is None:
        return (False, 0.0)  # unmeasured first, in list order (the sort is stable)
    return (True, view.latency_ewma)


def _is_open(view: health.MemberView | None) -> bool:
    return view is not None and view.state is breaker.CircuitState.OPEN
