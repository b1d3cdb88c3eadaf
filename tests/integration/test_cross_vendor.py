"""A class that spans vendors: OpenAI-SDK clients get the same answers whichever member serves them."""

from __future__ import annotations

import openai
import pytest
from tests.integration.conftest import USER, answer_of, complete

from pilotfish.mocks import runner

MIXED = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: claude, model: claude-sonnet-4-5}
    - {credentialRef: primary, model: gpt-5-mini}
  timeouts: {connectSeconds: 1, firstTokenSeconds: 0.5, totalSeconds: 10}
  health: {failureThreshold: 2, cooldownSeconds: 1}
"""
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])


@STREAM
async def test_an_anthropic_member_answers_openai_clients(local_sidecar, mocks, stream):
    sidecar = await local_sidecar(MIXED)
    text, headers = await complete(sidecar.client(), stream=stream)
    assert text == answer_of("claude")
    assert headers["x-pilotfish-provider"] == "anthropic" and headers["x-pilotfish-model"] == "claude-sonnet-4-5"
    sent = mocks["claude"].stats.last_body
    assert sent["model"] == "claude-sonnet-4-5" and sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Say hello."}]}
    ]


@STREAM
@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"mode": "status", "status": 529}, "overloaded"),
        ({"mode": "rate-limit", "retry_after": 30}, "rate_limited"),
        ({"mode": "hang"}, "first_token_timeout"),
    ],
)
async def test_anthropic_down_fails_over_to_openai(local_sidecar, mocks, stream, fault, reason):
    sidecar = await local_sidecar(MIXED)
    mocks["claude"].set_fault(**fault)
    text, headers = await complete(sidecar.client(), stream=stream)
    assert text == answer_of("primary")
    assert headers["x-pilotfish-failover-reason"] == reason and headers["x-pilotfish-provider"] == "openai-compatible"


async def test_usage_and_the_real_model_come_back_from_anthropic(local_sidecar):
    sidecar = await local_sidecar(MIXED)
    response = await sidecar.client().chat.completions.create(model="workhorse", messages=USER)
    assert response.model == "claude-sonnet-4-5"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (2, 16)
    assert response.choices[0].finish_reason == "stop"


@STREAM
async def test_anthropic_tool_use_reaches_openai_clients_as_tool_calls(local_sidecar, stream):
    sidecar = await local_sidecar(MIXED)
    client = sidecar.client()
    if not stream:
        response = await client.chat.completions.create(model="workhorse", messages=USER, tools=TOOLS)
        call = response.choices[0].message.tool_calls[0]
        assert (call.function.name, call.function.arguments, response.choices[0].finish_reason) == (
            "get_weather",
            '{"city": "Paris"}',
            "tool_calls",
        )
        return
    name, arguments = None, ""
    async for chunk in await client.chat.completions.create(model="workhorse", messages=USER, tools=TOOLS, stream=True):
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name = name or call.function.name
            arguments += call.function.arguments or ""
    assert (name, arguments) == ("get_weather", '{"city": "Paris"}')


async def test_a_bad_request_from_anthropic_is_not_retried_on_openai(local_sidecar, mocks):
    sidecar = await local_sidecar(MIXED)
    mocks["claude"].set_fault(mode="status", status=400)
    with pytest.raises(openai.BadRequestError):
        await complete(sidecar.client(), stream=False)
    assert mocks["primary"].stats.requests == 0


async def test_an_azure_openai_deployment_serves_the_class(local_sidecar, tmp_path):
    azure = await runner.start_mock(provider="azure-openai", name="azure", api_key="azure-key-123")
    try:
        sanity = openai.AsyncAzureOpenAI(
            azure_endpoint=azure.url, api_key="azure-key-123", api_version="2024-10-21", max_retries=0
        )
        checked = await sanity.chat.completions.create(model="eu-deployment", messages=USER)
        assert checked.choices[0].message.content == answer_of("azure")  # the SDK accepts the mock's Azure shape
        sidecar = await local_sidecar(
            MIXED.replace(
                "credentialRef: claude, model: claude-sonnet-4-5", "credentialRef: azure-eu, model: eu-deployment"
            )
            + "---\napiVersion: pilotfish.dev/v1alpha1\nkind: ProviderCredential\nmetadata: {name: azure-eu}\n"
            f"spec: {{provider: azure-openai, baseURL: '{azure.url}', apiKeySecretRef: {{name: azure-keys, key: key}}}}\n"
            "---\napiVersion: v1\nkind: Secret\nmetadata: {name: azure-keys}\nstringData: {key: azure-key-123}\n"
        )
        text, headers = await complete(sidecar.client(), stream=True)
        assert text == answer_of("azure")
        assert headers["x-pilotfish-provider"] == "azure-openai" and headers["x-pilotfish-model"] == "eu-deployment"
        azure.set_fault(mode="status", status=503)
        text, headers = await complete(sidecar.client(), stream=False)
        assert text == answer_of("primary") and headers["x-pilotfish-failover-reason"] == "overloaded"
    finally:
        await azure.stop()


THREE_VENDORS = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: claude, model: claude-sonnet-4-5}
    - {credentialRef: primary, model: gpt-5-mini}
    - {credentialRef: gemini, model: gemini-2.5-pro}
  timeouts: {connectSeconds: 1, firstTokenSeconds: 0.5, totalSeconds: 10}
"""


@STREAM
async def test_anthropic_then_openai_down_and_gemini_answers(local_sidecar, mocks, stream):
    sidecar = await local_sidecar(THREE_VENDORS)
    mocks["claude"].set_fault(mode="status", status=529)
    mocks["primary"].set_fault(mode="reset")
    text, headers = await complete(sidecar.client(), stream=stream)
    assert text == answer_of("gemini")
    assert headers["x-pilotfish-provider"] == "gemini" and headers["x-pilotfish-attempts"] == "3"
    assert headers["x-pilotfish-failover-reason"] == "overloaded"
    assert mocks["gemini"].stats.last_model == "gemini-2.5-pro"


@STREAM
async def test_gemini_function_calls_reach_openai_clients(local_sidecar, mocks, stream):
    sidecar = await local_sidecar(THREE_VENDORS)
    mocks["claude"].set_fault(mode="status", status=529)
    mocks["primary"].set_fault(mode="status", status=503)
    client = sidecar.client()
    if not stream:
        response = await client.chat.completions.create(model="workhorse", messages=USER, tools=TOOLS)
        call = response.choices[0].message.tool_calls[0]
        assert (call.function.name, call.function.arguments) == ("get_weather", '{"city":"Paris"}')
        assert response.choices[0].finish_reason == "tool_calls"
        return
    names, arguments = [], ""
    async for chunk in await client.chat.completions.create(model="workhorse", messages=USER, tools=TOOLS, stream=True):
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            names.append(call.function.name)
            arguments += call.function.arguments or ""
    assert (names, arguments) == (["get_weather"], '{"city":"Paris"}')
