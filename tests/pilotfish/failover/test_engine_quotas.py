"""A member whose provider quota share is spent is skipped before the provider must say 429, through the one
failover loop: the next member serves, the skip is a failover (``quota_spent``), and a class whose every member
is spent answers 429 with the soonest Retry-After. A scripted exchange and a fake clock; no sockets."""

from __future__ import annotations

import msgspec
import pytest
from tests.pilotfish.failover.builders import FakeClock, engine_on, member, route
from tests.pilotfish.failover.test_engine_rationing import Scripted

from pilotfish.budgets import ledger, quotas
from pilotfish.failover import engine, hedging
from pilotfish.routes import document
from pilotfish.server import replies
from pilotfish.telemetry import records


class Counting:
    """A quota keeper that has ``left`` attempts for each member with a quota, and records what is settled."""

    def __init__(self, left: dict[str, int], retry_after: float = 42.0, *, failed_open: bool = False) -> None:
        self.left, self.retry_after, self.failed_open = left, retry_after, failed_open
        self.settled: list[int] = []

    async def take(self, class_name: str, member: document.MemberRoute) -> quotas.Take:
        if self.left.get(member.id, 0) <= 0:
            return quotas.Take(False, retry_after=self.retry_after)
        self.left[member.id] -= 1
        return quotas.Take(True, ledger.Ticket(()), failed_open=self.failed_open)

    def settle(self, ticket: ledger.Ticket | None, *, tokens: int) -> None:
        self.settled.append(tokens)


def with_quota(name: str, priority: int, rpm: int | None = 50) -> document.MemberRoute:
    return msgspec.structs.replace(member(name, priority), rpm=rpm)


async def serve(the_engine: engine.Engine, cls: document.ClassRoute, scripted: Scripted) -> records.RequestRecord:
    record = records.RequestRecord(class_name=cls.name, stream=False)
    await the_engine.open(cls, scripted, keys={}, record=record, pin_key=None)
    return record


async def test_a_spent_member_is_skipped_as_quota_spent_and_the_next_member_serves_without_asking_the_provider():
    clock = FakeClock()
    the_engine = engine_on(clock)
    the_engine.quotas = Counting({"primary/m": 1})
    cls = route(with_quota("primary", 0), member("backup", 1))
    scripted = Scripted(clock, {})
    first = await serve(the_engine, cls, scripted)
    second = await serve(the_engine, cls, scripted)
    assert (first.skipped, [a.member_id for a in first.attempts]) == ([], ["primary/m"])
    assert second.skipped == [("primary/m", "quota_spent")]
    assert [a.member.id for a in scripted.attempts] == ["primary/m", "backup/m"]  # never a call past the quota
    assert second.failover_reason() == "quota_spent"


async def test_the_tokens_of_the_request_are_settled_against_the_quota_of_the_member_that_served():
    clock = FakeClock()
    the_engine = engine_on(clock)
    keeper = the_engine.quotas = Counting({"primary/m": 5})
    record = await serve(the_engine, route(with_quota("primary", 0)), Scripted(clock, {}))
    assert record.quota_settle is not None
    record.quota_settle(123)
    assert keeper.settled == [123]


async def test_when_every_member_is_spent_the_request_gets_429_with_the_soonest_retry_after():
    clock = FakeClock()
    the_engine = engine_on(clock)
    the_engine.quotas = Counting({}, retry_after=17.2)
    cls = route(with_quota("primary", 0), with_quota("backup", 1))
    record = records.RequestRecord(class_name=cls.name, stream=False)
    with pytest.raises(engine.AllMembersFailed) as caught:
        await the_engine.open(cls, Scripted(clock, {}), keys={}, record=record, pin_key=None)
    assert (caught.value.code, caught.value.retry_after) == (engine.QUOTAS_SPENT, 17.2)
    reply = replies.failure_reply(caught.value, record)
    assert (reply.status, reply.error_type, reply.code) == (429, "rate_limit_error", "member_quotas_spent")
    assert reply.headers["Retry-After"] == "18"
    assert "primary/m: quota_spent" in reply.message and "backup/m: quota_spent" in reply.message


async def test_a_member_without_a_quota_is_never_asked_and_without_a_keeper_quotas_are_not_enforced():
    clock = FakeClock()
    the_engine = engine_on(clock)
    keeper = the_engine.quotas = Counting({})
    record = await serve(the_engine, route(member("free", 0)), Scripted(clock, {}))
    assert record.skipped == [] and keeper.left == {}
    the_engine.quotas = None
    record = await serve(the_engine, route(with_quota("primary", 0)), Scripted(clock, {}))
    assert record.skipped == [] and [a.member_id for a in record.attempts] == ["primary/m"]


def test_a_hedge_never_goes_to_a_member_with_a_quota():
    clock = FakeClock()
    the_engine = engine_on(clock)
    cls = route(member("first", 0), with_quota("second", 1))
    queue = [cls.members[1]]
    hedge = hedging.next_contender(
        cls,
        queue,
        records.RequestRecord(class_name="c", stream=True),
        registry=the_engine.health,
        budget=the_engine.budget_for(cls),
        attempt=lambda *a, **k: pytest.fail("no hedge may start"),
        tracing=None,
        now=clock.now,
        op="chat",
    )
    assert hedge is None and queue == [cls.members[1]]


async def test_an_attempt_admitted_on_a_fail_open_share_is_recorded_as_such_and_one_on_a_grant_is_not():
    clock = FakeClock()
    the_engine = engine_on(clock)
    cls = route(with_quota("primary", 0), member("backup", 1))
    the_engine.quotas = Counting({"primary/m": 1})
    assert (await serve(the_engine, cls, Scripted(clock, {}))).quotas_failed_open == []
    the_engine.quotas = Counting({"primary/m": 1}, failed_open=True)  # the operator unreachable
    first = await serve(the_engine, cls, Scripted(clock, {}))
    second = await serve(the_engine, cls, Scripted(clock, {}))  # the share spent: the backup, no quota of its own
    assert first.quotas_failed_open == ["primary/m"]
    assert (second.quotas_failed_open, second.skipped) == ([], [("primary/m", "quota_spent")])
