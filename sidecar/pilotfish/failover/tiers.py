"""decide(): which tier of a class with tiers serves one request, and where escalation goes next. Pure.

``server.tiering`` calls it once per request, before the engine plans: the chosen tier's route is what
the engine plans and attempts, and the tiers above it are handed to the same engine loop as its
escalation, tried only after every member of the chosen tier has failed. Rules are evaluated in order,
first match wins; a rule matches when every condition it sets holds. No I/O, no clock: the same facts
always give the same decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from pilotfish.routes import document
from pilotfish.specs import tiers as tiers_specs  # `tiers` names the route's field below

DEFAULT_REASON = "default"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RequestFacts:
    """What the rules may look at; gathered by the server from the request and the pod."""

    prompt_tokens: int  # the estimate the context-window check uses
    has_tools: bool
    has_response_format: bool
    max_tokens: int | None
    headers: Mapping[str, str]  # the request's headers; aiohttp's are case-insensitive
    pod_labels: Mapping[str, str]  # the calling pod's labels (the downward API file), empty when unknown


@dataclasses.dataclass(frozen=True, slots=True)
class TierDecision:
    """The tier chosen, why (``rules[2]`` or ``default``), and the tiers escalation would try next."""

    tier: str
    reason: str
    escalation: tuple[str, ...]


def decide(tiers: document.TiersRoute, facts: RequestFacts) -> TierDecision:
    """The first rule that matches, else the default."""
    for index, rule in enumerate(tiers.rules):
        if matches(rule.when, facts):
            return TierDecision(rule.tier, f"rules[{index}]", tiers.above(rule.tier))
    return TierDecision(tiers.default, DEFAULT_REASON, tiers.above(tiers.default))


def decide_by_context(
    tiers: document.TiersRoute,
    *,
    headers: Mapping[str, str],
    pod_labels: Mapping[str, str],
) -> TierDecision:
    """For a request that is not a chat (embeddings): a rule with a condition on the chat itself (prompt
    size, tools, response_format, max_tokens) cannot hold, so only rules on the request's headers and the
    calling pod's labels are evaluated, in order; else the default. The app that asks for the frontier
    tier, or the pod of a team routed there, gets it for its embeddings too."""
    context = RequestFacts(
        prompt_tokens=0,
        has_tools=False,
        has_response_format=False,
        max_tokens=None,
        headers=headers,
        pod_labels=pod_labels,
    )
    for index, rule in enumerate(tiers.rules):
        if not reads_the_chat(rule.when) and matches(rule.when, context):
            return TierDecision(rule.tier, f"rules[{index}]", tiers.above(rule.tier))
    return TierDecision(tiers.default, DEFAULT_REASON, tiers.above(tiers.default))


def reads_the_chat(when: tiers_specs.TierMatch) -> bool:
    """Whether ``when`` sets a condition only a chat request has."""
    chat_only = (
        when.prompt_tokens_at_least,
        when.prompt_tokens_below,
        when.has_tools,
        when.has_response_format,
        when.max_tokens_at_least,
    )
    return any(condition is not None for condition in chat_only)


def matches(when: tiers_specs.TierMatch, facts: RequestFacts) -> bool:
    """Every condition ``when`` sets holds for ``facts``."""
    checks = (
        when.prompt_tokens_at_least is None or facts.prompt_tokens >= when.prompt_tokens_at_least,
        when.prompt_tokens_below is None or facts.prompt_tokens < when.prompt_tokens_below,
        when.has_tools is None or facts.has_tools == when.has_tools,
        when.has_response_format is None or facts.has_response_format == when.has_response_format,
        when.max_tokens_at_least is None or (facts.max_tokens or 0) >= when.max_tokens_at_least,
        when.header is None or facts.headers.get(when.header.name) in when.header.values,
        not when.pod_labels or all(facts.pod_labels.get(k) == v for k, v in when.pod_labels.items()),
    )
    return all(checks)
