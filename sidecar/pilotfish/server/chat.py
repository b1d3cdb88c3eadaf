"""POST /v1/chat/completions: the request walks in, is routed and attempted, and the answer walks out.

``model`` names a class. The engine returns once a member commits; from here the answer is written
either whole (non-streaming, assembled from the upstream stream) or as SSE. ``prepare()`` is the
point of no return: a failure after it becomes an in-band error event and the stream ends without
``[DONE]``, never a silent truncation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from aiohttp import web

from pilotfish import failures
from pilotfish.failover import engine, streaming
from pilotfish.routes import document
from pilotfish.server import assemble, bodies, errors, keys, replies, serving, tiering, validation
from pilotfish.telemetry import records
from pilotfish.wire import openai, sse

_DONE_FRAME = sse.encode(sse.DONE)
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def post_chat_completions(request: web.Request) -> web.StreamResponse:
    try:
        raw = await bodies.read_body(request)
        async with bodies.parsing_turn(request, raw):
            chat = validation.parse_body(raw, openai.ChatRequest)
    except failures.RequestRejected as exc:
        return errors.from_rejection(exc)

    async def handle(
        route: document.ClassRoute, api_keys: engine.Keys, record: records.RequestRecord
    ) -> web.StreamResponse:
        return await _serve(request, chat, route, api_keys, record)

    return await serving.serve_class(
        request, class_name=chat.model, stream=chat.stream, render=errors.from_reply, handle=handle
    )


async def open_chat(
    request: web.Request,
    chat: openai.ChatRequest,
    route: document.ClassRoute,
    api_keys: engine.Keys,
    record: records.RequestRecord,
) -> streaming.Committed:
    """Fail over until a member commits to this chat request (any dialect); notes who answered.

    A class with tiers is resolved here: its rules pick the tier, the tiers above are the escalation."""
    facts = tiering.chat_facts(request, chat) if route.tiers is not None else None  # gathered only if looked at
    route, escalation = tiering.route_tiers(request, route, record, facts=facts)
    committed = await request.app[keys.ENGINE].open(
        route,
        streaming.ChatStream(chat, buffered=not chat.stream, record=record, hold=request[keys.HOLD]),
        keys=api_keys,
        record=record,
        pin_key=serving.pin_key(request, route),
        slice_key=serving.slice_key(request, route),
        escalation=escalation,
    )
    replies.served_by(committed.member, record, time_to_first_token=committed.time_to_first_token)
    return committed


async def _serve(
    request: web.Request,
    chat: openai.ChatRequest,
    route: document.ClassRoute,
    api_keys: engine.Keys,
    record: records.RequestRecord,
) -> web.StreamResponse:
    try:
        committed = await open_chat(request, chat, route, api_keys, record)
    except engine.AllMembersFailed as exc:
        return errors.from_reply(replies.failure_reply(exc, record))
    if chat.stream:
        return await _write_stream(request, chat, committed, route, record)
    completion = assemble.assemble(committed.head)
    count_usage(completion, committed.member, record)
    return web.Response(
        body=orjson.dumps(completion), content_type="application/json", headers=replies.route_headers(record)
    )


async def _write_stream(
    request: web.Request,
    chat: openai.ChatRequest,
    committed: streaming.Committed,
    route: document.ClassRoute,
    record: records.RequestRecord,
) -> web.StreamResponse:
    response = web.StreamResponse(headers={**SSE_HEADERS, **replies.route_headers(record)})
    await response.prepare(request)  # the point of no return
    try:
        async with serving.total_deadline(route, elapsed=committed.time_to_first_token, response=response):
            try:
                include_usage, member = chat.include_usage, committed.member
                await write_batches(
                    request,
                    response,
                    committed,
                    lambda batch: _frames(batch, include_usage=include_usage, member=member, record=record),
                )
                await serving.write(request, response, _DONE_FRAME, last=True)
            except failures.AttemptFailed as exc:
                interrupted(record, exc.failure, member=committed.member, prompt_tokens=chat.estimate_prompt_tokens())
                event = errors.stream_error_event(
                    interrupted_message(route, exc.failure), error_type="server_error", code=exc.failure.kind.value
                )
                await serving.write(request, response, event, last=True)
    except serving.ClientTooSlow as exc:
        serving.hang_up(request, record, exc)
    except (ConnectionResetError, asyncio.CancelledError):
        record.outcome = records.Outcome.CANCELLED
        raise
    finally:
        if committed.rest is not None:
            await committed.rest.aclose()  # type: ignore[attr-defined]
    return response


async def write_batches(
    request: web.Request,
    response: web.StreamResponse,
    committed: streaming.Committed,
    encode: Callable[[engine.Batch], bytes],
) -> None:
    """Write the head, then the rest, each batch as ``encode`` frames it (chat's SSE, Anthropic's events),
    with no generator between the stream and the writes. Nothing written is held while the next batch is
    awaited, and the head is let go once sent: a stream may outlive it by minutes."""
    head, committed.head = committed.head, []
    frames = encode(head)
    del head
    if frames:
        await serving.write(request, response, frames)
    del frames
    if committed.rest is not None:
        async for batch in committed.rest:
            frames = encode(batch)
            del batch
            if frames:
                await serving.write(request, response, frames)
            del frames


def tally(chunk: openai.ChatChunk, member: document.MemberRoute, record: records.RequestRecord) -> bool:
    """Count a chunk the client is sent: a content chunk as delivered (for ``interrupted``), the usage
    chunk's tokens; True for the usage chunk."""
    if chunk.get("choices"):
        record.delivered_chunks += streaming.is_content(chunk)
        return False
    if chunk.get("usage") is not None:
        count_usage(chunk, member, record)
        return True
    return False


