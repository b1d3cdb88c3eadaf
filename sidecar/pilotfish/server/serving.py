"""The life of one API request, the same for every endpoint and dialect: find the class, keep one
``RequestRecord``, and, however the request ends (answered, refused, cancelled), feed that record to
the metrics and the request log exactly once.

Endpoints (``server.chat``, ``server.messages``, ``server.embeddings``) parse their body, then hand
``serve_class`` the class name and what to do with the route; each passes its own error renderer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from pilotfish import memory
from pilotfish.failover import engine, watchdog
from pilotfish.routes import document
from pilotfish.server import budgeting, keys, replies
from pilotfish.telemetry import records, tracing

Render = Callable[[replies.Reply], web.Response]  # an error in the client's dialect
Handle = Callable[[document.ClassRoute, engine.Keys, records.RequestRecord], Awaitable[web.StreamResponse]]

# Longest a client may take to accept one write of a stream, by default (``--write-deadline-seconds``).
# A reader that stopped must not keep the stream, its buffers and its upstream socket; a live one takes
# a write in milliseconds.
WRITE_SECONDS = 30.0
_WRITE_WATCH = web.ResponseKey("pilotfish.write_watch", watchdog.Watchdog)  # the write deadline (``write``)
# The upstream side ends a stream at totalSeconds with an in-band error; the guard around the delivery
# (``total_deadline``) fires this much later, so a loop running late does not hang up before that error
# is written (the client would see a dropped connection instead of the reason).
DELIVERY_GRACE_SECONDS = 0.5


class ClientTooSlow(Exception):
    """A committed stream could not be delivered in time: a write deadline or the request's total one."""


async def serve_class(
    request: web.Request,
    *,
    class_name: str,
    stream: bool,
    render: Render,
    handle: Handle,
) -> web.StreamResponse:
    """Look the class up and run ``handle`` on it, recording the request whatever happens."""
    started = asyncio.get_running_loop().time()
    snapshot = request.app[keys.LIVE].snapshot
    if snapshot is None:
        return render(replies.ROUTES_NOT_LOADED)
    route = snapshot.document.classes.get(class_name)
    if route is None:
        return render(replies.unknown_class(class_name, snapshot.document))
    record = records.RequestRecord(class_name=route.name, stream=stream, operation=_operation(request))
    traces = request.app.get(keys.TRACING)
    if traces is not None:
        record.span = traces.start_request(request.headers, operation=record.operation, class_name=route.name)
        record.trace_id = traces.trace_id(record.span)
    elif "traceparent" in request.headers:
        record.trace_id = tracing.trace_id_from(request.headers)
    decision = None
    try:
        admitted = await budgeting.admit(request, snapshot.document, route, record)
        if isinstance(admitted, replies.Reply):
            return render(admitted)
        decision = admitted
        return await handle(admitted.route or route, snapshot.keys, record)
    except asyncio.CancelledError:
        record.outcome = records.Outcome.CANCELLED
        raise
    finally:
        budgeting.settle(request, decision, record)
        if record.quota_settle is not None:
            record.quota_settle(record.prompt_tokens + record.completion_tokens)
        record.latency = asyncio.get_running_loop().time() - started
        request.app[keys.METRICS].observe(record)
        request.app[keys.REQUEST_LOG].write(record)
        if traces is not None:
            traces.end_request(record.span, record)


def _operation(request: web.Request) -> str:
    """The GenAI operation name of the endpoint."""
    return "embeddings" if request.path.endswith("/embeddings") else "chat"


def pin_key(request: web.Request, route: document.ClassRoute) -> str | None:
    """The conversation key this class pins on, if it pins and the client sent one."""
    pinning = route.routing.pinning
    return request.headers.get(pinning.header) if pinning else None


def slice_key(request: web.Request, route: document.ClassRoute) -> str | None:
    """The value the class's canary slices on (its stickiness header), if it has a canary and one was sent."""
    header = route.canary.stickiness_header if route.canary else None
    return request.headers.get(header) if header else None


async def write(request: web.Request, response: web.StreamResponse, data: bytes, *, last: bool = False) -> None:
    """One write of a committed stream, which the client must take within the write deadline
    (``keys.WRITE_SECONDS``, ``WRITE_SECONDS`` unless configured).

    All the writes of one response share one ``watchdog.Watchdog`` (kept on the response, closed by
    ``total_deadline``), not a timer each. ``last``: the stream's final write, sent together with the
    end of the response (one socket write, where a write and then the end would be two)."""
    seconds = request.app[keys.WRITE_SECONDS]
    watch = response.get(_WRITE_WATCH)
    if watch is None:
        watch = response[_WRITE_WATCH] = watchdog.Watchdog(seconds)
    try:
        async with watch:
            await (response.write_eof(data) if last else response.write(data))
    except TimeoutError:
        raise ClientTooSlow(f"the client took no data for {seconds:g}s") from None


@contextlib.asynccontextmanager
async def total_deadline(
    route: document.ClassRoute, *, elapsed: float, response: web.StreamResponse
) -> AsyncIterator[None]:
    """The request's totalSeconds over the whole delivery of ``response``, writes included: the upstream
    side checks it only while it waits for upstream, and a blocked write would never get there.
    ``elapsed``: seconds the request has run already (its time to first token, at the commit)."""
    loop = asyncio.get_running_loop()
    left = route.timeouts.total_seconds - elapsed + DELIVERY_GRACE_SECONDS
    try:
        async with asyncio.timeout_at(loop.time() + max(0.0, left)):
            yield
    except TimeoutError:
        raise ClientTooSlow(f"the stream outlived totalSeconds ({route.timeouts.total_seconds:g}s)") from None
    finally:
        watch = response.pop(_WRITE_WATCH, None)
        if watch is not None:
            watch.close()


def hang_up(request: web.Request, record: records.RequestRecord, exc: ClientTooSlow) -> None:
    """End a stream that could not be delivered: drop the client's connection (anything written to it now
    would wait too); the caller's ``finally`` closes the upstream one."""
    record.outcome, record.error_code = records.Outcome.INTERRUPTED, "client_too_slow"
    if request.transport is not None:
        request.transport.abort()
    asyncio.get_running_loop().call_soon(memory.trim_heap)  # what the stalled stream buffered is free now
