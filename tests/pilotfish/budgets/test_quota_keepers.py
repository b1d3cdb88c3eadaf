"""Members' provider quotas (rpm, tpm): the allowances as ``pilotfish local`` keeps them (its own counters as
the source), the ledger's quota counters beside Budgets, and the wire that keeps a Budget's ask as it was.
On a wall clock set by hand."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator

import msgspec
import pydantic
import pytest

from pilotfish.api import modelclass
from pilotfish.budgets import allowances, counters, ledger, protocol, quotas, windows
from pilotfish.routes import document
from pilotfish.specs import budget, credential

START = datetime.datetime(2026, 12, 2, 4, 30, 10, tzinfo=datetime.UTC).timestamp()  # 50 s left in the minute


class Wall:
    def __init__(self) -> None:
        self.t = START

    def __call__(self) -> float:
        return self.t


def member(rpm: int | None = None, tpm: int | None = None, name: str = "primary") -> document.MemberRoute:
    return document.MemberRoute(
        id=f"{name}/m",
        credential=name,
        provider=credential.ProviderType.OPENAI,
        base_url="https://x",
        model="m",
        priority=0,
        rpm=rpm,
        tpm=tpm,
    )


def routes(*members: document.MemberRoute, name: str = "c") -> document.RoutesDocument:
    return document.RoutesDocument(classes={name: document.ClassRoute(name=name, members=members)})


@contextlib.asynccontextmanager
async def local_quotas(wall: Wall, doc: document.RoutesDocument) -> AsyncIterator[quotas.Shared]:
    """Member quotas as ``pilotfish local`` keeps them: the allowances, their source the process's own counters."""
    keeper = allowances.Allowances(counters.Counters(wall=wall), wall=wall)
    loop = asyncio.create_task(keeper.run(lambda: doc))
    await asyncio.sleep(0)  # a yield: the loop reads the live routes
    try:
        yield quotas.Shared(keeper)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def test_local_quota_admits_rpm_requests_a_minute_then_says_when_the_minute_ends():
    wall, primary = Wall(), member(rpm=3)
    async with local_quotas(wall, routes(primary)) as keeper:
        taken = [await keeper.take("c", primary) for _ in range(5)]
        assert [t.ok for t in taken] == [True, True, True, False, False]
        assert taken[-1].retry_after == 50.0 and not any(t.failed_open for t in taken)
        wall.t += 50  # the next minute: a fresh quota
        assert (await keeper.take("c", primary)).ok


async def test_local_quota_counts_tokens_when_settled_and_skips_once_tpm_is_reached():
    wall, primary = Wall(), member(tpm=100)
    async with local_quotas(wall, routes(primary)) as keeper:
        first = await keeper.take("c", primary)
        assert first.ok
        keeper.settle(first.ticket, tokens=60)
        second = await keeper.take("c", primary)
        assert second.ok  # 60 of 100: room left
        keeper.settle(second.ticket, tokens=60)
        assert not (await keeper.take("c", primary)).ok  # 120: the provider would say 429 now


async def test_quotas_are_per_class_and_member_and_a_member_without_one_is_never_counted():
    wall, primary, backup = Wall(), member(rpm=1), member(rpm=1, name="backup")
    doc = document.RoutesDocument(
        classes={
            "a": document.ClassRoute(name="a", members=(primary, backup, member())),
            "b": document.ClassRoute(name="b", members=(primary,)),
        }
    )
    async with local_quotas(wall, doc) as keeper:
        assert (await keeper.take("a", primary)).ok
        assert not (await keeper.take("a", primary)).ok
        assert (await keeper.take("b", primary)).ok  # another class's member: its own count
        assert (await keeper.take("a", backup)).ok
        free = await keeper.take("a", member())
        assert free.ok and free.ticket is None


def test_a_quota_and_a_budget_of_the_same_name_are_separate_accounts_and_asks():
    wall = Wall()
    book = ledger.Ledger(wall=wall)
    team = budget.BudgetSpec(requests_per_minute=100)
    as_budget = [(budget.Counted.of_budget("c"), team)]
    as_quota = [(budget.Counted.of_quota("c", "primary/m"), budget.BudgetSpec(requests_per_minute=50))]
    assert book.verdict(as_quota).outcome is ledger.Outcome.EMPTY
    assert book.verdict(as_budget).outcome is ledger.Outcome.EMPTY
    asks = book.asks()
    assert {(a.kind, a.budget, a.member) for a in asks} == {
        (budget.CountedKind.BUDGET, "c", ""),
        (budget.CountedKind.QUOTA, "c", "primary/m"),
    }
    window = windows.window_of(budget.Limit.REQUESTS, budget.Period.DAY, wall=wall()).key
    grant = protocol.Grant(
        kind=budget.CountedKind.QUOTA,
        budget="c",
        member="primary/m",
        limit=budget.Limit.REQUESTS,
        window=window,
        amount=1,
        exhausted=False,
        retry_after=50,
    )
    book.reported(asks, [grant])
    assert book.verdict(as_quota).outcome is ledger.Outcome.OK
    assert book.verdict(as_budget).outcome is ledger.Outcome.EMPTY  # the quota's grant is not the budget's
    book.admit(as_quota)
    assert book.verdict(as_quota).outcome is ledger.Outcome.EMPTY


def test_a_budgets_ask_reads_on_the_wire_as_before_quotas_so_versions_can_mix():
    ask = protocol.Ask(budget="team", limit=budget.Limit.REQUESTS, window="w", used=1, balance=0, want=True)
    wire = protocol.to_wire(protocol.AllowanceRequest(asks=[ask]))
    assert wire == {
        "asks": [{"budget": "team", "limit": "requests", "window": "w", "used": 1, "balance": 0, "want": True}]
    }
    quota = msgspec.structs.replace(ask, kind=budget.CountedKind.QUOTA, member="primary/m")
    assert protocol.to_wire(protocol.AllowanceRequest(asks=[quota]))["asks"][0]["member"] == "primary/m"  # type: ignore[index]


def test_the_routes_document_names_every_counter_and_its_limits():
    doc = document.RoutesDocument(
        classes={"c": document.ClassRoute(name="c", members=(member(rpm=50), member(name="backup")))},
        budgets={"team": budget.BudgetSpec(requests_per_minute=10)},
    )
    quota = budget.Counted.of_quota("c", "primary/m")
    assert doc.counted() == {budget.Counted.of_budget("team"), quota}
    limits = doc.limits_of(quota)
    assert limits is not None and limits.requests_per_minute == 50 and limits.tokens_per_minute is None
    assert doc.limits_of(budget.Counted.of_quota("c", "backup/m")) is None
    assert doc.limits_of(budget.Counted.of_budget("team")) == doc.budgets["team"]


@pytest.mark.parametrize(("field", "value"), [("rpm", 0), ("tpm", -1), ("rpm", 10_000_001), ("rpm", "many")])
def test_a_member_quota_out_of_range_is_refused_naming_the_field(field, value):
    with pytest.raises(pydantic.ValidationError) as caught:
        modelclass.ModelClassSpec.model_validate({"members": [{"credentialRef": "p", "model": "m", field: value}]})
    assert caught.value.errors()[0]["loc"] == ("members", 0, field)
