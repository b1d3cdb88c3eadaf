"""What the retry budget rations, and which deadline each attempt gets, through the one failover loop.

The engine is driven with a scripted exchange (the Exchange protocol is the loop's only view of the
wire), so these run without sockets and on a fake clock."""

from __future__ import annotations

import pytest
from tests.pilotfish.failover.builders import FakeClock, class_route, engine_on, member

from pilotfish import failures
from pilotfish.failover import engine, exchange
from pilotfish.routes import document
from pilotfish.telemetry import records

K = failures.FailureKind
TIMEOUT = failures.Failure(kind=K.FIRST_TOKEN_TIMEOUT, detail="deadline exceeded")
SERVER_ERROR = failures.Failure(kind=K.SERVER_ERROR, status=500)


class Scripted:
    """An exchange whose members fail as scripted (member id → failures to raise, in turn) and else answer."""

    operation = "chat"

    def __init__(self, clock: FakeClock, script: dict[str, list[failures.Failure]], *, ttft: float = 0.1) -> None:
        self.clock, self.script, self.ttft = clock, script, ttft
        self.attempts: list[exchange.Attempt] = []

    def prompt_tokens(self) -> int:
        return 1

    def skip_reason(self, member: document.MemberRoute) -> None:
        return None

    async def attempt(self, attempt: exchange.Attempt) -> exchange.Committed[str]:
        self.attempts.append(attempt)
        queued = self.script.get(attempt.member.id) or []
        if queued:
            raise failures.AttemptFailed(queued.pop(0))
        self.clock.advance(self.ttft)
        return exchange.Committed(member=attempt.member, head="ok", rest=None, time_to_first_token=self.clock.now())


_engine, _route = engine_on, class_route


async def _serve(the_engine: engine.Engine, route: document.ClassRoute, scripted: Scripted) -> records.RequestRecord:
    record = records.RequestRecord(class_name="c", stream=False)
    await the_engine.open(route, scripted, keys={}, record=record, pin_key=None)
    return record


def _exhaust(the_engine: engine.Engine, route: document.ClassRoute) -> None:
    spent = the_engine.budget_for(route)
    while spent.try_spend():
        pass


async def test_a_failover_onto_a_steady_member_spends_no_retry_budget():
    clock = FakeClock()
    the_engine, route = _engine(clock), _route("a", "b")
    _exhaust(the_engine, route)
    record = await _serve(the_engine, route, Scripted(clock, {"a/m": [TIMEOUT]}))
    assert [(a.member_id, a.result) for a in record.attempts] == [("a/m", "first_token_timeout"), ("b/m", "success")]


async def test_a_retry_on_the_same_member_spends_the_retry_budget():
    clock = FakeClock()
    the_engine, route = _engine(clock), _route("a", "b")
    _exhaust(the_engine, route)
    with pytest.raises(engine.AllMembersFailed) as raised:
        await _serve(the_engine, route, Scripted(clock, {"a/m": [SERVER_ERROR]}))
    assert raised.value.code == "retry_budget_exhausted"


async def test_a_failover_onto_a_struggling_member_spends_the_retry_budget():
    clock = FakeClock()
    the_engine, route = _engine(clock), _route("a", "b", same_member_retries=0)
    the_engine.health.member("c", member("b")).record_failure(failure=SERVER_ERROR, counts_against_health=True)
    _exhaust(the_engine, route)
    with pytest.raises(engine.AllMembersFailed) as raised:
        await _serve(the_engine, route, Scripted(clock, {"a/m": [SERVER_ERROR]}))
    assert raised.value.code == "retry_budget_exhausted"


async def test_the_first_timeout_opens_the_hung_members_circuit_for_the_next_request():
    clock = FakeClock()
    the_engine, route = _engine(clock), _route("a", "b")
    await _serve(the_engine, route, Scripted(clock, {"a/m": [TIMEOUT]}))
    record = await _serve(the_engine, route, Scripted(clock, {}))
    assert record.skipped == [("a/m", "circuit_open")] and [a.member_id for a in record.attempts] == ["b/m"]


async def test_a_usually_fast_member_gets_the_adaptive_deadline_and_the_last_member_the_configured_one():
    clock = FakeClock()
    the_engine, route = _engine(clock), _route("a", "b")
    for _ in range(20):
        await _serve(the_engine, route, Scripted(clock, {}, ttft=0.3))
    scripted = Scripted(clock, {"a/m": [TIMEOUT]})
    record = await _serve(the_engine, route, scripted)
    assert [a.first_token_seconds for a in scripted.attempts] == [2.0, 15.0]  # b is the last one left
    assert [a.first_token_deadline for a in record.attempts] == [2.0, 15.0]


async def test_a_member_measured_slow_keeps_its_long_normal_deadline():
    clock = FakeClock()
    the_engine, route = _engine(clock), _route("a", "b")
    for _ in range(20):
        await _serve(the_engine, route, Scripted(clock, {}, ttft=10.0))
    scripted = Scripted(clock, {})
    await _serve(the_engine, route, scripted)
    assert scripted.attempts[0].first_token_seconds == 15.0
