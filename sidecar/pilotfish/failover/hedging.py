"""Hedging: at a member's adaptive first-token deadline, ask the next member too, and keep whichever answers
first.

Without hedging, a member silent past its adaptive deadline is abandoned and the next one is asked: the
request pays the whole wait, and whatever the first member was about to say is lost. With hedging
(``routing.hedge``, per class) the first attempt goes on (up to ``firstTokenSeconds``) while the next member
starts; the first of the two to send content commits, and the other is cancelled. The cost is one more
upstream call for each request that reaches its adaptive deadline, so each hedge spends the retry budget,
and none is started when the budget is used up (the first attempt is then abandoned as without hedging).

``failover.engine`` runs every attempt that may hedge through ``race`` and keeps the bookkeeping (records,
health, spans) through the callbacks it passes: the one failover loop stays the only place that decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from pilotfish import failures, scrub
from pilotfish.failover import budget, deadlines, exchange, health
from pilotfish.routes import document
from pilotfish.telemetry import records
from pilotfish.telemetry import tracing as tracing_  # `tracing` is a parameter name below

Head = TypeVar("Head")

# The hedge of a request the first member answered first: cancelled, not failed (nothing against its health).
CANCELLED = failures.Failure(kind=failures.FailureKind.HEDGE_CANCELLED, detail="the first member answered first")
# The first member, abandoned because the hedge answered first: it missed its adaptive deadline.
OVERTAKEN = failures.Failure(
    kind=failures.FailureKind.FIRST_TOKEN_TIMEOUT, detail="no first token by its adaptive deadline; the hedge answered"
)


@dataclasses.dataclass(slots=True)
class Contender:
    """One attempt in a race: who, with which attempt, since when, and its trace span (or None)."""

    member: document.MemberRoute
    health: health.MemberHealth
    attempt: exchange.Attempt
    started: float  # on the engine's clock
    span: Any = None


class Exhausted(Exception):
    """Both contenders failed (each already reported through ``lost``); ``failure`` is the last one."""

    def __init__(self, failure: failures.Failure) -> None:
        super().__init__(failure.kind.value)
        self.failure = failure


@dataclasses.dataclass(slots=True)
class Won(Generic[Head]):
    contender: Contender
    committed: exchange.Committed[Head]
    hedged: Contender | None  # the hedge, when one was started (it is ``contender`` when it won)


def next_contender(
    route: document.ClassRoute,
    queue: list[document.MemberRoute],
    record: records.RequestRecord,
    *,
    registry: health.HealthRegistry,
    budget: budget.RetryBudget,
    attempt: Callable[..., exchange.Attempt],
    tracing: tracing_.Tracing | None,
    now: Callable[[], float],
    op: str,
) -> Contender | None:
    """The next member in ``queue`` as a hedge (taken off it), if its circuit and the retry budget allow one
    more call now; else None. ``attempt(member, first_token=…)`` builds its attempt."""
    if not queue:
        return None
    member = queue[0]
    if member.has_quota():  # a hedge is an extra call: never one the member's provider quota must pay for
        return None
    member_health = registry.member(route.name, member)
    if not member_health.breaker.allow():
        return None
    if not budget.try_spend():  # a hedge is an extra call: always rationed
        member_health.breaker.release_probe()
        return None
    queue.pop(0)
    first_token = deadlines.first_token_seconds(
        timeouts=route.timeouts, times=member_health.first_tokens, fallback=False
    )
    hedge = attempt(member, first_token=first_token)
    span = None
    if tracing is not None and record.span is not None:
        span, headers = tracing.start_attempt(
            record.span, member, operation=op, number=len(record.attempts) + 2, circuit="closed", hedge=True
        )
        hedge = dataclasses.replace(hedge, trace_headers=headers)
    return Contender(member, member_health, hedge, now(), span)


class Report(Protocol):
    """The loop's bookkeeping for an attempt that lost or failed (``Engine._record_failure``)."""

    def __call__(
        self,
        member: document.MemberRoute,
        member_health: health.MemberHealth,
        failure: failures.Failure,
        *,
        started: float,
        first_token: float,
        span: object | None,
    ) -> None: ...


