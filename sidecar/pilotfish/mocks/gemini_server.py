"""A fake Gemini API: ``models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``, and the
embeddings methods ``:embedContent`` and ``:batchEmbedContents``.

Auth by ``x-goog-api-key`` (or ``?key=``). Errors as Google's ``{"error": {"code", "message",
"status"}}`` (429 ``RESOURCE_EXHAUSTED`` with a ``RetryInfo`` detail, 503 ``UNAVAILABLE``, …). The stream
is SSE with no terminator: the last event's candidate carries ``finishReason`` and ``usageMetadata``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from pilotfish.mocks import answers, control, faults, stalls
from pilotfish.wire import sse

_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def build_app(
    *, name: str, api_key: str | None, fault_state: faults.FaultState, stats: control.Stats
) -> web.Application:
    app = control.new_app(name=name, api_key=api_key, fault_state=fault_state, stats=stats)
    app.router.add_post("/v1beta/models/{model_action}", post_model_action)
    return app


# What Google sends with a bad key: a google.rpc.ErrorInfo whose reason says so.
KEY_INVALID = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "API_KEY_INVALID",
    "domain": "googleapis.com",
    "metadata": {"service": "generativelanguage.googleapis.com"},
}


def error_response(status: int, *, message: str = "", details: list[dict[str, Any]] | None = None) -> web.Response:
    error: dict[str, Any] = {
        "code": status,
        "message": message or f"mock error {status}",
        "status": _STATUSES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"),
    }
    if details:
        error["details"] = details
    return web.Response(status=status, body=orjson.dumps({"error": error}), content_type="application/json")


async def post_model_action(request: web.Request) -> web.StreamResponse:
    app = request.app
    model, _, action = request.match_info["model_action"].partition(":")
    if action not in ("generateContent", "streamGenerateContent", "embedContent", "batchEmbedContents"):
        return error_response(404, message=f"unknown method {action}")
    body = orjson.loads(await request.read())
    stats = app[control.STATS]
    stats.requests += 1
    stats.last_traceparent = request.headers.get("traceparent")
    stats.last_model, stats.last_body = model, body
    presented = request.headers.get("x-goog-api-key") or request.query.get("key")
    stats.last_auth_present = presented is not None
    if app[control.API_KEY] and presented != app[control.API_KEY]:
        return error_response(400, message="API key not valid. Please pass a valid API key.", details=[KEY_INVALID])
    mode, fault = control.draw(app)
    early = _error_fault(mode, fault)
    if early is not None:
        return early
    await stalls.apply(request, mode, fault)
    if action in ("embedContent", "batchEmbedContents"):
        return await _embed(request, model, action, body, cut=mode is faults.Mode.CUT)
    if mode is faults.Mode.NO_PREFILL and ((body.get("contents") or [{}])[-1]).get("role") == "model":
        return error_response(400, message="Requests ending with a model turn are not supported.")
    events = _responses(app[control.NAME], model, body, blocked=False, mode=mode)
    if action == "generateContent":
        return web.json_response(_merged(events))
    return await _stream(request, events, mode=mode, after=fault.after_chunks)


def _error_fault(mode: faults.Mode, fault: faults.Fault) -> web.Response | None:
    if mode is faults.Mode.STATUS:
        return error_response(fault.status)
    if mode is faults.Mode.RATE_LIMIT:
        retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{fault.retry_after:g}s"}
        return error_response(429, message="Resource has been exhausted (e.g. check quota).", details=[retry])
    if mode is faults.Mode.CONTEXT_LENGTH:
        return error_response(
            400, message="The input token count (2000000) exceeds the maximum number of tokens allowed (1048576)."
        )
    return None


def _responses(
    name: str, model: str, body: dict[str, Any], *, blocked: bool, mode: faults.Mode = faults.Mode.OK
) -> list[dict[str, Any]]:
    texts = [str(p.get("text", "")) for c in body.get("contents") or [] for p in c.get("parts") or []]
    usage = {"promptTokenCount": answers.prompt_tokens(texts)}
    base = {"modelVersion": model, "responseId": "mock-response"}
    declarations = [d for tool in body.get("tools") or [] for d in tool.get("functionDeclarations") or []]
    last = (body.get("contents") or [{}])[-1]
    answered = any("functionResponse" in part for part in last.get("parts") or [])
    if declarations and not answered:
        call = {"functionCall": {"name": declarations[0]["name"], "args": orjson.loads(answers.TOOL_ARGUMENTS)}}
        return [
            {
                **base,
                "candidates": [{"content": {"role": "model", "parts": [call]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {**usage, "candidatesTokenCount": 1, "totalTokenCount": usage["promptTokenCount"] + 1},
            }
        ]
    prefill = "".join(str(p.get("text", "")) for p in last.get("parts") or []) if last.get("role") == "model" else None
    # a final model turn is continued (or, as the fault says, started over)
    words = answers.reply(name, prefill, restart=mode is faults.Mode.RESTART, diverge=mode is faults.Mode.DIVERGE)
    events: list[dict[str, Any]] = [
        {
            **base,
            "candidates": [{"content": {"role": "model", "parts": [{"text": word}]}, "index": 0}],
            "usageMetadata": usage,
        }
        for word in words
    ]
    events[-1]["candidates"][0]["finishReason"] = "STOP"
    events[-1]["usageMetadata"] = {
        **usage,
        "candidatesTokenCount": len(words),
        "totalTokenCount": usage["promptTokenCount"] + len(words),
    }
    return events


async def _embed(
    request: web.Request, model: str, action: str, body: dict[str, Any], *, cut: bool
) -> web.StreamResponse:
    """``embedContent`` → ``{"embedding": {"values"}}``; ``batchEmbedContents`` → ``{"embeddings": [...]}``."""
    name = request.app[control.NAME]
    single = action == "embedContent"
    requests = [body] if single else body.get("requests") or []
    for item in requests:
        if item.get("model") not in (None, f"models/{model}"):
            return error_response(400, message=f"Model {item.get('model')} does not match the URL's model")
    values = [
        {
            "values": answers.embedding(
                name,
                "".join(str(part.get("text", "")) for part in (item.get("content") or {}).get("parts") or []),
                item.get("outputDimensionality"),
            )
        }
        for item in requests
    ]
    answer = orjson.dumps({"embedding": values[0]} if single else {"embeddings": values})
    if not cut:
        return web.Response(body=answer, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": str(len(answer))})
    await response.prepare(request)
    await response.write(answer[: len(answer) // 2])
    stalls.cut(request)
    return response


def _merged(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streaming response: every part in one candidate."""
    parts = [part for event in events for part in event["candidates"][0]["content"]["parts"]]
    text = "".join(part.get("text", "") for part in parts if "text" in part)
    merged_parts = [{"text": text}] if text else [part for part in parts if "functionCall" in part]
    last = events[-1]
    candidate = {**last["candidates"][0], "content": {"role": "model", "parts": merged_parts}}
    return {**last, "candidates": [candidate]}


async def _stream(
    request: web.Request, events: list[dict[str, Any]], *, mode: faults.Mode, after: int
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    frames: list[bytes] = []
    for count, event in enumerate(events):
        if count >= after and mode in stalls.MID_STREAM:
            # the API's error object, in the stream after a 200
            error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
            await stalls.break_stream(
                request, response, mode, sent=b"".join(frames), error_event=sse.encode(orjson.dumps(error))
            )
            return response
        frames.append(sse.encode(orjson.dumps(event)))
    await response.write(b"".join(frames))
    await response.write_eof()
    return response
