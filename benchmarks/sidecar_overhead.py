"""The sidecar tax: what the sidecar costs beside the floor any aiohttp sidecar pays, measured in one run.

Targets, all on loopback, all calling one bench upstream (``benchmarks.upstream``):

- ``direct``: the upstream called directly (what "added" latency is measured from);
- ``floor``: a bare aiohttp pass-through proxy on asyncio's loop, the loop the sidecar runs on (``bare_proxy``);
- ``parsing``: the parsing floor (``parsing_proxy``), the least a proxy with a first-token deadline does: a
  streamed upstream call, every event parsed; what the deadline alone costs beside the floor;
- ``sidecar``: ``pilotfish sidecar`` on the routes document ``pilotfish render`` makes, with the defaults an
  injected sidecar has: **request log on**;
- ``sidecar_no_log`` and ``sidecar_traced`` (OTLP export to the bench upstream): what the request log and
  tracing cost;
- ``open_circuit``: the sidecar, through a class whose first member's circuit is open (its port is closed);
  measured request by request against the plain class (``load.paired``), beside the plain class against
  itself the same way, which is the noise it is judged by.

Every scenario runs its targets interleaved, round by round, so this shared machine's drift hits them
alike; the figures that matter are ratios within the run. Raw results go to ``--out`` (committed);
``benchmarks.report`` turns them into the table in docs/benchmarks.md.

    python -m benchmarks.sidecar_overhead [--rounds 3] [--out benchmarks/results/sidecar_overhead.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from benchmarks import harness, load, report, upstream

OUT = harness.ROOT / "benchmarks" / "results" / "sidecar_overhead.json"
SIDECARS = ("sidecar", "sidecar_no_log", "sidecar_traced")
OPEN_LOOP_RATE = 320.0  # requests a second: about 64 in flight behind the 200 ms upstream, as in the c=64 row


class Procs:
    """The processes under test: name → (origin URL, pid)."""

    def __init__(self) -> None:
        self.origin: dict[str, str] = {}
        self.pid: dict[str, int] = {}

    def target(self, name: str, model: str) -> load.Target:
        if name == "open_circuit":
            return load.Target(self.origin["sidecar"] + "/v1/chat/completions", model + "-open")
        return load.Target(self.origin[name] + "/v1/chat/completions", model)


def start(stack: contextlib.ExitStack, tmp: pathlib.Path) -> Procs:
    procs = Procs()
    py = sys.executable
    up_port, floor_port, parsing_port = harness.free_port(), harness.free_port(), harness.free_port()
    closed_port = stack.enter_context(harness.closed_port())
    up = f"http://127.0.0.1:{up_port}"
    classes: dict[str, list[tuple[str, str]]] = {model: [("bench", model)] for model in upstream.ANSWERS}
    classes |= {f"{model}-open": [("closed", model), ("bench", model)] for model in ("fast",)}
    path = tmp / "bench.yaml"
    path.write_text(harness.manifest({"bench": f"{up}/v1", "closed": f"http://127.0.0.1:{closed_port}/v1"}, classes))
    floor = ["-m", "benchmarks.bare_proxy", f"--listen=127.0.0.1:{floor_port}", f"--upstream={up}"]
    commands: dict[str, tuple[int, list[str], dict[str, str]]] = {
        "direct": (up_port, ["-m", "benchmarks.upstream", f"--listen=127.0.0.1:{up_port}"], {}),
        "floor": (floor_port, floor, {}),
        "parsing": (
            parsing_port,
            ["-m", "benchmarks.parsing_proxy", f"--listen=127.0.0.1:{parsing_port}", *floor[3:]],
            {},
        ),
    }
    ready = [f"{up}/v1/models"] + [
        f"http://127.0.0.1:{port}/v1/chat/completions"
        for port in (floor_port, parsing_port)  # a GET: 405 once up
    ]
    tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": up, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    for name in SIDECARS:
        api, admin = harness.free_port(), harness.free_port()
        args = harness.sidecar_args(path, api_port=api, admin_port=admin, request_log=name != "sidecar_no_log")
        commands[name] = (api, args, tracing if name == "sidecar_traced" else {})
        ready.append(f"http://127.0.0.1:{admin}/readyz")
    for name, (port, args, env) in commands.items():
        proc = stack.enter_context(harness.process([py, *args], env=env))
        procs.origin[name], procs.pid[name] = f"http://127.0.0.1:{port}", proc.pid
    for url in ready:
        harness.wait_http(url, any_status=url.endswith("/completions"))
    return procs


def _summary(values: Sequence[load.Sample]) -> dict[str, float]:
    first, total = [v[0] for v in values], [v[1] for v in values]
    return {
        "first_p50_ms": harness.pct(first, 0.5),
        "first_p99_ms": harness.pct(first, 0.99),
        "total_p50_ms": harness.pct(total, 0.5),
        "total_p99_ms": harness.pct(total, 0.99),
        "n": len(values),
    }


def latency(
    procs: Procs, names: Sequence[str], *, model: str, stream: bool, concurrency: int, requests: int, rounds: int
) -> dict[str, dict[str, float]]:
    """Percentiles per target after a warm-up: at one client, the targets take turns request by request; at
    more, in interleaved rounds of ``requests``."""
    got: dict[str, list[load.Sample]] = {name: [] for name in names}
    for name in names:
        asyncio.run(
            load.samples(procs.target(name, model), requests=concurrency * 4, concurrency=concurrency, stream=stream)
        )
    if concurrency == 1:  # request by request, every target in turn (``load.alternating``)
        targets = [procs.target(name, model) for name in names]
        for name, values in zip(
            names, asyncio.run(load.alternating(targets, rounds=requests * rounds, stream=stream)), strict=True
        ):
            got[name] = values
        return {name: _summary(values) for name, values in got.items()}
    for _ in range(rounds):
        for name in names:
            target = procs.target(name, model)
            got[name] += asyncio.run(load.samples(target, requests=requests, concurrency=concurrency, stream=stream))
    return {name: _summary(values) for name, values in got.items()}


def cpu_rounds(
    procs: Procs, names: Sequence[str], *, model: str, stream: bool, concurrency: int, seconds: float, rounds: int
) -> dict[str, list[dict[str, float]]]:
    """Each round, each target alone on core 0 under closed-loop load: requests/s and CPU ms per request."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            pid = procs.pid["sidecar" if name == "open_circuit" else name]
            harness.pin(pid, 0)
            before = harness.cpu_seconds(pid)
            done, elapsed = asyncio.run(
                load.closed_loop(procs.target(name, model), seconds=seconds, concurrency=concurrency, stream=stream)
            )
            cpu = harness.cpu_seconds(pid) - before
            harness.unpin(pid)
            runs[name].append(
                {"rps": done / elapsed, "cpu_ms_per_request": cpu / max(done, 1) * 1000, "requests": done}
            )
    return runs


