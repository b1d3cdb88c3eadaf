"""A provider's Set-Cookie is never stored nor sent again: one upstream session serves every request of
every app in the pod, so a cookie kept from one answer would ride along on the others' calls."""

from __future__ import annotations

from aiohttp import web
from tests.integration import hostile

from pilotfish import failures, upstream
from pilotfish.wire import http


async def test_a_cookie_an_upstream_sets_is_not_sent_on_the_next_call():
    async def set_cookie(request: web.Request, seen: hostile.Received) -> web.StreamResponse:
        response = web.Response(text="data: [DONE]\n\n", content_type="text/event-stream")
        response.set_cookie("__cf_bm", "from-the-first-answer", path="/", max_age=1800)
        return response

    def unexpected(status: int, headers: object, body: bytes) -> failures.Failure:
        return failures.Failure(kind=failures.FailureKind.SERVER_ERROR, status=status)

    sessions = upstream.Sessions()
    async with hostile.running(set_cookie) as server:
        # a host name, not an IP address: aiohttp's default jar keeps no cookie of a bare IP address
        origin = server.origin.replace("127.0.0.1", "localhost")
        request = http.UpstreamRequest(url=f"{origin}/v1/chat/completions", headers={}, body=b"{}", stream=True)
        try:
            for _ in range(2):
                stream = await upstream.open_stream(
                    sessions, request, connect_timeout=10, read_timeout=10, classify=unexpected
                )
                await stream.read(max_bytes=1024)
        finally:
            await sessions.close()
    assert len(server.received) == 2
    assert "cookie" not in server.received[1].headers