def interrupted(
    record: records.RequestRecord,
    failure: failures.Failure,
    *,
    member: document.MemberRoute,
    prompt_tokens: int,
) -> None:
    """A committed stream broke: the request is interrupted and its last attempt failed after all.

    The usage chunk never came, so what was delivered is counted instead: about a token a content
    chunk (as ``failover.recovery`` counts a cut attempt) and the prompt estimate, priced as usual;
    the client was sent those tokens and the provider bills them."""
    if not record.completion_tokens:
        replies.count_usage(
            prompt_tokens=prompt_tokens, completion_tokens=record.delivered_chunks, member=member, record=record
        )
    record.outcome, record.error_code = records.Outcome.INTERRUPTED, failure.kind.value
    last = record.attempts[-1]
    if last.failure is None:  # (a failed mid-stream recovery has already recorded its own failures)
        record.attempts[-1] = records.AttemptRecord(
            member_id=last.member_id, provider=last.provider, model=last.model, duration=last.duration, failure=failure
        )


def interrupted_message(route: document.ClassRoute, failure: failures.Failure) -> str:
    return (
        f"The upstream stream from class '{route.name}' failed after it started "
        f"({failure.kind.value}); the answer is incomplete."
    )


def _frames(
    batch: engine.Batch, *, include_usage: bool, member: document.MemberRoute, record: records.RequestRecord
) -> bytes:
    """One write's worth of SSE frames, each chunk counted (``tally``) in the same pass; the usage chunk is
    sent only if asked for."""
    payloads = []
    for chunk in batch:
        if not include_usage:
            if tally(chunk, member, record):
                continue  # the usage chunk, not asked for
            chunk.pop("usage", None)
        else:
            tally(chunk, member, record)
        payloads.append(orjson.dumps(chunk))
    return sse.encode_data(payloads)


def count_usage(body: openai.ChatCompletion, member: document.MemberRoute, record: records.RequestRecord) -> None:
    prompt, completion = openai.usage_of(body)
    replies.count_usage(prompt_tokens=prompt, completion_tokens=completion, member=member, record=record)
