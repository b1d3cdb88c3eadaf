import base64

from pilotfish.api import manifests

GOOD = """\
apiVersion: v1
kind: Secret
metadata: {{name: keys}}
data: {{openai: {}}}
stringData: {{anthropic: sk-plain}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: ignored}}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: openai-prod}}
spec: {{provider: openai, apiKeySecretRef: {{name: keys, key: openai}}}}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {{name: workhorse, namespace: team-a}}
spec:
  members: [{{credentialRef: openai-prod, model: gpt-5-mini}}]
""".format(base64.b64encode(b"sk-from-data\n").decode())


def test_a_multi_document_file_yields_typed_objects_and_ignores_other_kinds():
    parsed = manifests.parse_text(GOOD, source="all.yaml", namespace="default")
    assert parsed.errors == []
    assert [c.metadata.name for c in parsed.classes] == ["workhorse"]
    assert parsed.classes[0].metadata.namespace == "team-a"
    assert parsed.credentials[0].metadata.namespace == "default"
    secret = parsed.secrets[0]
    assert secret.data["openai"].reveal() == "sk-from-data"
    assert secret.data["anthropic"].reveal() == "sk-plain"
    assert "sk-" not in repr(secret)


def test_string_data_wins_over_data_like_the_api_server():
    text = "apiVersion: v1\nkind: Secret\nmetadata: {{name: k}}\ndata: {{a: {}}}\nstringData: {{a: plain}}\n".format(
        base64.b64encode(b"x").decode()
    )
    assert manifests.parse_text(text, source="s", namespace="d").secrets[0].data["a"].reveal() == "plain"


def test_errors_name_the_file_document_object_and_field():
    text = GOOD.replace("model: gpt-5-mini", "modle: gpt-5-mini").replace("provider: openai,", "provider: opneai,")
    parsed = manifests.parse_text(text, source="all.yaml", namespace="default")
    messages = [str(e) for e in parsed.errors]
    assert 'all.yaml (document 3) ProviderCredential "openai-prod": spec.provider: Input should be ' in messages[0]
    assert messages[1] == 'all.yaml (document 4) ModelClass "workhorse": spec.members[0].model: Field required'
    assert (
        messages[2]
        == 'all.yaml (document 4) ModelClass "workhorse": spec.members[0].modle: Extra inputs are not permitted'
    )


def test_bad_base64_and_bad_yaml_are_reported_not_raised():
    bad_b64 = manifests.parse_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: k}\ndata: {a: '***'}\n",
        source="s.yaml",
        namespace="d",
    )
    assert str(bad_b64.errors[0]) == 's.yaml Secret "k": data.a: not valid base64 (use stringData for plain text)'
    bad_yaml = manifests.parse_text("kind: [unclosed", source="b.yaml", namespace="d")
    assert str(bad_yaml.errors[0]).startswith("b.yaml: invalid YAML:")


def test_a_cross_field_rule_is_reported_on_the_spec():
    text = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {name: local}
spec: {provider: openai-compatible}
"""
    [error] = manifests.parse_text(text, source="c.yaml", namespace="d").errors
    assert (
        str(error)
        == 'c.yaml ProviderCredential "local": spec: Value error, baseURL is required for provider openai-compatible'
    )


def test_folders_are_read_recursively_in_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "class.yaml").write_text(GOOD.split("---\n")[3])
    (tmp_path / "a.yml").write_text(GOOD.split("---\n")[2])
    (tmp_path / "notes.txt").write_text("not yaml")
    parsed = manifests.load_paths([tmp_path], namespace="default")
    assert parsed.errors == [] and len(parsed.classes) == 1 and len(parsed.credentials) == 1


BUDGET = """\
apiVersion: pilotfish.dev/v1alpha1
kind: Budget
metadata: {name: team}
spec: {classes: [workhorse], requestsPerMinute: 10, action: downgrade, downgradeTo: cheap}
"""


def test_budgets_are_read_like_the_other_kinds_and_their_errors_name_the_field():
    parsed = manifests.parse_text(GOOD + "---\n" + BUDGET, source="all.yaml", namespace="team-a")
    assert [(b.metadata.name, b.metadata.namespace) for b in parsed.budgets] == [("team", "team-a")]
    assert parsed.budgets[0].spec.requests_per_minute == 10
    broken = BUDGET.replace("requestsPerMinute: 10", "requestsPerMinute: 0")
    [error] = manifests.parse_text(broken, source="b.yaml", namespace="d").errors
    assert str(error) == 'b.yaml Budget "team": spec.requestsPerMinute: Input should be greater than or equal to 1'
    incoherent = BUDGET.replace(", downgradeTo: cheap", "")
    [error] = manifests.parse_text(incoherent, source="b.yaml", namespace="d").errors
    assert str(error) == (
        'b.yaml Budget "team": spec: Value error, downgradeTo is required with action downgrade, and only then'
    )
