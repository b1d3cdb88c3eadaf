"""The last write of a stream goes out with the end of the response, in one socket write; and a stream
waiting for its next batch holds nothing of what it wrote.

A write to a loopback or pod-network socket costs a system call and the kernel's delivery of the
segment; a stream that wrote ``data: [DONE]`` and then the end of its chunked body paid two for one.

A real aiohttp server on loopback; the writes its transport is asked for are counted."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from pilotfish.failover import exchange
from pilotfish.routes import document
from pilotfish.server import chat, keys, messages, serving
from pilotfish.specs import credential
from pilotfish.telemetry import records
from pilotfish.wire import openai


@contextlib.asynccontextmanager
async def _served(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """``handler`` at ``/`` of a real aiohttp server on a free loopback port, for the block; its URL."""
    app = web.Application()
    app[keys.WRITE_SECONDS] = 5.0
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


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

    async with _served(stream) as url, aiohttp.ClientSession() as session, session.get(url) as response:
        assert await response.read() == b"data: {}\n\ndata: [DONE]\n\n"
    assert sent == [b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"]  # the last frame and the chunked body's end


def _chunk(chunk_id: str, content: str) -> dict[str, object]:
    return {"id": chunk_id, "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}


def _held(chunk_id: str) -> bool:
    """Whether any live chunk (a dict) still carries this id."""
    gc.collect()
    return any(isinstance(o, dict) and o.get("id") == chunk_id for o in gc.get_objects())


@pytest.mark.parametrize("dialect", ["chat", "messages"])
async def test_a_stream_waiting_for_its_next_batch_holds_none_of_the_chunks_it_wrote(dialect: str) -> None:
    """A long-lived stream spends nearly all its life waiting: the writer's last batch and frames must not
    stay in its frame meanwhile (a few KiB per open stream)."""
    written, go_on, checked = asyncio.Event(), asyncio.Event(), []

    async def rest() -> AsyncIterator[list[dict[str, object]]]:
        yield [_chunk("chunk-1", "world ")]
        await written.wait()
        checked.append(not _held("chunk-0") and not _held("chunk-1"))  # the writer is waiting on us now
        go_on.set()
        finish = _chunk("last", "")
        finish["choices"][0]["finish_reason"] = "stop"  # type: ignore[index]
        yield [finish]

    member = document.MemberRoute(
        id="m/m", credential="m", provider=credential.ProviderType.OPENAI, base_url="https://x", model="m", priority=0
    )
    route = document.ClassRoute(name="c", members=(member,))
    chat_request = openai.ChatRequest.from_body({"model": "c", "messages": [{"role": "user", "content": "Hi."}]})

    async def stream(request: web.Request) -> web.StreamResponse:
        committed = exchange.Committed(
            member=member, head=[_chunk("chunk-0", "Hello ")], rest=rest(), time_to_first_token=0.0
        )
        record = records.RequestRecord(class_name="c", stream=True)
        if dialect == "messages":
            return await messages._write_events(request, committed, route, record, prompt_tokens=1)
        return await chat._write_stream(request, chat_request, committed, route, record)

    async with _served(stream) as url, aiohttp.ClientSession() as session, session.get(url) as response:
        body = b""
        async for data in response.content.iter_any():
            body += data
            if b"world" in body:
                written.set()
        assert b"Hello" in body and b"world" in body
    assert go_on.is_set() and checked == [True]
