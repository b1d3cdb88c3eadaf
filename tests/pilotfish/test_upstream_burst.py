"""A whole answer in one network read: its first events are parsed before the rest of it.

A provider that batches (or a proxy in front of it) can deliver a long answer in one read; parsed
16 KiB at a time, the client's first content waited for about 70 events to be parsed first.
"""

from __future__ import annotations

from aiohttp import web
from tests.integration import hostile

from pilotfish import failures, upstream
from pilotfish.wire import http

EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]}\n\n'
EVENTS = 400  # about 32 KiB, sent in one write


async def test_a_burst_s_first_events_come_out_before_the_rest_of_its_read_is_parsed() -> None:
    async def burst(request: web.Request, seen: hostile.Received) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(EVENT * EVENTS)
        await response.write_eof()
        return response

    def unexpected(status: int, headers: object, body: bytes) -> failures.Failure:
        return failures.Failure(kind=failures.FailureKind.SERVER_ERROR, status=status)

    sessions = upstream.Sessions()
    async with hostile.running(burst) as server:
        request = http.UpstreamRequest(url=f"{server.origin}/v1/chat/completions", headers={}, body=b"{}", stream=True)
        try:
            stream = await upstream.open_stream(
                sessions, request, connect_timeout=10, read_timeout=10, classify=unexpected
            )
            sizes = [len(events) async for events in stream.batches()]
        finally:
            await sessions.close()
    assert sum(sizes) == EVENTS  # nothing lost at the slices' edges
    assert sizes[0] <= upstream.FIRST_PARSE_BYTES // len(EVENT)
    assert all(size <= upstream.PARSE_BYTES // len(EVENT) + 1 for size in sizes)
