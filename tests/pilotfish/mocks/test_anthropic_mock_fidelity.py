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


@pytest.fixture
async def sdk(mock):
    """Factory of SDK clients of the mock, each closed after the test (never by the garbage collector, which
    would close its pool from a finalizer after its descriptors were reused by newer connections)."""
    made: list[anthropic.AsyncAnthropic] = []

    def client(key=KEY):
        made.append(anthropic.AsyncAnthropic(base_url=mock.url, api_key=key, max_retries=0))
        return made[-1]

    yield client
    for client in made:
        await client.close()


async def test_a_message_parses_into_the_sdk_types(sdk):
    message = await sdk().messages.create(
        model="claude-x", max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert message.content[0].text == answers.ANSWER.format(name="claude-mock")
    assert message.stop_reason == "end_turn" and message.model == "claude-x"
    assert message.usage.input_tokens == 4 and message.usage.output_tokens == 16


async def test_the_stream_parses_and_accumulates_in_the_sdk(sdk):
    async with sdk().messages.stream(
        model="claude-x", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == answers.ANSWER.format(name="claude-mock")
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 16


async def test_tool_use_streams_input_json_the_sdk_can_assemble(sdk):
    tools = [{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}]
    async with sdk().messages.stream(
        model="claude-x", max_tokens=100, tools=tools, messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        final = await stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"


async def test_errors_are_the_sdk_exceptions_with_anthropics_types(mock, sdk):
    with pytest.raises(anthropic.AuthenticationError):
        await sdk(key="wrong").messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    mock.set_fault(mode="rate-limit", retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as limited:
        await sdk().messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.body["error"]["type"] == "rate_limit_error"
    mock.set_fault(mode="status", status=529)
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        await sdk().messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert overloaded.value.status_code == 529 and overloaded.value.body["error"]["type"] == "overloaded_error"
