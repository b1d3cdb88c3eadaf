"""The parsing floor answers what the floor answers: it is a reference in the benchmark, so a wrong answer
would make its CPU figure meaningless."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from benchmarks import bare_proxy, parsing_proxy, upstream


async def _through(build: Callable[[str], web.Application], body: dict[str, Any]) -> tuple[bytes, str]:
    async with (
        TestServer(upstream.build_app()) as up,
        TestClient(TestServer(build(str(up.make_url("")).rstrip("/")))) as client,
    ):
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status == 200
        return await response.read(), response.content_type


async def test_a_non_streaming_answer_is_the_streamed_one_joined() -> None:
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    parsed, kind = await _through(parsing_proxy.build_app, body)
    floor, _ = await _through(bare_proxy.build_app, body)
    assert kind == "application/json"
    got, want = orjson.loads(parsed), orjson.loads(floor)
    assert got["choices"][0]["message"]["content"] == want["choices"][0]["message"]["content"]
    assert got["choices"][0]["finish_reason"] == "stop"
    assert got["usage"] == want["usage"]


async def test_a_stream_is_forwarded_as_the_upstream_sent_it() -> None:
    body = {"model": "burst128", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    parsed, kind = await _through(parsing_proxy.build_app, body)
    assert kind == "text/event-stream"
    assert parsed == upstream.BURSTS["burst128"]


def test_events_are_parsed_whole_and_done_left_out() -> None:
    frames = upstream.FRAMES["fast"]
    got = parsing_proxy.events(b"".join(frames).rstrip(b"\n"))
    assert len(got) == len(frames) - 1  # all but [DONE]
    assert sum(parsing_proxy.has_content(event) for event in got) == len(upstream.WORDS)
