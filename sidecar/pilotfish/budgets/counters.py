"""The namespace's counters kept in this process, for ``pilotfish local``: there the one process is the
whole fleet, so it grants its own allowances instead of asking the operator. Pure.

It answers the same allowance requests the operator answers (``protocol``), by the same rules: a grant
tops a sidecar's allowance up to one grant plus its debt, never past the limit of the window; once the
window's limit is given out the grant says ``exhausted``. So ``budgets.allowances`` and the ledger run
unchanged, and a Budget (or a member's provider quota, ``budgets.quotas``) behaves on a laptop as it does
in the cluster (with one pod: the overshoot
bound of docs/budgets.md with P = 1). The counters live as long as the process; a restart starts afresh.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from pilotfish.budgets import protocol, windows
from pilotfish.routes import document
from pilotfish.specs import budget as budget_specs  # `budget` is a field name below


@dataclasses.dataclass(slots=True)
class Counter:
    """One limit of one Budget in one window."""

    window: str
    granted: int = 0  # units handed out to the ledger in this window (at most the limit)
    used: int = 0  # units the ledger reported spent in this window


class Counters:
    """An allowance source (``allowances.Source``) that never leaves the process."""

    def __init__(self, *, wall: Callable[[], float]) -> None:
        self._wall = wall
        self._counters: dict[tuple[budget_specs.Counted, budget_specs.Limit], Counter] = {}

    async def exchange(
        self, request: protocol.AllowanceRequest, *, doc: document.RoutesDocument
    ) -> protocol.AllowanceReply:
        return self.grant(request, doc=doc)

    def grant(self, request: protocol.AllowanceRequest, *, doc: document.RoutesDocument) -> protocol.AllowanceReply:
        """Record the usage reported and grant what is asked for, within each limit of the current window."""
        grants = [g for ask in request.asks if (g := self._grant(ask, doc.limits_of(ask.counted()))) is not None]
        return protocol.AllowanceReply(grants=grants)

    def used(self, name: str, limit: budget_specs.Limit, *, member: str = "") -> int:
        """Units reported spent in the current window (0 once it has ended): of Budget ``name``, or of the
        quota of ``member`` in class ``name``."""
        counted = budget_specs.Counted.of_quota(name, member) if member else budget_specs.Counted.of_budget(name)
        counter = self._counters.get((counted, limit))
        return counter.used if counter is not None else 0

    def _grant(self, ask: protocol.Ask, spec: budget_specs.BudgetSpec | None) -> protocol.Grant | None:
        value = spec.limit_of(ask.limit) if spec else None
        if spec is None or value is None:
            return None  # a Budget or quota (or limit) no longer in the manifests: the ledger forgets it
        now = self._wall()
        window = windows.window_of(ask.limit, spec.spend_period, wall=now)
        counter = self._counters.get((ask.counted(), ask.limit))
        if counter is None or counter.window != window.key:
            counter = self._counters[(ask.counted(), ask.limit)] = Counter(window.key)
        if ask.window == window.key:
            counter.used += ask.used  # usage of an ended window is history: its counter is gone
        amount, exhausted = 0, False
        if ask.want and ask.window == window.key:
            need = max(0, windows.grant_size(value) - ask.balance)
            amount = max(0, min(need, value - counter.granted))
            counter.granted += amount
            exhausted = amount < need
        return protocol.Grant.answering(ask, window, amount=amount, exhausted=exhausted, wall=now)
