import orjson
import pytest

from pilotfish import failures
from pilotfish.providers import openai as adapter
from pilotfish.providers import registry
from pilotfish.routes import document
from pilotfish.specs import credential, refs
from pilotfish.wire import openai, sse

K = failures.FailureKind

MEMBER = document.MemberRoute(
    id="prod/gpt-5-mini",
    credential="prod",
    provider=credential.ProviderType.OPENAI,
    base_url="https://api.openai.com/v1",
    api_key_ref=refs.SecretKeyRef(name="keys", key="openai"),
    model="gpt-5-mini",
    priority=0,
)


def _request(**extra):
    return openai.ChatRequest.from_body(
        {"model": "workhorse", "messages": [{"role": "user", "content": "hi"}], **extra}
    )


def test_request_names_the_member_model_and_always_streams_with_usage():
    request = _request(temperature=0.2, seed=7)
    built = adapter.build_request(request, MEMBER, api_key=refs.ApiKey("sk-test"))
    body = orjson.loads(built.body)
    assert built.url == "https://api.openai.com/v1/chat/completions"
    assert built.headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "gpt-5-mini"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.2 and body["seed"] == 7  # unknown fields pass through
    assert request.model == "workhorse"  # the input is never mutated


def test_tools_pass_through_unchanged():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = orjson.loads(adapter.build_request(_request(tools=tools, tool_choice="auto"), MEMBER, api_key=None).body)
    assert body["tools"] == tools and body["tool_choice"] == "auto"


def test_the_request_repr_never_shows_the_key():
    built = adapter.build_request(_request(), MEMBER, api_key=refs.ApiKey("sk-secret"))
    assert "sk-secret" not in repr(built)


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            429,
            {"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}},
            K.RATE_LIMITED,
        ),
        (401, {"error": {"message": "bad key", "code": "invalid_api_key"}}, K.AUTH),
        (403, {"error": {"message": "forbidden"}}, K.AUTH),
        (404, {"error": {"message": "model not found", "code": "model_not_found"}}, K.NOT_FOUND),
        (
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 8192 tokens",
                    "code": "context_length_exceeded",
                }
            },
            K.CONTEXT_LENGTH,
        ),
        (400, {"error": {"message": "flagged", "code": "content_filter"}}, K.CONTENT_FILTER),
        (400, {"error": {"message": "messages must be an array"}}, K.BAD_REQUEST),
        (500, {"error": {"message": "oops", "type": "server_error"}}, K.SERVER_ERROR),
        (502, {}, K.SERVER_ERROR),
        (503, {"error": {"message": "The engine is currently overloaded"}}, K.OVERLOADED),
    ],
)
def test_errors_are_classified_in_one_place(status, body, kind):
    assert adapter.classify_error(status, {}, orjson.dumps(body)).kind is kind


def test_retry_after_is_kept_and_html_bodies_do_not_break_classification():
    failure = adapter.classify_error(429, {"Retry-After": "12"}, b"{}")
    assert failure.kind is K.RATE_LIMITED and failure.retry_after == 12.0
    assert adapter.classify_error(502, {}, b"<html>Bad gateway</html>").kind is K.SERVER_ERROR


def test_stream_translator_passes_chunks_and_stops_at_done():
    translator = adapter.new_stream_translator(member=MEMBER)
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": "hi"}}],
    }
    assert translator.feed(sse.Event(data=orjson.dumps(chunk).decode())) == [chunk]
    assert not translator.finished
    assert translator.feed(sse.Event(data="[DONE]")) == []
    assert translator.finished


def test_an_error_object_inside_a_stream_is_a_classified_failure():
    translator = adapter.new_stream_translator(member=MEMBER)
    with pytest.raises(failures.AttemptFailed) as caught:
        translator.feed(sse.Event(data='{"error": {"message": "overloaded", "type": "overloaded_error"}}'))
    assert caught.value.failure.kind is K.OVERLOADED


def test_an_event_that_is_not_json_is_malformed_and_the_stream_goes_on():
    translator = adapter.new_stream_translator(member=MEMBER)
    with pytest.raises(failures.MalformedEvent) as caught:
        translator.feed(sse.Event(data='{"choices": [{"delta": '))
    assert caught.value.failure.kind is K.BAD_RESPONSE and caught.value.failure.detail == "stream event is not JSON"
    chunk = {"id": "c", "choices": [{"index": 0, "delta": {"content": "on"}}]}
    assert translator.feed(sse.Event(data=orjson.dumps(chunk).decode())) == [chunk]


def test_registry_maps_both_openai_formats_to_this_adapter():
    assert registry.adapter_for(credential.ProviderType.OPENAI) is adapter
    assert registry.adapter_for(credential.ProviderType.OPENAI_COMPATIBLE) is adapter


def test_the_clients_own_fields_reach_an_openai_member_untouched():
    raw = {"model": "workhorse", "messages": [{"role": "user", "content": "hi", "name": None}], "logprobs": True}
    body = orjson.loads(adapter.build_request(openai.ChatRequest.from_body(raw), MEMBER, api_key=None).body)
    assert body["messages"] == raw["messages"] and body["logprobs"] is True
    assert raw["model"] == "workhorse"  # the client's object is copied, never changed


def test_every_provider_type_has_an_adapter():
    assert registry.supported() == set(credential.ProviderType)
