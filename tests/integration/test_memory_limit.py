"""The sidecar survives every hostile case of issue 15 under the chart's hard memory limit (128Mi).

The real `pilotfish local` process runs in a memory cgroup (v1) of its own, a child of this test's,
limited to the value of ``sidecar.resources.limits.memory`` in charts/pilotfish/values.yaml with
swap forbidden, exactly as the kubelet would limit the injected container. Every case runs against
it in turn while /healthz is probed; afterwards the process must be alive and the cgroup must report
no OOM kill. Skipped, with the reason, where this test may not create a cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator

import aiohttp
import pytest
import yaml
from aiohttp import web
from tests.integration import probes
from tests.integration.conftest import ROOT, Sidecar, start_sidecar, stop_sidecar
from tests.integration.test_hostile_clients import gzip_bomb
from tests.integration.test_hostile_upstream import stop_reading_after_the_headers

from pilotfish.mocks import hostile, runner

pytestmark = pytest.mark.slow

HEALTHZ_BOUND = 2.0
MEMORY_ROOT = pathlib.Path("/sys/fs/cgroup/memory")


def chart_memory_limit() -> int:
    values = yaml.safe_load((ROOT / "charts/pilotfish/values.yaml").read_text())
    text = values["sidecar"]["resources"]["limits"]["memory"]
    assert text.endswith("Mi"), text
    return int(text[:-2]) * probes.MIB


def _own_memory_cgroup() -> pathlib.Path | None:
    for line in pathlib.Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return MEMORY_ROOT / path.lstrip("/")
    return None


@pytest.fixture
def memory_cgroup() -> Iterator[pathlib.Path]:
    """A child memory cgroup limited to the chart's value, or a skip saying why there cannot be one."""
    parent = _own_memory_cgroup()
    if parent is None or not (parent / "memory.limit_in_bytes").exists():
        pytest.skip("no cgroup v1 memory controller mounted at /sys/fs/cgroup/memory for this process")
    group = parent / f"pilotfish-test-{os.getpid()}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(chart_memory_limit()))
        memsw = group / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            memsw.write_text(str(chart_memory_limit()))  # no swapping out of the limit either
    except OSError as exc:
        with contextlib.suppress(OSError):
            group.rmdir()
        pytest.skip(f"cannot create a memory cgroup under {parent}: {exc}")
    yield group
    for _ in range(50):  # the process has exited; its charge drains away before rmdir succeeds
        try:
            group.rmdir()
            break
        except OSError:
            time.sleep(0.1)


def _join(group: pathlib.Path) -> Callable[[], None]:
    def preexec() -> None:
        (group / "cgroup.procs").write_text(str(os.getpid()))

    return preexec


def _oom_control(group: pathlib.Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in (group / "memory.oom_control").read_text().splitlines())}


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
async def limited(memory_cgroup: pathlib.Path, tmp_path: pathlib.Path) -> AsyncIterator[Limited]:
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
    sidecar = await start_sidecar(["local", "-f", str(tmp_path), "--no-request-log"], preexec=_join(memory_cgroup))
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
    limited: Limited, memory_cgroup: pathlib.Path
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
        usage = int((memory_cgroup / "memory.max_usage_in_bytes").read_text())
        probes.report(f"128Mi cgroup: {case} -> {outcome}", healthz_worst_s=watch.worst, cgroup_peak_rss=usage)
        assert sidecar.process.returncode is None, f"the sidecar died during {case}"
        assert not watch.failures, (case, watch.failures[:3])
        assert watch.worst < HEALTHZ_BOUND, (case, watch.worst)
    oom = _oom_control(memory_cgroup)
    assert oom["under_oom"] == 0 and oom.get("oom_kill", 0) == 0, oom
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
