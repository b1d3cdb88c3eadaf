"""Requests already waiting on a member when another request finds it hung are cut at that moment and
moved on to the next member, instead of each waiting out its own first-token deadline.

Driven through the one failover loop with an exchange that waits inside the real first-token window
(``exchange.first_token_window``) and never answers on the hung member: the deadlines are set far beyond
the test's own timeout, so only the cut can end those waits."""

from __future__ import annotations

import asyncio

from tests.pilotfish.failover.builders import FakeClock, ScriptedExchange, class_route, engine_on, member

from pilotfish import failures
from pilotfish.failover import engine, exchange
from pilotfish.routes import document
from pilotfish.specs import modelclass
from pilotfish.telemetry import records

K = failures.FailureKind
HUNG = "a/m"
NEVER = modelclass.TimeoutsSpec(first_token_seconds=600, total_seconds=1200)  # no timer ends a wait in this test
TEST_TIMEOUT = 30.0  # an event that should come at once; generous for a starved machine


class HungMember(ScriptedExchange):
    """Member ``a`` accepts and never answers (its waits end only when cut); a chosen request finds it hung
    (its own deadline fires when the test says so); every other member answers at once."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waiting = 0  # attempts inside the hung member's first-token window
        self.entered = asyncio.Event()
        self.deadline_fires = asyncio.Event()  # the discovering request's own deadline

    async def attempt(self, attempt: exchange.Attempt) -> exchange.Committed[str]:
        if attempt.member.id != HUNG:
            return exchange.Committed(member=attempt.member, head="ok", rest=None, time_to_first_token=self.clock.now())
        window: exchange.FirstTokenWindow | None = None
        try:
            async with exchange.first_token_window(attempt) as window:
                self.waiting += 1
                self.entered.set()
                await asyncio.Event().wait()  # hung: no first token, ever
        except TimeoutError as exc:
            raise exchange.timed_out(attempt, window) from exc
        raise AssertionError("unreachable")


class Discoverer(HungMember):
    """The request whose own first-token deadline fires on the hung member when the test says so."""

    async def attempt(self, attempt: exchange.Attempt) -> exchange.Committed[str]:
        if attempt.member.id == HUNG:
            await self.deadline_fires.wait()
            raise failures.AttemptFailed(failures.Failure(kind=K.FIRST_TOKEN_TIMEOUT, detail="deadline exceeded"))
        return await super().attempt(attempt)


async def _serve(the_engine: engine.Engine, route: document.ClassRoute, scripted: HungMember) -> records.RequestRecord:
    record = records.RequestRecord(class_name="c", stream=False)
    await the_engine.open(route, scripted, keys={}, record=record, pin_key=None)
    return record


async def test_requests_waiting_on_a_member_found_hung_are_cut_and_answered_by_the_next_member():
    clock = FakeClock()
    the_engine, route = engine_on(clock), class_route("a", "b", timeouts=NEVER)
    waiting = [HungMember(clock) for _ in range(3)]
    in_flight = [asyncio.create_task(_serve(the_engine, route, w)) for w in waiting]
    for w in waiting:
        await asyncio.wait_for(w.entered.wait(), TEST_TIMEOUT)
    discoverer = Discoverer(clock)
    found = asyncio.create_task(_serve(the_engine, route, discoverer))
    discoverer.deadline_fires.set()

    cut = await asyncio.wait_for(asyncio.gather(*in_flight), TEST_TIMEOUT)
    for record in cut:
        assert [(a.member_id, a.result) for a in record.attempts] == [(HUNG, "cut_member_hung"), ("b/m", "success")]
    first = await asyncio.wait_for(found, TEST_TIMEOUT)
    assert [(a.member_id, a.result) for a in first.attempts] == [(HUNG, "first_token_timeout"), ("b/m", "success")]


async def test_a_request_with_no_other_member_to_go_to_is_not_cut():
    clock = FakeClock()
    the_engine = engine_on(clock)
    alone = class_route("a", timeouts=NEVER)
    waiting = HungMember(clock)
    stays = asyncio.create_task(_serve(the_engine, alone, waiting))
    await asyncio.wait_for(waiting.entered.wait(), TEST_TIMEOUT)
    the_engine.health.member("c", member("a")).record_failure(
        failure=failures.Failure(kind=K.FIRST_TOKEN_TIMEOUT), counts_against_health=True, trips=True
    )
    for _ in range(20):  # a cut would end the wait within a turn or two of the loop
        await asyncio.sleep(0)
    assert not stays.done()  # cut short, the only member's slow answer would become no answer at all
    stays.cancel()
    await asyncio.gather(stays, return_exceptions=True)


async def test_a_circuit_opened_by_errors_rather_than_a_hang_cuts_nobody():
    clock = FakeClock()
    the_engine, route = engine_on(clock), class_route("a", "b", timeouts=NEVER)
    waiting = HungMember(clock)
    stays = asyncio.create_task(_serve(the_engine, route, waiting))
    await asyncio.wait_for(waiting.entered.wait(), TEST_TIMEOUT)
    hung = the_engine.health.member("c", member("a"))
    for _ in range(hung.breaker.failure_threshold):  # 5xx answers: the member answers, just badly
        hung.record_failure(failure=failures.Failure(kind=K.SERVER_ERROR, status=500), counts_against_health=True)
    assert hung.breaker.state.value == "open"
    for _ in range(20):
        await asyncio.sleep(0)
    assert not stays.done()  # an attempt admitted before may still be answered
    stays.cancel()
    await asyncio.gather(stays, return_exceptions=True)
