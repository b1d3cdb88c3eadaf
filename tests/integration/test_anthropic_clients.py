"""POST /v1/messages through the real sidecar, with the official Anthropic SDK as the client: every
member type serves it (Anthropic, OpenAI, Gemini), streaming and not, tools included, and failover
crosses vendors exactly as it does for OpenAI-SDK clients."""

from __future__ import annotations

import anthropic
import pytest
from tests.integration.conftest import answer_of

from pilotfish.mocks import answers

MEMBERS = {"claude": "claude-sonnet-4-5", "primary": "gpt-5-mini", "gemini": "gemini-2.5-pro"}
PROVIDERS = {"claude": "anthropic", "primary": "openai-compatible", "gemini": "gemini"}
HELLO = [{"role": "user", "content": "Say hello."}]
WEATHER = {"name": "get_weather", "description": "Weather in a city", "input_schema": {"type": "object"}}
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
EACH_VENDOR = pytest.mark.parametrize("member", list(MEMBERS), ids=list(PROVIDERS.values()))


def _class(*names: str) -> str:
    members = "\n".join(f"    - {{credentialRef: {name}, model: {MEMBERS[name]}}}" for name in names)
    return f"""\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {{name: workhorse}}
spec:
  members:
{members}
  timeouts: {{connectSeconds: 1, firstTokenSeconds: 0.5, totalSeconds: 10}}
  health: {{failureThreshold: 2, cooldownSeconds: 1}}
"""


def _client(sidecar) -> anthropic.AsyncAnthropic:
    return sidecar.anthropic_client()


async def _ask(client, *, stream, **kwargs):
    """The final Message and the x-pilotfish-* headers, streamed through the SDK's helper or not."""
    params = {"model": "workhorse", "max_tokens": 256, "messages": HELLO, **kwargs}
    if not stream:
        raw = await client.messages.with_raw_response.create(**params)
        message = await raw.parse()
        headers = raw.headers
    else:
        async with client.messages.stream(**params) as events:
            texts = [text async for text in events.text_stream]
            message = await events.get_final_message()
            headers = events.response.headers
        assert "".join(texts) == "".join(b.text for b in message.content if b.type == "text")
    return message, {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-pilotfish-")}


@STREAM
@EACH_VENDOR
async def test_every_vendor_answers_anthropic_sdk_clients(local_sidecar, mocks, stream, member):
    sidecar = await local_sidecar(_class(member))
    message, headers = await _ask(_client(sidecar), stream=stream, system="Be brief.")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == answer_of(member)
    assert message.stop_reason == "end_turn" and message.role == "assistant"
    assert message.usage.output_tokens == 16 and message.usage.input_tokens > 0
    assert message.model == MEMBERS[member]
    assert headers["x-pilotfish-provider"] == PROVIDERS[member]
    assert mocks[member].stats.requests == 1


async def test_the_request_reaches_each_vendor_translated(local_sidecar, mocks):
    sidecar = await local_sidecar(_class("claude"))
    await _ask(
        _client(sidecar), stream=False, system="Be brief.", extra_body={"temperature": 0.5}, stop_sequences=["END"]
    )
    sent = mocks["claude"].stats.last_body
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 256 and sent["temperature"] == 0.5
    assert sent["stop_sequences"] == ["END"]
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}]


@STREAM
@EACH_VENDOR
async def test_tool_use_round_trips_through_every_vendor(local_sidecar, mocks, stream, member):
    sidecar = await local_sidecar(_class(member))
    client = _client(sidecar)
    first, _ = await _ask(client, stream=stream, tools=[WEATHER])
    assert first.stop_reason == "tool_use"
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"}) and call.id
    follow_up = [
        *HELLO,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C, sunny"}]},
    ]
    second, _ = await _ask(client, stream=stream, tools=[WEATHER], messages=follow_up)
    assert second.content[0].text == answer_of(member) and second.stop_reason == "end_turn"


async def test_tool_results_reach_an_openai_member_as_tool_messages(local_sidecar, mocks):
    sidecar = await local_sidecar(_class("primary"))
    follow_up = [
        *HELLO,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]
    await _ask(_client(sidecar), stream=False, tools=[WEATHER], messages=follow_up, tool_choice={"type": "auto"})
    sent = mocks["primary"].stats.last_body
    assert sent["messages"][1]["tool_calls"][0]["id"] == "toolu_1"
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["tool_choice"] == "auto"


