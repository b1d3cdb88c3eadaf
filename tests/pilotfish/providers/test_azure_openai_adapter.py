import msgspec
import orjson

from pilotfish.providers import azure_openai as adapter
from pilotfish.providers import openai as openai_adapter
from pilotfish.providers import registry
from pilotfish.routes import document
from pilotfish.specs import credential, refs
from pilotfish.wire import openai

MEMBER = document.MemberRoute(
    id="azure/gpt-5-mini-eu",
    credential="azure",
    provider=credential.ProviderType.AZURE_OPENAI,
    base_url="https://contoso.openai.azure.com",
    api_key_ref=refs.SecretKeyRef(name="keys", key="azure"),
    model="gpt-5-mini-eu",
    priority=0,
)


def test_the_deployment_url_api_version_and_api_key_header():
    request = openai.ChatRequest.from_body(
        {"model": "workhorse", "messages": [{"role": "user", "content": "hi"}], "seed": 1}
    )
    built = adapter.build_request(request, MEMBER, api_key=refs.ApiKey("azure-key"))
    assert (
        built.url
        == "https://contoso.openai.azure.com/openai/deployments/gpt-5-mini-eu/chat/completions?api-version=2024-10-21"
    )
    assert built.headers["api-key"] == "azure-key" and "Authorization" not in built.headers
    body = orjson.loads(built.body)
    assert "model" not in body and body["seed"] == 1 and body["stream_options"] == {"include_usage": True}


def test_a_credential_api_version_overrides_the_default():
    member = msgspec.structs.replace(MEMBER, api_version="2025-04-01-preview")
    request = openai.ChatRequest.from_body({"model": "w", "messages": [{"role": "user", "content": "hi"}]})
    assert adapter.build_request(request, member, api_key=None).url.endswith("?api-version=2025-04-01-preview")


def test_streams_and_errors_are_openais():
    assert adapter.classify_error is openai_adapter.classify_error
    assert adapter.new_stream_translator is openai_adapter.new_stream_translator
    assert registry.adapter_for(credential.ProviderType.AZURE_OPENAI) is adapter
