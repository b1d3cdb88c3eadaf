"""Anthropic Messages ⇄ canonical translation, against the request, response and event shapes in the
Messages API reference: what an Anthropic-SDK client sends reaches every provider adapter as the
canonical request, and the canonical answer comes back as Anthropic's message or event stream."""

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotfish import failures
from pilotfish.inbound import anthropic, anthropic_events
from pilotfish.wire import anthropic as wire


def _chat(**body):
    return anthropic.to_chat(wire.MessagesRequest.from_body({"model": "workhorse", "max_tokens": 100, **body}))


def test_system_blocks_user_parts_images_and_settings_become_the_canonical_request():
    chat = _chat(
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind.", "cache_control": {}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/cat.jpg"}},
                ],
            }
        ],
        temperature=0.2,
        top_p=0.9,
        top_k=5,
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
    )
    assert chat.raw == {
        "model": "workhorse",
        "messages": [
            {"role": "system", "content": "Be brief.\nBe kind."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    {"type": "image_url", "image_url": {"url": "https://x/cat.jpg"}},
                ],
            },
        ],
        "max_completion_tokens": 100,
        "stream": False,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
        "user": "u-1",
    }


def test_tool_use_and_tool_results_become_tool_calls_and_tool_messages_in_order():
    chat = _chat(
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Also, thanks."},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18 C"}]},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": True},
                ],
            },
        ],
        tools=[{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert chat.raw["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18 C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: boom"},
        {"role": "user", "content": [{"type": "text", "text": "Also, thanks."}]},
    ]
    assert chat.raw["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object"}, "description": "Weather"},
        }
    ]
    assert chat.raw["tool_choice"] == "required" and chat.raw["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    ("choice", "canonical"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_tool_choices(choice, canonical):
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    assert _chat(messages=[{"role": "user", "content": "x"}], tools=tools, tool_choice=choice).raw["tool_choice"] == (
        canonical
    )


def test_a_streaming_request_asks_for_usage_so_message_delta_can_carry_it():
    chat = _chat(messages=[{"role": "user", "content": "x"}], stream=True)
    assert chat.stream and chat.include_usage


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
        {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search_20250305", "name": "w"}]},
    ],
)
def test_what_the_canonical_format_cannot_carry_is_refused_not_dropped(body):
    with pytest.raises(failures.RequestRejected):
        _chat(**body)


def test_translation_never_mutates_the_clients_request():
    body = {
        "model": "w",
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "x"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]},
        ],
    }
    before = copy.deepcopy(body)
    anthropic.to_chat(wire.MessagesRequest.from_body(body))
    assert body == before


def test_a_canonical_completion_becomes_an_anthropic_message():
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-5-mini",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    }
    assert anthropic.to_message(completion, model="fallback") == {
        "id": "msg_chatcmpl-1",
        "type": "message",
        "role": "assistant",
        "model": "gpt-5-mini",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 7},
    }


@pytest.mark.parametrize(
    ("finish", "stop"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_finish_reasons_become_stop_reasons(finish, stop):
    completion = {"choices": [{"message": {"content": "x"}, "finish_reason": finish}]}
    assert anthropic.to_message(completion, model="m")["stop_reason"] == stop


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, "invalid_request_error"), (404, "not_found_error"), (429, "rate_limit_error"), (502, "api_error")],
)
def test_errors_use_anthropics_types(status, error_type):
    assert anthropic.error_body(status, "m") == {"type": "error", "error": {"type": error_type, "message": "m"}}


def _chunk(delta=None, finish=None, **top):
    return {"id": "chatcmpl-9", "model": "m", "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}


def test_a_text_then_tool_call_stream_becomes_the_documented_event_sequence():
    writer = anthropic_events.EventWriter(model="m")
    chunks = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Hi"}),
        _chunk({"content": " there"}),
        _chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}),
        _chunk(finish="tool_calls"),
        {"id": "chatcmpl-9", "model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9}},
    ]
    events = [event for chunk in chunks for event in writer.feed(chunk)] + writer.finish()
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["id"] == "msg_chatcmpl-9" and events[0][1]["message"]["content"] == []
    assert events[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert events[5][1]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}
    assert events[6][1] == {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
    }
    assert events[9][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"input_tokens": 3, "output_tokens": 9},
    }


def test_an_empty_answer_is_still_a_complete_message():
    writer = anthropic_events.EventWriter(model="m")
    names = [name for name, _ in writer.finish()]
    assert names == ["message_start", "message_delta", "message_stop"]


@given(st.lists(st.text(min_size=1), max_size=20))
def test_streamed_text_arrives_whole_and_in_one_block(pieces):
    writer = anthropic_events.EventWriter(model="m")
    events = [event for piece in pieces for event in writer.feed(_chunk({"content": piece}))] + writer.finish()
    deltas = [data["delta"]["text"] for name, data in events if name == "content_block_delta"]
    assert "".join(deltas) == "".join(pieces)
    assert sum(name == "content_block_start" for name, _ in events) == (1 if pieces else 0)
