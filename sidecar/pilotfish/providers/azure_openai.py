"""Azure OpenAI: OpenAI's wire format behind a deployment URL, an ``api-version`` and an ``api-key``.

The model name of a member is the Azure *deployment* name. Bodies, streams and error objects are
OpenAI's, so this adapter builds its own request and reuses the OpenAI adapter for the rest: the one
place where one provider module builds on another, because Azure OpenAI is a hosting of the same API
(as Envoy AI Gateway's azure translator embeds its OpenAI one).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from pilotfish.providers import openai as openai_format
from pilotfish.providers import openai_embeddings
from pilotfish.routes import document
from pilotfish.specs import refs
from pilotfish.wire import http, openai

API_VERSION = "2024-10-21"  # the GA data-plane version; a credential's apiVersion overrides it

# Same wire format: the OpenAI adapter parses, streams and classifies for Azure too.
parse_response = openai_format.parse_response
new_stream_translator = openai_format.new_stream_translator
classify_error = openai_format.classify_error
parse_embeddings_response = openai_embeddings.parse_embeddings_response
TOKEN_INPUT = True


def build_request(
    request: openai.ChatRequest,
    member: document.MemberRoute,
    *,
    api_key: refs.ApiKey | None,
) -> http.UpstreamRequest:
    body: dict[str, Any] = {**request.raw, "stream": True, "stream_options": {"include_usage": True}}
    body.pop("model", None)  # the deployment in the URL chooses the model
    if member.max_output_tokens and request.output_token_limit() is None:
        body["max_completion_tokens"] = member.max_output_tokens
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if api_key:
        headers["api-key"] = api_key.reveal()
    return http.UpstreamRequest(
        url=_url(member, "chat/completions"), headers=headers, body=orjson.dumps(body), stream=True
    )


def build_embeddings_request(
    request: openai.EmbeddingsRequest,
    member: document.MemberRoute,
    *,
    api_key: refs.ApiKey | None,
) -> http.UpstreamRequest:
    body: dict[str, Any] = {**request.raw, "encoding_format": "float"}
    body.pop("model", None)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["api-key"] = api_key.reveal()
    return http.UpstreamRequest(url=_url(member, "embeddings"), headers=headers, body=orjson.dumps(body), stream=False)


def _url(member: document.MemberRoute, operation: str) -> str:
    version = quote(member.api_version or API_VERSION, safe="")
    return f"{member.base_url}/openai/deployments/{quote(member.model, safe='')}/{operation}?api-version={version}"
