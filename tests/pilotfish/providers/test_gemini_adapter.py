"""OpenAI ⇄ Gemini translation, against the shapes in the Gemini API's public docs."""

import orjson
import pytest

from pilotfish import failures
from pilotfish.providers import gemini as adapter
from pilotfish.providers import registry
from pilotfish.routes import document
from pilotfish.specs import credential, refs
from pilotfish.wire import openai, sse

K = failures.FailureKind
MEMBER = document.MemberRoute(
    id="google/gemini-2.5-pro",
    credential="google",
    provider=credential.ProviderType.GEMINI,
    base_url="https://generativelanguage.googleapis.com",
    api_key_ref=refs.SecretKeyRef(name="keys", key="gemini"),
    model="gemini-2.5-pro",
    priority=0,
)


def _build(**body):
    built = adapter.build_request(
        openai.ChatRequest.from_body({"model": "w", **body}), MEMBER, api_key=refs.ApiKey("g-key")
    )
    return built, orjson.loads(built.body)


def test_messages_become_contents_with_system_instruction_and_generation_config():
    built, body = _build(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "JSON please"},
        ],
        temperature=0.3,
        top_p=0.8,
        max_tokens=64,
        stop=["END"],
        response_format={"type": "json_object"},
    )
    assert (
        built.url
        == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    )
    assert built.headers["x-goog-api-key"] == "g-key"
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.8,
        "maxOutputTokens": 64,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
    }


def test_tool_calls_and_results_use_function_names():
    _, body = _build(
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_9", "content": "sunny"},
        ],
        tools=[{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
        tool_choice="required",
    )
    assert body["contents"][1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}],
    }
    assert body["contents"][2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "weather", "response": {"content": "sunny"}}}],
    }
    assert body["tools"] == [{"functionDeclarations": [{"name": "weather", "parameters": {"type": "object"}}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def _event(data):
    return sse.Event(data=orjson.dumps(data).decode())


def test_a_stream_ends_at_the_finish_reason_with_usage():
    translator = adapter.new_stream_translator(member=MEMBER)
    chunks = translator.feed(
        _event({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}], "modelVersion": "gemini-2.5-pro-002"})
    )
    assert not translator.finished
    chunks += translator.feed(
        _event(
            {
                "candidates": [{"content": {"parts": [{"text": "lo"}]}, "finishReason": "MAX_TOKENS"}],
                "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 2, "thoughtsTokenCount": 3},
            }
        )
    )
    assert translator.finished
    assert [c["choices"][0]["delta"] for c in chunks[:3]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
    ]
    assert chunks[3]["choices"][0]["finish_reason"] == "length"
    assert chunks[4]["usage"] == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    assert chunks[0]["model"] == "gemini-2.5-pro-002"


def test_function_calls_arrive_whole_and_finish_as_tool_calls():
    translator = adapter.new_stream_translator(member=MEMBER)
    chunks = translator.feed(
        _event(
            {
                "candidates": [
                    {
                        "content": {"parts": [{"functionCall": {"name": "weather", "args": {"city": "Rome"}}}]},
                        "finishReason": "STOP",
                    }
                ]
            }
        )
    )
    call = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert call["function"] == {"name": "weather", "arguments": '{"city":"Rome"}'} and call["id"].startswith("call_")
    assert chunks[2]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("reason", ["SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST"])
def test_safety_stops_are_content_filter(reason):
    translator = adapter.new_stream_translator(member=MEMBER)
    chunks = translator.feed(_event({"candidates": [{"content": {"parts": []}, "finishReason": reason}]}))
    assert chunks[-2]["choices"][0]["finish_reason"] == "content_filter"


def test_a_prompt_blocked_by_prompt_feedback_is_a_content_filter_outcome_not_a_provider_failure():
    translator = adapter.new_stream_translator(member=MEMBER)
    with pytest.raises(failures.AttemptFailed) as caught:
        translator.feed(_event({"promptFeedback": {"blockReason": "SAFETY"}}))
    assert caught.value.failure.kind is K.CONTENT_FILTER


@pytest.mark.parametrize(
    ("status", "google_status", "message", "kind"),
    [
        (429, "RESOURCE_EXHAUSTED", "quota", K.RATE_LIMITED),
        (503, "UNAVAILABLE", "overloaded", K.OVERLOADED),
        (500, "INTERNAL", "oops", K.SERVER_ERROR),
        (403, "PERMISSION_DENIED", "no", K.AUTH),
        (404, "NOT_FOUND", "models/x is not found", K.NOT_FOUND),
        (
            400,
            "INVALID_ARGUMENT",
            "The input token count (2000000) exceeds the maximum number of tokens allowed",
            K.CONTEXT_LENGTH,
        ),
        (400, "INVALID_ARGUMENT", "Invalid JSON payload", K.BAD_REQUEST),
    ],
)
def test_errors_are_classified_in_one_place(status, google_status, message, kind):
    body = orjson.dumps(
        {
            "error": {
                "code": status,
                "message": message,
                "status": google_status,
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "20s"}],
            }
        }
    )
    failure = adapter.classify_error(status, {}, body)
    assert failure.kind is kind and failure.code == google_status and failure.retry_after == 20.0


def test_the_registry_maps_gemini_to_this_adapter():
    assert registry.adapter_for(credential.ProviderType.GEMINI) is adapter
