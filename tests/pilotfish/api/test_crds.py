import pathlib

import yaml

from pilotfish.api import crds

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_the_committed_crds_match_the_api_models():
    for name, text in crds.render_crds().items():
        committed = (ROOT / "crds" / name).read_text()
        assert committed == text, f"crds/{name} is stale: run `pilotfish crds`"


def _walk(node, path="spec"):
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _walk(node[key], f"{path}[{key}]")


def test_the_schemas_are_structural():
    for text in crds.render_crds().values():
        crd = yaml.safe_load(text)
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        for path, node in _walk(schema):
            assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
            assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
            assert not ("properties" in node and "additionalProperties" in node), path
            assert not isinstance(node.get("exclusiveMinimum"), (int, float)) or isinstance(
                node["exclusiveMinimum"], bool
            ), path


def test_required_fields_and_enums_reach_the_schema():
    by_name = {yaml.safe_load(t)["spec"]["names"]["kind"]: yaml.safe_load(t) for t in crds.render_crds().values()}
    mc = by_name["ModelClass"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "required" not in mc  # members or tiers: a CEL rule says which
    assert mc["x-kubernetes-validations"][-5]["message"] == (
        "set exactly one of members (a class of models) and tiers (a class of classes)"
    )
    assert mc["properties"]["tiers"]["required"] == ["ladder", "default"]
    assert mc["properties"]["members"]["items"]["required"] == ["credentialRef", "model"]
    assert mc["x-kubernetes-validations"][0]["message"] == "members must be unique by credentialRef and model"
    pc = by_name["ProviderCredential"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert pc["properties"]["provider"]["enum"] == [
        "openai",
        "openai-compatible",
        "anthropic",
        "gemini",
        "azure-openai",
    ]
    assert "baseURL" in pc["properties"]
    assert by_name["ProviderCredential"]["spec"]["names"]["shortNames"] == ["pcred"]
