"""``pilotfish demo``: watch failover happen, with no API keys and no cluster.

Starts two mock providers and a real sidecar process (``pilotfish local`` on ``examples/demo``), sends
steady traffic, then breaks the primary in the ways providers break (an outage, a hang, a rate limit)
and heals it, showing live where requests go. Exits 0 only if no request failed and traffic moved
as it should: off the primary while it was broken and back once it healed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
from typing import Any

import aiohttp

from pilotfish.mocks import runner

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "demo"
WORKERS = 4  # concurrent app requests: enough to see traffic split, light on a laptop
PHASES: list[tuple[str, dict[str, Any] | None, str]] = [
    ("healthy", None, "primary"),
    ("primary outage: HTTP 529 overloaded", {"mode": "status", "status": 529}, "backup"),
    ("primary hangs: slow, not dead", {"mode": "hang"}, "backup"),
    ("primary rate-limited: 429, Retry-After 2s", {"mode": "rate-limit", "retry_after": 2}, "backup"),
    ("primary recovered", {"mode": "ok"}, "primary"),
]


@dataclasses.dataclass
class Tally:
    served: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    failovers: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    errors: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list)
    order: list[str] = dataclasses.field(default_factory=list)  # serving member, request by request

    def p(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _traffic(api: str, tallies: list[Tally], stop: asyncio.Event, worker: int) -> None:
    n = 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            n += 1
            body = {
                "model": "workhorse",
                "stream": (n + worker) % 2 == 0,
                "messages": [{"role": "user", "content": f"demo request {worker}-{n}"}],
            }
            tally = tallies[-1]
            started = time.perf_counter()
            try:
                async with session.post(api + "/v1/chat/completions", json=body) as response:
                    text = await response.text()
                    ok = response.status == 200 and 'data: {"error"' not in text
                    member = response.headers.get("x-pilotfish-member", "none").split("/")[0]
                    reason = response.headers.get("x-pilotfish-failover-reason")
            except aiohttp.ClientError:
                ok, member, reason = False, "none", None
            tally.latencies.append(time.perf_counter() - started)
            if ok:
                tally.served[member] += 1
                tally.order.append(member)
            else:
                tally.errors += 1
            if reason:
                tally.failovers[reason] += 1
            await asyncio.sleep(0.05)


async def _members(admin: str, session: aiohttp.ClientSession) -> dict[str, str]:
    with contextlib.suppress(aiohttp.ClientError, KeyError, ValueError):
        async with session.get(admin + "/debug/members") as response:
            data = await response.json()
        return {m["id"].split("/")[0]: m["state"] for m in data["classes"]["workhorse"]["members"]}
    return {}


def _row(name: str, tally: Tally, states: dict[str, str] | None = None) -> str:
    total = sum(tally.served.values()) + tally.errors
    share = " ".join(f"{m}={tally.served[m]:>3}" for m in ("primary", "backup"))
    reasons = ", ".join(f"{r} x{c}" for r, c in tally.failovers.most_common()) or "-"
    circuit = f"  circuit primary={states.get('primary', '?')}" if states else ""
    return (
        f"{name:<42} {total:>4} req  {share}  errors={tally.errors}  p50={tally.p(0.5):6.1f}ms "
        f"p95={tally.p(0.95):7.1f}ms  failovers: {reasons}{circuit}"
    )


async def _show(admin: str, names: list[str], tallies: list[Tally], stop: asyncio.Event, live: bool) -> None:
    async with aiohttp.ClientSession() as session:
        drawn = 0
        while not stop.is_set():
            states = await _members(admin, session)
            lines = [
                _row(n, t, states if i == len(tallies) - 1 else None)
                for i, (n, t) in enumerate(zip(names, tallies, strict=False))
            ]
            if live:
                sys.stdout.write(f"\x1b[{drawn}F" if drawn else "")
                sys.stdout.write("".join(f"\x1b[2K{line}\n" for line in lines))
                drawn = len(lines)
            elif len(lines) > drawn + 1:  # plain output: print each phase once it is over
                sys.stdout.write("".join(f"{line}\n" for line in lines[drawn:-1]))
                drawn = len(lines) - 1
            sys.stdout.flush()
            await asyncio.sleep(0.25 if live else 1.0)


async def _start_sidecar(
    manifests: pathlib.Path, log_path: pathlib.Path
) -> tuple[asyncio.subprocess.Process, str, str]:
    log = log_path.open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pilotfish.cli",
        "local",
        "-f",
        str(manifests),
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        stdout=log,
        stderr=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(EXAMPLES.parents[1] / "sidecar"), os.environ.get("PYTHONPATH", "")]),
        },
    )
    assert process.stderr is not None
    async with asyncio.timeout(30):
        while line := await process.stderr.readline():
            if line.startswith(b'{"msg":"listening"'):
                announced = json.loads(line)
                return process, announced["api"], announced["admin"]
    raise RuntimeError("the sidecar did not start")


async def run(phase_seconds: float, live: bool) -> int:
    primary = await runner.start_mock(provider="anthropic", name="primary", api_key="sk-ant-demo-primary")
    backup = await runner.start_mock(name="backup", api_key="sk-demo-backup")
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="pilotfish-demo-"))
    text = (EXAMPLES / "workhorse.yaml").read_text()
    (workdir / "workhorse.yaml").write_text(
        text.replace("127.0.0.1:9101", f"127.0.0.1:{primary.port}").replace(
            "127.0.0.1:9102", f"127.0.0.1:{backup.port}"
        )
    )
    process, api, admin = await _start_sidecar(workdir, workdir / "requests.jsonl")
    print("Pilotfish demo: class 'workhorse' = primary (Anthropic) → backup (OpenAI), both mock providers;")
    print("the app speaks OpenAI's API to the sidecar and never knows which vendor answered.")
    print(f"Sidecar API {api}  admin {admin}/debug/members  request log {workdir / 'requests.jsonl'}\n")
    names: list[str] = []
    tallies: list[Tally] = []
    stop_traffic, stop_view = asyncio.Event(), asyncio.Event()
    try:
        names.append(PHASES[0][0])
        tallies.append(Tally())
        workers = [asyncio.create_task(_traffic(api, tallies, stop_traffic, w)) for w in range(WORKERS)]
        view = asyncio.create_task(_show(admin, names, tallies, stop_view, live))
        for index, (name, fault, _) in enumerate(PHASES):
            if index:
                names.append(name)
                tallies.append(Tally())
            if fault is not None:
                primary.set_fault(**fault)
            await asyncio.sleep(phase_seconds)
        stop_traffic.set()
        await asyncio.gather(*workers)
        stop_view.set()
        await view
        if not live:
            print(_row(names[-1], tallies[-1]))
    finally:
        process.terminate()
        await process.wait()
        await primary.stop()
        await backup.stop()
    return _verdict(names, tallies)


def _verdict(names: list[str], tallies: list[Tally]) -> int:
    print()
    problems = []
    for (name, _, expected), tally in zip(PHASES, tallies, strict=True):
        if not (tally.served or tally.errors):
            problems.append(f"{name}: no traffic")
            continue
        if tally.errors:
            problems.append(f"{name}: {tally.errors} failed requests")
        settled = tally.order[len(tally.order) * 3 // 4 :]  # the last quarter, after any recovery probe
        if expected == "backup" and tally.served["primary"]:
            problems.append(f"{name}: the broken primary served {tally.served['primary']} requests")
        if expected == "primary" and (not settled or any(member != "primary" for member in settled)):
            problems.append(f"{name}: traffic did not settle back on the primary")
    total = sum(sum(t.served.values()) + t.errors for t in tallies)
    failovers = sum(sum(t.failovers.values()) for t in tallies)
    latencies = [latency for t in tallies for latency in t.latencies]
    print(
        f"{total} requests, {failovers} of them served by the backup after a failover or an open circuit, "
        f"median latency {statistics.median(latencies) * 1000:.1f} ms."
    )
    if problems:
        print("Demo FAILED:\n  " + "\n  ".join(problems))
        return 1
    print("No request failed: every outage was absorbed by failover, and traffic returned once the primary healed.")
    return 0


def main(*, phase_seconds: float | None, live: bool) -> int:
    return asyncio.run(run(phase_seconds or 5.0, live and sys.stdout.isatty()))
