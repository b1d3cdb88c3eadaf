from pilotfish.api import manifests
from pilotfish.routes import render

BASE = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {name: eu}
spec: {provider: openai, apiKeySecretRef: {name: keys, key: eu}, compliance: {dpa: signed, region: eu}}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {name: us}
spec: {provider: openai-compatible, baseURL: "https://us.example/v1/", apiKeySecretRef: {name: keys, key: us}, compliance: {dpa: signed, region: us}}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: us, model: b, priority: 5}
    - {credentialRef: eu, model: a, priority: 1}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: eu-only}
spec:
  members:
    - {credentialRef: us, model: b}
    - {credentialRef: eu, model: a}
    - {credentialRef: missing, model: c}
  compliance: {require: {region: eu}}
"""


def _render(text, secrets=None):
    parsed = manifests.parse_text(text, source="t", namespace="team-a")
    assert parsed.errors == []
    return render.render(
        namespace="team-a", classes=parsed.classes, credentials=parsed.credentials, secrets_present=secrets
    )


def test_members_are_ordered_by_priority_and_resolved_against_their_credential():
    doc = _render(BASE).document
    members = doc.classes["workhorse"].members
    assert [m.id for m in members] == ["eu/a", "us/b"]
    assert members[0].base_url == "https://api.openai.com/v1"
    assert members[1].base_url == "https://us.example/v1"
    assert members[1].api_key_ref.name == "keys"


def test_compliance_and_missing_credentials_exclude_members_with_reasons():
    result = _render(BASE)
    assert [m.id for m in result.document.classes["eu-only"].members] == ["eu/a"]
    report = next(r for r in result.reports if r.name == "eu-only")
    reasons = {(m.credential_ref, m.reason): m.message for m in report.members if not m.eligible}
    assert reasons == {
        ("us", "ComplianceExcluded"): 'requires region="eu"; credential "us" has region="us"',
        ("missing", "CredentialNotFound"): 'ProviderCredential "missing" does not exist in this namespace',
    }


def test_missing_secrets_exclude_members_only_when_secrets_are_checked():
    assert len(_render(BASE).document.classes["workhorse"].members) == 2
    result = _render(BASE, secrets={"keys": {"eu"}})
    assert [m.id for m in result.document.classes["workhorse"].members] == ["eu/a"]
    assert 'member us/b excluded (SecretKeyMissing): Secret "keys" has no key "us"' in "\n".join(result.problems())
    gone = _render(BASE, secrets={})
    assert gone.document.classes == {}
    assert any("NoEligibleMembers" in line for line in gone.problems())


def test_a_broken_class_does_not_affect_the_others():
    text = (
        BASE
        + "---\napiVersion: pilotfish.dev/v1alpha1\nkind: ModelClass\nmetadata: {name: broken}\nspec:\n  members: [{credentialRef: nope, model: x}]\n"
    )
    result = _render(text)
    assert sorted(result.document.classes) == ["eu-only", "workhorse"]


def test_rendering_is_deterministic_and_never_contains_key_values():
    first, second = _render(BASE).document, _render(BASE).document
    assert first.to_json() == second.to_json() and first.digest() == second.digest()
    assert b"sk-" not in first.to_json()


def test_the_weighted_strategy_pools_members_without_explicit_priorities():
    text = BASE.replace(
        "    - {credentialRef: us, model: b, priority: 5}\n    - {credentialRef: eu, model: a, priority: 1}\n",
        "    - {credentialRef: us, model: b, weight: 3}\n    - {credentialRef: eu, model: a}\n    - {credentialRef: eu, model: c, priority: 2}\n  routing: {strategy: weighted}\n",
    )
    members = _render(text).document.classes["workhorse"].members
    assert [(m.id, m.priority, m.weight) for m in members] == [("us/b", 0, 3), ("eu/a", 0, 1), ("eu/c", 2, 1)]
    under_priority = (
        _render(text.replace("strategy: weighted", "strategy: priority")).document.classes["workhorse"].members
    )
    assert [(m.id, m.priority) for m in under_priority] == [("us/b", 0), ("eu/a", 1), ("eu/c", 2)]


CANARY = """\
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: rolling}
spec:
  members:
    - {credentialRef: eu, model: a}
  compliance: {require: {region: eu}}
  canary:
    member: {credentialRef: %s, model: a-next}
    steps: [{setWeight: 10}]
    stickiness: {header: x-conversation-id}
"""


def _render_canary(credential, weights):
    parsed = manifests.parse_text(BASE + CANARY % credential, source="t", namespace="team-a")
    assert parsed.errors == []
    return render.render(
        namespace="team-a", classes=parsed.classes, credentials=parsed.credentials, canary_weights=weights
    )


def test_a_canary_is_routed_only_at_the_weight_the_operator_set():
    assert _render_canary("eu", None).document.classes["rolling"].canary is None
    route = _render_canary("eu", {"rolling": 10}).document.classes["rolling"]
    assert route.canary is not None
    assert (route.canary.weight, route.canary.member.id, route.canary.stickiness_header) == (
        10,
        "eu/a-next",
        "x-conversation-id",
    )
    assert [m.id for m in route.members] == ["eu/a"]  # the stable members are unchanged


def test_a_canary_is_held_to_the_class_compliance_like_any_member():
    result = _render_canary("us", {"rolling": 10})
    assert result.document.classes["rolling"].canary is None
    assert any("canary us/a-next excluded (ComplianceExcluded)" in line for line in result.problems())


def test_budgets_are_rendered_and_one_naming_a_class_that_does_not_serve_is_reported():
    text = BASE + (
        "---\napiVersion: pilotfish.dev/v1alpha1\nkind: Budget\nmetadata: {name: team}\n"
        "spec: {classes: [workhorse, gone], requestsPerMinute: 5, action: downgrade, downgradeTo: nowhere}\n"
    )
    result = render.render_manifests(
        manifests.parse_text(text, source="b.yaml", namespace="team-a"), namespace="team-a"
    )
    assert result.document.budgets["team"].requests_per_minute == 5
    assert [line for line in result.problems() if line.startswith("Budget")] == [
        'Budget "team": spec.classes[1]: "gone" is not a class that can serve; it covers nothing yet',
        'Budget "team": spec.downgradeTo: "nowhere" is not a class that can serve; '
        "requests over this budget are rejected (429) instead",
    ]
