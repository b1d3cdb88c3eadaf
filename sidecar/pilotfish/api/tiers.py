"""Tiers: a ModelClass that routes each request to one of several other classes, by rules on the request.

An app asks for ``assistant``; ``assistant`` has no members of its own but a ladder of classes, cheapest
first (``[cheap, frontier]``). Rules, first match wins, pick the tier from what the request shows (its
size, tools, ``response_format``, ``max_tokens``, a header the app sets, the calling pod's labels);
otherwise ``default``. When every member of the chosen tier has failed, the next tier up the ladder
answers (``escalate``). ``failover.tiers`` evaluates these rules; ``routes.render`` resolves the ladder.
"""

from __future__ import annotations

from typing import Annotated

import pydantic

from pilotfish.api import base
from pilotfish.specs import tiers as tiers_specs

MAX_TIERS = tiers_specs.MAX_TIERS
MAX_RULES = tiers_specs.MAX_RULES
HEADER_NAME_PATTERN = tiers_specs.HEADER_NAME_PATTERN  # an HTTP header name (RFC 9110 token)
ClassName = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=253)]
HeaderValue = Annotated[str, pydantic.StringConstraints(max_length=256)]


class HeaderMatch(base.ApiModel):
    """A request header the app sets, such as x-pilotfish-tier: frontier."""

    name: str = pydantic.Field(min_length=1, max_length=128, pattern=HEADER_NAME_PATTERN)
    values: list[HeaderValue] = pydantic.Field(
        min_length=1,
        max_length=16,
        description="The rule matches when the header's value is one of these (exact, case-sensitive).",
    )


class TierMatch(base.ApiModel):
    """Conditions on one request; every condition given must hold. At least one must be given."""

    prompt_tokens_at_least: int | None = pydantic.Field(
        default=None, ge=0, description="The prompt's estimated size (about 4 characters a token) is at least this."
    )
    prompt_tokens_below: int | None = pydantic.Field(
        default=None, ge=1, description="The prompt's estimated size is below this."
    )
    has_tools: bool | None = pydantic.Field(default=None, description="The request declares tools (or not).")
    has_response_format: bool | None = pydantic.Field(
        default=None, description="The request sets response_format (or not)."
    )
    max_tokens_at_least: int | None = pydantic.Field(
        default=None, ge=1, description="The request's max_tokens (or max_completion_tokens) is at least this."
    )
    header: HeaderMatch | None = None
    pod_labels: dict[Annotated[str, pydantic.StringConstraints(max_length=317)], HeaderValue] | None = pydantic.Field(
        default=None,
        max_length=16,
        description="The calling pod carries every one of these labels (known through the downward API).",
    )

    @pydantic.model_validator(mode="after")
    def _not_empty(self) -> TierMatch:
        """The runtime twin's rule (one definition): the webhook and the sidecar refuse alike."""
        self.to_runtime(tiers_specs.TierMatch)
        return self


class TierRule(base.ApiModel):
    """Send the requests that match `when` to the class `tier`."""

    tier: str = pydantic.Field(min_length=1, max_length=253, description="A class of the ladder.")
    when: TierMatch


class TiersSpec(base.ApiModel):
    """spec.tiers: route each request to one class of ``ladder``."""

    ladder: list[ClassName] = pydantic.Field(
        min_length=1,
        max_length=MAX_TIERS,
        description="ModelClasses of this namespace, cheapest first; escalation moves up this list.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    default: str = pydantic.Field(min_length=1, max_length=253, description="The tier when no rule matches.")
    rules: list[TierRule] = pydantic.Field(default_factory=list, max_length=MAX_RULES, description="First match wins.")
    escalate: bool = pydantic.Field(
        default=True,
        description="When every member of the chosen tier has failed, try the next tiers up the ladder.",
    )

    @pydantic.model_validator(mode="after")
    def _names_on_the_ladder(self) -> TiersSpec:
        if len(set(self.ladder)) != len(self.ladder):
            raise ValueError("ladder names a class twice")
        if self.default not in self.ladder:
            raise ValueError(f"default {self.default!r} is not on the ladder")
        for index, rule in enumerate(self.rules):
            if rule.tier not in self.ladder:
                raise ValueError(f"rules[{index}].tier {rule.tier!r} is not on the ladder")
        return self
