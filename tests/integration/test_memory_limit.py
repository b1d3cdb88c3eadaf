"""The sidecar survives every hostile case of issue 15 under the chart's hard memory limit (128Mi).

The real `pilotfish local` process runs in a memory cgroup of its own (v1, or v2 where that is what
the host offers: ``tests/integration/cgroups.py``), a child of this test's, limited to the value of
``sidecar.resources.limits.memory`` in charts/pilotfish/values.yaml with swap forbidden, exactly as
the kubelet would limit the injected container. Every case runs against it in turn while /healthz is
probed; afterwards the process must be alive and the cgroup must report no OOM kill. Skipped, with the
reason, where this test may not create a cgroup.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pathlib
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator

import aiohttp
import pytest
import yaml
from aiohttp import web
from tests.integration import cgroups, probes
from tests.integration.conftest import ROOT, Sidecar, start_sidecar, stop_sidecar
from tests.integration.test_hostile_clients import gzip_bomb
from tests.integration.test_hostile_upstream import stop_reading_after_the_headers

from pilotfish.mocks import hostile, runner

pytestmark = pytest.mark.slow

HEALTHZ_BOUND = 2.0


def chart_memory_limit() -> int:
    values = yaml.safe_load((ROOT / "charts/pilotfish/values.yaml").read_text())
    text = values["sidecar"]["resources"]["limits"]["memory"]
    assert text.endswith("Mi"), text
    return int(text[:-2]) * probes.MIB


@pytest.fixture
def memory_cgroup() -> Iterator[cgroups.MemoryGroup]:
    """A child memory cgroup (v1 or v2) limited to the chart's value, or a skip saying why there cannot be one."""
    try:
        group = cgroups.create(f"pilotfish-test-{os.getpid()}", limit=chart_memory_limit())
    except cgroups.Unavailable as exc:
        pytest.skip(str(exc))
    yield group
    group.remove()


MODES = {
    "endless": hostile.Mode.ENDLESS,
    "huge": hostile.Mode.HUGE,
    "bomb": hostile.Mode.GZIP_BOMB,
    "line": hostile.Mode.ENDLESS_LINE,
}


def _manifests(urls: dict[str, str], *, normal: str) -> str:
    keys = {name: f"sk-{name}-1" for name in [*urls, "normal"]}
    docs = [f"apiVersion: v1\nkind: Secret\nmetadata: {{name: keys}}\nstringData: {json.dumps(keys)}\n"]
    for name, url in [*urls.items(), ("normal", normal)]:
        docs.append(
            textwrap.dedent(f"""\
            apiVersion: pilotfish.dev/v1alpha1
            kind: ProviderCredential
            metadata: {{name: {name}}}
            spec: {{provider: openai-compatible, baseURL: "{url}", apiKeySecretRef: {{name: keys, key: {name}}}}}
            """)
        )
        total = 3 if name == "endless" else 60
        docs.append(
            textwrap.dedent(f"""\
            apiVersion: pilotfish.dev/v1alpha1
            kind: ModelClass
            metadata: {{name: {name}}}
            spec:
              members: [{{credentialRef: {name}, model: m}}]
              routing: {{maxAttempts: 1}}
              timeouts: {{firstTokenSeconds: {min(30, total)}, totalSeconds: {total}}}
            """)
        )
    return "---\n".join(docs)


@dataclasses.dataclass
class Limited:
    sidecar: Sidecar
    tallies: dict[str, hostile.Tally]


@pytest.fixture
async def limited(memory_cgroup: cgroups.MemoryGroup, tmp_path: pathlib.Path) -> AsyncIterator[Limited]:
    runners = []
    tallies = {}
    urls = {}
    for name, mode in MODES.items():
        app = hostile.build_app(mode=mode, size=(1024 if mode is hostile.Mode.GZIP_BOMB else 100) * probes.MIB)
        app_runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await app_runner.setup()
        await web.TCPSite(app_runner, "127.0.0.1", 0).start()
        runners.append(app_runner)
        tallies[name] = app[hostile.TALLY]
        urls[name] = f"http://127.0.0.1:{app_runner.addresses[0][1]}/v1"
    normal = await runner.start_mock(name="normal")
    (tmp_path / "all.yaml").write_text(_manifests(urls, normal=normal.url))
    sidecar = await start_sidecar(["local", "-f", str(tmp_path), "--no-request-log"], preexec=memory_cgroup.preexec())
    yield Limited(sidecar=sidecar, tallies=tallies)
    await stop_sidecar(sidecar)
    await normal.stop()
    for app_runner in runners:
        await app_runner.cleanup()


async def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        headers = {"Content-Type": "application/json", **(headers or {})}
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status


def _chat(model: str, *, stream: bool = False, content: str = "hi") -> bytes:
    return json.dumps({"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]}).encode()


async def test_every_hostile_case_runs_under_the_chart_memory_limit_without_an_oom_kill(
    limited: Limited, memory_cgroup: cgroups.MemoryGroup
) -> None:
    sidecar = limited.sidecar
    chat, embeddings = sidecar.api + "/v1/chat/completions", sidecar.api + "/v1/embeddings"
    bomb = gzip_bomb(1024 * probes.MIB)  # built before anything is measured: it takes seconds of this loop
    cases: dict[str, Callable[[], object]] = {
        "endless answer, buffered": lambda: _post(chat, _chat("endless")),
        "100 MB chat answer": lambda: _post(chat, _chat("huge")),
        "100 MB embeddings answer": lambda: _post(embeddings, json.dumps({"model": "huge", "input": "hi"}).encode()),
        "upstream gzip bomb": lambda: _post(chat, _chat("bomb")),
        "endless SSE line": lambda: _post(chat, _chat("line", stream=True)),
        "gzip bomb request body": lambda: _post(chat, bomb, {"Content-Encoding": "gzip"}),
        "eight 9 MB bodies at once": lambda: asyncio.gather(
            *(_post(chat, _chat("normal", content="x" * 9_000_000)) for _ in range(8))
        ),
        "five stalled streaming readers": lambda: _stalled_readers(sidecar.api, limited.tallies["endless"]),
    }
    for case, run in cases.items():
        async with probes.watching_healthz(sidecar.admin, pid=sidecar.process.pid) as watch:
            outcome = await run()  # type: ignore[misc]
        usage = memory_cgroup.peak()
        probes.report(
            f"128Mi cgroup: {case} -> {outcome}",
            healthz_worst_s=watch.worst,
            cgroup_peak_rss=usage,
            **watch.loop_figures(),
        )
        assert sidecar.process.returncode is None, f"the sidecar died during {case}"
        assert not watch.failures, (case, watch.failures[:3])
        assert watch.worst < HEALTHZ_BOUND, (case, watch.worst)
        assert watch.stalls == 0, (case, watch.loop_figures())
    oom = memory_cgroup.ooms()
    assert oom == {"oom": 0, "oom_kill": 0}, (memory_cgroup.version, oom)
    assert sidecar.process.returncode is None


async def _stalled_readers(api: str, tally: hostile.Tally) -> str:
    """Five streams whose clients stop reading, held until the sidecar has hung up on every upstream."""
    started = tally.started
    writers = [await stop_reading_after_the_headers(api, _chat("endless", stream=True)) for _ in range(5)]
    try:
        async with asyncio.timeout(60):
            while tally.started < started + 5 or tally.open:
                await asyncio.sleep(0.1)
    finally:
        for writer in writers:
            writer.close()
    return "every upstream closed"
