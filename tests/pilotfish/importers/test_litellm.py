"""`pilotfish import litellm`'s converter on LiteLLM's documented configurations and the issue's workhorse."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import yaml

from pilotfish.api import manifests
from pilotfish.importers import litellm
from pilotfish.routes import render

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
ALL_FIXTURES = sorted(path.name for path in FIXTURES.glob("*.yaml"))


def convert(name: str, **kwargs: Any) -> litellm.Conversion:
    return litellm.convert(litellm.parse_config((FIXTURES / name).read_text()), **kwargs)


def by_kind(conversion: litellm.Conversion, kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in conversion.documents if doc["kind"] == kind}


def warned(conversion: litellm.Conversion) -> list[str]:
    return [warning.setting for warning in conversion.warnings]


def test_the_workhorse_example_becomes_one_class_of_three_vendors():
    conversion = convert("workhorse.yaml")
    assert [doc["kind"] for doc in conversion.documents] == ["Secret"] + ["ProviderCredential"] * 3 + ["ModelClass"]
    assert conversion.documents[0]["stringData"] == {
        "ANTHROPIC_API_KEY": "",
        "GEMINI_API_KEY": "",
        "OPENAI_API_KEY": "",
    }
    credentials = by_kind(conversion, "ProviderCredential")
    assert {name: doc["spec"]["provider"] for name, doc in credentials.items()} == {
        "anthropic": "anthropic",
        "openai": "openai",
        "gemini": "gemini",
    }
    assert credentials["gemini"]["spec"]["apiKeySecretRef"] == {"name": "litellm-keys", "key": "GEMINI_API_KEY"}
    assert by_kind(conversion, "ModelClass")["workhorse"]["spec"] == {
        "members": [
            {"credentialRef": "anthropic", "model": "claude-sonnet-4-6"},
            {"credentialRef": "openai", "model": "gpt-5-mini"},
            {"credentialRef": "gemini", "model": "gemini-2.5-flash"},
        ],
        "routing": {"strategy": "weighted", "maxAttempts": 3},
        "health": {"cooldownSeconds": 60.0},
    }
    assert warned(conversion) == ["router_settings.routing_strategy (usage-based-routing)"]


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_documented_config_converts_to_manifests_that_parse_and_render_every_member(name):
    text = litellm.dump(convert(name), source=name)
    parsed = manifests.parse_text(text, source=name, namespace="team-a")
    assert parsed.errors == []
    result = render.render_manifests(parsed, namespace="team-a")
    assert [str(problem) for problem in result.problems()] == []
    assert set(result.document.classes) == {cls.metadata.name for cls in parsed.classes}


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_warning_names_a_reason_and_the_nearest_equivalent(name):
    for warning in convert(name).warnings:
        assert warning.setting and warning.reason and warning.nearest, warning


def test_azure_entries_keep_their_endpoints_and_rpm_becomes_their_weight():
    conversion = convert("proxy_configs.yaml")
    credentials = by_kind(conversion, "ProviderCredential")
    azure = {name: doc["spec"] for name, doc in credentials.items() if doc["spec"]["provider"] == "azure-openai"}
    assert sorted(spec["baseURL"] for spec in azure.values()) == [
        "https://my-endpoint-canada-berri992.openai.azure.com/",
        "https://my-endpoint-europe-berri-992.openai.azure.com/",
        "https://openai-france-1234.openai.azure.com/",
    ]
    members = by_kind(conversion, "ModelClass")["gpt-4o"]["spec"]["members"]
    assert [(m["model"], m.get("weight", 1)) for m in members] == [
        ("gpt-4o-eu", 4),  # rpm 6 : 6 : 1440, scaled so the largest is 1000
        ("gpt-4o-ca", 4),
        ("gpt-4o-large", 1000),
    ]
    assert [m["rpm"] for m in members] == [6, 6, 1440]  # and each its provider quota


def test_each_deployments_rpm_and_tpm_become_its_members_quota_and_are_no_longer_warned_about():
    conversion = convert("router_settings.yaml")
    members = by_kind(conversion, "ModelClass")["gpt-4"]["spec"]["members"]
    assert [(m["model"], m.get("rpm"), m.get("tpm")) for m in members] == [
        ("gpt-4", 1000, 100000),  # rpm/tpm beside litellm_params, as LiteLLM's docs show them
        ("gpt-4", 900, 90000),
        ("gpt-3.5-turbo", None, None),
        ("claude-3-5-sonnet-20240620", None, None),
    ]
    assert not [w for w in warned(conversion) if w.endswith((".rpm", ".tpm"))]


def test_an_rpm_that_is_no_quota_is_warned_about_and_left_out():
    text = "model_list:\n  - model_name: m\n    litellm_params: {model: openai/gpt-5-mini, rpm: 0.5, tpm: 1e12}\n"
    conversion = litellm.convert(litellm.parse_config(text))
    (member,) = by_kind(conversion, "ModelClass")["m"]["spec"]["members"]
    assert "rpm" not in member and "tpm" not in member
    assert {"model_list[0].litellm_params.rpm", "model_list[0].litellm_params.tpm"} <= set(warned(conversion))


def test_an_openai_model_behind_an_api_base_becomes_an_openai_compatible_credential():
    conversion = convert("proxy_configs.yaml")
    vllm = by_kind(conversion, "ModelClass")["vllm-models"]["spec"]["members"][0]
    assert vllm["model"] == "facebook/opt-125m"
    spec = by_kind(conversion, "ProviderCredential")[vllm["credentialRef"]]["spec"]
    assert (spec["provider"], spec["baseURL"]) == ("openai-compatible", "http://0.0.0.0:4000/v1")


def test_a_provider_pilotfish_does_not_speak_is_skipped_with_a_warning_not_guessed():
    conversion = convert("proxy_configs.yaml")
    assert "bedrock-claude-v1" not in by_kind(conversion, "ModelClass")
    (warning,) = [w for w in conversion.warnings if w.setting == "model_list[3].litellm_params.model"]
    assert "bedrock" in warning.reason and "openai/<model>" in warning.nearest


def test_literal_keys_and_the_master_key_never_reach_the_output_or_the_warnings():
    for name, secret in (("proxy_configs.yaml", "sk-1234"), ("proxy_reliability.yaml", "<my-openai-key>")):
        conversion = convert(name)
        assert secret not in litellm.dump(conversion, source=name)
        assert not any(secret in str(warning) for warning in conversion.warnings)
    assert "model_list[2].litellm_params.api_key" in warned(convert("proxy_reliability.yaml"))
    assert "general_settings.master_key" in warned(convert("proxy_configs.yaml"))


def test_reliability_settings_under_litellm_settings_are_carried_over():
    spec = by_kind(convert("proxy_reliability.yaml"), "ModelClass")["gpt-3.5-turbo"]["spec"]
    assert spec["members"] == [
        {"credentialRef": "openai", "model": "gpt-3.5-turbo"},
        {"credentialRef": "openai", "model": "gpt-3.5-turbo-16k", "priority": 200},  # context_window_fallbacks
    ]
    assert spec["routing"]["maxAttempts"] == 8  # num_retries 3: 4 calls on each of two groups
    assert spec["timeouts"] == {"totalSeconds": 0.1, "firstTokenSeconds": 0.01}  # the entry's own timeouts
    assert spec["health"] == {"failureThreshold": 4}  # allowed_fails 3: cooled down on the 4th failure


def test_context_window_fallbacks_warn_when_the_class_does_not_declare_its_window():
    conversion = convert("proxy_reliability.yaml")
    assert "context_window_fallbacks of 'gpt-3.5-turbo'" in warned(conversion)
    assert "fallbacks of 'zephyr-beta'" in warned(conversion)  # its group was skipped (huggingface)


def test_order_fallbacks_and_aliases_from_router_settings():
    conversion = convert("router_settings.yaml")
    classes = by_kind(conversion, "ModelClass")
    members = classes["gpt-4"]["spec"]["members"]
    assert [(m["credentialRef"], m["model"], m.get("priority")) for m in members] == [
        ("azure-openai", "gpt-4", 0),  # order: 1
        ("openai", "gpt-4", 1),  # order: 2
        ("openai", "gpt-3.5-turbo", 100),  # fallbacks, in their order
        ("anthropic", "claude-3-5-sonnet-20240620", 101),
    ]
    assert members[2]["contextWindow"] == 16385 and members[2]["pricing"] == {
        "inputPerMillionTokens": 0.5,
        "outputPerMillionTokens": 1.5,
    }
    assert members[3]["maxOutputTokens"] == 2048
    assert classes["gpt-4"]["spec"]["routing"] == {"strategy": "weighted", "maxAttempts": 10}
    assert classes["gpt-4"]["spec"]["timeouts"] == {"totalSeconds": 30.0}
    assert classes["production-gpt-4"]["spec"] == classes["gpt-4"]["spec"]
    credential = by_kind(conversion, "ProviderCredential")["azure-openai"]["spec"]
    assert credential["apiVersion"] == "2024-02-01"


def test_router_settings_without_an_equivalent_are_each_warned_about():
    settings = set(warned(convert("router_settings.yaml")))
    assert {
        "router_settings.redis_host",
        "router_settings.redis_port",
        "router_settings.redis_password",
        "router_settings.routing_strategy_args",
        "router_settings.retry_policy",
        "router_settings.routing_strategy (usage-based-routing-v2)",
        "model_list[2].model_info.supports_function_calling",
    } <= settings


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("simple-shuffle", "weighted"),
        ("latency-based-routing", "least-latency"),
        ("least-busy", "least-latency"),
        ("cost-based-routing", "priority"),
    ],
)
def test_routing_strategies_map_to_the_nearest_pilotfish_strategy(strategy, expected):
    config = {
        "model_list": [{"model_name": "a", "litellm_params": {"model": "openai/gpt-5-mini"}}],
        "router_settings": {"routing_strategy": strategy},
    }
    conversion = litellm.convert(config)
    assert by_kind(conversion, "ModelClass")["a"]["spec"]["routing"]["strategy"] == expected
    exact = strategy in ("simple-shuffle", "latency-based-routing")
    assert (f"router_settings.routing_strategy ({strategy})" in warned(conversion)) is not exact


def test_secret_values_fill_only_the_keys_the_config_names_and_environ_resolves_the_api_base():
    config = {
        "model_list": [
            {
                "model_name": "workhorse",
                "litellm_params": {
                    "model": "openai/gpt-5-mini",
                    "api_base": "os.environ/OPENAI_BASE",
                    "api_key": "os.environ/TEAM_OPENAI_KEY",
                },
            }
        ]
    }
    conversion = litellm.convert(
        config,
        namespace="team-a",
        secret_name="team-keys",
        environ={"OPENAI_BASE": "http://vllm.internal:8000/v1"},
        secret_values={"TEAM_OPENAI_KEY": "sk-team", "UNRELATED": "sk-other"},
    )
    secret, cred, cls = conversion.documents
    assert secret["metadata"] == {"name": "team-keys", "namespace": "team-a"}
    assert secret["stringData"] == {"TEAM_OPENAI_KEY": "sk-team"}
    assert cred["spec"]["baseURL"] == "http://vllm.internal:8000/v1" and cls["metadata"]["namespace"] == "team-a"
    # LiteLLM sent this key in plain text; the import keeps that only by opting in, and says so
    assert cred["spec"]["allowPlainHTTP"] is True
    assert any("plain text" in w.reason and "allowPlainHTTP" in w.nearest for w in conversion.warnings)


def test_an_unresolvable_environment_reference_is_warned_about():
    config = {
        "model_list": [
            {"model_name": "a", "litellm_params": {"model": "azure/gpt-4o", "api_base": "os.environ/AZURE_BASE"}}
        ]
    }
    with pytest.raises(litellm.LiteLLMConfigError) as caught:
        litellm.convert(config, environ={})
    assert "AZURE_BASE" in str(caught.value) and "azure-openai needs an api_base" in str(caught.value)


def test_model_names_keep_their_dots_and_only_invalid_names_change_with_a_warning():
    config = {
        "model_list": [
            {"model_name": "gpt-3.5-turbo", "litellm_params": {"model": "openai/gpt-3.5-turbo"}},
            {"model_name": "My Model", "litellm_params": {"model": "openai/gpt-5"}},
        ]
    }
    conversion = litellm.convert(config)
    assert set(by_kind(conversion, "ModelClass")) == {"gpt-3.5-turbo", "my-model"}
    (warning,) = [w for w in conversion.warnings if w.setting == "model_name 'My Model'"]
    assert "model='my-model'" in warning.nearest


def test_a_config_larger_than_the_bound_is_refused_before_parsing():
    with pytest.raises(litellm.LiteLLMConfigError, match="larger than"):
        litellm.parse_config("#" * (litellm.MAX_CONFIG_BYTES + 1))


def test_deeply_nested_yaml_is_refused_not_a_crash():
    with pytest.raises(litellm.LiteLLMConfigError, match="invalid YAML"):
        litellm.parse_config("[" * 100_000)


def test_too_many_entries_are_refused():
    entry = "- {model_name: a, litellm_params: {model: openai/x}}\n"
    with pytest.raises(litellm.LiteLLMConfigError, match="more than"):
        litellm.parse_config("model_list:\n" + entry * (litellm.MAX_ENTRIES + 1))


@pytest.mark.parametrize("text", ["just a string", "- a list", ""])
def test_a_document_that_is_not_a_mapping_is_refused(text):
    with pytest.raises(litellm.LiteLLMConfigError, match="mapping"):
        litellm.parse_config(text)


def test_a_config_with_nothing_convertible_fails_listing_why():
    config = {"model_list": [{"model_name": "a", "litellm_params": {"model": "bedrock/claude"}}]}
    with pytest.raises(litellm.LiteLLMConfigError, match="bedrock"):
        litellm.convert(config)


def test_the_dump_is_multi_document_yaml_with_a_header():
    text = litellm.dump(convert("workhorse.yaml"), source="config.yaml")
    assert text.startswith("# Generated by `pilotfish import litellm config.yaml`")
    assert [doc["kind"] for doc in yaml.safe_load_all(text)][-1] == "ModelClass"


def test_malformed_entries_are_skipped_with_a_warning_and_the_rest_converts():
    config = {
        "model_list": [
            "not a mapping",
            {"model_name": "a"},
            {"model_name": "a", "litellm_params": {"model": "openai/gpt-5-mini"}, "tags": ["x"]},
        ]
    }
    conversion = litellm.convert(config)
    assert list(by_kind(conversion, "ModelClass")) == ["a"]
    assert {"model_list[0]", "model_list[1]", "model_list[2].tags"} <= set(warned(conversion))


def test_credentials_are_named_after_their_provider_and_numbered_when_it_repeats():
    config = {
        "model_list": [
            {"model_name": "a", "litellm_params": {"model": "openai/m", "api_base": "http://vllm:8000/v1"}},
            {"model_name": "a", "litellm_params": {"model": "openai/gpt-5", "api_key": "os.environ/K1"}},
            {"model_name": "a", "litellm_params": {"model": "openai/gpt-5", "api_key": "os.environ/K2"}},
        ]
    }
    assert list(by_kind(litellm.convert(config), "ProviderCredential")) == ["openai-compatible", "openai", "openai-2"]
