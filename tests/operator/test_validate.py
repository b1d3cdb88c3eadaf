"""The validating webhook's decision names the field, as `pilotfish render` would."""

from pilotfish_operator import validate


def test_a_valid_class_has_no_problems():
    obj = {
        "apiVersion": "pilotfish.dev/v1alpha1",
        "kind": "ModelClass",
        "metadata": {"name": "w"},
        "spec": {"members": [{"credentialRef": "c", "model": "m"}]},
    }
    assert validate.problems(obj) == []


def test_duplicate_members_are_named_by_field():
    member = {"credentialRef": "c", "model": "m"}
    obj = {
        "apiVersion": "pilotfish.dev/v1alpha1",
        "kind": "ModelClass",
        "metadata": {"name": "w"},
        "spec": {"members": [member, member]},
    }
    assert validate.problems(obj) == ["spec: Value error, members[1] repeats credentialRef 'c' with model 'm'"]


def test_a_credential_that_needs_a_base_url_says_so():
    obj = {
        "apiVersion": "pilotfish.dev/v1alpha1",
        "kind": "ProviderCredential",
        "metadata": {"name": "p"},
        "spec": {"provider": "openai-compatible", "apiKeySecretRef": {"name": "s", "key": "k"}},
    }
    assert any("baseURL" in line for line in validate.problems(obj))


def test_an_unknown_kind_is_refused():
    assert validate.problems({"kind": "Pod"}) == ["kind 'Pod' is not served by this webhook"]
