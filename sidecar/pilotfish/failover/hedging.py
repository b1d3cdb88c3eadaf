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
from typing import Any, Generic, TypeVar

from pilotfish import failures
from pilotfish.failover import exchange, health
from pilotfish.routes import document

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
