"""OpenAI chat completions (also every ``openai-compatible`` server): the canonical format.

Translation is nearly the identity: the class name in ``model`` becomes the member's model, and the
upstream call always streams with usage included, so the engine can apply the first-token deadline
to every request and count tokens even when the client did not ask for usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pilotfish import failures
from pilotfish.providers import base
from pilotfish.routes import document
from pilotfish.specs import refs
from pilotfish.wire import http, openai, sse

_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}

# Error codes OpenAI-format servers use for a prompt over the model's window (OpenAI, vLLM, Azure).
_CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
_CONTEXT_PHRASES = ("maximum context length", "context length", "context_length_exceeded", "too many tokens")
_FILTER_CODES = frozenset({"content_filter", "content_policy_violation"})
# OpenAI's 403 for a pod in a country it does not serve ("Country, region, or territory not supported").
_REGION_CODES = frozenset({"unsupported_country_region_territory"})
_REGION_PHRASES = ("country, region, or territory not supported",)


def build_request(
    request: openai.ChatRequest,
    member: document.MemberRoute,
    *,
    api_key: refs.ApiKey | None,
) -> http.UpstreamRequest:
    body: dict[str, Any] = {
        **request.raw,
        "model": member.model,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if member.max_output_tokens and request.output_token_limit() is None:
        body["max_completion_tokens"] = member.max_output_tokens
    headers = dict(_JSON_HEADERS)
    if api_key:
        headers["Authorization"] = f"Bearer {api_key.reveal()}"
    return http.UpstreamRequest(
        url=f"{member.base_url}/chat/completions",
        headers=headers,
        body=orjson.dumps(body),
        stream=True,
    )


def parse_response(body: bytes, *, member: document.MemberRoute) -> openai.ChatCompletion:
    """A non-streaming completion is already canonical; only check that it is one."""
    parsed = base.parse_json(body, what="response")
    if not isinstance(parsed, dict) or "choices" not in parsed:
        raise failures.AttemptFailed(
            failures.Failure(kind=failures.FailureKind.BAD_RESPONSE, detail="response has no choices")
        )
    if "usage" in parsed:
        parsed["usage"] = openai.clean_usage(parsed["usage"])
    return parsed


class StreamTranslator:
    """OpenAI chunks pass through; ``[DONE]`` and in-stream ``error`` objects are recognised."""

    __slots__ = ("finished",)

    def __init__(self) -> None:
        self.finished = False

    def feed(self, event: sse.Event) -> list[openai.ChatChunk]:
        data = event.data
        if data == sse.DONE:
            self.finished = True
            return []
        try:  # base.parse_json, inline: this runs for every event of every OpenAI-format answer
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise base.not_json("stream event") from exc
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            error = chunk["error"]
            raise failures.AttemptFailed(_classify_error_object(error if isinstance(error, dict) else {}, status=None))
        if chunk.get("usage") is not None:
            chunk["usage"] = openai.clean_usage(chunk["usage"])  # passed on to the client: counts must be numbers
        return [chunk]


def new_stream_translator(*, member: document.MemberRoute) -> StreamTranslator:
    return StreamTranslator()


def classify_error(status: int, headers: Mapping[str, str], body: bytes) -> failures.Failure:
    """Map an OpenAI-format error response to the failure vocabulary."""
    error: Any = {}
    try:
        parsed = orjson.loads(body) if body else {}
        if isinstance(parsed, dict):
            error = parsed.get("error", parsed)
    except orjson.JSONDecodeError:
        error = {"message": body[:200].decode("utf-8", errors="replace")}
    failure = _classify_error_object(error if isinstance(error, dict) else {}, status=status)
    retry_after = failures.parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
    if retry_after is not None:
        return failures.Failure(
            kind=failure.kind,
            status=status,
            retry_after=retry_after,
            detail=failure.detail,
            code=failure.code,
        )
    return failure


def _classify_error_object(error: Mapping[str, Any], *, status: int | None) -> failures.Failure:
    code = str(error.get("code") or error.get("type") or "") or None
    message = str(error.get("message") or "")
    kind = _kind_for(status, code or "", message.lower())
    credential = _credential_problem(status, code or "", message.lower()) if kind is failures.FailureKind.AUTH else None
    return failures.Failure(kind=kind, status=status, detail=message, code=code, credential=credential)


def _credential_problem(status: int | None, code: str, message: str) -> failures.CredentialProblem:
    """OpenAI (and Azure, same format): 401 invalid_api_key / "Access denied due to invalid subscription
    key"; 403 unsupported_country_region_territory; any other 403 is a permission the key lacks."""
    problems = failures.CredentialProblem
    if code in _REGION_CODES or any(phrase in message for phrase in _REGION_PHRASES):
        return problems.REGION_NOT_SUPPORTED
    return problems.INVALID_KEY if status == 401 else problems.PERMISSION_DENIED


def _kind_for(status: int | None, code: str, message: str) -> failures.FailureKind:
    kinds = failures.FailureKind
    if code in _CONTEXT_CODES or any(phrase in message for phrase in _CONTEXT_PHRASES):
        return kinds.CONTEXT_LENGTH
    if code in _FILTER_CODES:
        return kinds.CONTENT_FILTER
    if status == 429:
        return kinds.RATE_LIMITED
    if status in (401, 403):
        return kinds.AUTH
    if status == 404:
        return kinds.NOT_FOUND
    if status in (503, 529) or "overloaded" in code or "overloaded" in message:
        return kinds.OVERLOADED
    if status is None or status >= 500:
        return kinds.SERVER_ERROR
    if status in (408, 409):  # request timeout / conflict: transient, another member may serve
        return kinds.SERVER_ERROR
    return kinds.BAD_REQUEST
