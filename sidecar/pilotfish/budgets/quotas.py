"""Provider quotas per member (``rpm``, ``tpm``): may this attempt go to this member, within its share?

``failover.engine`` asks ``take`` before each attempt on a member that declares a quota; a member whose
share of the minute is spent is skipped (``quota_spent``) and the next member tried, before the provider
has to answer 429. What the attempt cost in tokens is ``settle``d once the request ends.

The engine sees one small interface (``Quotas``); ``Shared`` implements it: each member quota is one
more counter of the budget allowances (``budgets.allowances``). In a cluster the operator keeps the count
in the ModelClass's status and every sidecar spends a local allowance it reports against and refills,
with the Budgets' overshoot bound and fail-open rule (docs/quotas.md); in ``pilotfish local`` the one
process is the whole fleet and ``budgets.counters`` keeps the count in memory, by the same rules.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from pilotfish.budgets import allowances, ledger
from pilotfish.routes import document
from pilotfish.specs import budget


@dataclasses.dataclass(frozen=True, slots=True)
class Take:
    """What ``take`` decided for one attempt: go (and settle ``ticket`` later), or skip for ``retry_after`` s."""

    ok: bool
    ticket: ledger.Ticket | None = None
    retry_after: float = 0.0  # not ok: seconds until the member's quota window ends
    failed_open: bool = False  # ok only because the operator could not be reached (within the bound)


class Quotas(Protocol):
    """Who counts member quotas for the engine."""

    async def take(self, class_name: str, member: document.MemberRoute) -> Take: ...

    def settle(self, ticket: ledger.Ticket | None, *, tokens: int) -> None: ...


class Shared:
    """Member quotas counted across the fleet, as counters of the budget allowances."""

    def __init__(self, keeper: allowances.Allowances) -> None:
        self._keeper = keeper

    async def take(self, class_name: str, member: document.MemberRoute) -> Take:
        spec = member.quota()
        if spec is None:
            return Take(True)
        covering = [(budget.Counted.of_quota(class_name, member.id), spec)]
        verdict, failed_open = await self._keeper.verdict(covering)
        if verdict.outcome is not ledger.Outcome.OK:
            return Take(False, retry_after=verdict.retry_after, failed_open=failed_open)
        return Take(True, self._keeper.ledger.admit(covering), failed_open=failed_open)

    def settle(self, ticket: ledger.Ticket | None, *, tokens: int) -> None:
        self._keeper.settle(ticket, tokens=tokens, micro_usd=0)
