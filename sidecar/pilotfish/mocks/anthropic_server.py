"""A fake Anthropic Messages API (``POST /v1/messages``), exact on the wire, with injectable faults.

Auth by ``x-api-key`` (or a bearer token, as newer SDKs send). Errors as
``{"type": "error", "error": {"type", "message"}}`` with Anthropic's types: 529 ``overloaded_error``,
429 ``rate_limit_error`` with ``retry-after``, and so on. Streaming as named events (``message_start``
to ``message_stop``) with a ``ping``; tool use with ``input_json_delta``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from pilotfish.mocks import answers, control, faults, stalls
from pilotfish.wire import sse

_ERRORS: dict[int, tuple[str, str]] = {  # status → (type, message)
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "An unexpected error has occurred internal to Anthropic's systems."),
    529: ("overloaded_error", "Anthropic's API is temporarily overloaded."),
}


def build_app(
    *, name: str, api_key: str | None, fault_state: faults.FaultState, stats: control.Stats
) -> web.Application:
    app = control.new_app(name=name, api_key=api_key, fault_state=fault_state, stats=stats)
    app.router.add_post("/v1/messages", post_messages)
    return app


def error_response(status: int, *, message: str | None = None, headers: dict[str, str] | None = None) -> web.Response:
    error_type, default = _ERRORS.get(status, _ERRORS[500 if status >= 500 else 400])
    body = {"type": "error", "error": {"type": error_type, "message": message or default}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


async def post_messages(request: web.Request) -> web.StreamResponse:
    app = request.app
    body = orjson.loads(await request.read())
    stats = app[control.STATS]
    stats.requests += 1
    stats.last_traceparent = request.headers.get("traceparent")
    stats.last_model, stats.last_body = body.get("model"), body
    presented = request.headers.get("x-api-key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
    stats.last_auth_present = bool(presented)
    if (
        app[control.API_KEY] and presented != app[control.API_KEY]
    ):  # the API takes x-api-key, and newer SDKs send a bearer token
        return error_response(401)
    if "max_tokens" not in body or not request.headers.get("anthropic-version"):
        return error_response(400, message="max_tokens and the anthropic-version header are required")
    mode, fault = control.draw(app)
    early = _error_fault(mode, fault)
    if early is not None:
        return early
    await stalls.apply(request, mode, fault)
    if body.get("stream"):
        return await _stream(request, body, mode=mode, after=fault.after_chunks)
    return web.json_response(_message(app[control.NAME], body))


def _prefill(body: dict[str, Any]) -> str | None:
    """The text of a final assistant message: the API continues it instead of starting a new turn."""
    messages = body.get("messages") or []
    if not messages or messages[-1].get("role") != "assistant":
        return None
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content
    return "".join(str(block.get("text", "")) for block in content or [] if block.get("type") == "text")


def _words(name: str, body: dict[str, Any], mode: faults.Mode = faults.Mode.OK) -> list[str]:
    """The canonical answer, or only its remainder when the conversation ends in a prefix of it."""
    restart, diverge = mode is faults.Mode.RESTART, mode is faults.Mode.DIVERGE
    return answers.reply(name, _prefill(body), restart=restart, diverge=diverge)


def _error_fault(mode: faults.Mode, fault: faults.Fault) -> web.Response | None:
    if mode is faults.Mode.STATUS:
        return error_response(fault.status)
    if mode is faults.Mode.RATE_LIMIT:
        return error_response(429, headers={"retry-after": f"{fault.retry_after:g}"})
    if mode is faults.Mode.CONTEXT_LENGTH:
        return error_response(400, message="prompt is too long: 210000 tokens > 200000 maximum")
    if mode is faults.Mode.CONTENT_FILTER:
        return error_response(400, message="Output blocked by content filtering policy")
    return None


def _texts(body: dict[str, Any]) -> list[str]:
    texts = [body["system"]] if isinstance(body.get("system"), str) else []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        else:
            texts.extend(str(block.get("text") or block.get("content") or "") for block in content or [])
    return texts


def _tool_use(body: dict[str, Any]) -> dict[str, Any] | None:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    content = last.get("content")
    answered = isinstance(content, list) and any(block.get("type") == "tool_result" for block in content)
    if not body.get("tools") or answered:
        return None
    return {
        "type": "tool_use",
        "id": f"toolu_{answers.tool_call_id(messages)}",
        "name": body["tools"][0]["name"],
        "input": orjson.loads(answers.TOOL_ARGUMENTS),
    }


def _message(name: str, body: dict[str, Any]) -> dict[str, Any]:
    tool = _tool_use(body)
    words = _words(name, body)
    return {
        "id": "msg_mock",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": [tool] if tool else [{"type": "text", "text": "".join(words)}],
        "stop_reason": "tool_use" if tool else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": answers.prompt_tokens(_texts(body)), "output_tokens": 1 if tool else len(words)},
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return sse.encode(orjson.dumps({"type": name, **data}), event=name)


async def _stream(request: web.Request, body: dict[str, Any], *, mode: faults.Mode, after: int) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    message = _message(request.app[control.NAME], body)
    tool = _tool_use(body)
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    frames = [_event("message_start", {"message": start}), _event("ping", {})]
    if tool:
        frames.append(_event("content_block_start", {"index": 0, "content_block": {**tool, "input": {}}}))
        pieces = [answers.TOOL_ARGUMENTS[i : i + 6] for i in range(0, len(answers.TOOL_ARGUMENTS), 6)]
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
    else:
        frames.append(_event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}))
        deltas = [{"type": "text_delta", "text": word} for word in _words(request.app[control.NAME], body, mode)]
    for count, delta in enumerate(deltas):
        if count >= after and mode in stalls.MID_STREAM:
            # after a 200, the API reports overload as an event in the stream
            error = _event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
            await stalls.break_stream(request, response, mode, sent=b"".join(frames), error_event=error)
            return response
        frames.append(_event("content_block_delta", {"index": 0, "delta": delta}))
    frames.append(_event("content_block_stop", {"index": 0}))
    frames.append(
        _event(
            "message_delta",
            {
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            },
        )
    )
    frames.append(_event("message_stop", {}))
    await response.write(b"".join(frames))
    await response.write_eof()
    return response
