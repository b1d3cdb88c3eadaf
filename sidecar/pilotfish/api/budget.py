"""Budget: a team's spend budget and rate limits, enforced together by every sidecar of its namespace.

A namespaced object, one per team limit (``kubectl get budgets``). It covers some classes of its
namespace (``classes``; empty: all of them) and states the limits the namespace must stay inside:
requests and tokens per minute, USD per day or month (from the cost the sidecar already computes).
``action`` says what a sidecar does when a limit is reached: ``reject`` (429 with Retry-After) or
``downgrade`` (serve the request from the cheaper class ``downgradeTo``). docs/budgets.md has the
design: the operator keeps the counters, each sidecar spends a local allowance it refills.
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic

from pilotfish.api import base
from pilotfish.specs import budget as budget_specs

KIND = "Budget"
PLURAL = "budgets"
SHORT_NAMES = ("pfbudget",)
# One definition of each, shared with the sidecar's runtime specs (which never import pydantic).
MAX_CLASSES = budget_specs.MAX_CLASSES
MAX_REQUESTS_PER_MINUTE = budget_specs.MAX_REQUESTS_PER_MINUTE
MAX_TOKENS_PER_MINUTE = budget_specs.MAX_TOKENS_PER_MINUTE
ClassName = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=253)]
Action = budget_specs.Action
Period = budget_specs.Period
Limit = budget_specs.Limit
CountedKind = budget_specs.CountedKind
Counted = budget_specs.Counted
rate_limits = budget_specs.rate_limits


class SpendLimit(base.ApiModel):
    usd: float = pydantic.Field(gt=0, le=1e9, description="The most the covered classes may cost per period, in USD.")
    period: Period = pydantic.Field(default=Period.DAY, description="day or month, in UTC calendar terms.")


class BudgetSpec(base.ApiModel):
    """spec of a Budget: at least one limit; ``downgradeTo`` exactly when the action is downgrade."""

    classes: list[ClassName] = pydantic.Field(
        default_factory=list,
        max_length=MAX_CLASSES,
        description="Classes of this namespace the budget covers; empty covers every class.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    requests_per_minute: int | None = pydantic.Field(default=None, ge=1, le=MAX_REQUESTS_PER_MINUTE)
    tokens_per_minute: int | None = pydantic.Field(default=None, ge=1, le=MAX_TOKENS_PER_MINUTE)
    spend: SpendLimit | None = None
    action: Action = pydantic.Field(
        default=Action.REJECT,
        description="reject: a 429 with Retry-After; downgrade: the request is served by downgradeTo instead.",
    )
    downgrade_to: str | None = pydantic.Field(
        default=None, min_length=1, max_length=253, description="The cheaper class (action downgrade)."
    )

    @pydantic.model_validator(mode="after")
    def _coherent(self) -> BudgetSpec:
        """The runtime twin's rules (one definition): the webhook, the operator and the sidecar refuse alike."""
        self.to_runtime(budget_specs.BudgetSpec)  # its ValueError names the rule, as pydantic shows it
        return self


class Budget(base.ApiModel):
    """A whole Budget object as ``kubectl apply`` takes it."""

    model_config = pydantic.ConfigDict(extra="ignore")
    api_version: Literal["pilotfish.dev/v1alpha1"] = "pilotfish.dev/v1alpha1"
    kind: Literal["Budget"] = "Budget"
    metadata: base.ObjectMeta
    spec: BudgetSpec
