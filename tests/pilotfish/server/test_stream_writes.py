"""The last write of a stream goes out with the end of the response, in one socket write.

A write to a loopback or pod-network socket costs a system call and the kernel's delivery of the
segment; a stream that wrote ``data: [DONE]`` and then the end of its chunked body paid two for one.

A real aiohttp server on loopback; the writes its transport is asked for are counted."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from pilotfish.server import keys, serving


async def _count_transport_writes(request: web.Request, sent: list[bytes]) -> None:
    transport = request.transport
    assert transport is not None
    write, writelines = transport.write, transport.writelines

    def counted_write(data: bytes) -> None:
        sent.append(bytes(data))
        write(data)

    def counted_writelines(pieces: list[bytes]) -> None:
        sent.append(b"".join(pieces))
        writelines(pieces)

    transport.write = counted_write  # type: ignore[method-assign]
    transport.writelines = counted_writelines  # type: ignore[method-assign]


async def test_the_last_frame_and_the_end_of_the_response_are_one_write() -> None:
    sent: list[bytes] = []

    async def stream(request: web.Request) -> web.StreamResponse:
        await _count_transport_writes(request, sent)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await serving.write(request, response, b"data: {}\n\n")
        sent.clear()  # the headers and the first frame went together; what follows is the point here
        await serving.write(request, response, b"data: [DONE]\n\n", last=True)
        return response

    app = web.Application()
    app[keys.WRITE_SECONDS] = 5.0
    app.router.add_get("/", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as response:
            assert await response.read() == b"data: {}\n\ndata: [DONE]\n\n"
        assert sent == [b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"]  # the last frame and the chunked body's end
    finally:
        await runner.cleanup()
