"""The sidecar's local allowances: may this request go, what it spent, what to tell the operator. Pure.

One ``Account`` per (counter, limit) holds what this sidecar may still spend in the current window
(``balance``, granted by the operator) and what it used since its last report. A counter
(``budget.Counted``) is a Budget or a ModelClass member's provider quota: the arithmetic is the same,
only what is asked for differs (``server.budgeting`` asks before routing, ``failover.engine`` before
each attempt on a member with a quota). Requests are counted
when admitted; tokens and spend only once the answer says what they cost, so a balance can go
negative (a debt, which the next grant pays first). When the operator cannot be reached, an account
may grant itself one fail-open allowance per window (``windows.grant_size``), never more: traffic is
never blocked for longer than a window, and never exceeds the limit by more than that per pod.

``budgets.allowances`` drives this from requests and from the operator's replies; the wall clock is
a parameter, so tests move time by hand.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence

from pilotfish.budgets import protocol, windows
from pilotfish.specs import budget as budget_specs  # `budget` is a field name below

Covering = Sequence[tuple[budget_specs.Counted, budget_specs.BudgetSpec]]  # the counters one request counts against
AccountKey = tuple[budget_specs.Counted, budget_specs.Limit, str]  # counter, limit, window


class Outcome(enum.StrEnum):
    OK = "ok"
    EMPTY = "empty"  # nothing left locally: ask the operator first
    SPENT = "spent"  # the namespace has spent this window's limit (or this pod its fail-open allowance)


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    budget: str = ""  # the counter's name (a Budget's; a quota's ModelClass)
    limit: budget_specs.Limit | None = None
    spec: budget_specs.BudgetSpec | None = None
    retry_after: float = 0.0  # SPENT: seconds until the window ends


@dataclasses.dataclass(frozen=True, slots=True)
class Ticket:
    """What an admitted request must settle when its cost is known: the token and spend accounts."""

    accounts: tuple[AccountKey, ...]


@dataclasses.dataclass(slots=True)
class Account:
    window: str
    ends_at: float  # wall clock
    grant: int  # units in one grant (and in the fail-open allowance)
    balance: int = 0
    used: int = 0  # units used in this window since the last report
    exhausted: bool = False  # the operator said this window's limit is spent
    failed_open: bool = False  # the fail-open allowance of this window is taken
    # a request used or waited for this account in this window: only then is it topped up ahead of need.
    # An idle pod that took a grant at every window's start would strand the limit (P pods x one grant).
    in_demand: bool = False


class Ledger:
    """Every account of this sidecar; windows roll over on the wall clock."""

    def __init__(self, *, wall: Callable[[], float]) -> None:
        self._wall = wall
        self._accounts: dict[tuple[budget_specs.Counted, budget_specs.Limit], Account] = {}
        self._late: dict[AccountKey, int] = {}  # usage settled after its window rolled over, not yet reported

    def verdict(self, covering: Covering) -> Verdict:
        """OK when every limit of every covering counter has allowance left; SPENT if one is spent; else EMPTY
        (naming the first empty one), and every empty one is marked as wanted by the request now waiting."""
        empty: Verdict | None = None
        for counted, spec in covering:
            for limit in spec.limits():
                account = self._account(counted, spec, limit)
                if account.balance > 0:
                    continue
                if account.exhausted or account.failed_open:
                    left = max(0.0, account.ends_at - self._wall())
                    return Verdict(Outcome.SPENT, counted.name, limit, spec, retry_after=left)
                account.in_demand = True
                empty = empty or Verdict(Outcome.EMPTY, counted.name, limit, spec)
        return empty or Verdict(Outcome.OK)

    def admit(self, covering: Covering) -> Ticket:
        """Count the request against every covering counter (after an OK verdict)."""
        later: list[AccountKey] = []
        for counted, spec in covering:
            for limit in spec.limits():
                account = self._account(counted, spec, limit)
                account.in_demand = True
                if limit is budget_specs.Limit.REQUESTS:
                    account.balance -= 1
                    account.used += 1
                else:
                    later.append((counted, limit, account.window))
        return Ticket(tuple(later))

    def settle(self, ticket: Ticket, *, tokens: int, micro_usd: int) -> None:
        """What an admitted request cost, once known; charged to the window it was admitted in."""
        for counted, limit, window in ticket.accounts:
            amount = tokens if limit is budget_specs.Limit.TOKENS else micro_usd
            account = self._accounts.get((counted, limit))
            if account is not None and account.window == window:
                account.balance -= amount
                account.used += amount
            elif amount:
                self._late[(counted, limit, window)] = self._late.get((counted, limit, window), 0) + amount

    def fail_open(self) -> int:
        """The operator is unreachable: every empty account not yet failed open this window takes its
        fail-open allowance. Returns how many did."""
        opened = 0
        for account in self._accounts.values():
            self._roll(account)
            if account.balance <= 0 and not account.exhausted and not account.failed_open:
                account.balance += account.grant
                account.failed_open = True
                opened += 1
        return opened

    def asks(self) -> list[protocol.Ask]:
        """One report per account and per late window; an account in demand asks for a top-up when below
        half a grant."""
        out = []
        for (counted, limit), account in self._accounts.items():
            self._roll(account)
            want = account.in_demand and account.balance < (account.grant + 1) // 2
            if want or account.used:
                out.append(_ask(counted, limit, account.window, used=account.used, balance=account.balance, want=want))
        for (counted, limit, window), used in self._late.items():
            out.append(_ask(counted, limit, window, used=used, balance=0, want=False))
        return out

    def reported(self, asks: Sequence[protocol.Ask], grants: Sequence[protocol.Grant]) -> None:
        """The operator took ``asks`` and answered ``grants``: usage reported is no longer owed."""
        for ask in asks:
            account = self._accounts.get((ask.counted(), ask.limit))
            if account is not None and account.window == ask.window:
                account.used -= ask.used
            elif (key := (ask.counted(), ask.limit, ask.window)) in self._late:
                left = self._late.pop(key) - ask.used
                if left:
                    self._late[key] = left
        for grant in grants:
            account = self._accounts.get((grant.counted(), grant.limit))
            if account is not None and account.window == grant.window:
                account.balance += grant.amount
                account.exhausted = grant.exhausted

    def forget_except(self, kept: set[budget_specs.Counted]) -> None:
        """Counters gone from the routes document: drop their accounts (their late usage is still reported)."""
        for key in [key for key in self._accounts if key[0] not in kept]:
            del self._accounts[key]

    def _account(
        self, counted: budget_specs.Counted, spec: budget_specs.BudgetSpec, limit: budget_specs.Limit
    ) -> Account:
        account = self._accounts.get((counted, limit))
        value = spec.limit_of(limit) or 1
        if account is None:
            window = windows.window_of(limit, spec.spend_period, wall=self._wall())
            account = self._accounts[(counted, limit)] = Account(window.key, window.ends_at, windows.grant_size(value))
        account.grant = windows.grant_size(value)
        self._roll(account, spec)
        return account

    def _roll(self, account: Account, spec: budget_specs.BudgetSpec | None = None) -> None:
        """A new window: unreported usage of the old one moves to ``_late``; the allowance starts afresh."""
        if self._wall() < account.ends_at:
            return
        key = next(k for k, a in self._accounts.items() if a is account)
        if account.used:
            late = (key[0], key[1], account.window)
            self._late[late] = self._late.get(late, 0) + account.used
        period = spec.spend_period if spec else _period_of_key(account.window)
        window = windows.window_of(key[1], period, wall=self._wall())
        account.window, account.ends_at = window.key, window.ends_at
        account.balance, account.used, account.exhausted, account.failed_open = 0, 0, False, False
        account.in_demand = False


def _ask(
    counted: budget_specs.Counted, limit: budget_specs.Limit, window: str, *, used: int, balance: int, want: bool
) -> protocol.Ask:
    return protocol.Ask(
        kind=counted.kind,
        budget=counted.name,
        member=counted.member,
        limit=limit,
        window=window,
        used=used,
        balance=balance,
        want=want,
    )


def _period_of_key(window: str) -> budget_specs.Period:
    """A spend window's key is a day (2026-12-02) or a month (2026-12); rate windows ignore the period."""
    return budget_specs.Period.MONTH if len(window) == len("2026-12") else budget_specs.Period.DAY