@STREAM
async def test_anthropic_down_then_openai_down_an_anthropic_client_is_served_by_gemini(local_sidecar, mocks, stream):
    sidecar = await local_sidecar(_class("claude", "primary", "gemini"))
    mocks["claude"].set_fault(mode="status", status=529)
    mocks["primary"].set_fault(mode="reset")
    message, headers = await _ask(_client(sidecar), stream=stream)
    assert message.content[0].text == answer_of("gemini")
    assert headers["x-pilotfish-member"] == "gemini/gemini-2.5-pro" and headers["x-pilotfish-attempts"] == "3"
    assert headers["x-pilotfish-failover-reason"] == "overloaded"


async def test_an_anthropic_member_failing_mid_stream_before_the_first_word_fails_over(local_sidecar, mocks):
    sidecar = await local_sidecar(_class("claude", "primary"))
    mocks["claude"].set_fault(mode="cut", after_chunks=0)
    message, headers = await _ask(_client(sidecar), stream=True)
    assert message.content[0].text == answer_of("primary")
    assert headers["x-pilotfish-failover-reason"] == "stream_interrupted"


async def test_a_stream_broken_after_it_started_ends_with_an_anthropic_error_event(local_sidecar, mocks):
    sidecar = await local_sidecar(_class("primary"))
    mocks["primary"].set_fault(mode="cut", after_chunks=3)
    with pytest.raises(anthropic.APIStatusError) as broken:
        async with _client(sidecar).messages.stream(model="workhorse", max_tokens=64, messages=HELLO) as events:
            async for _ in events.text_stream:
                pass
    assert "the answer is incomplete" in broken.value.message


async def test_a_malformed_request_is_an_anthropic_invalid_request_error(local_sidecar):
    sidecar = await local_sidecar(_class("claude"))
    with pytest.raises(anthropic.BadRequestError) as refused:
        await _client(sidecar).post("/v1/messages", body={"model": "workhorse", "messages": HELLO}, cast_to=object)
    assert refused.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "Missing required parameter: 'max_tokens'."},
    }


async def test_an_unknown_class_is_an_anthropic_not_found_error(local_sidecar):
    sidecar = await local_sidecar(_class("claude"))
    with pytest.raises(anthropic.NotFoundError) as missing:
        await _client(sidecar).messages.create(model="nope", max_tokens=10, messages=HELLO)
    assert missing.value.body["error"]["type"] == "not_found_error" and "workhorse" in missing.value.message


async def test_every_member_failing_is_one_anthropic_error_naming_each_attempt(local_sidecar, mocks):
    sidecar = await local_sidecar(_class("claude", "gemini"))
    mocks["claude"].set_fault(mode="status", status=500)
    mocks["gemini"].set_fault(mode="status", status=500)
    with pytest.raises(anthropic.InternalServerError) as failed:
        await _client(sidecar).messages.create(model="workhorse", max_tokens=10, messages=HELLO)
    assert failed.value.status_code == 502 and failed.value.body["error"]["type"] == "api_error"
    assert "claude/claude-sonnet-4-5: server_error (500)" in failed.value.message


async def test_a_rate_limit_on_the_only_member_is_an_anthropic_rate_limit_error(local_sidecar, mocks):
    sidecar = await local_sidecar(_class("claude"))
    mocks["claude"].set_fault(mode="rate-limit", retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as limited:
        await _client(sidecar).messages.create(model="workhorse", max_tokens=10, messages=HELLO)
    assert limited.value.body["error"]["type"] == "rate_limit_error"
    assert limited.value.response.headers["retry-after"] == "7"


async def test_unsupported_content_blocks_are_refused_not_dropped(local_sidecar, mocks):
    sidecar = await local_sidecar(_class("claude"))
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}
    with pytest.raises(anthropic.BadRequestError) as refused:
        await _client(sidecar).messages.create(
            model="workhorse", max_tokens=10, messages=[{"role": "user", "content": [document]}]
        )
    assert "'document'" in refused.value.message and mocks["claude"].stats.requests == 0


def test_the_canonical_answer_is_the_mocks_answer():
    assert answer_of("x") == answers.ANSWER.format(name="x")
