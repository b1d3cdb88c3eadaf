"""A Budget's limits and a member's provider quota, as the allowances count them.

``pilotfish.api.budget`` documents the Budget object and re-exports the enums and constants defined
here; ``BudgetSpec`` is the spec as the routes document carries it, with the arithmetic the
allowances (sidecar) and the grants (operator) share.
"""

from __future__ import annotations

import enum
from typing import Annotated, NamedTuple

import msgspec

from pilotfish.specs import structs

MAX_CLASSES = 64
MAX_REQUESTS_PER_MINUTE = 10_000_000
MAX_TOKENS_PER_MINUTE = 10_000_000_000
ClassName = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]


class Action(enum.StrEnum):
    REJECT = "reject"
    DOWNGRADE = "downgrade"


class Period(enum.StrEnum):
    DAY = "day"
    MONTH = "month"


class Limit(enum.StrEnum):
    """The counters a Budget can keep; each one a separate window and allowance."""

    REQUESTS = "requests"  # per minute
    TOKENS = "tokens"  # per minute, prompt + completion
    SPEND = "spend"  # micro-USD per day or month


class CountedKind(enum.StrEnum):
    """What an allowance counter counts (the operator keeps each in its object's status)."""

    BUDGET = "budget"  # a Budget: status.requests|tokens|spend
    QUOTA = "quota"  # a ModelClass member's provider quota (rpm, tpm): status.quotas[<member id>]


class Counted(NamedTuple):
    """One thing the sidecars count together: a Budget by name, or one member's provider quota."""

    kind: CountedKind
    name: str  # the Budget's name, or the ModelClass's
    member: str = ""  # a quota's member id, "<credential>/<model>"

    @classmethod
    def of_budget(cls, name: str) -> Counted:
        return cls(CountedKind.BUDGET, name)

    @classmethod
    def of_quota(cls, class_name: str, member_id: str) -> Counted:
        return cls(CountedKind.QUOTA, class_name, member_id)

    def describe(self) -> str:
        return self.name if self.kind is CountedKind.BUDGET else f"{self.name}/{self.member}"


class SpendLimit(structs.Spec, frozen=True, kw_only=True):
    usd: Annotated[float, msgspec.Meta(gt=0, le=1e9)]
    period: Period = Period.DAY


class BudgetSpec(structs.Spec, frozen=True, kw_only=True):
    """spec of a Budget: at least one limit; ``downgradeTo`` exactly when the action is downgrade."""

    classes: Annotated[tuple[ClassName, ...], msgspec.Meta(max_length=MAX_CLASSES)] = ()
    requests_per_minute: Annotated[int, msgspec.Meta(ge=1, le=MAX_REQUESTS_PER_MINUTE)] | None = None
    tokens_per_minute: Annotated[int, msgspec.Meta(ge=1, le=MAX_TOKENS_PER_MINUTE)] | None = None
    spend: SpendLimit | None = None
    action: Action = Action.REJECT
    downgrade_to: Annotated[str, msgspec.Meta(min_length=1, max_length=253)] | None = None

    def __post_init__(self) -> None:
        if self.requests_per_minute is None and self.tokens_per_minute is None and self.spend is None:
            raise ValueError("set at least one of requestsPerMinute, tokensPerMinute, spend")
        if (self.action is Action.DOWNGRADE) != (self.downgrade_to is not None):
            raise ValueError("downgradeTo is required with action downgrade, and only then")
        if self.downgrade_to is not None and self.downgrade_to in self.classes:
            raise ValueError(f"downgradeTo {self.downgrade_to!r} is one of the classes this budget covers")

    def limit_of(self, limit: Limit) -> int | None:
        """The limit in counter units (requests, tokens, micro-USD); None when not set."""
        if limit is Limit.REQUESTS:
            return self.requests_per_minute
        if limit is Limit.TOKENS:
            return self.tokens_per_minute
        return round(self.spend.usd * 1_000_000) if self.spend else None

    @property
    def spend_period(self) -> Period:
        """The period of the spend window; a day when no spend is declared (the rates count per minute)."""
        return self.spend.period if self.spend else Period.DAY

    def limits(self) -> tuple[Limit, ...]:
        return tuple(limit for limit in Limit if self.limit_of(limit) is not None)

    def covers(self, class_name: str) -> bool:
        if class_name == self.downgrade_to:
            return False
        return not self.classes or class_name in self.classes


def rate_limits(*, requests_per_minute: int | None, tokens_per_minute: int | None) -> BudgetSpec | None:
    """Per-minute limits counted like a Budget's (a ModelClass member's provider quota); None when neither is set."""
    if requests_per_minute is None and tokens_per_minute is None:
        return None
    return BudgetSpec(requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute)
