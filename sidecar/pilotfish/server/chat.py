"""POST /v1/chat/completions: the request walks in, is routed and attempted, and the answer walks out.

``model`` names a class. The engine returns once a member commits; from here the answer is written
either whole (non-streaming, assembled from the upstream stream) or as SSE. ``prepare()`` is the
point of no return: a failure after it becomes an in-band error event and the stream ends without
``[DONE]``, never a silent truncation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
from aiohttp import web

from pilotfish import failures
from pilotfish.failover import engine, policy
from pilotfish.routes import document
from pilotfish.server import assemble, errors, headers, keys, validation
from pilotfish.telemetry import records
from pilotfish.wire import openai, sse

_DONE_FRAME = sse.encode(sse.DONE)
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def post_chat_completions(request: web.Request) -> web.StreamResponse:
    started = asyncio.get_running_loop().time()
    try:
        chat = validation.parse_body(await request.read(), openai.ChatRequest)
    except failures.RequestRejected as exc:
        return errors.from_rejection(exc)
    snapshot = request.app[keys.LIVE].snapshot
    if snapshot is None:
        return errors.error_response(
            503, "The sidecar has no routes loaded yet.", error_type="server_error", code="routes_not_loaded"
        )
    route = snapshot.document.classes.get(chat.model)
    if route is None:
        return _unknown_class(chat.model, snapshot.document)
    record = records.RequestRecord(class_name=route.name, stream=chat.stream)
    try:
        return await _serve(request, chat, route, snapshot.keys, record)
    except asyncio.CancelledError:
        record.outcome = records.Outcome.CANCELLED
        raise
    finally:
        record.latency = asyncio.get_running_loop().time() - started
        request.app[keys.METRICS].observe(record)
        request.app[keys.REQUEST_LOG].write(record)


async def _serve(
    request: web.Request,
    chat: openai.ChatRequest,
    route: document.ClassRoute,
    api_keys: engine.Keys,
    record: records.RequestRecord,
) -> web.StreamResponse:
    pinning = route.routing.pinning
    try:
        committed = await request.app[keys.ENGINE].open(
            route,
            chat,
            keys=api_keys,
            record=record,
            pin_key=request.headers.get(pinning.header) if pinning else None,
            buffered=not chat.stream,
        )
    except engine.AllMembersFailed as exc:
        return _failure_response(exc, record)
    member = committed.member
    record.provider, record.model, record.member_id = member.provider.value, member.model, member.id
    record.time_to_first_token = committed.time_to_first_token
    if chat.stream:
        return await _write_stream(request, chat, committed, route, record)
    completion = assemble.assemble(committed.head)
    _count_usage(completion, member, record)
    return web.Response(body=orjson.dumps(completion), content_type="application/json", headers=_route_headers(record))


async def _write_stream(
    request: web.Request,
    chat: openai.ChatRequest,
    committed: engine.Committed,
    route: document.ClassRoute,
    record: records.RequestRecord,
) -> web.StreamResponse:
    response = web.StreamResponse(headers={**_SSE_HEADERS, **_route_headers(record)})
    await response.prepare(request)  # the point of no return
    try:
        async for batch in _all_batches(committed):
            frames = _frames(batch, include_usage=chat.include_usage, member=committed.member, record=record)
            if frames:
                await response.write(frames)
        await response.write(_DONE_FRAME)
    except failures.AttemptFailed as exc:
        record.outcome, record.error_code = records.Outcome.INTERRUPTED, exc.failure.kind.value
        record.attempts[-1] = records.AttemptRecord(
            member_id=record.attempts[-1].member_id,
            provider=record.attempts[-1].provider,
            model=record.attempts[-1].model,
            duration=record.attempts[-1].duration,
            failure=exc.failure,
        )
        message = (
            f"The upstream stream from class '{route.name}' failed after it started "
            f"({exc.failure.kind.value}); the answer is incomplete."
        )
        await response.write(errors.stream_error_event(message, error_type="server_error", code=exc.failure.kind.value))
    except (ConnectionResetError, asyncio.CancelledError):
        record.outcome = records.Outcome.CANCELLED
        raise
    finally:
        if committed.rest is not None:
            await committed.rest.aclose()  # type: ignore[attr-defined]
    return response


async def _all_batches(committed: engine.Committed) -> AsyncIterator[engine.Batch]:
    yield committed.head
    if committed.rest is not None:
        async for batch in committed.rest:
            yield batch


def _frames(
    batch: engine.Batch, *, include_usage: bool, member: document.MemberRoute, record: records.RequestRecord
) -> bytes:
    """One write's worth of SSE frames; the usage chunk is counted, and sent only if asked for."""
    frames = []
    for chunk in batch:
        if _is_usage_chunk(chunk):
            _count_usage(chunk, member, record)
            if not include_usage:
                continue
        elif not include_usage:
            chunk.pop("usage", None)
        frames.append(sse.encode(orjson.dumps(chunk)))
    return b"".join(frames)


