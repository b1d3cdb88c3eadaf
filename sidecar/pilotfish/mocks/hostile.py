"""A hostile OpenAI-format upstream: answers that are valid on the wire and built to exhaust a proxy.

Each mode is one way a provider (or anything between us and it) can try to take the sidecar's
memory or its event loop: an answer that never ends, one that is huge, a gzip bomb, one SSE line
that never ends. The bytes are OpenAI's documented chat-completion chunks and embeddings objects,
so the sidecar cannot tell them from a real provider's until they grow. The security tests
(``tests/integration/test_hostile_upstream.py``) run one while they measure the sidecar.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import zlib

import orjson
from aiohttp import web

from pilotfish.wire import sse

# Bytes per write of the endless modes: big enough to be fast, small enough that the mock itself
# stays cheap.
WRITE_BYTES = 64 * 1024


class Mode(enum.StrEnum):
    ENDLESS = "endless"  # content chunks as fast as the socket takes them, never a finish
    HUGE = "huge"  # a complete, valid answer of ``size`` bytes (chat: chunks; embeddings: one vector)
    GZIP_BOMB = "gzip-bomb"  # Content-Encoding: gzip, a few KiB on the wire inflating to ``size`` bytes
    ENDLESS_LINE = "endless-line"  # one `data:` line that never ends


class Tally:
    """Answers in progress: a test waits on ``open`` to see the sidecar hang up on a hostile stream."""

    def __init__(self) -> None:
        self.open = 0
        self.started = 0


MODE = web.AppKey("mode", Mode)
SIZE = web.AppKey("size", int)
TALLY = web.AppKey("tally", Tally)


def build_app(*, mode: Mode, size: int = 100 * 1024 * 1024) -> web.Application:
    """The upstream; a gzip bomb is built here, before it is served, so that building it (seconds of
    CPU for a GiB) never stalls the loop of whoever is measuring the sidecar meanwhile."""
    if mode is Mode.GZIP_BOMB:
        gzip_bomb(size)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[MODE], app[SIZE], app[TALLY] = mode, size, Tally()
    app.router.add_post("/v1/chat/completions", post_chat_completions)
    app.router.add_post("/v1/embeddings", post_embeddings)
    return app


def content_chunk(text: str) -> bytes:
    """One OpenAI chat.completion.chunk frame carrying ``text``."""
    chunk = {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "hostile",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return sse.encode(orjson.dumps(chunk))


def _finish() -> bytes:
    chunk = {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "hostile",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    }
    return sse.encode(orjson.dumps(chunk)) + sse.encode(sse.DONE)


async def post_chat_completions(request: web.Request) -> web.StreamResponse:
    await request.read()
    tally = request.app[TALLY]
    tally.open += 1
    tally.started += 1
    try:
        return await _answer_chat(request)
    finally:
        tally.open -= 1


async def _answer_chat(request: web.Request) -> web.StreamResponse:
    mode, size = request.app[MODE], request.app[SIZE]
    headers = {"Content-Type": "text/event-stream"}
    if mode is Mode.GZIP_BOMB:
        return web.Response(body=gzip_bomb(size), headers={**headers, "Content-Encoding": "gzip"})
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    if mode is Mode.ENDLESS_LINE:
        await response.write(b"data: " + b"a" * 1024)
        while True:
            await response.write(b"a" * WRITE_BYTES)
    frames = content_chunk("x" * 200) * (WRITE_BYTES // 300)
    sent = 0
    while mode is Mode.ENDLESS or sent < size:
        await response.write(frames)
        sent += len(frames)
        await asyncio.sleep(0)
    await response.write(_finish())
    return response


SSE_BOMB = (b'data: {"choices":[{"index":0,"delta":{"content":"', b'"}}]}\n\n')  # one event around the filler


@functools.cache
def gzip_bomb(size: int, *, around: tuple[bytes, bytes] = SSE_BOMB) -> bytes:
    """One gzip member, about size/1000 bytes, that inflates to ``size`` bytes of filler between
    ``around``'s two parts (by default one SSE event); cached, as building it takes seconds."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"a" * (1024 * 1024)
    body = [compressor.compress(around[0])] + [compressor.compress(block) for _ in range(max(1, size // len(block)))]
    body.append(compressor.compress(around[1]) + compressor.flush())
    return b"".join(body)


async def post_embeddings(request: web.Request) -> web.StreamResponse:
    """One embedding of ``size`` bytes of JSON floats, otherwise exactly OpenAI's list object."""
    await request.read()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5')
    piece = b",0.5" * (WRITE_BYTES // 4)
    for _ in range(request.app[SIZE] // len(piece)):
        await response.write(piece)
    await response.write(b']}],"model":"hostile","usage":{"prompt_tokens":1,"total_tokens":1}}')
    return response