def long_lived(procs: Procs, names: Sequence[str], *, streams: int) -> dict[str, dict[str, float]]:
    """``streams`` concurrent paced streams (tens of seconds each) per target, one target at a time:
    the target's share of one CPU and its RSS half-way through."""
    out = {}
    for name in names:
        pid = procs.pid[name]

        async def run(pid: int = pid, name: str = name) -> tuple[tuple[int, int], float]:
            task = asyncio.create_task(load.long_streams(procs.target(name, "paced"), streams=streams))
            await asyncio.sleep(upstream.PACED_TOKENS * upstream.PACE_SECONDS / 2)
            rss = harness.rss_mib(pid)
            return await task, rss

        before, started = harness.cpu_seconds(pid), time.perf_counter()
        (received, failed), rss = asyncio.run(run())
        wall = time.perf_counter() - started
        out[name] = {
            "streams": streams,
            "seconds": wall,
            "cpu_share": (harness.cpu_seconds(pid) - before) / wall,
            "rss_mib_during": rss,
            "bytes": received,
            "failed_streams": failed,
        }
    return out


def open_loop(procs: Procs, names: Sequence[str], *, rate: float, seconds: float, rounds: int) -> dict[str, Any]:
    """The 200 ms upstream with requests arriving on their own (``load.open_loop``), not in a closed loop
    whose clients come back in step; the same arrivals for every target of a round, targets interleaved."""
    warm = int(rate * upstream.SLOW_SECONDS * 1.5)  # connections for what is in flight at once, and some
    got: dict[str, list[load.Sample]] = {name: [] for name in names}
    for index in range(rounds):
        for name in names:
            got[name] += asyncio.run(
                load.open_loop(procs.target(name, "slow200"), rate=rate, seconds=seconds, seed=index, warm=warm)
            )
    return {name: _summary(values) | {"rate": rate} for name, values in got.items()}


