"""failover.tiers.decide: which tier serves a request, by rules on what the request shows."""

from __future__ import annotations

import msgspec
import pytest

from pilotfish.failover import tiers
from pilotfish.routes import document
from pilotfish.specs import tiers as tiers_specs


def ladder(*rules: dict[str, object], escalate: bool = True, default: str = "cheap") -> document.TiersRoute:
    return document.TiersRoute(
        ladder=("cheap", "mid", "frontier"),
        default=default,
        rules=tuple(msgspec.convert(rule, tiers_specs.TierRule) for rule in rules),
        escalate=escalate,
    )


def facts(**overrides: object) -> tiers.RequestFacts:
    base: dict[str, object] = {
        "prompt_tokens": 100,
        "has_tools": False,
        "has_response_format": False,
        "max_tokens": None,
        "headers": {},
        "pod_labels": {},
    }
    return tiers.RequestFacts(**{**base, **overrides})  # type: ignore[arg-type]


def test_no_rule_matching_means_the_default_tier_and_escalation_up_the_ladder():
    decision = tiers.decide(ladder({"tier": "frontier", "when": {"hasTools": True}}), facts())
    assert decision == tiers.TierDecision("cheap", "default", ("mid", "frontier"))


def test_the_first_matching_rule_wins_and_is_named_by_its_index():
    rules = ladder(
        {"tier": "mid", "when": {"promptTokensAtLeast": 50}},
        {"tier": "frontier", "when": {"promptTokensAtLeast": 10}},
    )
    assert tiers.decide(rules, facts()) == tiers.TierDecision("mid", "rules[0]", ("frontier",))


@pytest.mark.parametrize(
    ("when", "matching", "not_matching"),
    [
        ({"promptTokensAtLeast": 4000}, {"prompt_tokens": 4000}, {"prompt_tokens": 3999}),
        ({"promptTokensBelow": 500}, {"prompt_tokens": 499}, {"prompt_tokens": 500}),
        ({"hasTools": True}, {"has_tools": True}, {"has_tools": False}),
        ({"hasTools": False}, {"has_tools": False}, {"has_tools": True}),
        ({"hasResponseFormat": True}, {"has_response_format": True}, {}),
        ({"maxTokensAtLeast": 2048}, {"max_tokens": 4096}, {"max_tokens": None}),
        (
            {"header": {"name": "x-pilotfish-tier", "values": ["frontier", "best"]}},
            {"headers": {"x-pilotfish-tier": "best"}},
            {"headers": {"x-pilotfish-tier": "Frontier"}},
        ),
        (
            {"podLabels": {"team": "research", "env": "prod"}},
            {"pod_labels": {"team": "research", "env": "prod", "app": "x"}},
            {"pod_labels": {"team": "research"}},
        ),
    ],
)
def test_each_condition_matches_exactly_what_it_says(when, matching, not_matching):
    rules = ladder({"tier": "frontier", "when": when})
    assert tiers.decide(rules, facts(**matching)).tier == "frontier"
    assert tiers.decide(rules, facts(**not_matching)).tier == "cheap"


def test_every_condition_of_a_rule_must_hold():
    rules = ladder({"tier": "frontier", "when": {"hasTools": True, "promptTokensAtLeast": 1000}})
    assert tiers.decide(rules, facts(has_tools=True, prompt_tokens=999)).tier == "cheap"
    assert tiers.decide(rules, facts(has_tools=True, prompt_tokens=1000)).tier == "frontier"


def test_the_top_tier_has_nowhere_to_escalate_and_escalation_can_be_turned_off():
    assert tiers.decide(ladder(default="frontier"), facts()).escalation == ()
    assert tiers.decide(ladder(escalate=False), facts()).escalation == ()


def test_a_request_that_is_not_a_chat_is_matched_only_by_rules_on_headers_and_pod_labels():
    rules = ladder(
        {"tier": "frontier", "when": {"hasTools": False}},  # holds for no tools, but reads the chat: skipped
        {"tier": "frontier", "when": {"promptTokensBelow": 10**6}},
        {"tier": "frontier", "when": {"podLabels": {"team": "research"}, "maxTokensAtLeast": 1}},
        {"tier": "mid", "when": {"header": {"name": "x-pilotfish-tier", "values": ["mid"]}}},
        {"tier": "frontier", "when": {"podLabels": {"team": "research"}}},
        default="cheap",
    )
    plain = tiers.decide_by_context(rules, headers={}, pod_labels={})
    assert plain == tiers.TierDecision("cheap", "default", ("mid", "frontier"))
    asked = tiers.decide_by_context(rules, headers={"x-pilotfish-tier": "mid"}, pod_labels={"team": "research"})
    assert asked == tiers.TierDecision("mid", "rules[3]", ("frontier",))
    research = tiers.decide_by_context(rules, headers={}, pod_labels={"team": "research"})
    assert research == tiers.TierDecision("frontier", "rules[4]", ())
