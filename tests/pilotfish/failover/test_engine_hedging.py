"""Hedging, through the one failover loop: at a member's adaptive first-token deadline the next member starts
too, whichever sends content first is kept, the other is cancelled, and the hedge spends the retry budget.

Driven with an exchange whose members answer when the test lets them; the adaptive deadline is made tiny
(a 50 ms floor over first tokens of 10 ms) so the race starts at once, and every wait has a generous timeout."""

from __future__ import annotations

import asyncio

from tests.pilotfish.failover.builders import FakeClock, ScriptedExchange, class_route, engine_on

from pilotfish import failures
from pilotfish.failover import engine, exchange
from pilotfish.routes import document
from pilotfish.specs import modelclass
from pilotfish.telemetry import records

TIMEOUTS = modelclass.TimeoutsSpec(
    adaptive_first_token=modelclass.AdaptiveFirstTokenSpec(floor_seconds=0.05, min_samples=5)
)
TEST_TIMEOUT = 30.0


class Gated(ScriptedExchange):
    """Each member answers once its gate opens (an open gate: at once); ``started`` tells who was asked."""

    def __init__(self, clock: FakeClock, *, closed: tuple[str, ...] = ()) -> None:
        self.clock = clock
        self.gates = {name: asyncio.Event() for name in ("a/m", "b/m")}
        for name, gate in self.gates.items():
            if name not in closed:
                gate.set()
        self.started: dict[str, asyncio.Event] = {name: asyncio.Event() for name in self.gates}
        self.attempts: list[exchange.Attempt] = []

    async def attempt(self, attempt: exchange.Attempt) -> exchange.Committed[str]:
        self.attempts.append(attempt)
        self.started[attempt.member.id].set()
        window = None
        try:
            async with exchange.first_token_window(attempt) as window:  # the deadline the attempt was given
                await self.gates[attempt.member.id].wait()
        except TimeoutError as exc:
            raise exchange.timed_out(attempt, window) from exc
        self.clock.advance(0.01)
        return exchange.Committed(
            member=attempt.member, head=attempt.member.id, rest=None, time_to_first_token=self.clock.now()
        )


async def _warmed(clock: FakeClock, **routing: object) -> tuple[engine.Engine, document.ClassRoute]:
    """An engine whose member ``a`` has a normal (first tokens in 10 ms): its adaptive deadline is the floor."""
    the_engine, route = engine_on(clock), class_route("a", "b", timeouts=TIMEOUTS, **routing)
    for _ in range(5):
        await _serve(the_engine, route, Gated(clock))
    return the_engine, route


async def _serve(the_engine: engine.Engine, route: document.ClassRoute, gated: Gated) -> records.RequestRecord:
    record = records.RequestRecord(class_name="c", stream=False)
    committed = await asyncio.wait_for(
        the_engine.open(route, gated, keys={}, record=record, pin_key=None), TEST_TIMEOUT
    )
    assert committed.head == record.attempts[-1].member_id
    return record


def _results(record: records.RequestRecord) -> list[tuple[str, str]]:
    return [(a.member_id, a.result) for a in record.attempts]


async def test_the_hedge_that_answers_first_is_kept_and_the_silent_member_is_let_go():
    clock = FakeClock()
    the_engine, route = await _warmed(clock, hedge=True, budget=100)
    gated = Gated(clock, closed=("a/m",))  # a is silent from now on
    record = await _serve(the_engine, route, gated)
    assert _results(record) == [("a/m", "first_token_timeout"), ("b/m", "success")]
    assert record.hedges == [("b/m", "won")]
    # a was allowed to go on (firstTokenSeconds) but judged, and recorded, by its adaptive deadline
    assert gated.attempts[0].first_token_seconds == TIMEOUTS.first_token_seconds
    assert record.attempts[0].first_token_deadline == 0.05
    assert the_engine.budget_for(route).spent() == 1  # the hedge is an extra call: it spends the budget
    assert the_engine.health.snapshot("c")["a/m"].state.value == "open"  # silent past its deadline: hung


async def test_a_member_that_answers_after_the_hedge_started_wins_and_the_hedge_is_cancelled():
    clock = FakeClock()
    the_engine, route = await _warmed(clock, hedge=True, budget=100)
    gated = Gated(clock, closed=("a/m", "b/m"))
    serving = asyncio.create_task(_serve(the_engine, route, gated))
    await asyncio.wait_for(gated.started["b/m"].wait(), TEST_TIMEOUT)  # the hedge is under way
    gated.gates["a/m"].set()  # now a answers, before b
    record = await serving
    assert _results(record) == [("b/m", "hedge_cancelled"), ("a/m", "success")]
    assert record.hedges == [("b/m", "lost")]
    backup = the_engine.health.snapshot("c")["b/m"]
    assert backup.requests == 0 and backup.state.value == "closed"  # a cancelled hedge says nothing of b


async def test_no_hedge_without_retry_budget_the_silent_member_is_abandoned_as_without_hedging():
    clock = FakeClock()
    the_engine, route = await _warmed(clock, hedge=True, budget=0)
    spent = the_engine.budget_for(route)
    while spent.try_spend():
        pass
    gated = Gated(clock, closed=("a/m",))
    record = await _serve(the_engine, route, gated)
    assert record.hedges == []
    assert _results(record) == [("a/m", "first_token_timeout"), ("b/m", "success")]  # the free failover


async def test_without_hedging_a_member_silent_past_its_adaptive_deadline_is_abandoned_first():
    clock = FakeClock()
    the_engine, route = await _warmed(clock)
    gated = Gated(clock, closed=("a/m",))
    record = await _serve(the_engine, route, gated)
    assert record.hedges == []
    assert _results(record) == [("a/m", "first_token_timeout"), ("b/m", "success")]
    assert gated.attempts[0].first_token_seconds == 0.05


async def test_a_hedge_that_fails_leaves_the_race_to_the_member_it_hedged():
    clock = FakeClock()
    the_engine, route = await _warmed(clock, hedge=True, budget=100)

    class FailingHedge(Gated):
        async def attempt(self, attempt: exchange.Attempt) -> exchange.Committed[str]:
            if attempt.member.id == "b/m":
                self.started["b/m"].set()
                raise failures.AttemptFailed(failures.Failure(kind=failures.FailureKind.SERVER_ERROR, status=500))
            return await super().attempt(attempt)

    gated = FailingHedge(clock, closed=("a/m",))
    serving = asyncio.create_task(_serve(the_engine, route, gated))
    await asyncio.wait_for(gated.started["b/m"].wait(), TEST_TIMEOUT)
    gated.gates["a/m"].set()
    record = await serving
    assert _results(record) == [("b/m", "server_error"), ("a/m", "success")]
    assert record.hedges == [("b/m", "failed")]