def open_circuit(procs: Procs, *, pairs: int) -> dict[str, dict[str, float]]:
    """Time to the whole answer through the open-circuit class minus through the plain one, request by
    request (``load.alternating``); and the plain class against a second connection to itself the same way:
    what "within noise" means in this run."""
    plain, opened = procs.target("sidecar", "fast"), procs.target("open_circuit", "fast")
    asyncio.run(load.alternating((plain, opened), rounds=20, stream=False))  # the closed member's circuit opens
    got = asyncio.run(load.alternating((plain, opened, plain), rounds=pairs, stream=False))
    out = {}
    for name, second in (("open_minus_plain", got[1]), ("plain_minus_plain", got[2])):
        diffs = [b[1] - a[1] for a, b in zip(got[0], second, strict=True)]  # seconds, as ``harness.pct`` takes them
        out[name] = {
            "p25_ms": harness.pct(diffs, 0.25),
            "p50_ms": harness.pct(diffs, 0.5),
            "p75_ms": harness.pct(diffs, 0.75),
            "n": len(diffs),
        }
    return out


def measure(procs: Procs, *, rounds: int, seconds: float, requests: int, streams: int) -> dict[str, Any]:
    results: dict[str, Any] = {"latency": {}, "cpu": {}}
    main = ("direct", "floor", "parsing", "sidecar")
    for stream in (False, True):
        kind = "stream" if stream else "non_stream"
        results["latency"][f"{kind}_c1"] = latency(
            procs, main, model="fast", stream=stream, concurrency=1, requests=requests, rounds=rounds
        )
        print(f"latency {kind} c=1 done", flush=True)
    results["open_circuit"] = open_circuit(procs, pairs=requests * rounds)
    for concurrency in (8, 64):
        results["latency"][f"slow200_c{concurrency}"] = latency(
            procs, main, model="slow200", stream=False, concurrency=concurrency, requests=concurrency * 6, rounds=rounds
        )
    results["latency"]["burst128_c1"] = latency(
        procs, main, model="burst128", stream=True, concurrency=1, requests=requests // 2, rounds=rounds
    )
    results["latency"]["slow200_open"] = open_loop(procs, main, rate=OPEN_LOOP_RATE, seconds=seconds, rounds=rounds)
    print("latency 200 ms and bursts done", flush=True)
    harness.pin(os.getpid(), 1)  # the load generator and the upstream share core 1; the target has core 0
    harness.pin(procs.pid["direct"], 1)
    everyone = ("floor", "parsing", *SIDECARS)
    for kind, stream in (("non_stream", False), ("stream", True)):
        results["cpu"][f"{kind}_c64"] = cpu_rounds(
            procs, everyone, model="fast", stream=stream, concurrency=64, seconds=seconds, rounds=rounds
        )
    results["cpu"]["burst128_c8"] = cpu_rounds(
        procs,
        ("floor", "parsing", "sidecar"),
        model="burst128",
        stream=True,
        concurrency=8,
        seconds=seconds,
        rounds=rounds,
    )
    harness.unpin(os.getpid())
    harness.unpin(procs.pid["direct"])
    print("CPU and throughput done", flush=True)
    results["memory_after_load"] = {name: harness.rss_mib(procs.pid[name]) for name in ("floor", "sidecar")}
    results["long_lived"] = long_lived(procs, ("floor", "parsing", "sidecar"), streams=streams)
    results["memory_peak"] = {name: harness.rss_mib(procs.pid[name], "VmHWM") for name in ("floor", "sidecar")}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario")
    parser.add_argument("--requests", type=int, default=200, help="requests per target and round at c=1")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per target and round of closed-loop load")
    parser.add_argument("--streams", type=int, default=300, help="concurrent long-lived streams")
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        procs = start(stack, pathlib.Path(tmp))
        idle = {name: harness.rss_mib(procs.pid[name]) for name in ("floor", "sidecar")}
        results = measure(procs, rounds=args.rounds, seconds=args.seconds, requests=args.requests, streams=args.streams)
    results["memory_idle"] = idle
    results["run"] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "load_average": os.getloadavg(),
        "rounds": args.rounds,
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(report.render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