async def hedged(
    exchange_: exchange.Exchange[Head],
    first: Contender,
    *,
    hedge_after: float,
    start_hedge: Callable[[], Contender | None],
    report: Report,
    record: records.RequestRecord,
    scrubber: scrub.Scrubber,
) -> Won[Head]:
    """``first``, hedged at ``hedge_after``: it may go on up to firstTokenSeconds while the hedge runs, yet is
    judged (and recorded) by ``hedge_after``. Every loser or failure goes to ``report`` (scrubbed); the hedge's fate to
    ``record.hedges``. A client gone mid-race hands back the hedge's half-open probe and ends its span."""
    keep_going = dataclasses.replace(first.attempt, first_token_seconds=first.attempt.timeouts.first_token_seconds)
    first = dataclasses.replace(first, attempt=keep_going)
    started: list[Contender] = []

    def hedge() -> Contender | None:
        contender = start_hedge()
        started.extend([contender] if contender is not None else [])
        return contender

    def lost(contender: Contender, failure: failures.Failure) -> None:
        given = hedge_after if contender is first else contender.attempt.first_token_seconds
        report(
            contender.member,
            contender.health,
            failure.scrubbed(scrubber),
            started=contender.started,
            first_token=given,
            span=contender.span,
        )
        if contender is not first:
            record.hedges.append((contender.member.id, "lost" if failure is CANCELLED else "failed"))

    try:
        won = await race(exchange_, first, hedge_after=hedge_after, start_hedge=hedge, lost=lost)
    except (failures.AttemptFailed, Exhausted):
        raise
    except BaseException:
        _abandoned(started, record)
        raise
    if won.hedged is not None and won.contender is won.hedged:
        record.hedges.append((won.hedged.member.id, "won"))
    return won


def _abandoned(started: list[Contender], record: records.RequestRecord) -> None:
    """The client went away mid-race: a hedge not yet in the record hands back its probe and ends its span."""
    for contender in started:
        if not any(a.member_id == contender.member.id for a in record.attempts):
            contender.health.breaker.release_probe()
            if contender.span is not None:
                contender.span.end()


async def race(
    exchange_: exchange.Exchange[Head],
    first: Contender,
    *,
    hedge_after: float,
    start_hedge: Callable[[], Contender | None],
    lost: Callable[[Contender, failures.Failure], None],
) -> Won[Head]:
    """Attempt ``first``; if it has not committed ``hedge_after`` seconds in, ``start_hedge`` may give a second
    contender, and the first of the two to commit wins. A failure of ``first`` before the hedge starts is
    raised as ``failures.AttemptFailed`` (the loop's ordinary path); with no hedge given, ``first`` is
    abandoned there as a first-token timeout. Once both run, each loser or failure is reported through
    ``lost`` (the loop records it) and ``Exhausted`` is raised when neither commits."""
    tasks: dict[asyncio.Task[exchange.Committed[Head]], Contender] = {}
    try:
        primary = asyncio.ensure_future(exchange_.attempt(first.attempt))
        tasks[primary] = first
        done, _ = await asyncio.wait({primary}, timeout=hedge_after)
        if done:
            return Won(first, primary.result(), None)
        hedge = start_hedge()
        if hedge is None:  # no budget, nobody to ask: abandoned at its adaptive deadline, as without hedging
            raise failures.AttemptFailed(dataclasses.replace(OVERTAKEN, detail="deadline exceeded"))
        tasks[asyncio.ensure_future(exchange_.attempt(hedge.attempt))] = hedge
        return await _first_to_commit(tasks, hedge, lost)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


async def _first_to_commit(
    tasks: dict[asyncio.Task[exchange.Committed[Head]], Contender],
    hedge: Contender,
    lost: Callable[[Contender, failures.Failure], None],
) -> Won[Head]:
    pending = set(tasks)
    last: failures.Failure | None = None
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if error is None:
                for loser in pending:  # cancelled here; the caller's ``finally`` waits for it to unwind
                    loser.cancel()
                    lost(tasks[loser], CANCELLED if tasks[loser] is hedge else OVERTAKEN)
                return Won(tasks[task], task.result(), hedge)
            if not isinstance(error, failures.AttemptFailed):
                raise error
            last = error.failure
            lost(tasks[task], last)
    assert last is not None
    raise Exhausted(last)
