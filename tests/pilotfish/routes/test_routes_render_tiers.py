"""render() of a class with tiers: its ladder cut to the classes that can serve, and every cut reported."""

from pilotfish.api import manifests
from pilotfish.routes import render

CLASSES = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {name: vendor}
spec: {provider: openai}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: cheap}
spec: {members: [{credentialRef: vendor, model: small}]}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: frontier}
spec: {members: [{credentialRef: vendor, model: large}]}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: broken}
spec: {members: [{credentialRef: nobody, model: x}]}
"""


def render_with(tiers: str):
    text = CLASSES + "---\napiVersion: pilotfish.dev/v1alpha1\nkind: ModelClass\nmetadata: {name: assistant}\n"
    parsed = manifests.parse_text(text + f"spec: {{tiers: {tiers}}}\n", source="t", namespace="team-a")
    assert parsed.errors == []
    return render.render(namespace="team-a", classes=parsed.classes, credentials=parsed.credentials)


def report_of(result, name):
    return next(report for report in result.reports if report.name == name)


def test_a_class_with_tiers_renders_its_ladder_and_rules_and_no_members():
    result = render_with(
        "{ladder: [cheap, frontier], default: cheap, rules: [{tier: frontier, when: {hasTools: true}}]}"
    )
    route = result.document.classes["assistant"]
    assert route.members == () and route.tiers is not None
    assert (route.tiers.ladder, route.tiers.default, len(route.tiers.rules)) == (("cheap", "frontier"), "cheap", 1)
    assert route.tiers.above("cheap") == ("frontier",)
    assert report_of(result, "assistant").serves and result.problems() == [
        'ModelClass "broken": member nobody/x excluded (CredentialNotFound): '
        'ProviderCredential "nobody" does not exist in this namespace',
        'ModelClass "broken": NoEligibleMembers: no member can serve this class',
    ]


def test_a_tier_that_cannot_serve_is_cut_with_its_rules_and_a_missing_default_moves_up():
    result = render_with(
        "{ladder: [broken, missing, frontier], default: broken, rules: [{tier: broken, when: {hasTools: true}}]}"
    )
    tiers = result.document.classes["assistant"].tiers
    assert tiers is not None and (tiers.ladder, tiers.default, tiers.rules) == (("frontier",), "frontier", ())
    assert [line for line in result.problems() if line.startswith('ModelClass "assistant"')] == [
        'ModelClass "assistant": TierUnavailable: tier "broken" is not a class that can serve',
        'ModelClass "assistant": TierUnavailable: tier "missing" is not a class that can serve',
        'ModelClass "assistant": TierUnavailable: default tier "broken" is unavailable: "frontier" serves instead',
    ]


def test_a_class_none_of_whose_tiers_can_serve_is_left_out_and_reported():
    result = render_with("{ladder: [broken], default: broken}")
    assert "assistant" not in result.document.classes
    assert not report_of(result, "assistant").serves
    assert 'ModelClass "assistant": NoAvailableTiers: no tier can serve this class' in result.problems()
