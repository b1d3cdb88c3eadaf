"""Embeddings translation for OpenAI, Azure OpenAI and Gemini members, against the request and response
shapes in each vendor's public API reference; and which members an embeddings request may use."""

import base64
import struct

import orjson
import pytest

from pilotfish import failures
from pilotfish.failover import plan, unary
from pilotfish.providers import azure_openai, gemini_embeddings, openai_embeddings
from pilotfish.routes import document
from pilotfish.server import embeddings as embeddings_endpoint
from pilotfish.specs import credential, refs
from pilotfish.wire import openai

P = credential.ProviderType


def _member(provider, base_url, model, api_version=None):
    return document.MemberRoute(
        id=f"x/{model}",
        credential="x",
        provider=provider,
        base_url=base_url,
        api_key_ref=refs.SecretKeyRef(name="k", key="k"),
        api_version=api_version,
        model=model,
        priority=0,
    )


OPENAI = _member(P.OPENAI, "https://api.openai.com/v1", "text-embedding-3-small")
AZURE = _member(P.AZURE_OPENAI, "https://r.openai.azure.com", "embed-deploy", api_version="2024-10-21")
GEMINI = _member(P.GEMINI, "https://generativelanguage.googleapis.com", "gemini-embedding-001")
ANTHROPIC = _member(P.ANTHROPIC, "https://api.anthropic.com", "claude-sonnet-4-5")


def _request(**body):
    return openai.EmbeddingsRequest.from_body({"model": "embedder", **body})


def test_an_openai_member_gets_the_clients_body_with_its_model_and_floats_asked_for():
    original = {"model": "embedder", "input": ["a", "b"], "dimensions": 256, "user": "u1", "encoding_format": "base64"}
    request = openai.EmbeddingsRequest.from_body(original)
    built = openai_embeddings.build_embeddings_request(request, OPENAI, api_key=refs.ApiKey("sk-1"))
    assert built.url == "https://api.openai.com/v1/embeddings" and not built.stream
    assert built.headers["Authorization"] == "Bearer sk-1"
    assert orjson.loads(built.body) == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "dimensions": 256,
        "user": "u1",
        "encoding_format": "float",
    }
    assert original["model"] == "embedder" and original["encoding_format"] == "base64"  # not mutated


def test_an_azure_member_uses_its_deployment_url_api_version_and_api_key_header():
    built = azure_openai.build_embeddings_request(_request(input="hi"), AZURE, api_key=refs.ApiKey("az"))
    assert built.url == "https://r.openai.azure.com/openai/deployments/embed-deploy/embeddings?api-version=2024-10-21"
    assert built.headers["api-key"] == "az" and "Authorization" not in built.headers
    assert orjson.loads(built.body) == {"input": "hi", "encoding_format": "float"}


def test_one_text_to_gemini_is_embed_content():
    built = gemini_embeddings.build_embeddings_request(_request(input="hi", dimensions=768), GEMINI, api_key=None)
    assert built.url.endswith("/v1beta/models/gemini-embedding-001:embedContent")
    assert orjson.loads(built.body) == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "hi"}]},
        "outputDimensionality": 768,
    }


def test_a_list_of_texts_to_gemini_is_batch_embed_contents_in_order():
    built = gemini_embeddings.build_embeddings_request(_request(input=["one", "two"]), GEMINI, api_key=refs.ApiKey("g"))
    assert built.url.endswith(":batchEmbedContents") and built.headers["x-goog-api-key"] == "g"
    assert orjson.loads(built.body) == {
        "requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "one"}]}},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "two"}]}},
        ]
    }


def test_gemini_answers_become_openais_list_of_embeddings():
    single = gemini_embeddings.parse_embeddings_response(
        b'{"embedding": {"values": [0.5, -0.25]}}', member=GEMINI, count=1
    )
    assert single == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}],
        "model": "gemini-embedding-001",
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }
    batch = gemini_embeddings.parse_embeddings_response(
        b'{"embeddings": [{"values": [1.0]}, {"values": [2.0]}]}', member=GEMINI, count=2
    )
    assert [item["embedding"] for item in batch["data"]] == [[1.0], [2.0]]


def test_openai_answers_are_put_in_input_order_with_usage_and_base64_decoded():
    vector = [0.5, -1.0, 0.25]
    packed = base64.b64encode(struct.pack("<3f", *vector)).decode()
    body = orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": 1, "embedding": packed},
                {"object": "embedding", "index": 0, "embedding": [0.1]},
            ],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 5, "total_tokens": 5},
        }
    )
    parsed = openai_embeddings.parse_embeddings_response(body, member=OPENAI, count=2)
    assert [item["embedding"] for item in parsed["data"]] == [[0.1], vector]
    assert parsed["usage"] == {"prompt_tokens": 5, "total_tokens": 5}


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (openai_embeddings.parse_embeddings_response, b"<html>"),
        (openai_embeddings.parse_embeddings_response, b'{"data": [{"embedding": [1.0]}]}'),  # one for two inputs
        (gemini_embeddings.parse_embeddings_response, b'{"embeddings": [{"values": []}, {"values": [1]}]}'),
    ],
)
def test_an_answer_that_is_not_one_vector_per_input_is_a_bad_response(parse, body):
    with pytest.raises(failures.AttemptFailed) as failed:
        parse(body, member=OPENAI, count=2)
    assert failed.value.failure.kind is failures.FailureKind.BAD_RESPONSE


def test_anthropic_members_are_skipped_for_embeddings_and_gemini_for_token_ids():
    text, tokens = unary.Embeddings(_request(input="hi")), unary.Embeddings(_request(input=[[1, 2], [3]]))
    assert text.skip_reason(ANTHROPIC) is plan.SkipReason.OPERATION_NOT_SUPPORTED
    assert [text.skip_reason(m) for m in (OPENAI, AZURE, GEMINI)] == [None, None, None]
    assert tokens.skip_reason(GEMINI) is plan.SkipReason.INPUT_NOT_SUPPORTED
    assert tokens.skip_reason(OPENAI) is None


@pytest.mark.parametrize("bad", ["", [], [""], [[]]])
def test_empty_input_is_refused_before_any_member_is_asked(bad):
    with pytest.raises(ValueError, match="input"):
        _request(input=bad)


def test_base64_encoding_is_little_endian_float32_as_openai_sends_it():
    answer = openai_embeddings.response([[0.5, -0.75]], model="m", prompt_tokens=1)
    encoded = embeddings_endpoint.encode_base64(answer)["data"][0]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(encoded)) == (0.5, -0.75)
    assert answer["data"][0]["embedding"] == [0.5, -0.75]  # the float answer is left alone
