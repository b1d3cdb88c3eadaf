"""A streaming client that stops reading is hung up on when one write has waited for it longer than the
write deadline (30 s by default, ``--write-deadline-seconds``), even when the request's totalSeconds
is an hour away: the stream, its buffers and its upstream socket are let go.

The deadline is configured short here so the test waits on events (the upstream hanging up), not on
30 s of wall clock; the default itself is checked where it is defined.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from tests.integration.conftest import Sidecar, start_sidecar, stop_sidecar
from tests.integration.test_hostile_upstream import CHAT, manifests, stop_reading_after_the_headers

from pilotfish import cli
from pilotfish.mocks import hostile
from pilotfish.server import app, serving

pytestmark = pytest.mark.slow

TOTAL_SECONDS = 3600.0  # the class's deadline: far beyond anything this test waits for
WRITE_DEADLINE = 2.0


@pytest.fixture
async def endless() -> AsyncIterator[tuple[str, hostile.Tally]]:
    """An upstream that streams content chunks as fast as it may, forever."""
    upstream = hostile.build_app(mode=hostile.Mode.ENDLESS)
    runner = web.AppRunner(upstream, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1", upstream[hostile.TALLY]
    await runner.cleanup()


@pytest.fixture
async def sidecar(endless: tuple[str, hostile.Tally], tmp_path: pathlib.Path) -> AsyncIterator[Sidecar]:
    (tmp_path / "all.yaml").write_text(manifests(endless[0], total=TOTAL_SECONDS))
    running = await start_sidecar(["local", "-f", str(tmp_path), "--write-deadline-seconds", str(WRITE_DEADLINE)])
    yield running
    await stop_sidecar(running)


def test_the_write_deadline_is_30_seconds_unless_configured() -> None:
    args = cli._parser().parse_args(["local", "-f", "."])
    assert args.write_deadline_seconds == serving.WRITE_SECONDS == cli.DEFAULT_WRITE_SECONDS == 30.0
    assert app.ServerSettings().write_seconds == 30.0


async def test_a_client_that_stops_reading_is_hung_up_on_at_the_write_deadline_not_at_total_seconds(
    sidecar: Sidecar, endless: tuple[str, hostile.Tally]
) -> None:
    tally = endless[1]
    client = await stop_reading_after_the_headers(sidecar.api, json.dumps({**CHAT, "stream": True}).encode())
    try:
        async with asyncio.timeout(90):  # generous for a busy machine; totalSeconds is an hour
            while tally.started < 1 or tally.open:
                await asyncio.sleep(0.1)
        line = await sidecar.last_request_line(timeout=30)
    finally:
        client.close()
    assert (line["outcome"], line["error_code"]) == ("interrupted", "client_too_slow"), line
