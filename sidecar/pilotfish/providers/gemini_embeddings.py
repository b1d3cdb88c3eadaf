"""Embeddings on Gemini members: ``models/{model}:embedContent`` for one text, ``:batchEmbedContents``
for a list, each text as one ``content`` with one text part.

``dimensions`` becomes ``outputDimensionality``. The Gemini API cannot embed token ids, so a
request with token arrays never reaches a Gemini member (``TOKEN_INPUT``). It reports no token usage
for embeddings: usage is 0 unless a ``usageMetadata`` comes back.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from pilotfish.providers import base, openai_embeddings
from pilotfish.routes import document
from pilotfish.specs import refs
from pilotfish.wire import http, openai

TOKEN_INPUT = False


def build_embeddings_request(
    request: openai.EmbeddingsRequest,
    member: document.MemberRoute,
    *,
    api_key: refs.ApiKey | None,
) -> http.UpstreamRequest:
    model = f"models/{member.model}"
    requests = [_request(model, text, request.dimensions) for text in request.texts()]
    single = isinstance(request.input, str)
    body: dict[str, Any] = requests[0] if single else {"requests": requests}
    action = "embedContent" if single else "batchEmbedContents"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["x-goog-api-key"] = api_key.reveal()
    url = f"{member.base_url}/v1beta/models/{quote(member.model, safe='')}:{action}"
    return http.UpstreamRequest(url=url, headers=headers, body=orjson.dumps(body), stream=False)


def _request(model: str, text: str, dimensions: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "content": {"parts": [{"text": text}]}}
    if dimensions:
        out["outputDimensionality"] = dimensions
    return out


def parse_embeddings_response(body: bytes, *, member: document.MemberRoute, count: int) -> openai.EmbeddingsResponse:
    """``{"embedding": {...}}`` (single) or ``{"embeddings": [...]}`` (batch) → the canonical list."""
    parsed = base.parse_json(body, what="embeddings response")
    if not isinstance(parsed, dict):
        raise openai_embeddings.bad_response("embeddings response is not an object")
    items = [parsed["embedding"]] if "embedding" in parsed else parsed.get("embeddings")
    if not isinstance(items, list) or len(items) != count:
        raise openai_embeddings.bad_response(f"expected {count} embeddings")
    vectors = [item.get("values") if isinstance(item, dict) else None for item in items]
    if not all(isinstance(vector, list) and vector for vector in vectors):
        raise openai_embeddings.bad_response("an embedding has no values")
    usage = parsed.get("usageMetadata")
    return openai_embeddings.response(
        vectors,  # type: ignore[arg-type]
        model=member.model,
        prompt_tokens=openai.token_count(usage.get("promptTokenCount") if isinstance(usage, dict) else 0),
    )
