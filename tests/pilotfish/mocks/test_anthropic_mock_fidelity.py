"""The Anthropic mock speaks the real wire format: the official anthropic SDK is the judge."""

from __future__ import annotations

import anthropic
import pytest

from pilotfish.mocks import answers, runner

KEY = "sk-ant-test-0001"


@pytest.fixture
async def mock():
    started = await runner.start_mock(provider="anthropic", name="claude-mock", api_key=KEY)
    yield started
    await started.stop()


def _client(mock, key=KEY):
    return anthropic.AsyncAnthropic(base_url=mock.url, api_key=key, max_retries=0)


async def test_a_message_parses_into_the_sdk_types(mock):
    message = await _client(mock).messages.create(
        model="claude-x", max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert message.content[0].text == answers.ANSWER.format(name="claude-mock")
    assert message.stop_reason == "end_turn" and message.model == "claude-x"
    assert message.usage.input_tokens == 4 and message.usage.output_tokens == 16


async def test_the_stream_parses_and_accumulates_in_the_sdk(mock):
    async with _client(mock).messages.stream(
        model="claude-x", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == answers.ANSWER.format(name="claude-mock")
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 16


async def test_tool_use_streams_input_json_the_sdk_can_assemble(mock):
    tools = [{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}]
    async with _client(mock).messages.stream(
        model="claude-x", max_tokens=100, tools=tools, messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        final = await stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"


async def test_errors_are_the_sdk_exceptions_with_anthropics_types(mock):
    with pytest.raises(anthropic.AuthenticationError):
        await _client(mock, key="wrong").messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    mock.set_fault(mode="rate-limit", retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as limited:
        await _client(mock).messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.body["error"]["type"] == "rate_limit_error"
    mock.set_fault(mode="status", status=529)
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        await _client(mock).messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert overloaded.value.status_code == 529 and overloaded.value.body["error"]["type"] == "overloaded_error"
