"""Embeddings on OpenAI-format members (``openai``, ``openai-compatible``; ``azure_openai`` reuses the
parsing): ``POST {baseURL}/embeddings``.

The request goes on as the client sent it, with the member's model, and always asks for floats:
every OpenAI-format server supports them, while base64 is optional on compatible servers. The
sidecar encodes base64 itself when the client asked for it (``server.embeddings``).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson

from pilotfish import failures
from pilotfish.providers import base
from pilotfish.routes import document
from pilotfish.specs import refs
from pilotfish.wire import http, openai

TOKEN_INPUT = True  # OpenAI's API embeds token-id arrays as well as text


def build_embeddings_request(
    request: openai.EmbeddingsRequest,
    member: document.MemberRoute,
    *,
    api_key: refs.ApiKey | None,
) -> http.UpstreamRequest:
    body: dict[str, Any] = {**request.raw, "model": member.model, "encoding_format": "float"}
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key.reveal()}"
    return http.UpstreamRequest(
        url=f"{member.base_url}/embeddings", headers=headers, body=orjson.dumps(body), stream=False
    )


def parse_embeddings_response(body: bytes, *, member: document.MemberRoute, count: int) -> openai.EmbeddingsResponse:
    """The upstream list, checked (one vector per input) and normalised to floats in input order."""
    parsed = base.parse_json(body, what="embeddings response")
    data = parsed.get("data") if isinstance(parsed, dict) else None
    if not isinstance(data, list) or len(data) != count:
        raise bad_response(f"expected {count} embeddings, got {len(data) if isinstance(data, list) else 'none'}")
    vectors = [_floats(item.get("embedding") if isinstance(item, dict) else None) for item in data]
    order = [int(item.get("index", position)) for position, item in enumerate(data)]
    prompt, _ = openai.usage_of(parsed)
    return response(
        [vector for _, vector in sorted(zip(order, vectors, strict=True), key=lambda pair: pair[0])],
        model=str(parsed.get("model") or member.model),
        prompt_tokens=prompt,
    )


def response(vectors: list[list[float]], *, model: str, prompt_tokens: int) -> openai.EmbeddingsResponse:
    """The canonical embeddings response: OpenAI's shape, floats."""
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def bad_response(detail: str) -> failures.AttemptFailed:
    return failures.AttemptFailed(failures.Failure(kind=failures.FailureKind.BAD_RESPONSE, detail=detail))


def _floats(value: Any) -> list[float]:
    if isinstance(value, str):  # a server that answered base64 anyway: little-endian float32
        raw = base64.b64decode(value)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if not isinstance(value, list) or not value:
        raise bad_response("an embedding is not a list of numbers")
    return value
