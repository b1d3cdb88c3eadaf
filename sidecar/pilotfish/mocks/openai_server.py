"""A fake OpenAI chat-completions server, exact on the wire, with injectable faults.

The answer is deterministic ("Hello from <name>. …") so tests can tell which mock answered and check
that nothing was lost or repeated. Error bodies use OpenAI's documented shape and codes.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from typing import Any

import orjson
from aiohttp import web

from pilotfish.mocks import answers, control, faults, stalls
from pilotfish.wire import sse

AZURE = web.AppKey("azure", bool)  # serve Azure OpenAI's deployment routes and api-key auth instead

ANSWER = answers.ANSWER
_ERRORS: dict[int, tuple[str, str, str]] = {  # status → (message, type, code)
    400: ("Invalid request.", "invalid_request_error", "invalid_request"),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: (
        "You are not allowed to use this model.",
        "invalid_request_error",
        "unsupported_country_region_territory",
    ),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", "server_error"),
    503: ("The engine is currently overloaded, please try again later.", "server_error", "overloaded"),
}


def build_app(
    *, name: str, api_key: str | None, fault_state: faults.FaultState, stats: control.Stats, azure: bool = False
) -> web.Application:
    app = control.new_app(name=name, api_key=api_key, fault_state=fault_state, stats=stats)
    app[AZURE] = azure
    app.router.add_post("/v1/chat/completions", post_chat_completions)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", post_chat_completions)
    app.router.add_post("/v1/embeddings", post_embeddings)
    app.router.add_post("/openai/deployments/{deployment}/embeddings", post_embeddings)
    app.router.add_get("/v1/models", get_models)
    return app


def error_response(
    status: int, *, headers: dict[str, str] | None = None, code: str | None = None, message: str | None = None
) -> web.Response:
    default_message, error_type, default_code = _ERRORS.get(status, _ERRORS[500 if status >= 500 else 400])
    body = {
        "error": {
            "message": message or default_message,
            "type": error_type,
            "param": None,
            "code": code or default_code,
        }
    }
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


async def _admit(request: web.Request) -> tuple[dict[str, Any], faults.Mode, faults.Fault] | web.StreamResponse:
    """What every route does first, as the API does: count, route Azure deployments, check the key, and
    draw the fault for this request (answering it at once when it is an early one)."""
    app = request.app
    body = orjson.loads(await request.read())
    stats = app[control.STATS]
    stats.requests += 1
    stats.last_traceparent = request.headers.get("traceparent")
    deployment = request.match_info.get("deployment")
    if deployment is not None:
        body = {**body, "model": deployment}  # Azure: the deployment in the URL is the model
        if not request.query.get("api-version"):
            return error_response(404, message="Resource not found: the api-version query parameter is required")
    stats.last_model, stats.last_body = body.get("model"), body
    presented = request.headers.get("api-key") if app[AZURE] else request.headers.get("Authorization")
    expected = app[control.API_KEY] if app[AZURE] else f"Bearer {app[control.API_KEY]}"
    stats.last_auth_present = presented is not None
    if app[control.API_KEY] and presented != expected:
        return error_response(401)
    mode, fault = control.draw(app, tokens=_tokens_asked(app[control.NAME], body))
    early = await _early_fault(request, mode, fault)
    if early is not None:
        return early
    return body, mode, fault


async def post_chat_completions(request: web.Request) -> web.StreamResponse:
    admitted = await _admit(request)
    if isinstance(admitted, web.StreamResponse):
        return admitted
    body, mode, fault = admitted
    app = request.app
    if mode is faults.Mode.NO_PREFILL and (body.get("messages") or [{}])[-1].get("role") == "assistant":
        return error_response(400, message="This server does not continue a final assistant message (no prefill).")
    if body.get("stream"):
        return await _stream(request, body, mode, fault)
    if mode is faults.Mode.CUT:  # a non-streaming body cut short: headers, half a body, then nothing
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "4096"})
        await response.prepare(request)
        await response.write(b'{"id": "chatcmpl-mock", "object": "chat.com')
        stalls.cut(request)
        return response
    return web.Response(body=orjson.dumps(_completion(app[control.NAME], body)), content_type="application/json")


async def _early_fault(request: web.Request, mode: faults.Mode, fault: faults.Fault) -> web.StreamResponse | None:
    M = faults.Mode
    if mode is M.STATUS:
        return error_response(fault.status)
    if mode is M.RATE_LIMIT:
        return _rate_limited(request, fault)
    if mode is M.CONTEXT_LENGTH:
        return error_response(
            400, code="context_length_exceeded", message="This model's maximum context length is 8192 tokens."
        )
    if mode is M.CONTENT_FILTER:
        return error_response(400, code="content_filter", message="The response was filtered by the content policy.")
    await stalls.apply(request, mode, fault)
    return None


def _rate_limited(request: web.Request, fault: faults.Fault) -> web.Response:
    """OpenAI's 429: the quota it went past (requests or tokens) in the error's type and message, with the
    x-ratelimit headers for that limit; a plain rate-limit fault has no quota, so it names requests."""
    refusal = request.app[control.FAULTS].refusal
    if refusal is None:
        return error_response(
            429,
            headers={
                "Retry-After": f"{fault.retry_after:g}",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{fault.retry_after:g}s",
            },
        )
    limit = refusal.limit
    short = "RPM" if limit == "requests" else "TPM"
    reset = f"{refusal.reset_seconds:.3f}s"
    message = (
        f"Rate limit reached for {request.app[control.STATS].last_model} in organization org-mock on {limit} per min "
        f"({short}): Limit {refusal.allowed}, Used {refusal.used}, Requested {refusal.requested}. "
        f"Please try again in {reset}. Visit https://platform.openai.com/account/rate-limits to learn more."
    )
    body = {"error": {"message": message, "type": limit, "param": None, "code": "rate_limit_exceeded"}}
    headers = {
        "Retry-After": f"{fault.retry_after:g}",
        f"x-ratelimit-limit-{limit}": str(refusal.allowed),
        f"x-ratelimit-remaining-{limit}": str(max(0, refusal.allowed - refusal.used)),
        f"x-ratelimit-reset-{limit}": reset,
    }
    return web.Response(status=429, body=orjson.dumps(body), content_type="application/json", headers=headers)


def _tokens_asked(name: str, body: dict[str, Any]) -> int:
    """What a chat request counts against a ``tpm`` quota when it arrives: its prompt and the answer this mock
    will give (OpenAI counts a request before answering it, from its prompt and max_tokens)."""
    if "messages" not in body:
        return 0
    return _usage(body, len(answers.words(name)))["total_tokens"]


def _usage(body: dict[str, Any], completion_tokens: int) -> dict[str, int]:
    prompt = answers.prompt_tokens([str(m.get("content") or "") for m in body.get("messages") or []])
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def _tool_call(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    messages = body.get("messages") or []
    if not tools or not messages or messages[-1].get("role") != "user":
        return None
    name = tools[0].get("function", {}).get("name", "tool")
    return {
        "id": f"call_{answers.tool_call_id(messages)}",
        "type": "function",
        "function": {"name": name, "arguments": answers.TOOL_ARGUMENTS},
    }


def _prefill(body: dict[str, Any]) -> str | None:
    """The text of a final assistant message, which this server continues (a prefill)."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    return last.get("content") if last.get("role") == "assistant" and isinstance(last.get("content"), str) else None


