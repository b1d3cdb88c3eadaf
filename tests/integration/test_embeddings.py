"""POST /v1/embeddings through the real sidecar, with the official OpenAI SDK as the client: the same
failover engine as chat, across OpenAI-format and Gemini members; Anthropic members are skipped."""

from __future__ import annotations

import base64
import struct

import openai
import pytest

from pilotfish.mocks import answers

EMBEDDER = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: embedder}
spec:
  members:
    - {credentialRef: claude, model: claude-sonnet-4-5}
    - {credentialRef: primary, model: text-embedding-3-small}
    - {credentialRef: gemini, model: gemini-embedding-001}
  timeouts: {connectSeconds: 1, firstTokenSeconds: 0.5, totalSeconds: 10}
  health: {failureThreshold: 2, cooldownSeconds: 1}
"""
TEXTS = ["The quick brown fox", "jumps over the lazy dog"]


def _class(name, *members):
    lines = "\n".join(f"    - {{credentialRef: {credential}, model: {model}}}" for credential, model in members)
    return f"""\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {{name: {name}}}
spec:
  members:
{lines}
"""


async def _embed(client, **kwargs):
    raw = await client.embeddings.with_raw_response.create(model="embedder", **kwargs)
    headers = {k.lower(): v for k, v in raw.headers.items() if k.lower().startswith("x-pilotfish-")}
    return raw.parse(), headers


@pytest.mark.parametrize("encoding", [None, "float", "base64"])
async def test_an_openai_member_embeds_and_the_anthropic_member_is_skipped_not_tried(local_sidecar, mocks, encoding):
    sidecar = await local_sidecar(EMBEDDER)
    extra = {"encoding_format": encoding} if encoding else {}
    response, headers = await _embed(sidecar.client(), input=TEXTS, **extra)
    assert [_floats(item.embedding) for item in response.data] == [answers.embedding("primary", t) for t in TEXTS]
    assert [item.index for item in response.data] == [0, 1]
    assert response.model == "text-embedding-3-small"
    assert response.usage.prompt_tokens == 9 and response.usage.total_tokens == 9
    assert headers["x-pilotfish-member"] == "primary/text-embedding-3-small"
    assert headers["x-pilotfish-attempts"] == "1"
    assert "x-pilotfish-failover-reason" not in headers  # a member with no embeddings API was never a choice
    assert mocks["claude"].stats.requests == 0
    assert mocks["primary"].stats.last_body["encoding_format"] == "float"
    line = await sidecar.last_request_line()
    assert line["skipped"] == [{"member": "claude/claude-sonnet-4-5", "reason": "operation_not_supported"}]
    assert [attempt["member"] for attempt in line["attempts"]] == ["primary/text-embedding-3-small"]
    assert line["operation"] == "embeddings" and line["failover_reason"] is None
    assert "pilotfish_failovers_total{" not in await sidecar.metrics()


def _floats(embedding):
    """The SDK decodes base64 itself only when it chose base64; asked for explicitly, it hands it over."""
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return embedding


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"mode": "status", "status": 500}, "server_error"),
        ({"mode": "status", "status": 503}, "overloaded"),
        ({"mode": "rate-limit", "retry_after": 30}, "rate_limited"),
        ({"mode": "hang"}, "first_token_timeout"),
        ({"mode": "reset"}, "connect_error"),
        ({"mode": "cut"}, "stream_interrupted"),
    ],
)
async def test_a_failing_openai_member_fails_over_to_gemini(local_sidecar, mocks, fault, reason):
    sidecar = await local_sidecar(EMBEDDER)
    mocks["primary"].set_fault(**fault)
    response, headers = await _embed(sidecar.client(), input=TEXTS, dimensions=4)
    assert [item.embedding for item in response.data] == [answers.embedding("gemini", text, 4) for text in TEXTS]
    assert response.model == "gemini-embedding-001"
    quick_retry = reason in ("server_error", "connect_error")  # one same-member retry on a transient failure
    assert headers["x-pilotfish-member"] == "gemini/gemini-embedding-001"
    assert headers["x-pilotfish-attempts"] == ("3" if quick_retry else "2")
    assert headers["x-pilotfish-failover-reason"] == reason
    sent = mocks["gemini"].stats.last_body
    assert [r["outputDimensionality"] for r in sent["requests"]] == [4, 4]


async def test_one_text_goes_to_gemini_as_embed_content(local_sidecar, mocks):
    sidecar = await local_sidecar(_class("embedder", ("gemini", "gemini-embedding-001")))
    response, _ = await _embed(sidecar.client(), input="just one")
    assert [item.embedding for item in response.data] == [answers.embedding("gemini", "just one")]
    assert "requests" not in mocks["gemini"].stats.last_body
    assert mocks["gemini"].stats.last_body["content"] == {"parts": [{"text": "just one"}]}


async def test_an_open_circuit_keeps_the_broken_member_out_of_later_requests(local_sidecar, mocks):
    sidecar = await local_sidecar(EMBEDDER)
    mocks["primary"].set_fault(mode="status", status=500)
    for _ in range(2):  # failureThreshold: 2
        await _embed(sidecar.client(), input=TEXTS)
    before = mocks["primary"].stats.requests
    _, headers = await _embed(sidecar.client(), input=TEXTS)
    assert mocks["primary"].stats.requests == before
    assert headers["x-pilotfish-attempts"] == "1" and headers["x-pilotfish-member"].startswith("gemini/")


async def test_token_ids_skip_gemini_and_go_to_an_openai_member(local_sidecar, mocks):
    sidecar = await local_sidecar(
        _class("embedder", ("gemini", "gemini-embedding-001"), ("primary", "text-embedding-3-small"))
    )
    response, headers = await _embed(sidecar.client(), input=[[1, 2, 3], [4]])
    assert len(response.data) == 2 and headers["x-pilotfish-member"].startswith("primary/")
    assert "x-pilotfish-failover-reason" not in headers  # gemini cannot embed token ids: routing, not a failover
    assert mocks["gemini"].stats.requests == 0


async def test_token_ids_with_no_member_that_takes_them_are_a_clear_400(local_sidecar, mocks):
    sidecar = await local_sidecar(_class("embedder", ("gemini", "gemini-embedding-001")))
    with pytest.raises(openai.BadRequestError) as refused:
        await sidecar.client().embeddings.create(model="embedder", input=[[1, 2, 3]])
    assert refused.value.code == "no_eligible_members"
    assert "token-id arrays need an OpenAI-format member" in refused.value.message
    assert mocks["gemini"].stats.requests == 0


async def test_a_class_of_anthropic_members_only_cannot_embed_and_says_why(local_sidecar, mocks):
    sidecar = await local_sidecar(_class("embedder", ("claude", "claude-sonnet-4-5")))
    with pytest.raises(openai.BadRequestError) as refused:
        await sidecar.client().embeddings.create(model="embedder", input="x")
    assert "claude/claude-sonnet-4-5: operation_not_supported" in refused.value.message
    assert "Anthropic has no embeddings" in refused.value.message
    assert mocks["claude"].stats.requests == 0


async def test_every_member_failing_names_each_attempt(local_sidecar, mocks):
    sidecar = await local_sidecar(EMBEDDER)
    mocks["primary"].set_fault(mode="status", status=500)
    mocks["gemini"].set_fault(mode="status", status=503)
    with pytest.raises(openai.APIStatusError) as failed:
        await sidecar.client().embeddings.create(model="embedder", input="x")
    assert failed.value.status_code == 503
    assert "primary/text-embedding-3-small: server_error (500)" in failed.value.message
    assert "gemini/gemini-embedding-001: overloaded (503)" in failed.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [({"model": "embedder"}, "input"), ({"model": "embedder", "input": []}, "input")],
)
async def test_a_malformed_request_is_refused_in_openais_format(local_sidecar, body, param):
    sidecar = await local_sidecar(EMBEDDER)
    with pytest.raises(openai.BadRequestError) as refused:
        await sidecar.client().post("/embeddings", body=body, cast_to=object)
    assert refused.value.body["param"] == param


async def test_an_unknown_class_is_a_404_naming_the_classes(local_sidecar):
    sidecar = await local_sidecar(EMBEDDER)
    with pytest.raises(openai.NotFoundError) as missing:
        await sidecar.client().embeddings.create(model="nope", input="x")
    assert "embedder" in missing.value.message
