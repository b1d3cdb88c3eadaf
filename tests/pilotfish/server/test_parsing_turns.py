"""Large request bodies are parsed one per loop iteration (``bodies.parsing_turn``).

Eight 9 MB bodies that finished arriving together were all parsed in one iteration of the loop, which
held it for 0.15 s of its own CPU under the chart's memory limit. Here the bodies are "read" at once (no
network), so every parse would start in the same iteration unless the turns keep them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pilotfish.routes import live
from pilotfish.server import app as server_app
from pilotfish.server import bodies, keys, validation
from pilotfish.telemetry import metrics


class Iterations:
    """Counts the loop's iterations: a callback that schedules itself again runs once in each."""

    def __init__(self) -> None:
        self.count = 0
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        self._handle = self._loop.call_soon(self._tick)

    def stop(self) -> None:
        self._handle.cancel()


def _request() -> Any:
    return SimpleNamespace(app={keys.LARGE_PARSES: asyncio.Lock()})


async def _parse_all(sizes: list[int]) -> list[int]:
    """The iteration each body's parse ran in, for bodies of these sizes read together."""
    request, iterations = _request(), Iterations()
    parsed_in: list[int] = []

    async def handler(size: int) -> None:
        raw = b"x" * size
        async with bodies.parsing_turn(request, raw):
            parsed_in.append(iterations.count)  # the parse (and what is built from it) runs here

    await asyncio.gather(*(handler(size) for size in sizes))
    iterations.stop()
    return parsed_in


async def test_eight_large_bodies_are_parsed_in_eight_different_iterations() -> None:
    parsed_in = await _parse_all([9_000_000] * 8)
    assert len(parsed_in) == 8
    assert len(set(parsed_in)) == 8, parsed_in


async def test_a_large_parse_is_apart_from_the_read_before_it_and_the_upstream_call_after_it() -> None:
    request, iterations = _request(), Iterations()
    read_in = iterations.count  # read_body has just returned the body
    async with bodies.parsing_turn(request, b"x" * bodies.LARGE_BODY_BYTES):
        parsed_in = iterations.count
    next_step_in = iterations.count  # where the handler goes on to encode the body for its member
    iterations.stop()
    assert read_in < parsed_in < next_step_in


async def test_small_bodies_are_parsed_at_once_without_waiting_for_a_turn() -> None:
    parsed_in = await _parse_all([bodies.LARGE_BODY_BYTES - 1] * 8)
    assert len(set(parsed_in)) == 1, parsed_in


async def test_a_large_parse_that_fails_gives_up_its_turn() -> None:
    request = _request()
    raw = b"x" * bodies.LARGE_BODY_BYTES
    try:
        async with bodies.parsing_turn(request, raw):
            raise ValueError("a body that does not validate")
    except ValueError:
        pass
    assert not request.app[keys.LARGE_PARSES].locked()
    async with asyncio.timeout(5):  # the next large body gets its turn
        async with bodies.parsing_turn(request, raw):
            pass


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings", "/v1/messages"])
async def test_every_endpoint_parses_a_large_body_inside_its_turn(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    turns: list[int] = []
    inside = False
    real_turn, real_parse = bodies.parsing_turn, validation.parse_body

    @contextlib.asynccontextmanager
    async def recording_turn(request: web.Request, raw: bytes) -> AsyncIterator[None]:
        nonlocal inside
        turns.append(len(raw))
        async with real_turn(request, raw):
            inside = True
            try:
                yield
            finally:
                inside = False

    def checked_parse(raw: bytes, model: Any) -> Any:
        assert inside, "parsed outside its turn"
        return real_parse(raw, model)

    monkeypatch.setattr(bodies, "parsing_turn", recording_turn)
    monkeypatch.setattr(validation, "parse_body", checked_parse)
    app = server_app.build_app(
        routes=live.LiveRoutes(), metrics_registry=metrics.Metrics(), settings=server_app.ServerSettings()
    )
    body = orjson.dumps({"messages": "x" * (2 * bodies.LARGE_BODY_BYTES)})  # no model: refused once parsed
    async with TestClient(TestServer(app)) as client:
        response = await client.post(path, data=body, headers={"Content-Type": "application/json"})
        assert response.status == 400, await response.text()
    assert turns == [len(body)]
