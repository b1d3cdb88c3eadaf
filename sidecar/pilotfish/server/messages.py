"""POST /v1/messages: the Anthropic Messages API, for apps that use the Anthropic SDK.

``model`` names a class and any member serves it: the request is translated to the canonical chat
request (``inbound.anthropic``), goes through the same engine and exchange as a chat completion,
and the committed answer is written back as an Anthropic message or event stream. Errors are
Anthropic's JSON (``{"type": "error", "error": {"type", "message"}}``) with the same statuses the
OpenAI endpoint would use; after ``prepare()`` a failure is one ``error`` event, as Anthropic sends.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from pilotfish import failures
from pilotfish.failover import engine, streaming
from pilotfish.inbound import anthropic, anthropic_events
from pilotfish.routes import document
from pilotfish.server import assemble, bodies, chat, replies, serving, validation
from pilotfish.telemetry import records
from pilotfish.wire import anthropic as anthropic_wire
from pilotfish.wire import sse


async def post_messages(request: web.Request) -> web.StreamResponse:
    try:
        raw = await bodies.read_body(request)
        async with bodies.parsing_turn(request, raw):
            canonical = anthropic.to_chat(validation.parse_body(raw, anthropic_wire.MessagesRequest))
    except failures.RequestRejected as exc:
        return render(replies.Reply(status=exc.status, message=exc.message))

    async def handle(
        route: document.ClassRoute, api_keys: engine.Keys, record: records.RequestRecord
    ) -> web.StreamResponse:
        try:
            committed = await chat.open_chat(request, canonical, route, api_keys, record)
        except engine.AllMembersFailed as exc:
            return render(replies.failure_reply(exc, record))
        if canonical.stream:
            return await _write_events(
                request, committed, route, record, prompt_tokens=canonical.estimate_prompt_tokens()
            )
        completion = assemble.assemble(committed.head)
        chat.count_usage(completion, committed.member, record)
        message = anthropic.to_message(completion, model=committed.member.model)
        return web.Response(
            body=orjson.dumps(message), content_type="application/json", headers=replies.route_headers(record)
        )

    return await serving.serve_class(
        request, class_name=canonical.model, stream=canonical.stream, render=render, handle=handle
    )


def render(reply: replies.Reply) -> web.Response:
    """An error reply in Anthropic's format."""
    return web.Response(
        status=reply.status,
        body=orjson.dumps(anthropic.error_body(reply.status, reply.message)),
        content_type="application/json",
        headers=reply.headers,
    )


async def _write_events(
    request: web.Request,
    committed: streaming.Committed,
    route: document.ClassRoute,
    record: records.RequestRecord,
    *,
    prompt_tokens: int,
) -> web.StreamResponse:
    response = web.StreamResponse(headers={**chat.SSE_HEADERS, **replies.route_headers(record)})
    await response.prepare(request)  # the point of no return
    writer = anthropic_events.EventWriter(model=committed.member.model)
    try:
        async with serving.total_deadline(route, elapsed=committed.time_to_first_token, response=response):
            try:
                member = committed.member
                await chat.write_batches(
                    request, response, committed, lambda batch: _events(batch, writer, member, record)
                )
                await serving.write(request, response, _encode(writer.finish()), last=True)
            except failures.AttemptFailed as exc:
                chat.interrupted(record, exc.failure, member=committed.member, prompt_tokens=prompt_tokens)
                error = anthropic.error_body(502, chat.interrupted_message(route, exc.failure))
                await serving.write(request, response, _encode([("error", error)]), last=True)
    except serving.ClientTooSlow as exc:
        serving.hang_up(request, record, exc)
    except (ConnectionResetError, asyncio.CancelledError):
        record.outcome = records.Outcome.CANCELLED
        raise
    finally:
        if committed.rest is not None:
            await committed.rest.aclose()  # type: ignore[attr-defined]
    return response


def _events(
    batch: engine.Batch,
    writer: anthropic_events.EventWriter,
    member: document.MemberRoute,
    record: records.RequestRecord,
) -> bytes:
    """One write's worth of Anthropic events, each chunk counted (``chat.tally``) in the same pass."""
    events: list[anthropic.Event] = []
    for chunk in batch:
        chat.tally(chunk, member, record)
        events += writer.feed(chunk)
    return _encode(events)


def _encode(events: list[anthropic.Event]) -> bytes:
    return b"".join(sse.encode(orjson.dumps(data), event=name) for name, data in events)
