"""Request bodies cannot take the sidecar's memory or its loop: capped after decompression, inflated in
bounded steps, and held under one in-flight budget however many arrive at once.

Real `pilotfish local` processes, measured from /proc while /healthz is probed; the figures are
printed (``pytest -s``) and quoted in docs/security.md.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from tests.integration import probes
from tests.integration.conftest import Sidecar

from pilotfish.mocks import hostile

pytestmark = pytest.mark.slow

HEALTHZ_BOUND = 2.0  # seconds: generous for a shared machine
CHART_LIMIT = 128 * probes.MIB  # the injected sidecar's memory limit (charts/pilotfish/values.yaml)


JSON_BOMB = (b'{"model": "workhorse", "messages": [], "pad": "', b'"}')


def gzip_bomb(inflated: int) -> bytes:
    """A gzip request body of about inflated/1000 bytes that inflates to ``inflated`` bytes of JSON."""
    return hostile.gzip_bomb(inflated, around=JSON_BOMB)


async def post_raw(api: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    timeout = aiohttp.ClientTimeout(total=120)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(api + "/v1/chat/completions", data=body, headers=headers) as response,
    ):
        return response.status, json.loads(await response.read())


async def test_a_gzip_bomb_body_is_refused_before_it_inflates(sidecar: Sidecar) -> None:
    bomb = gzip_bomb(1024 * probes.MIB)
    pid = sidecar.process.pid
    cpu_before, idle = probes.cpu_seconds(pid), probes.rss(pid)
    async with probes.watching_healthz(sidecar.admin, pid=pid) as watch:
        status, body = await post_raw(
            sidecar.api, bomb, {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )
    # not an event: anything the sidecar still did for this body (a lingering read) shows in its CPU
    await asyncio.sleep(0.5)
    cpu = probes.cpu_seconds(pid) - cpu_before
    probes.report(
        f"gzip bomb request body ({len(bomb) // 1024} KiB -> 1 GiB)",
        healthz_worst_s=watch.worst,
        cpu_seconds=cpu,
        idle_rss=idle,
        peak_rss=probes.peak_rss(pid),
        **watch.loop_figures(),
    )
    assert status == 413, body
    assert body["error"]["code"] == "request_too_large"  # type: ignore[index]
    assert cpu < 0.5, f"refusing the bomb cost {cpu:.2f} CPU-seconds"  # inflating it all costs ~1.5
    assert probes.peak_rss(pid) < idle + 30 * probes.MIB
    assert watch.worst < HEALTHZ_BOUND
    assert watch.stalls == 0, f"the loop stalled (its own CPU time): {watch.loop_figures()}"


async def test_eight_9_mb_bodies_at_once_stay_within_the_memory_budget(sidecar: Sidecar) -> None:
    pid = sidecar.process.pid
    idle = probes.rss(pid)
    big = json.dumps(
        {"model": "workhorse", "messages": [{"role": "user", "content": "x" * (9 * 1000 * 1000)}]}
    ).encode()
    headers = {"Content-Type": "application/json"}
    async with probes.watching_healthz(sidecar.admin, pid=pid) as watch:
        results = await asyncio.gather(*(post_raw(sidecar.api, big, headers) for _ in range(8)))
    statuses = sorted(status for status, _ in results)
    peak = probes.peak_rss(pid)
    settled = await probes.settled_rss(pid, below=idle + 40 * probes.MIB)
    probes.report(
        f"eight 9 MB bodies at once (statuses {statuses})",
        healthz_worst_s=watch.worst,
        idle_rss=idle,
        peak_rss=peak,
        settled_rss=settled,
        **watch.loop_figures(),
    )
    assert 200 in statuses
    for status, body in results:
        assert status == 200 or (status == 503 and body["error"]["code"] == "sidecar_busy"), body  # type: ignore[index]
    assert peak < CHART_LIMIT, f"peak {peak / probes.MIB:.0f} MiB"
    assert settled < idle + 40 * probes.MIB
    assert watch.worst < HEALTHZ_BOUND
    assert watch.stalls == 0, f"the loop stalled (its own CPU time): {watch.loop_figures()}"
