"""The OpenAI-compatible surface: errors as OpenAI JSON, limits, tools, usage, and no secret anywhere."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from tests.integration.conftest import KEYS, USER, Sidecar, answer_of

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


async def _post(sidecar: Sidecar, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            sidecar.api + "/v1/chat/completions",
            data=body,
            headers=headers or {"Content-Type": "application/json"},
        ) as response,
    ):
        return response.status, await response.json()


async def test_malformed_json_gets_a_400_in_openai_format(sidecar: Sidecar):
    status, body = await _post(sidecar, b'{"model": "workhorse", "messages": [')
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "invalid_json"
    assert "Traceback" not in body["error"]["message"]


async def test_a_missing_field_is_named(sidecar: Sidecar):
    status, body = await _post(sidecar, b'{"model": "workhorse"}')
    assert status == 400
    assert body["error"] == {
        "message": "Missing required parameter: 'messages'.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "missing_required_parameter",
    }


async def test_a_body_over_the_default_limit_gets_413(sidecar: Sidecar):
    status, body = await _post(
        sidecar,
        b'{"model": "workhorse", "messages": [{"role": "user", "content": "' + b"x" * (11 * 1024 * 1024) + b'"}]}',
    )
    assert status == 413
    assert body["error"]["code"] == "request_too_large"
    assert "10485760" in body["error"]["message"]


async def test_an_unknown_class_is_a_404_that_lists_the_classes(sidecar: Sidecar):
    with pytest.raises(openai.NotFoundError) as caught:
        await sidecar.client().chat.completions.create(model="gpt-4o", messages=USER)
    assert caught.value.code == "model_not_found"
    assert "(classes: workhorse)" in caught.value.message


async def test_unknown_paths_and_methods_answer_in_openai_format(sidecar: Sidecar):
    async with aiohttp.ClientSession() as session:
        async with session.get(sidecar.api + "/v1/nothing") as response:
            assert response.status == 404
            assert (await response.json())["error"]["message"] == "Not found."
        async with session.get(sidecar.api + "/v1/chat/completions") as response:
            assert response.status == 405
            assert "GET" in (await response.json())["error"]["message"]


async def test_models_lists_the_classes(sidecar: Sidecar):
    models = await sidecar.client().models.list()
    assert [model.id for model in models.data] == ["workhorse"]
    assert (await sidecar.client().models.retrieve("workhorse")).owned_by == "pilotfish"


async def test_tool_calls_pass_through_non_streaming(sidecar: Sidecar, mocks):
    response = await sidecar.client().chat.completions.create(model="workhorse", messages=USER, tools=TOOLS)
    call = response.choices[0].message.tool_calls[0]
    assert response.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and call.function.arguments == '{"city": "Paris"}'
    assert mocks["primary"].stats.last_body["tools"] == TOOLS


async def test_tool_call_arguments_stream_in_pieces_the_sdk_can_join(sidecar: Sidecar):
    stream = await sidecar.client().chat.completions.create(model="workhorse", messages=USER, tools=TOOLS, stream=True)
    arguments, name, finish = "", None, None
    async for chunk in stream:
        if not chunk.choices:
            continue
        for call in chunk.choices[0].delta.tool_calls or []:
            name = name or call.function.name
            arguments += call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert (name, arguments, finish) == ("get_weather", '{"city": "Paris"}', "tool_calls")


async def test_usage_chunk_only_when_the_client_asks_for_it(sidecar: Sidecar):
    client = sidecar.client()
    with_usage = [
        c
        async for c in await client.chat.completions.create(
            model="workhorse", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    ]
    assert with_usage[-1].choices == [] and with_usage[-1].usage.completion_tokens == 16
    without = [c async for c in await client.chat.completions.create(model="workhorse", messages=USER, stream=True)]
    assert all(chunk.choices for chunk in without)
    assert all(chunk.usage is None for chunk in without)


async def test_each_request_is_one_json_log_line_with_attempts_tokens_and_cost(local_sidecar, mocks):
    sidecar = await local_sidecar("""\
        apiVersion: pilotfish.dev/v1alpha1
        kind: ModelClass
        metadata: {name: workhorse}
        spec:
          members:
            - {credentialRef: primary, model: a}
            - {credentialRef: backup, model: b, pricing: {inputPerMillionTokens: 1000000, outputPerMillionTokens: 2000000}}
        """)
    mocks["primary"].set_fault(mode="status", status=503)
    await sidecar.client().chat.completions.create(model="workhorse", messages=USER)
    line = await sidecar.last_request_line()
    assert [r for r in sidecar.log_records() if r.get("msg") == "request"] == [line]  # one line per request
    assert line["class"] == "workhorse" and line["outcome"] == "success"
    assert line["provider"] == "openai-compatible" and line["model"] == "b"
    assert [a["result"] for a in line["attempts"]] == ["overloaded", "success"]
    assert line["failover_reason"] == "overloaded"
    assert (line["tokens_in"], line["tokens_out"]) == (2, 16)
    assert line["cost_usd"] == pytest.approx(2 * 1.0 + 16 * 2.0)
    assert line["latency_ms"] > 0 and line["ttft_ms"] > 0


async def test_metrics_count_requests_attempts_failovers_tokens_and_cost(sidecar: Sidecar, mocks):
    mocks["primary"].set_fault(mode="status", status=503)
    await sidecar.client().chat.completions.create(model="workhorse", messages=USER)
    text = await sidecar.metrics()
    expected = [
        'pilotfish_requests_total{class="workhorse",model="model-b",outcome="success",provider="openai-compatible"} 1.0',
        'pilotfish_attempts_total{class="workhorse",model="model-a",provider="openai-compatible",result="overloaded"} 1.0',
        'pilotfish_failovers_total{class="workhorse",from_provider="openai-compatible",reason="overloaded"} 1.0',
        'pilotfish_tokens_total{class="workhorse",direction="output",model="model-b",provider="openai-compatible"} 16.0',
        'pilotfish_request_duration_seconds_count{class="workhorse",provider="openai-compatible"} 1.0',
        'pilotfish_time_to_first_token_seconds_count{class="workhorse",provider="openai-compatible"} 1.0',
        'pilotfish_member_up{class="workhorse",member="primary/model-a"} 1.0',
        'pilotfish_config_reloads_total{result="success"} 1.0',
    ]
    for line in expected:
        assert line in text


async def test_no_api_key_appears_in_logs_metrics_errors_or_debug_output(sidecar: Sidecar, mocks):
    mocks["primary"].set_fault(mode="status", status=401)
    mocks["backup"].set_fault(mode="status", status=500)
    with pytest.raises(openai.APIStatusError) as caught:
        await sidecar.client().chat.completions.create(model="workhorse", messages=USER)
    line = await sidecar.last_request_line()  # the log line is in: the check below covers it
    assert [a["result"] for a in line["attempts"]] == ["auth", "server_error", "server_error"]
    everything = "\n".join(
        [
            caught.value.response.text,
            await sidecar.metrics(),
            str(await sidecar.get_json("/debug/members")),
            str(await sidecar.get_json("/readyz")),
            *sidecar.stdout_lines,
            *sidecar.stderr_lines,
        ]
    )
    for key in KEYS.values():
        assert key not in everything
    assert mocks["primary"].stats.last_auth_present  # the key did reach the provider


async def test_the_provider_receives_the_members_key_and_model(sidecar: Sidecar, mocks):
    response = await sidecar.client().chat.completions.create(model="workhorse", messages=USER)
    assert response.choices[0].message.content == answer_of("primary")  # the mock 401s without its own key
    assert mocks["primary"].stats.last_model == "model-a"
