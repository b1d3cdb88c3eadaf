"""A finished answer closes every async generator it read the upstream through.

An upstream's answer is complete at its last event, before the body's end has been read, so the
generators reading the body are still suspended then. Dropped that way, each is closed by asyncio's
finalizer hook, which wakes the loop through its self-pipe (a socket write and a read) and runs a task:
two of them per request cost the sidecar more CPU than parsing the whole answer.

Real mock provider on loopback, the engine in the test's loop, asyncio's finalizer hook spied on."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncGenerator, Iterator

import pytest
from tests.pilotfish.failover import builders

from pilotfish import upstream
from pilotfish.failover import streaming
from pilotfish.mocks import runner
from pilotfish.routes import document
from pilotfish.specs import credential, refs
from pilotfish.telemetry import records
from pilotfish.wire import openai


@contextlib.contextmanager
def finalized_by_asyncio() -> Iterator[list[str]]:
    """The async generators asyncio's finalizer hook is asked to close, by name (inside the running loop)."""
    firstiter, finalizer = sys.get_asyncgen_hooks()
    assert finalizer is not None
    names: list[str] = []

    def spy(generator: AsyncGenerator[object, None]) -> None:
        names.append(generator.__qualname__)
        finalizer(generator)

    sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=spy)
    try:
        yield names
    finally:
        sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)


@pytest.mark.parametrize("buffered", [False, True], ids=["streaming client", "non-streaming client"])
async def test_a_finished_answer_leaves_no_generator_for_asyncio_to_close(buffered: bool) -> None:
    mock = await runner.start_mock(name="primary", api_key="sk-primary", provider="openai")
    sessions = upstream.Sessions()
    try:
        member = document.MemberRoute(
            id="primary/m",
            credential="primary",
            provider=credential.ProviderType.OPENAI_COMPATIBLE,
            base_url=mock.url,
            api_key_ref=refs.SecretKeyRef(name="keys", key="primary"),
            model="m",
            priority=0,
        )
        the_engine = builders.engine_at(asyncio.get_running_loop().time, sessions=sessions)
        request = openai.ChatRequest.from_body({"model": "c", "messages": [{"role": "user", "content": "Hi."}]})
        with finalized_by_asyncio() as finalized:
            for _ in range(3):
                record = records.RequestRecord(class_name="c", stream=not buffered)
                committed = await the_engine.open(
                    document.ClassRoute(name="c", members=(member,)),
                    streaming.ChatStream(request, buffered=buffered, record=record),
                    keys={("keys", "primary"): refs.ApiKey("sk-primary")},
                    record=record,
                    pin_key=None,
                )
                if committed.rest is not None:
                    async for _ in committed.rest:
                        pass
                assert committed.head  # the answer came
            del committed
            gc.collect()
        assert finalized == []
    finally:
        await sessions.close()
        await mock.stop()
