"""The adapter interface every provider module implements.

Translation is a pure function of (canonical request, member, key): it never mutates its input
because the engine calls it again for every member it fails over to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from pilotfish import failures
from pilotfish.routes import document
from pilotfish.specs import refs
from pilotfish.wire import http, openai, sse


class StreamTranslator(Protocol):
    """Turns one upstream stream into OpenAI chunks; one instance per attempt, holding its buffers.

    ``feed`` raises ``failures.AttemptFailed`` for an in-stream error event (e.g. Anthropic's
    ``overloaded_error`` after a 200). ``finished`` becomes true on the provider's terminal event.
    """

    @property
    def finished(self) -> bool: ...

    def feed(self, event: sse.Event) -> list[openai.ChatChunk]: ...


class Adapter(Protocol):
    """What a provider module provides; modules satisfy it structurally."""

    def build_request(
        self,
        request: openai.ChatRequest,
        member: document.MemberRoute,
        *,
        api_key: refs.ApiKey | None,
    ) -> http.UpstreamRequest: ...

    def parse_response(self, body: bytes, *, member: document.MemberRoute) -> openai.ChatCompletion: ...

    def new_stream_translator(self, *, member: document.MemberRoute) -> StreamTranslator: ...

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> failures.Failure: ...


class Embedder(Protocol):
    """What a provider with an embeddings API provides (Anthropic has none); modules satisfy it."""

    TOKEN_INPUT: bool  # whether its API embeds token-id arrays, not only text

    def build_embeddings_request(
        self,
        request: openai.EmbeddingsRequest,
        member: document.MemberRoute,
        *,
        api_key: refs.ApiKey | None,
    ) -> http.UpstreamRequest: ...

    def parse_embeddings_response(
        self, body: bytes, *, member: document.MemberRoute, count: int
    ) -> openai.EmbeddingsResponse: ...


def parse_json(data: bytes | str, *, what: str) -> Any:
    """JSON from a provider, or the ``bad_response`` failure every adapter reports for garbage."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise not_json(what) from exc


def not_json(what: str) -> failures.MalformedEvent:
    """The failure of ``parse_json``, for an adapter that parses a hot path itself."""
    return failures.MalformedEvent(
        failures.Failure(kind=failures.FailureKind.BAD_RESPONSE, detail=f"{what} is not JSON")
    )
