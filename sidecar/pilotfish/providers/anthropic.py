"""Anthropic Messages API: OpenAI chat requests in, Anthropic ``/v1/messages`` out, and back.

What differs from OpenAI and is handled here: system and developer messages go to the top-level
``system``; consecutive same-role messages are merged (Anthropic requires alternation); ``max_tokens``
is mandatory; tool calls are ``tool_use`` blocks and tool results are ``tool_result`` blocks in a
*user* message; images are ``image`` blocks with a base64 or URL source; usage and stop reasons have
their own names. The stream is a sequence of named events, translated into OpenAI chunks one event
at a time; an ``error`` event after a 200 is a classified failure like any other.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import orjson

from pilotfish import failures
from pilotfish.providers import base
from pilotfish.routes import document
from pilotfish.specs import refs
from pilotfish.wire import http, openai, sse

API_VERSION = "2023-06-01"  # the anthropic-version header; a credential's apiVersion overrides it
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; used when neither request nor member sets one

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_ERROR_KINDS = {
    "overloaded_error": failures.FailureKind.OVERLOADED,
    "rate_limit_error": failures.FailureKind.RATE_LIMITED,
    "authentication_error": failures.FailureKind.AUTH,
    "permission_error": failures.FailureKind.AUTH,
    "not_found_error": failures.FailureKind.NOT_FOUND,
    "api_error": failures.FailureKind.SERVER_ERROR,
    "timeout_error": failures.FailureKind.SERVER_ERROR,
    "request_too_large": failures.FailureKind.CONTEXT_LENGTH,
}
_CONTEXT_PHRASES = ("prompt is too long", "context window", "too many tokens", "exceeds the maximum")
_REGION_PHRASES = ("region", "country", "territory", "location")  # a 403 for where the pod runs


def build_request(
    request: openai.ChatRequest,
    member: document.MemberRoute,
    *,
    api_key: refs.ApiKey | None,
) -> http.UpstreamRequest:
    system, messages = _messages(request)
    body: dict[str, Any] = {
        "model": member.model,
        "max_tokens": request.output_token_limit() or member.max_output_tokens or DEFAULT_MAX_TOKENS,
        "messages": messages,
        "stream": True,
    }
    if system:
        body["system"] = system
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p")):
        value = getattr(request, ours)
        if value is not None:
            body[theirs] = min(value, 1.0) if ours == "temperature" else value  # Anthropic's range is 0..1
    if request.stop:
        body["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
        choice = _tool_choice(request.tool_choice)
        if choice:
            body["tool_choice"] = choice
    if request.user:
        body["metadata"] = {"user_id": request.user}
    headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
        "anthropic-version": member.api_version or API_VERSION,
    }
    if api_key:
        headers["x-api-key"] = api_key.reveal()
    return http.UpstreamRequest(
        url=f"{member.base_url}/v1/messages", headers=headers, body=orjson.dumps(body), stream=True
    )


def _messages(request: openai.ChatRequest) -> tuple[str, list[dict[str, Any]]]:
    """(system text, alternating user/assistant messages)."""
    system_parts: list[str] = []
    out: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role in ("system", "developer"):
            system_parts.append(message.text())
            continue
        role, blocks = _blocks(message)
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)  # Anthropic requires alternating roles: merge
        else:
            out.append({"role": role, "content": blocks})
    if request.response_format and request.response_format.get("type") in ("json_object", "json_schema"):
        system_parts.append("Respond with a single JSON value and nothing else.")
    return "\n\n".join(part for part in system_parts if part), out


def _blocks(message: openai.Message) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "tool":
        result = {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.text()}
        return "user", [result]
    blocks: list[dict[str, Any]] = []
    if isinstance(message.content, str):
        if message.content:
            blocks.append({"type": "text", "text": message.content})
    else:
        for part in message.content or ():
            if part.type == "text" and part.text:
                blocks.append({"type": "text", "text": part.text})
            elif part.type == "image_url" and part.image_url:
                blocks.append(_image(str(part.image_url.get("url", ""))))
    for call in message.tool_calls or ():
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": _json_object(call.function.arguments),
            }
        )
    role = "assistant" if message.role == "assistant" else "user"
    return role, blocks


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header.removeprefix("data:").split(";", 1)[0] or "image/png"
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _json_object(arguments: str) -> Any:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {"value": value}


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or {}
    out = {"name": function.get("name", ""), "input_schema": function.get("parameters") or {"type": "object"}}
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if choice is None or choice == "auto":
        return {"type": "auto"} if choice else None
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and choice.get("function"):
        return {"type": "tool", "name": choice["function"].get("name", "")}
    return None


def parse_response(body: bytes, *, member: document.MemberRoute) -> openai.ChatCompletion:
    """A non-streaming Anthropic message as an OpenAI chat.completion."""
    message = base.parse_json(body, what="response")
    text = "".join(block.get("text", "") for block in message.get("content", []) if block.get("type") == "text")
    calls = [
        {
            "id": block["id"],
            "type": "function",
            "function": {"name": block["name"], "arguments": orjson.dumps(block.get("input") or {}).decode()},
        }
        for block in message.get("content", [])
        if block.get("type") == "tool_use"
    ]
    result: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        result["tool_calls"] = calls
    usage = _usage_object(message)
    prompt, completion = openai.token_count(usage.get("input_tokens")), openai.token_count(usage.get("output_tokens"))
    return {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model", member.model),
        "choices": [
            {
                "index": 0,
                "message": result,
                "logprobs": None,
                "finish_reason": STOP_REASONS.get(str(message.get("stop_reason")), "stop"),
            }
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


class StreamTranslator:
    """Anthropic events → OpenAI chunks; holds the message id, model, usage and tool-call indexes."""

    def __init__(self, *, model: str) -> None:
        self.finished = False
        self._base: dict[str, Any] = {
            "id": "",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        self._usage = {"prompt_tokens": 0, "completion_tokens": 0}
        self._tool_index: dict[int, int] = {}  # Anthropic content block index → OpenAI tool_calls index

    def feed(self, event: sse.Event) -> list[openai.ChatChunk]:
        if event.event == "ping" or not event.data:
            return []
        data = base.parse_json(event.data, what="stream event")
        kind = data.get("type") or event.event
        handler = getattr(self, f"_on_{kind}", None)
        return handler(data) if handler is not None else []

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> openai.ChatChunk:
        return {**self._base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def _on_message_start(self, data: dict[str, Any]) -> list[openai.ChatChunk]:
        message = data.get("message") or {}
        self._base["id"] = message.get("id", "")
        self._base["model"] = message.get("model", self._base["model"])
        usage = _usage_object(message)
        self._usage["prompt_tokens"] = openai.token_count(usage.get("input_tokens"))
        self._usage["completion_tokens"] = openai.token_count(usage.get("output_tokens"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_content_block_start(self, data: dict[str, Any]) -> list[openai.ChatChunk]:
        block = data.get("content_block") or {}
        if block.get("type") != "tool_use":
            return [self._chunk({"content": block["text"]})] if block.get("text") else []
        index = self._tool_index.setdefault(int(data.get("index", 0)), len(self._tool_index))
        call = {
            "index": index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name", ""), "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _on_content_block_delta(self, data: dict[str, Any]) -> list[openai.ChatChunk]:
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if delta.get("type") == "input_json_delta":
            index = self._tool_index.get(int(data.get("index", 0)), 0)
            arguments = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
            return [self._chunk({"tool_calls": [arguments]})]
        return []  # thinking and signature deltas have no OpenAI counterpart

    def _on_message_delta(self, data: dict[str, Any]) -> list[openai.ChatChunk]:
        usage = _usage_object(data)
        if usage.get("output_tokens") is not None:
            self._usage["completion_tokens"] = openai.token_count(usage["output_tokens"])
        if usage.get("input_tokens"):
            self._usage["prompt_tokens"] = openai.token_count(usage["input_tokens"])
        reason = (data.get("delta") or {}).get("stop_reason")
        return [self._chunk({}, STOP_REASONS.get(str(reason), "stop"))] if reason else []

    def _on_message_stop(self, data: dict[str, Any]) -> list[openai.ChatChunk]:
        self.finished = True
        usage = {**self._usage, "total_tokens": self._usage["prompt_tokens"] + self._usage["completion_tokens"]}
        return [{**self._base, "choices": [], "usage": usage}]

    def _on_error(self, data: dict[str, Any]) -> list[openai.ChatChunk]:
        raise failures.AttemptFailed(_classify_error_object(data.get("error") or {}, status=None))


def _usage_object(container: Mapping[str, Any]) -> Mapping[str, Any]:
    usage = container.get("usage")
    return usage if isinstance(usage, dict) else {}


def new_stream_translator(*, member: document.MemberRoute) -> StreamTranslator:
    return StreamTranslator(model=member.model)


def classify_error(status: int, headers: Mapping[str, str], body: bytes) -> failures.Failure:
    error: Any = {}
    try:
        parsed = orjson.loads(body) if body else {}
        error = parsed.get("error", {}) if isinstance(parsed, dict) else {}
    except orjson.JSONDecodeError:
        error = {"message": body[:200].decode("utf-8", errors="replace")}
    failure = _classify_error_object(error if isinstance(error, dict) else {}, status=status)
    retry_after = failures.parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"))
    return dataclasses.replace(failure, status=status, retry_after=retry_after)


def _classify_error_object(error: Mapping[str, Any], *, status: int | None) -> failures.Failure:
    code = str(error.get("type") or "") or None
    message = str(error.get("message") or "")
    kind = _ERROR_KINDS.get(code or "")
    if kind is None or code == "invalid_request_error":
        kind = _kind_by_status(status, message.lower())
    credential = _credential_problem(status, code or "", message.lower()) if kind is failures.FailureKind.AUTH else None
    return failures.Failure(kind=kind, status=status, detail=message, code=code, credential=credential)


def _credential_problem(status: int | None, code: str, message: str) -> failures.CredentialProblem:
    """Anthropic: 401 authentication_error (bad key), 403 permission_error (the key may not do this,
    or the request comes from a region Anthropic does not serve)."""
    problems = failures.CredentialProblem
    if code == "authentication_error" or (status == 401 and code != "permission_error"):
        return problems.INVALID_KEY
    if any(phrase in message for phrase in _REGION_PHRASES):
        return problems.REGION_NOT_SUPPORTED
    return problems.PERMISSION_DENIED


def _kind_by_status(status: int | None, message: str) -> failures.FailureKind:
    kinds = failures.FailureKind
    if any(phrase in message for phrase in _CONTEXT_PHRASES):
        return kinds.CONTEXT_LENGTH
    by_status = {
        429: kinds.RATE_LIMITED,
        401: kinds.AUTH,
        403: kinds.AUTH,
        404: kinds.NOT_FOUND,
        413: kinds.CONTEXT_LENGTH,
        529: kinds.OVERLOADED,
        503: kinds.OVERLOADED,
    }
    if status in by_status:
        return by_status[status]
    if status is None or status >= 500:
        return kinds.SERVER_ERROR
    return kinds.BAD_REQUEST
