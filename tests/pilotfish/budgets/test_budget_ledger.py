"""The sidecar's local allowances: admission, debts, reports, fail-open, windows; the wall clock by hand."""

from __future__ import annotations

import datetime

import msgspec

from pilotfish.budgets import ledger, protocol
from pilotfish.specs import budget

START = datetime.datetime(2026, 12, 1, 23, 33, 40, tzinfo=datetime.UTC).timestamp()  # 20 s before the minute ends


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def covering(**spec: object) -> ledger.Covering:
    return [(budget.Counted.of_budget("team"), msgspec.convert(spec, budget.BudgetSpec))]


def grant(book: ledger.Ledger, asks: list[protocol.Ask], amount: int, *, exhausted: bool = False) -> None:
    book.reported(
        asks,
        [
            protocol.Grant(
                budget=a.budget, limit=a.limit, window=a.window, amount=amount, exhausted=exhausted, retry_after=20
            )
            for a in asks
            if a.want
        ],
    )


def test_a_request_waits_for_a_grant_then_counts_one_request_when_admitted():
    book, rule = ledger.Ledger(wall=Clock()), covering(requestsPerMinute=100)
    assert book.verdict(rule).outcome is ledger.Outcome.EMPTY
    grant(book, book.asks(), 2)
    assert book.verdict(rule).outcome is ledger.Outcome.OK
    book.admit(rule)
    book.admit(rule)
    assert book.verdict(rule).outcome is ledger.Outcome.EMPTY  # both units spent: ask again
    [ask] = book.asks()
    assert (ask.used, ask.balance, ask.want) == (2, 0, True)


def test_a_spent_namespace_refuses_until_the_window_ends():
    clock = Clock()
    book, rule = ledger.Ledger(wall=clock), covering(requestsPerMinute=100)
    book.verdict(rule)
    grant(book, book.asks(), 0, exhausted=True)
    verdict = book.verdict(rule)
    assert (verdict.outcome, verdict.budget, verdict.limit) == (ledger.Outcome.SPENT, "team", budget.Limit.REQUESTS)
    assert verdict.retry_after == 20.0  # the minute ends 20 s after START
    clock.now += 20
    assert book.verdict(rule).outcome is ledger.Outcome.EMPTY  # a new window: ask the operator again


def test_tokens_are_charged_after_the_answer_and_a_debt_is_reported_as_a_negative_balance():
    book, rule = ledger.Ledger(wall=Clock()), covering(tokensPerMinute=5000)
    book.verdict(rule)
    grant(book, book.asks(), 100)
    ticket = book.admit(rule)
    book.settle(ticket, tokens=350, micro_usd=0)
    assert book.verdict(rule).outcome is ledger.Outcome.EMPTY
    [ask] = book.asks()
    assert (ask.used, ask.balance, ask.want) == (350, -250, True)  # the next grant pays the debt first


def test_the_operator_unreachable_each_account_fails_open_once_a_window_and_never_blocks_forever():
    clock = Clock()
    book, rule = ledger.Ledger(wall=clock), covering(requestsPerMinute=100)
    assert book.verdict(rule).outcome is ledger.Outcome.EMPTY
    assert book.fail_open() == 1
    book.admit(rule)
    book.admit(rule)  # the fail-open allowance is one grant: 2 requests
    assert book.fail_open() == 0  # once a window
    assert book.verdict(rule).outcome is ledger.Outcome.SPENT
    clock.now += 20
    assert book.verdict(rule).outcome is ledger.Outcome.EMPTY
    assert book.fail_open() == 1  # the next window has its own


def test_usage_of_a_window_that_ended_is_still_reported_under_that_window():
    clock = Clock()
    book, rule = ledger.Ledger(wall=clock), covering(requestsPerMinute=100, spend={"usd": 10})
    book.verdict(rule)
    grant(book, book.asks(), 50)
    ticket = book.admit(rule)
    clock.now += 20  # the minute ends while the request runs
    book.settle(ticket, tokens=10, micro_usd=7)
    asks = {(a.limit, a.window): a for a in book.asks()}
    assert asks[(budget.Limit.REQUESTS, "2026-12-01T23:33")].used == 1
    assert asks[(budget.Limit.SPEND, "2026-12-01")].used == 7  # the day goes on: same window
    book.reported(list(asks.values()), [])
    assert all(a.used == 0 for a in book.asks())


def test_unreported_usage_stays_owed_until_the_operator_takes_it():
    book, rule = ledger.Ledger(wall=Clock()), covering(requestsPerMinute=100)
    book.verdict(rule)
    grant(book, book.asks(), 2)
    book.admit(rule)
    first = book.asks()
    book.admit(rule)  # while the report is in flight
    book.reported(first, [])
    [ask] = book.asks()
    assert ask.used == 1


def test_a_deleted_budget_is_forgotten():
    book, rule = ledger.Ledger(wall=Clock()), covering(requestsPerMinute=100)
    book.verdict(rule)
    book.forget_except(set())
    assert book.asks() == []


def test_an_idle_account_takes_no_allowance_when_a_window_starts():
    # Twenty idle pods each taking a grant at every minute's start would strand a 10-request limit.
    clock = Clock()
    book, rule = ledger.Ledger(wall=clock), covering(requestsPerMinute=10)
    book.verdict(rule)
    grant(book, book.asks(), 1)
    book.admit(rule)
    book.reported(book.asks(), [])
    clock.now += 20  # a new window, no request yet
    assert book.asks() == []  # nothing to report, nothing wanted
    assert book.verdict(rule).outcome is ledger.Outcome.EMPTY  # a request arrives: now it asks
    assert [a.want for a in book.asks()] == [True]


def test_a_request_waiting_on_two_empty_limits_asks_for_both_at_once():
    book, rule = ledger.Ledger(wall=Clock()), covering(requestsPerMinute=100, tokensPerMinute=5000)
    verdict = book.verdict(rule)
    assert (verdict.outcome, verdict.limit) == (ledger.Outcome.EMPTY, budget.Limit.REQUESTS)
    asks = book.asks()
    assert sorted((a.limit, a.want) for a in asks) == [(budget.Limit.REQUESTS, True), (budget.Limit.TOKENS, True)]
    grant(book, asks, 100)
    assert book.verdict(rule).outcome is ledger.Outcome.OK  # one refill was enough


def test_a_spent_limit_refuses_even_when_an_earlier_one_is_merely_empty():
    book, rule = ledger.Ledger(wall=Clock()), covering(requestsPerMinute=100, tokensPerMinute=5000)
    book.verdict(rule)
    asks = book.asks()
    book.reported(
        asks,
        [
            protocol.Grant(
                budget="team",
                limit=budget.Limit.TOKENS,
                window=asks[0].window,
                amount=0,
                exhausted=True,
                retry_after=20,
            )
        ],
    )
    verdict = book.verdict(rule)
    assert (verdict.outcome, verdict.limit) == (ledger.Outcome.SPENT, budget.Limit.TOKENS)
