"""The Anthropic dialect: Messages requests in, the canonical (OpenAI-shaped) request out, and the
canonical answer back as an Anthropic message or event stream. Pure: no I/O, inputs never mutated.

Every provider adapter speaks only the canonical format, so N inbound dialects and M providers stay
N + M translators: an Anthropic SDK client served by an Anthropic member goes Anthropic → canonical
→ Anthropic, as it would through any other member. What the canonical format cannot carry is
dropped (``top_k``, ``cache_control``, thinking blocks) or refused with a 400 (documents, server
tools), never silently mistranslated. ``server.messages`` does the HTTP.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from pilotfish import failures
from pilotfish.wire import anthropic, openai, structs

STOP_REASONS = {  # canonical finish_reason → Anthropic stop_reason
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {  # HTTP status → Anthropic error type, as the Messages API documents them
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}

Event = tuple[str, dict[str, Any]]  # (event name, data): one server-sent event


def to_chat(request: anthropic.MessagesRequest) -> openai.ChatRequest:
    """The canonical request; raises ``failures.RequestRejected`` for what it cannot carry, and for
    content blocks, tools or tool_choice whose fields have the wrong shape (never a 500)."""
    try:
        body = _chat_body(request)
    except failures.SHAPE_ERRORS:
        raise _rejected(
            "A content block, tool or tool_choice of the request is malformed: a field has the wrong type."
        ) from None
    try:
        return openai.ChatRequest.from_body(body)
    except msgspec.ValidationError as exc:
        raise _rejected(f"The request cannot be translated: {structs.problem(exc)[0]}.") from None


def _chat_body(request: anthropic.MessagesRequest) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    system = _system_text(request.system)
    if system:
        messages.append({"role": "system", "content": system})
    for message in request.messages:
        messages.extend(_user(message.content) if message.role == "user" else [_assistant(message.content)])
    body: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "max_completion_tokens": request.max_tokens,
        "stream": request.stream,
    }
    if request.stream:
        body["stream_options"] = {"include_usage": True}  # message_delta carries usage
    for ours, value in (("temperature", request.temperature), ("top_p", request.top_p)):
        if value is not None:
            body[ours] = value
    if request.stop_sequences:
        body["stop"] = list(request.stop_sequences)
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
    if request.tool_choice:
        body.update(_tool_choice(request.tool_choice))
    user_id = (request.metadata or {}).get("user_id")
    if user_id:
        body["user"] = str(user_id)
    return body


def _system_text(system: str | list[dict[str, Any]] | None) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    return "\n".join(str(block.get("text", "")) for block in system if block.get("type") == "text")


def _user(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool results become ``tool`` messages (first, as OpenAI requires); the rest one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results = [_tool_result(block) for block in content if block.get("type") == "tool_result"]
    parts = [_part(block) for block in content if block.get("type") != "tool_result"]
    return results + ([{"role": "user", "content": parts}] if parts else [])


def _tool_result(block: dict[str, Any]) -> dict[str, Any]:
    content = block.get("content")
    if isinstance(content, list):
        content = "".join(str(part.get("text", "")) for part in content if part.get("type") == "text")
    text = str(content or "")
    if block.get("is_error"):
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text}


def _part(block: dict[str, Any]) -> dict[str, Any]:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": str(block.get("text", ""))}
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
        else:
            url = str(source.get("url", ""))
        return {"type": "image_url", "image_url": {"url": url}}
    raise _rejected(f"Content blocks of type '{kind}' are not supported by the sidecar's Messages API.")


def _assistant(content: str | list[dict[str, Any]]) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text = "".join(str(block.get("text", "")) for block in content if block.get("type") == "text")
    calls = [
        {
            "id": str(block.get("id", "")),
            "type": "function",
            "function": {
                "name": str(block.get("name", "")),
                "arguments": orjson.dumps(block.get("input", {})).decode(),
            },
        }
        for block in content
        if block.get("type") == "tool_use"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message  # thinking blocks have no canonical counterpart and are dropped


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if "input_schema" not in tool:
        raise _rejected(f"Tool '{tool.get('name', '')}' has no input_schema: server tools are not supported.")
    function: dict[str, Any] = {"name": str(tool.get("name", "")), "parameters": tool["input_schema"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: dict[str, Any]) -> dict[str, Any]:
    kind = choice.get("type")
    out: dict[str, Any] = {}
    if kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": str(choice.get("name", ""))}}
    elif kind in _TOOL_CHOICES:
        out["tool_choice"] = _TOOL_CHOICES[kind]
    if choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False
    return out


def to_message(completion: openai.ChatCompletion, *, model: str) -> dict[str, Any]:
    """A canonical ``chat.completion`` as an Anthropic ``message``."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content") or message.get("refusal")
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": _input(function)}
        )
    prompt, output = openai.usage_of(completion)
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model") or model,
        "content": content,
        "stop_reason": STOP_REASONS.get(str(choice.get("finish_reason")), "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": prompt, "output_tokens": output},
    }


def _input(function: dict[str, Any]) -> Any:
    try:
        value = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {"value": value}


def message_id(canonical_id: Any) -> str:
    text = str(canonical_id or "pilotfish")
    return text if text.startswith("msg_") else f"msg_{text}"


def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error object for an HTTP status."""
    error_type = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _rejected(message: str) -> failures.RequestRejected:
    return failures.RequestRejected(message, code="invalid_request_error")
