"""``pilotfish local``'s own counters: the grants the operator would give, kept in the process; time by hand."""

from __future__ import annotations

import datetime

import msgspec

from pilotfish.budgets import counters, ledger, protocol
from pilotfish.routes import document
from pilotfish.specs import budget

START = datetime.datetime(2026, 12, 1, 23, 33, 40, tzinfo=datetime.UTC).timestamp()  # 20 s before the minute ends


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def doc_with(**spec: object) -> document.RoutesDocument:
    return document.RoutesDocument(
        namespace="team-a", classes={}, budgets={"team": msgspec.convert(spec, budget.BudgetSpec)}
    )


def exchange(keeper: counters.Counters, book: ledger.Ledger, doc: document.RoutesDocument) -> None:
    """One report-and-refill, as ``budgets.allowances`` makes it."""
    asks = book.asks()
    book.reported(asks, keeper.grant(protocol.AllowanceRequest(asks=asks), doc=doc).grants)


def serve(keeper: counters.Counters, book: ledger.Ledger, doc: document.RoutesDocument, *, cost: int = 0) -> bool:
    """Admit one request as the sidecar does (refill once when empty); settle ``cost`` tokens. Served?"""
    covering = doc.budgets_of("workhorse")
    if book.verdict(covering).outcome is ledger.Outcome.EMPTY:
        exchange(keeper, book, doc)
    if book.verdict(covering).outcome is not ledger.Outcome.OK:
        return False
    book.settle(book.admit(covering), tokens=cost, micro_usd=0)
    return True


def test_exactly_the_request_limit_is_served_in_a_window_then_the_next_window_starts_afresh():
    clock = Clock()
    keeper, book, doc = counters.Counters(wall=clock), ledger.Ledger(wall=clock), doc_with(requestsPerMinute=120)
    served = sum(serve(keeper, book, doc) for _ in range(200))
    assert served == 120
    verdict = book.verdict(doc.budgets_of("workhorse"))
    assert (verdict.outcome, verdict.retry_after) == (ledger.Outcome.SPENT, 20.0)
    clock.now += 20
    assert sum(serve(keeper, book, doc) for _ in range(10)) == 10


def test_tokens_overshoot_the_limit_by_at_most_one_requests_cost():
    clock = Clock()
    keeper, book, doc = counters.Counters(wall=clock), ledger.Ledger(wall=clock), doc_with(tokensPerMinute=1000)
    served = sum(serve(keeper, book, doc, cost=70) for _ in range(50))
    assert served == 15  # 14 x 70 = 980 fits; the 15th is admitted with 20 left and costs 70
    exchange(keeper, book, doc)  # report the last request's usage
    assert keeper.used("team", budget.Limit.TOKENS) == served * 70 <= 1000 + 70


def test_a_budget_gone_from_the_manifests_gets_no_grant_and_a_raised_limit_grants_more():
    clock = Clock()
    keeper, book, doc = counters.Counters(wall=clock), ledger.Ledger(wall=clock), doc_with(requestsPerMinute=2)
    assert [serve(keeper, book, doc) for _ in range(3)] == [True, True, False]
    raised = doc_with(requestsPerMinute=3)
    exchange(keeper, book, raised)  # the background report after the edit
    assert serve(keeper, book, raised) is True
    empty = document.RoutesDocument(namespace="team-a", classes={}, budgets={})
    asks = book.asks()
    assert asks and keeper.grant(protocol.AllowanceRequest(asks=asks), doc=empty).grants == []
