"""Hundreds of streams at once reach one provider: nothing in the sidecar queues them behind each other.

aiohttp's connector allows 100 connections by default; with that, the 101st concurrent stream waited
for one of the first hundred to end, and long answers made it a first-token timeout (a 504).
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from tests.integration import hostile

from pilotfish import failures, upstream
from pilotfish.wire import http

STREAMS = 150  # more than aiohttp's default of 100


async def test_more_than_a_hundred_concurrent_streams_to_one_provider_are_all_sent_at_once():
    arrived = 0
    everyone_in = asyncio.Event()

    async def hold_until_everyone_is_in(request: web.Request, seen: hostile.Received) -> web.StreamResponse:
        nonlocal arrived
        arrived += 1
        if arrived == STREAMS:
            everyone_in.set()
        await everyone_in.wait()  # an answer only once every stream is open at the same time
        return web.Response(text="data: [DONE]\n\n", content_type="text/event-stream")

    def unexpected(status: int, headers: object, body: bytes) -> failures.Failure:
        return failures.Failure(kind=failures.FailureKind.SERVER_ERROR, status=status)

    sessions = upstream.Sessions()
    async with hostile.running(hold_until_everyone_is_in) as server:
        request = http.UpstreamRequest(url=f"{server.origin}/v1/chat/completions", headers={}, body=b"{}", stream=True)

        async def one() -> int:
            stream = await upstream.open_stream(
                sessions, request, connect_timeout=60, read_timeout=60, classify=unexpected
            )
            return len(await stream.read(max_bytes=1024))

        try:
            async with asyncio.timeout(60):  # generous: only a queue in front of the provider makes this wait forever
                sizes = await asyncio.gather(*(one() for _ in range(STREAMS)))
        finally:
            everyone_in.set()  # let any held handler end, so the server can close
            await sessions.close()
    assert arrived == STREAMS
    assert sizes == [len("data: [DONE]\n\n")] * STREAMS
