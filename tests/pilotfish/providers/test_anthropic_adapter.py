"""OpenAI ⇄ Anthropic translation, against the shapes in Anthropic's public Messages API docs."""

import orjson
import pytest

from pilotfish import failures
from pilotfish.providers import anthropic as adapter
from pilotfish.providers import registry
from pilotfish.routes import document
from pilotfish.specs import credential, refs
from pilotfish.wire import openai, sse

K = failures.FailureKind
MEMBER = document.MemberRoute(
    id="claude/claude-sonnet",
    credential="claude",
    provider=credential.ProviderType.ANTHROPIC,
    base_url="https://api.anthropic.com",
    api_key_ref=refs.SecretKeyRef(name="keys", key="anthropic"),
    model="claude-sonnet",
    priority=0,
)


def _build(**body):
    request = openai.ChatRequest.from_body({"model": "workhorse", **body})
    built = adapter.build_request(request, MEMBER, api_key=refs.ApiKey("sk-ant"))
    return built, orjson.loads(built.body)


def test_system_messages_move_to_the_top_and_headers_follow_anthropics_api():
    built, body = _build(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "JSON."},
            {"role": "user", "content": "Hi"},
        ]
    )
    assert built.url == "https://api.anthropic.com/v1/messages"
    assert built.headers["x-api-key"] == "sk-ant" and built.headers["anthropic-version"] == "2023-06-01"
    assert body["system"] == "Be brief.\n\nJSON."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert body["model"] == "claude-sonnet" and body["stream"] is True
    assert body["max_tokens"] == adapter.DEFAULT_MAX_TOKENS


def test_generation_settings_and_token_limits_are_mapped():
    _, body = _build(
        messages=[{"role": "user", "content": "Hi"}], max_tokens=50, temperature=1.5, top_p=0.9, stop="END"
    )
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["stop_sequences"]) == (50, 1.0, 0.9, ["END"])


def test_tool_calls_and_results_become_tool_use_and_tool_result_blocks_with_roles_merged():
    _, body = _build(
        messages=[
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
        ],
        tools=[
            {
                "type": "function",
                "function": {"name": "weather", "description": "Weather", "parameters": {"type": "object"}},
            }
        ],
        tool_choice={"type": "function", "function": {"name": "weather"}},
    )
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}},
        ],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "rain"},
        ],
    }
    assert body["tools"] == [{"name": "weather", "input_schema": {"type": "object"}, "description": "Weather"}]
    assert body["tool_choice"] == {"type": "tool", "name": "weather"}


def test_images_become_base64_or_url_sources():
    _, body = _build(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            }
        ]
    )
    assert body["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]


def _events(*pairs):
    return [sse.Event(data=orjson.dumps({"type": name, **data}).decode(), event=name) for name, data in pairs]


def test_a_text_stream_becomes_openai_chunks_with_usage_last():
    translator = adapter.new_stream_translator(member=MEMBER)
    chunks = []
    for event in _events(
        (
            "message_start",
            {"message": {"id": "msg_1", "model": "claude-sonnet-4", "usage": {"input_tokens": 12, "output_tokens": 1}}},
        ),
        ("ping", {}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
        ("content_block_stop", {"index": 0}),
        ("message_delta", {"delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 2}}),
        ("message_stop", {}),
    ):
        chunks.extend(translator.feed(event))
    assert translator.finished
    assert [c["choices"][0]["delta"] for c in chunks[:-2]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 2,
        "total_tokens": 14,
    }
    assert {c["id"] for c in chunks} == {"msg_1"} and {c["model"] for c in chunks} == {"claude-sonnet-4"}


def test_tool_use_streams_as_openai_tool_call_deltas():
    translator = adapter.new_stream_translator(member=MEMBER)
    chunks = []
    for event in _events(
        ("message_start", {"message": {"id": "msg_2", "model": "m", "usage": {"input_tokens": 5}}}),
        (
            "content_block_start",
            {"index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}},
        ),
        ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}}),
        ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        ("message_stop", {}),
    ):
        chunks.extend(translator.feed(event))
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_1",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city": "Paris"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_an_error_event_after_200_is_a_classified_failure():
    translator = adapter.new_stream_translator(member=MEMBER)
    with pytest.raises(failures.AttemptFailed) as caught:
        translator.feed(_events(("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}))[0])
    assert caught.value.failure.kind is K.OVERLOADED


@pytest.mark.parametrize(
    ("status", "error_type", "message", "kind"),
    [
        (529, "overloaded_error", "Overloaded", K.OVERLOADED),
        (429, "rate_limit_error", "slow down", K.RATE_LIMITED),
        (401, "authentication_error", "invalid x-api-key", K.AUTH),
        (403, "permission_error", "no", K.AUTH),
        (404, "not_found_error", "model: claude-nope", K.NOT_FOUND),
        (500, "api_error", "oops", K.SERVER_ERROR),
        (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum", K.CONTEXT_LENGTH),
        (400, "invalid_request_error", "messages: roles must alternate", K.BAD_REQUEST),
        (413, "request_too_large", "too large", K.CONTEXT_LENGTH),
    ],
)
def test_errors_are_classified_in_one_place(status, error_type, message, kind):
    body = orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}})
    failure = adapter.classify_error(status, {"retry-after": "3"}, body)
    assert failure.kind is kind and failure.code == error_type
    assert failure.retry_after == 3.0


def test_a_non_streaming_message_parses_into_a_chat_completion():
    body = orjson.dumps(
        {
            "id": "msg_3",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "stop_reason": "end_turn",
            "content": [{"type": "text", "text": "Hi"}],
            "usage": {"input_tokens": 3, "output_tokens": 1},
        }
    )
    completion = adapter.parse_response(body, member=MEMBER)
    assert completion["choices"][0]["message"]["content"] == "Hi"
    assert completion["choices"][0]["finish_reason"] == "stop" and completion["usage"]["total_tokens"] == 4


def test_the_registry_maps_anthropic_to_this_adapter():
    assert registry.adapter_for(credential.ProviderType.ANTHROPIC) is adapter
