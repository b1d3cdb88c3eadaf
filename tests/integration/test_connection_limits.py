"""Neither port can be held by connections that never send a request, nor run the process out of file
descriptors so that upstream calls fail (modes/connections.py)."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import resource
from collections.abc import AsyncIterator

import aiohttp
import pytest
from tests.integration.conftest import DEFAULT_CLASS, Sidecar, manifests_for, start_sidecar, stop_sidecar

from pilotfish.mocks import runner

pytestmark = pytest.mark.slow

OPEN_FILES = 256  # the sidecar's descriptor limit in these tests: small, so a flood is cheap to send


def _few_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


@pytest.fixture
async def limited_sidecar(tmp_path: pathlib.Path, mocks: dict[str, runner.RunningMock]) -> AsyncIterator[Sidecar]:
    (tmp_path / "all.yaml").write_text(manifests_for(mocks, DEFAULT_CLASS))
    sidecar = await start_sidecar(["local", "-f", str(tmp_path), "--no-request-log"], preexec=_few_open_files)
    yield sidecar
    await stop_sidecar(sidecar)


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


async def _closed_by_server(url: str, *, within: float) -> bool:
    """Send half a request head and wait: True if the sidecar closes the connection in time."""
    reader, writer = await asyncio.open_connection(*_address(url))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    await writer.drain()
    try:
        async with asyncio.timeout(within):
            return await reader.read() == b""
    except TimeoutError:
        return False
    finally:
        writer.close()


async def test_a_request_head_that_never_ends_is_closed_on_both_ports(limited_sidecar: Sidecar) -> None:
    api, admin = await asyncio.gather(
        _closed_by_server(limited_sidecar.api, within=60), _closed_by_server(limited_sidecar.admin, within=60)
    )
    assert api and admin, f"still open after 60 s: api={not api} admin={not admin}"


async def test_a_flood_of_idle_admin_connections_starves_neither_probes_nor_upstream_calls(
    limited_sidecar: Sidecar,
) -> None:
    flood: list[asyncio.StreamWriter] = []
    lines_before = len(limited_sidecar.stderr_lines)
    try:
        for _ in range(OPEN_FILES + 150):  # more than the sidecar has descriptors
            with contextlib.suppress(OSError):
                flood.append((await asyncio.open_connection(*_address(limited_sidecar.admin)))[1])
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(limited_sidecar.admin + "/readyz") as response:
                assert response.status == 200
            body = {"model": "workhorse", "messages": [{"role": "user", "content": "hi"}]}
            async with session.post(limited_sidecar.api + "/v1/chat/completions", json=body) as response:
                assert response.status == 200, await response.text()
    finally:
        for writer in flood:
            writer.close()
    logged = limited_sidecar.stderr_lines[lines_before:]
    print(f"\n[measured] {len(flood)} idle admin connections at {OPEN_FILES} open files: {len(logged)} log lines")
    for line in logged:
        print("   ", line[:160])
    assert len(logged) < 20, logged[:5]  # a summary, not a line (or a traceback) per connection
