"""The wire format between a sidecar and the operator's allowance endpoint. Pure data.

``POST /v1/namespaces/{namespace}/allowances`` with ``Authorization: Bearer <the pod's ServiceAccount
token>`` (audience ``pilotfish``). Each ask reports what the sidecar used of one limit of one counter (a
Budget, or a ModelClass member's provider quota: ``kind``) in one window since its last report, and may
ask for more. The operator answers each ask with a grant
(possibly of 0 units, ``exhausted``). A sidecar can only report and ask; it never sets a limit or a
counter, and the operator takes the namespace from the reviewed token, never from the body.
"""

from __future__ import annotations

import pydantic

from pilotfish.api import base
from pilotfish.api import budget as budget_api  # `budget` is a field name below
from pilotfish.budgets import windows

PATH = "/v1/namespaces/{namespace}/allowances"
AUDIENCE = "pilotfish"  # the projected token's audience: useless against the API server itself
MAX_ASKS = 256  # one per (budget, limit): a namespace with more budgets than this is not a real one
MAX_BODY_BYTES = 64 * 1024


class Counter(base.ApiModel):
    """Which counter an ask or a grant is about; the defaults keep a Budget-only sidecar's wire unchanged."""

    kind: budget_api.CountedKind = budget_api.CountedKind.BUDGET
    budget: str = pydantic.Field(min_length=1, max_length=253, description="The Budget, or a quota's ModelClass.")
    member: str = pydantic.Field(default="", max_length=512, description="A quota's member id (credential/model).")

    def counted(self) -> budget_api.Counted:
        return budget_api.Counted(self.kind, self.budget, self.member)


class Ask(Counter):
    limit: budget_api.Limit
    window: str = pydantic.Field(min_length=1, max_length=32)
    used: int = pydantic.Field(ge=0, le=10**15, description="Units used in window since the last report.")
    balance: int = pydantic.Field(ge=-(10**15), le=10**15, description="The local allowance left (negative: debt).")
    want: bool = pydantic.Field(description="Whether to top the allowance up to one grant.")


class AllowanceRequest(base.ApiModel):
    pod: str = pydantic.Field(default="", max_length=253, description="For the operator's log; not trusted.")
    asks: list[Ask] = pydantic.Field(max_length=MAX_ASKS)


class Grant(Counter):
    limit: budget_api.Limit
    window: str
    amount: int = pydantic.Field(ge=0, description="Units added to the sidecar's allowance (debt first).")
    exhausted: bool = pydantic.Field(description="The namespace has spent this window's limit.")
    retry_after: float = pydantic.Field(ge=0, description="Seconds until the window ends.")

    @classmethod
    def answering(cls, ask: Ask, window: windows.Window, *, amount: int, exhausted: bool, wall: float) -> Grant:
        """The answer to ``ask`` in ``window``, the operator's and the local counters' alike."""
        return cls(
            kind=ask.kind,
            budget=ask.budget,
            member=ask.member,
            limit=ask.limit,
            window=window.key,
            amount=amount,
            exhausted=exhausted,
            retry_after=max(0.0, window.ends_at - wall),
        )


class AllowanceReply(base.ApiModel):
    grants: list[Grant]


def to_wire(message: AllowanceRequest | AllowanceReply) -> dict[str, object]:
    """Without the fields at their defaults: a Budget's ask or grant reads as it did before quotas, so a
    sidecar and an operator of different versions still understand each other about Budgets."""
    return message.model_dump(by_alias=True, exclude_defaults=True, mode="json")
