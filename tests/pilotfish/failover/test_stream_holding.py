"""A committed stream waiting for its next network read holds nothing of what it already handed on.

A long-lived stream spends nearly all its life waiting for the next token; each generator it passes
kept its last read, events and chunks in its frame until the next one came: a few KiB per open stream.

A real upstream on loopback sends one chunk, then waits for the test; the engine in the test's loop."""

from __future__ import annotations

import asyncio
import gc

import orjson
from aiohttp import web
from tests.integration import hostile
from tests.pilotfish.failover import builders

from pilotfish import upstream
from pilotfish.failover import streaming
from pilotfish.routes import document
from pilotfish.specs import credential, refs
from pilotfish.telemetry import records
from pilotfish.wire import openai


def _frame(chunk_id: str, content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return b"data: " + orjson.dumps({"id": chunk_id, "object": "chat.completion.chunk", "choices": [choice]}) + b"\n\n"


def _held(chunk_id: str) -> bool:
    """Whether any live chunk (a dict) still carries this id."""
    gc.collect()
    return any(isinstance(o, dict) and o.get("id") == chunk_id for o in gc.get_objects())


async def test_a_waiting_stream_holds_none_of_the_chunks_it_handed_on() -> None:
    go_on = [asyncio.Event(), asyncio.Event()]
    sent = [asyncio.Event(), asyncio.Event()]

    async def one_chunk_at_a_time(request: web.Request, seen: hostile.Received) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, event in enumerate(go_on):
            await response.write(_frame(f"chunk-{index}", content=f"word{index} "))
            sent[index].set()
            await event.wait()
        await response.write(_frame("last", finish="stop") + b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    sessions = upstream.Sessions()
    async with hostile.running(one_chunk_at_a_time) as server:
        member = document.MemberRoute(
            id="primary/m",
            credential="primary",
            provider=credential.ProviderType.OPENAI_COMPATIBLE,
            base_url=f"{server.origin}/v1",
            api_key_ref=refs.SecretKeyRef(name="keys", key="primary"),
            model="m",
            priority=0,
        )
        engine = builders.engine_at(asyncio.get_running_loop().time, sessions=sessions)
        request = openai.ChatRequest.from_body({"model": "c", "messages": [{"role": "user", "content": "Hi."}]})
        record = records.RequestRecord(class_name="c", stream=True)
        try:
            committed = await engine.open(
                document.ClassRoute(name="c", members=(member,)),
                streaming.ChatStream(request, buffered=False, record=record),
                keys={("keys", "primary"): refs.ApiKey("sk-primary")},
                record=record,
                pin_key=None,
            )
            assert [chunk["id"] for chunk in committed.head] == ["chunk-0"]
            committed.head = []  # handed on to the client, as the writer does
            assert committed.rest is not None
            rest = aiter(committed.rest)
            go_on[0].set()
            batch = await anext(rest)
            assert [chunk["id"] for chunk in batch] == ["chunk-1"]
            del batch  # handed on
            waiting = asyncio.ensure_future(anext(rest))  # the stream waits for its next read
            await sent[1].wait()
            for _ in range(5):
                await asyncio.sleep(0)  # let the stream reach its next wait
            assert not _held("chunk-0") and not _held("chunk-1")
            go_on[1].set()
            assert [chunk["id"] for chunk in await waiting] == ["last"]
            async for _ in rest:
                pass
        finally:
            for event in go_on:
                event.set()
            await sessions.close()
