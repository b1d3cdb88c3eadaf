"""spec.tiers as pydantic (and so `pilotfish render`, `local` and the validating webhook) checks it."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from pilotfish.api import manifests, modelclass

MEMBERS = [{"credentialRef": "c", "model": "m"}]
TIERS: dict[str, Any] = {
    "ladder": ["cheap", "frontier"],
    "default": "cheap",
    "rules": [{"tier": "frontier", "when": {"header": {"name": "x-pilotfish-tier", "values": ["frontier"]}}}],
}


def problems(spec: dict[str, Any], name: str = "assistant") -> list[str]:
    obj = {"apiVersion": "pilotfish.dev/v1alpha1", "kind": "ModelClass", "metadata": {"name": name}, "spec": spec}
    try:
        modelclass.ModelClass.model_validate(obj)
    except pydantic.ValidationError as exc:
        return manifests.validation_lines(exc)
    return []


def test_a_class_with_tiers_and_no_members_is_valid_and_escalates_by_default():
    assert problems({"tiers": TIERS}) == []
    parsed = modelclass.ModelClassSpec.model_validate({"tiers": TIERS})
    assert parsed.members == [] and parsed.tiers is not None and parsed.tiers.escalate


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "spec: Value error, set exactly one of members (a class of models) and tiers (a class of classes)"),
        (
            {"members": MEMBERS, "tiers": TIERS},
            "spec: Value error, set exactly one of members (a class of models) and tiers (a class of classes)",
        ),
        ({"tiers": {**TIERS, "default": "mid"}}, "spec.tiers: Value error, default 'mid' is not on the ladder"),
        (
            {"tiers": {**TIERS, "rules": [{"tier": "mid", "when": {"hasTools": True}}]}},
            "spec.tiers: Value error, rules[0].tier 'mid' is not on the ladder",
        ),
        (
            {"tiers": {**TIERS, "ladder": ["cheap", "cheap"]}},
            "spec.tiers: Value error, ladder names a class twice",
        ),
        (
            {"tiers": {**TIERS, "rules": [{"tier": "frontier", "when": {}}]}},
            "spec.tiers.rules[0].when: Value error, set at least one condition (an empty match would catch every "
            "request)",
        ),
        (
            {
                "tiers": {
                    **TIERS,
                    "rules": [{"tier": "frontier", "when": {"header": {"name": "bad header", "values": ["x"]}}}],
                }
            },
            "spec.tiers.rules[0].when.header.name: String should match pattern",
        ),
    ],
)
def test_tier_mistakes_are_refused_naming_the_field(spec, message):
    assert any(line.startswith(message) for line in problems(spec)), problems(spec)


def test_a_has_tools_false_condition_counts_as_a_condition():
    assert problems({"tiers": {**TIERS, "rules": [{"tier": "frontier", "when": {"hasTools": False}}]}}) == []


def test_a_class_cannot_be_a_tier_of_itself():
    assert problems({"tiers": {**TIERS, "ladder": ["assistant", "cheap", "frontier"]}}) == [
        "Value error, spec.tiers.ladder names the class itself ('assistant')"
    ]


def test_a_canary_needs_members():
    canary = {"member": {"credentialRef": "c", "model": "new"}, "steps": [{"setWeight": 5}]}
    assert "canary needs members" in " ".join(problems({"tiers": TIERS, "canary": canary}))


def test_ladders_rules_and_matches_are_bounded():
    ladder = [f"t{i}" for i in range(9)]
    assert "spec.tiers.ladder: List should have at most 8 items" in " ".join(
        problems({"tiers": {"ladder": ladder, "default": "t0"}})
    )
    rules = [{"tier": "cheap", "when": {"hasTools": True}}] * 33
    assert "spec.tiers.rules: List should have at most 32 items" in " ".join(
        problems({"tiers": {**TIERS, "rules": rules}})
    )
    labels = {f"k{i}": "v" for i in range(17)}
    too_many = problems({"tiers": {**TIERS, "rules": [{"tier": "cheap", "when": {"podLabels": labels}}]}})
    assert any(
        line.startswith("spec.tiers.rules[0].when.podLabels: Dictionary should have at most 16") for line in too_many
    )
