"""``pilotfish demo``: watch failover happen, with no API keys and no cluster.

Starts two mock providers and a real sidecar process (``pilotfish local`` on ``examples/demo``), sends
steady traffic, then breaks the primary in the ways providers break (an outage, a hang, a rate limit)
and heals it, showing live where requests go. Then two short acts on the same sidecar: tiers
(``demo.tiers``) and a team budget (``demo.budgets``). Exits 0 only if no request failed and traffic
moved as it should (off the primary while it was broken and back once it healed), and each act's
decisions were the expected ones.
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

from pilotfish.demo import budgets as budgets_act
from pilotfish.demo import report
from pilotfish.demo import tiers as tiers_act
from pilotfish.mocks import runner

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples" / "demo"
WORKERS = 4  # concurrent app requests: enough to see traffic split, light on a laptop
VENDORS = ("anthropic", "openai", "gemini")  # credential names in examples/demo, in priority order
OK: dict[str, Any] = {"mode": "ok"}


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    faults: dict[str, dict[str, Any]]  # vendor → fault; vendors not named are healthy
    settles_on: str  # who serves the last quarter of the phase
    never: tuple[str, ...] = ()  # who must serve nothing in this phase


PHASES = [
    Phase("healthy", {}, "anthropic"),
    Phase("Anthropic overloaded: HTTP 529", {"anthropic": {"mode": "status", "status": 529}}, "openai", ("anthropic",)),
    Phase("Anthropic hangs: slow, not dead", {"anthropic": {"mode": "hang"}}, "openai", ("anthropic",)),
    Phase(
        "...and OpenAI resets connections",
        {"anthropic": {"mode": "hang"}, "openai": {"mode": "reset"}},
        "gemini",
        ("anthropic", "openai"),
    ),
    Phase(
        "Anthropic rate-limited (429, Retry-After 2s)",
        {"anthropic": {"mode": "rate-limit", "retry_after": 2}},
        "openai",
        ("anthropic",),
    ),
    Phase("all recovered", {}, "anthropic"),
]


@dataclasses.dataclass
class Tally:
    served: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    failovers: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    errors: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list)
    # serving member, request by request, of the requests that started AND finished in this phase: the
    # verdict judges only those. A request that straddles a fault change reached the mock before or after
    # it (unknowable from here), so it proves nothing about either phase; it is shown, not judged.
    order: list[str] = dataclasses.field(default_factory=list)

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
            started, started_in = time.perf_counter(), tallies[-1]
            try:
                async with session.post(api + "/v1/chat/completions", json=body) as response:
                    text = await response.text()
                    ok = response.status == 200 and 'data: {"error"' not in text
                    member = response.headers.get("x-pilotfish-member", "none").split("/")[0]
                    reason = response.headers.get("x-pilotfish-failover-reason")
            except aiohttp.ClientError:
                ok, member, reason = False, "none", None
            tally = tallies[-1]  # shown in the phase it finished in
            tally.latencies.append(time.perf_counter() - started)
            if ok:
                tally.served[member] += 1
                if started_in is tally:
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
    share = " ".join(f"{m}={tally.served[m]:>3}" for m in VENDORS)
    reasons = ", ".join(f"{r} x{c}" for r, c in tally.failovers.most_common()) or "-"
    open_now = [m for m in VENDORS if states and states.get(m) != "closed"]
    circuit = f"  circuits not closed: {', '.join(f'{m}={states[m]}' for m in open_now)}" if states and open_now else ""
    return (
        f"{name:<45} {total:>4} req  {share}  errors={tally.errors}  p50={tally.p(0.5):5.1f}ms "
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


async def _start_mocks() -> dict[str, runner.RunningMock]:
    keys = {"anthropic": "sk-ant-demo", "openai": "sk-demo-openai", "gemini": "demo-gemini-key"}
    return {vendor: await runner.start_mock(provider=vendor, name=vendor, api_key=keys[vendor]) for vendor in VENDORS}


async def run(phase_seconds: float, live: bool) -> int:
    mocks = await _start_mocks()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="pilotfish-demo-"))
    text = (EXAMPLES / "workhorse.yaml").read_text()
    for port, vendor in zip(("9101", "9102", "9103"), VENDORS, strict=True):
        text = text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{mocks[vendor].port}")
    (workdir / "workhorse.yaml").write_text(text)
    for name in ("tiers.yaml", "budgets.yaml"):
        (workdir / name).write_text((EXAMPLES / name).read_text())
    process, api, admin = await _start_sidecar(workdir, workdir / "requests.jsonl")
    print("Pilotfish demo: class 'workhorse' = Anthropic → OpenAI → Gemini, all three mock providers;")
    print("the app speaks OpenAI's API to the sidecar and never knows which vendor answered.")
    print(f"Sidecar API {api}  admin {admin}/debug/members  request log {workdir / 'requests.jsonl'}\n")
    names: list[str] = []
    tallies: list[Tally] = []
    phase_starts: list[tuple[float, str]] = []
    stop_traffic, stop_view = asyncio.Event(), asyncio.Event()
    try:
        names.append(PHASES[0].name)
        tallies.append(Tally())
        workers = [asyncio.create_task(_traffic(api, tallies, stop_traffic, w)) for w in range(WORKERS)]
        view = asyncio.create_task(_show(admin, names, tallies, stop_view, live))
        for index, phase in enumerate(PHASES):
            if index:
                names.append(phase.name)
                tallies.append(Tally())
            for vendor, mock in mocks.items():
                mock.set_fault(**phase.faults.get(vendor, OK))
            phase_starts.append((time.time(), phase.name))
            await asyncio.sleep(phase_seconds)
        stop_traffic.set()
        await asyncio.gather(*workers)
        stop_view.set()
        await view
        if not live:
            print(_row(names[-1], tallies[-1]))
        act_problems = await tiers_act.run(api, mocks)
        act_problems += await budgets_act.run(api)
    finally:
        process.terminate()
        await process.wait()
        for mock in mocks.values():
            await mock.stop()
    _report(workdir, phase_starts)
    return _verdict(tallies, act_problems)


def _report(workdir: pathlib.Path, phase_starts: list[tuple[float, str]]) -> None:
    """What the sidecar itself logged: the summary table, and a PNG of who served when."""
    requests = report.load(workdir / "requests.jsonl")
    print("\nFrom the sidecar's request log:")
    print(report.summary(requests), end="")
    png = report.plot(requests, phase_starts, workdir / "failover.png")
    print(f"Plot of requests per member over time: {png}" if png else "(no plot: matplotlib is not installed)")


def _verdict(tallies: list[Tally], act_problems: list[str] | None = None) -> int:
    print()
    problems = list(act_problems or [])
    for phase, tally in zip(PHASES, tallies, strict=True):
        if not (tally.served or tally.errors):
            problems.append(f"{phase.name}: no traffic")
            continue
        if tally.errors:
            problems.append(f"{phase.name}: {tally.errors} failed requests")
        judged = collections.Counter(tally.order)
        problems += [f"{phase.name}: broken {v} served {judged[v]} requests" for v in phase.never if judged[v]]
        settled = tally.order[len(tally.order) * 3 // 4 :]  # the last quarter, after any recovery probe
        if not settled or any(member != phase.settles_on for member in settled):
            problems.append(f"{phase.name}: traffic did not settle on {phase.settles_on}")
    total = sum(sum(t.served.values()) + t.errors for t in tallies)
    moved = sum(sum(t.failovers.values()) for t in tallies)
    latencies = [latency for t in tallies for latency in t.latencies]
    print(
        f"{total} requests, {moved} of them served by a fallback after a failover or an open circuit, "
        f"median latency {statistics.median(latencies) * 1000:.1f} ms."
    )
    if problems:
        print("Demo FAILED:\n  " + "\n  ".join(problems))
        return 1
    print(
        "No request failed during the outages: every one was absorbed by failover, "
        "and traffic returned to Anthropic once it healed."
    )
    return 0


def main(*, phase_seconds: float | None, live: bool) -> int:
    return asyncio.run(run(phase_seconds or 5.0, live and sys.stdout.isatty()))