def _completion(name: str, body: dict[str, Any]) -> dict[str, Any]:
    call = _tool_call(body)
    words = answers.words(name)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if call else "".join(words),
        "refusal": None,
    }
    if call:
        message["tool_calls"] = [call]
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "system_fingerprint": "fp_mock",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if call else "stop",
            }
        ],
        "usage": _usage(body, 1 if call else len(words)),
    }


async def _stream(
    request: web.Request, body: dict[str, Any], mode: faults.Mode, fault: faults.Fault
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    name = request.app[control.NAME]
    base = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
        "system_fingerprint": "fp_mock",
    }
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    usage_field = {"usage": None} if include_usage else {}

    def frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **usage_field,
        }
        return sse.encode(orjson.dumps(chunk))

    call = _tool_call(body)
    pieces: list[dict[str, Any]]
    if call:
        args = call["function"]["arguments"]
        pieces = [
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                ]
            }
        ]
        pieces += [
            {"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 6]}}]} for i in range(0, len(args), 6)
        ]
    else:
        restart, diverge = mode is faults.Mode.RESTART, mode is faults.Mode.DIVERGE
        words = answers.reply(name, _prefill(body), restart=restart, diverge=diverge)
        pieces = [{"content": word} for word in words]
    out = [frame({"role": "assistant", "content": "" if not call else None, "refusal": None})]
    for index, piece in enumerate(pieces):
        if index >= fault.after_chunks and mode in stalls.MID_STREAM:
            # an error event after the 200, as OpenAI sends when a stream fails server-side
            error = {
                "error": {
                    "message": "The server had an error while processing your request.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
            await stalls.break_stream(
                request, response, mode, sent=b"".join(out), error_event=sse.encode(orjson.dumps(error))
            )
            return response
        if mode is faults.Mode.MALFORMED and index == fault.after_chunks:
            out.append(b'data: {"id": "chatcmpl-mock", "choices": [{"delta": {"content": "trunc\n\n')
        out.append(frame(piece))
    out.append(frame({}, "tool_calls" if call else "stop"))
    if include_usage:
        out.append(sse.encode(orjson.dumps({**base, "choices": [], "usage": _usage(body, len(pieces))})))
    if mode is faults.Mode.NO_DONE:
        await response.write(b"".join(out))
        await asyncio.sleep(3600)  # a server that forgets [DONE] and keeps the connection open
        return response
    out.append(sse.encode(sse.DONE))
    await response.write(b"".join(out))
    await response.write_eof()
    return response


async def post_embeddings(request: web.Request) -> web.StreamResponse:
    """OpenAI's embeddings (Azure's under its deployment route), with the same auth and faults as chat."""
    admitted = await _admit(request)
    if isinstance(admitted, web.StreamResponse):
        return admitted
    body, mode, _fault = admitted
    app = request.app
    answer = orjson.dumps(_embeddings(app[control.NAME], body))
    if mode is faults.Mode.CUT:
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": str(len(answer))})
        await response.prepare(request)
        await response.write(answer[: len(answer) // 2])
        stalls.cut(request)
        return response
    return web.Response(body=answer, content_type="application/json")


def _embeddings(name: str, body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
        items: list[Any] = [inputs]
    else:
        items = list(inputs or [])
    dimensions = body.get("dimensions")
    data = []
    for index, item in enumerate(items):
        vector = answers.embedding(name, item if isinstance(item, str) else orjson.dumps(item).decode(), dimensions)
        encoded: Any = vector
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(len(item) if isinstance(item, list) else len(item.split()) for item in items)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


async def get_models(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "object": "list",
            "data": [{"id": "mock-model", "object": "model", "created": 0, "owned_by": request.app[control.NAME]}],
        }
    )
