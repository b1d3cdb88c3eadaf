"""SIGTERM, as the kubelet sends it to the native sidecar once the app's containers have exited: the
listeners close, a stream still in flight finishes, and the drain is announced on stderr."""

from __future__ import annotations

import asyncio
import json
import signal

from tests.integration.conftest import DEFAULT_CLASS, LocalSidecar, answer_of, complete
from tests.waiting import eventually

from pilotfish.mocks import runner

# the default class, patient enough that the slow primary is waited for rather than failed over
SLOW_CLASS = DEFAULT_CLASS.replace(
    "firstTokenSeconds: 0.5, totalSeconds: 10", "firstTokenSeconds: 30, totalSeconds: 60"
)


async def test_sigterm_lets_the_stream_in_flight_finish_and_announces_the_drain(
    local_sidecar: LocalSidecar, mocks: dict[str, runner.RunningMock]
):
    assert SLOW_CLASS != DEFAULT_CLASS
    sidecar = await local_sidecar(SLOW_CLASS)
    mocks["primary"].set_fault(mode="latency", delay=1.5)
    stream = asyncio.create_task(complete(sidecar.client(timeout=60), stream=True))
    await eventually(lambda: asyncio.sleep(0, mocks["primary"].stats.requests), lambda n: n >= 1)
    sidecar.process.send_signal(signal.SIGTERM)  # while the provider is still thinking
    text, _ = await asyncio.wait_for(stream, 60)
    assert text == answer_of("primary")  # nothing cut
    assert await asyncio.wait_for(sidecar.process.wait(), 60) == 0

    async def lifecycle_lines() -> list[dict]:
        return [json.loads(line) for line in sidecar.stderr_lines if line.startswith('{"msg":"stop')]

    lifecycle = await eventually(lifecycle_lines, lambda lines: len(lines) == 2, what="stopping and stopped")
    assert [line["msg"] for line in lifecycle] == ["stopping", "stopped"]
    assert lifecycle[0]["connections"] == 1  # the stream's connection, open when the drain began
