"""Budget specs: what pydantic (and so `pilotfish render` and the validating webhook) refuses, naming the field."""

from __future__ import annotations

import pydantic
import pytest

from pilotfish.api import budget, manifests
from pilotfish.specs import budget as budget_specs
from pilotfish_operator import validate


def budget_object(**spec: object) -> dict[str, object]:
    return {"apiVersion": "pilotfish.dev/v1alpha1", "kind": "Budget", "metadata": {"name": "team"}, "spec": spec}


def problems(**spec: object) -> list[str]:
    return validate.problems(budget_object(**spec))


def test_a_budget_needs_a_limit():
    assert problems(classes=["workhorse"]) == [
        "spec: Value error, set at least one of requestsPerMinute, tokensPerMinute, spend"
    ]


def test_downgrade_needs_its_class_and_only_downgrade_has_one():
    assert "downgradeTo is required with action downgrade" in problems(requestsPerMinute=10, action="downgrade")[0]
    assert "downgradeTo is required" in problems(requestsPerMinute=10, downgradeTo="cheap")[0]
    assert (
        "is one of the classes this budget covers"
        in problems(requestsPerMinute=10, classes=["cheap"], action="downgrade", downgradeTo="cheap")[0]
    )


def test_bad_fields_are_named():
    assert problems(requestsPerMinute=0)[0].startswith("spec.requestsPerMinute:")
    assert problems(spend={"usd": 5, "period": "week"})[0].startswith("spec.spend.period:")
    assert problems(requestsPerMinute=5, limit=3)[0].startswith("spec.limit:")  # a typo is an error
    assert problems(requestsPerMinute=5) == []


def runtime(**fields: object) -> budget_specs.BudgetSpec:
    """The spec as the routes document carries it, which the allowances count with."""
    return budget.BudgetSpec.model_validate(fields).to_runtime(budget_specs.BudgetSpec)


def test_a_budget_covers_its_classes_but_never_its_own_cheaper_class():
    spec = runtime(requests_per_minute=5, action="downgrade", downgrade_to="cheap")
    assert spec.covers("workhorse") and not spec.covers("cheap")
    assert runtime(requests_per_minute=5, classes=["a"]).covers("a")
    assert not runtime(requests_per_minute=5, classes=["a"]).covers("b")


def test_limits_are_counted_in_requests_tokens_and_micro_dollars():
    spec = runtime(requests_per_minute=5, tokens_per_minute=7, spend={"usd": 1.5, "period": "month"})
    assert [spec.limit_of(limit) for limit in spec.limits()] == [5, 7, 1_500_000]


def test_pydantic_lines_match_what_the_webhook_says():
    with pytest.raises(pydantic.ValidationError) as caught:
        budget.Budget.model_validate(budget_object(tokensPerMinute=-1))
    assert manifests.validation_lines(caught.value) == problems(tokensPerMinute=-1)
