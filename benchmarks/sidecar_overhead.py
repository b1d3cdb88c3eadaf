"""How much the sidecar adds: latency, CPU per request, throughput on one core, and RSS.

Three targets are measured in one run, interleaved round by round so that machine noise hits them
alike: the mock provider called directly, a bare aiohttp pass-through proxy (the floor any aiohttp
sidecar pays), and the Pilotfish sidecar. Results are ratios and differences within this run.

    python -m benchmarks.sidecar_overhead [--requests 400] [--rounds 3] [--out benchmarks/results/latest.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import aiohttp

ROOT = pathlib.Path(__file__).resolve().parents[1]
BODY = {"model": "workhorse", "messages": [{"role": "user", "content": "Say hello in a short sentence."}]}
MANIFEST = """\
apiVersion: v1
kind: Secret
metadata: {{name: bench-keys}}
stringData: {{key: sk-bench}}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: mock}}
spec:
  provider: openai-compatible
  baseURL: {upstream}/v1
  apiKeySecretRef: {{name: bench-keys, key: key}}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {{name: workhorse}}
spec:
  members:
    - {{credentialRef: mock, model: mock-model}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def process(args: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_request(session: aiohttp.ClientSession, url: str, *, stream: bool) -> float:
    """Seconds to the full body (non-streaming) or to the first content event (streaming)."""
    started = time.perf_counter()
    async with session.post(url, json={**BODY, "stream": stream}) as response:
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}: {await response.text()}")
        if not stream:
            await response.read()
            return time.perf_counter() - started
        first: float | None = None
        async for line in response.content:
            if first is None and line.startswith(b"data:") and b'"content":"' in line and b'"content":""' not in line:
                first = time.perf_counter() - started
        return first if first is not None else time.perf_counter() - started


async def run_load(url: str, *, requests: int, concurrency: int, stream: bool) -> list[float]:
    latencies: list[float] = []
    queue = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for _ in queue:
                latencies.append(await one_request(session, url, stream=stream))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def measure(targets: dict[str, str], *, requests: int, rounds: int) -> dict[str, dict[str, dict[str, float]]]:
    results: dict[str, dict[str, dict[str, float]]] = {}
    for stream in (False, True):
        for concurrency in (1, 32):
            scenario = f"{'stream_ttfb' if stream else 'non_stream'}_c{concurrency}"
            samples: dict[str, list[float]] = {name: [] for name in targets}
            for url in targets.values():  # warm-up: connections, caches, first-call costs
                await run_load(url, requests=50, concurrency=concurrency, stream=stream)
            for _ in range(rounds):
                for name, url in targets.items():
                    samples[name] += await run_load(url, requests=requests, concurrency=concurrency, stream=stream)
            results[scenario] = {
                name: {
                    "p50_ms": pct(values, 0.5),
                    "p99_ms": pct(values, 0.99),
                    "mean_ms": statistics.fmean(values) * 1000,
                    "n": len(values),
                }
                for name, values in samples.items()
            }
            print(
                f"{scenario}: "
                + ", ".join(
                    f"{n} p50={r['p50_ms']:.2f}ms p99={r['p99_ms']:.2f}ms" for n, r in results[scenario].items()
                ),
                flush=True,
            )
    return results


async def throughput(url: str, pid: int, *, seconds: float) -> dict[str, float]:
    """Requests per second through one process pinned to one core, and its CPU per request."""
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    done = 0
    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() - started < seconds:
                await one_request(session, url, stream=False)
                done += 1

        await asyncio.gather(*(worker() for _ in range(32)))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_before
    return {"rps": done / elapsed, "cpu_ms_per_request": cpu / max(done, 1) * 1000, "requests": done}


def pin(pid: int, cpu: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(pid, {cpu % (os.cpu_count() or 1)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per target per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--throughput-seconds", type=float, default=5.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    args = parser.parse_args()
    python = sys.executable
    mock_port, proxy_port, api_port, admin_port = (free_port() for _ in range(4))
    mock = f"http://127.0.0.1:{mock_port}"
    with tempfile.TemporaryDirectory() as tmp:
        manifest = pathlib.Path(tmp, "bench.yaml")
        manifest.write_text(MANIFEST.format(upstream=mock))
        with (
            process(
                [python, "-m", "pilotfish.cli", "mock-provider", "--listen", f"127.0.0.1:{mock_port}"]
            ) as mock_proc,
            process(
                [
                    python,
                    "-m",
                    "benchmarks.bare_proxy",
                    "--listen",
                    f"127.0.0.1:{proxy_port}",
                    "--upstream",
                    mock,
                ]
            ) as proxy_proc,
            process(
                [
                    python,
                    "-m",
                    "pilotfish.cli",
                    "local",
                    "-f",
                    str(manifest),
                    "--no-request-log",
                    "--listen",
                    f"127.0.0.1:{api_port}",
                    "--admin",
                    f"127.0.0.1:{admin_port}",
                ]
            ) as sidecar_proc,
        ):
            wait_http(f"{mock}/v1/models")
            wait_http(f"http://127.0.0.1:{admin_port}/readyz")
            time.sleep(0.5)  # the bare proxy has no probe endpoint
            pin(mock_proc.pid, 1)
            idle_rss = rss_mb(sidecar_proc.pid)
            proxy_idle_rss = rss_mb(proxy_proc.pid)
            targets = {
                "direct": f"{mock}/v1/chat/completions",
                "bare_proxy": f"http://127.0.0.1:{proxy_port}/v1/chat/completions",
                "sidecar": f"http://127.0.0.1:{api_port}/v1/chat/completions",
            }
            latency = asyncio.run(measure(targets, requests=args.requests, rounds=args.rounds))
            pin(sidecar_proc.pid, 0)
            pin(proxy_proc.pid, 0)
            tput = {
                "bare_proxy": asyncio.run(
                    throughput(targets["bare_proxy"], proxy_proc.pid, seconds=args.throughput_seconds)
                ),
                "sidecar": asyncio.run(
                    throughput(targets["sidecar"], sidecar_proc.pid, seconds=args.throughput_seconds)
                ),
            }
            memory = {
                "sidecar_idle_rss_mb": idle_rss,
                "sidecar_peak_rss_mb": rss_mb(sidecar_proc.pid, "VmHWM"),
                "bare_proxy_idle_rss_mb": proxy_idle_rss,
                "bare_proxy_peak_rss_mb": rss_mb(proxy_proc.pid, "VmHWM"),
            }
    added = {
        scenario: {
            "sidecar_added_p50_ms": r["sidecar"]["p50_ms"] - r["direct"]["p50_ms"],
            "bare_proxy_added_p50_ms": r["bare_proxy"]["p50_ms"] - r["direct"]["p50_ms"],
            "sidecar_added_p99_ms": r["sidecar"]["p99_ms"] - r["direct"]["p99_ms"],
            "bare_proxy_added_p99_ms": r["bare_proxy"]["p99_ms"] - r["direct"]["p99_ms"],
        }
        for scenario, r in latency.items()
    }
    for _scenario, a in added.items():
        floor = a["bare_proxy_added_p50_ms"]
        a["ratio_to_bare_proxy_p50"] = a["sidecar_added_p50_ms"] / floor if floor > 0 else float("nan")
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "latency": latency,
        "added": added,
        "throughput_one_core": tput,
        "memory": memory,
    }
    pathlib.Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps({"added": added, "throughput_one_core": tput, "memory": memory}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