def _is_usage_chunk(chunk: openai.ChatChunk) -> bool:
    return not chunk.get("choices") and chunk.get("usage") is not None


def _count_usage(body: openai.ChatCompletion, member: document.MemberRoute, record: records.RequestRecord) -> None:
    prompt, completion = openai.usage_of(body)
    record.prompt_tokens, record.completion_tokens = prompt, completion
    if member.pricing:
        record.cost_usd = records.cost_usd(
            prompt_tokens=prompt,
            completion_tokens=completion,
            input_per_million=member.pricing.input_per_million_tokens,
            output_per_million=member.pricing.output_per_million_tokens,
        )


def _route_headers(record: records.RequestRecord) -> dict[str, str]:
    out = {headers.CLASS: record.class_name, headers.ATTEMPTS: str(len(record.attempts))}
    if record.provider:
        out[headers.PROVIDER] = record.provider
        out[headers.MODEL] = record.model or ""
        out[headers.MEMBER] = record.member_id or ""
    reason = record.failover_reason()
    if reason:
        out[headers.FAILOVER_REASON] = reason
    return out


def _failure_response(exc: engine.AllMembersFailed, record: records.RequestRecord) -> web.Response:
    failure = exc.failure
    rule = policy.policy_for(failure.kind) if failure else None
    tried = "; ".join(
        f"{a.member_id}: {a.result}" + (f" ({a.failure.status})" if a.failure and a.failure.status else "")
        for a in record.attempts
    )
    skipped = "; ".join(f"{member}: {reason}" for member, reason in record.skipped)
    detail = " ".join(part for part in (f"Tried {tried}." if tried else "", f"Skipped {skipped}." if skipped else ""))
    if rule is not None and not rule.failover:
        status, error_type, code = rule.client_status, rule.client_error_type, rule.client_error_code
        message = f"The provider refused the request ({failure.kind.value}): {failure.detail}" if failure else ""
        record.outcome = records.Outcome.REJECTED
    elif exc.code in ("retry_budget_exhausted", "no_available_members") or rule is None:
        status, error_type, code = 503, "server_error", exc.code
        message = f"No member of class '{exc.class_name}' could serve the request ({exc.code}). {detail}"
        record.outcome = records.Outcome.FAILED
    else:
        status, error_type, code = rule.client_status, rule.client_error_type, exc.code
        message = f"Every member of class '{exc.class_name}' failed. {detail}"
        record.outcome = records.Outcome.FAILED
    record.status, record.error_code = status, code
    extra = _route_headers(record)
    if failure and failure.retry_after is not None and status in (429, 503):
        extra["Retry-After"] = str(max(1, round(failure.retry_after)))
    return errors.error_response(status, message.strip(), error_type=error_type, code=code, headers=extra)


def _unknown_class(name: str, routes: document.RoutesDocument) -> web.Response:
    known = ", ".join(sorted(routes.classes)) or "none"
    return errors.error_response(
        404,
        f"The model '{name}' does not exist: it is not a class in this namespace (classes: {known}). "
        "Ask for a class name, not a vendor model.",
        code="model_not_found",
        param="model",
    )
