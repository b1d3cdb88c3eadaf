"""The Gemini mock speaks the real wire format: the official google-genai SDK is the judge."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from pilotfish.mocks import answers, runner

KEY = "gemini-test-key-7"


@pytest.fixture
async def mock():
    started = await runner.start_mock(provider="gemini", name="gemini-mock", api_key=KEY)
    yield started
    await started.stop()


def _client(mock, key=KEY):
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=mock.url, api_version="v1beta"))


async def test_generate_content_parses_in_the_sdk(mock):
    response = await _client(mock).aio.models.generate_content(model="gemini-2.5-pro", contents="Say hello")
    assert response.text == answers.ANSWER.format(name="gemini-mock")
    assert response.usage_metadata.prompt_token_count == 2 and response.usage_metadata.candidates_token_count == 16
    assert response.candidates[0].finish_reason == types.FinishReason.STOP


async def test_the_stream_parses_in_the_sdk(mock):
    stream = await _client(mock).aio.models.generate_content_stream(model="gemini-2.5-pro", contents="hi")
    text = "".join([chunk.text or "" async for chunk in stream])
    assert text == answers.ANSWER.format(name="gemini-mock")


async def test_function_calls_parse_in_the_sdk(mock):
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(name="get_weather", description="w")])
    response = await _client(mock).aio.models.generate_content(
        model="gemini-2.5-pro", contents="weather?", config=types.GenerateContentConfig(tools=[tool])
    )
    call = response.function_calls[0]
    assert call.name == "get_weather" and call.args == {"city": "Paris"}


async def test_errors_are_the_sdk_errors_with_googles_statuses(mock):
    with pytest.raises(errors.ClientError) as bad_key:
        await _client(mock, key="wrong").aio.models.generate_content(model="m", contents="x")
    assert bad_key.value.code == 400
    mock.set_fault(mode="rate-limit", retry_after=20)
    with pytest.raises(errors.ClientError) as limited:
        await _client(mock).aio.models.generate_content(model="m", contents="x")
    assert limited.value.code == 429 and limited.value.status == "RESOURCE_EXHAUSTED"
    mock.set_fault(mode="status", status=503)
    with pytest.raises(errors.ServerError) as unavailable:
        await _client(mock).aio.models.generate_content(model="m", contents="x")
    assert unavailable.value.status == "UNAVAILABLE"


async def test_embeddings_parse_in_the_sdk_one_vector_per_text(mock):
    response = await _client(mock).aio.models.embed_content(
        model="gemini-embedding-001",
        contents=["first text", "second text"],
        config=types.EmbedContentConfig(output_dimensionality=16),
    )
    assert [e.values for e in response.embeddings] == [
        answers.embedding("gemini-mock", "first text", 16),
        answers.embedding("gemini-mock", "second text", 16),
    ]
    assert mock.stats.last_body["requests"][0]["model"] == "models/gemini-embedding-001"


async def test_embedding_faults_are_the_sdk_errors_too(mock):
    mock.set_fault(mode="status", status=503)
    with pytest.raises(errors.ServerError) as unavailable:
        await _client(mock).aio.models.embed_content(model="gemini-embedding-001", contents=["x"])
    assert unavailable.value.status == "UNAVAILABLE"
