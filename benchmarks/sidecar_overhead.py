"""How much the sidecar adds: latency, CPU per request, throughput on one core, and RSS.

Four targets are measured in one run, interleaved round by round so that machine noise hits them
alike: the mock provider called directly; a bare aiohttp pass-through proxy on asyncio's loop and
the same proxy on uvloop (the floor any aiohttp sidecar pays; the sidecar runs on uvloop); and the
Pilotfish sidecar. Results are differences and ratios within this run.

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


def start_targets(stack: contextlib.ExitStack, manifest_dir: pathlib.Path) -> dict[str, tuple[str, int]]:
    """Every process under test: name → (chat completions URL, pid)."""
    python = sys.executable
    mock_port, proxy_port, uvproxy_port, api_port, admin_port = (free_port() for _ in range(5))
    mock = f"http://127.0.0.1:{mock_port}"
    manifest = manifest_dir / "bench.yaml"
    manifest.write_text(MANIFEST.format(upstream=mock))
    commands = {
        "direct": (mock_port, ["-m", "pilotfish.cli", "mock-provider", "--listen", f"127.0.0.1:{mock_port}"]),
        "bare_proxy": (
            proxy_port,
            ["-m", "benchmarks.bare_proxy", f"--listen=127.0.0.1:{proxy_port}", f"--upstream={mock}"],
        ),
        "bare_proxy_uvloop": (
            uvproxy_port,
            ["-m", "benchmarks.bare_proxy", f"--listen=127.0.0.1:{uvproxy_port}", f"--upstream={mock}", "--uvloop"],
        ),
        "sidecar": (
            api_port,
            [
                "-m",
                "pilotfish.cli",
                "local",
                "-f",
                str(manifest),
                "--no-request-log",
                f"--listen=127.0.0.1:{api_port}",
                f"--admin=127.0.0.1:{admin_port}",
            ],
        ),
    }
    targets = {}
    for name, (port, args) in commands.items():
        proc = stack.enter_context(process([python, *args]))
        targets[name] = (f"http://127.0.0.1:{port}/v1/chat/completions", proc.pid)
    wait_http(f"{mock}/v1/models")
    wait_http(f"http://127.0.0.1:{admin_port}/readyz")
    time.sleep(0.5)  # the bare proxies have no probe endpoint
    return targets


def added_latency(latency: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each proxy's p50/p99 minus the direct call's, and the sidecar's as a ratio to each floor."""
    added: dict[str, dict[str, float]] = {}
    for scenario, r in latency.items():
        row = {}
        for name in ("bare_proxy", "bare_proxy_uvloop", "sidecar"):
            for q in ("p50", "p99"):
                row[f"{name}_added_{q}_ms"] = r[name][f"{q}_ms"] - r["direct"][f"{q}_ms"]
        for floor in ("bare_proxy", "bare_proxy_uvloop"):
            base = row[f"{floor}_added_p50_ms"]
            row[f"ratio_to_{floor}_p50"] = row["sidecar_added_p50_ms"] / base if base > 0 else float("nan")
        added[scenario] = row
    return added


def one_core_rounds(
    urls: dict[str, str], pids: dict[str, int], *, rounds: int, seconds: float
) -> dict[str, dict[str, float]]:
    """Throughput and CPU per request on one core, interleaved round by round; medians, and the median of
    per-round ratios to each floor (a ratio within a round cancels most of this shared machine's drift)."""
    names = ("bare_proxy", "bare_proxy_uvloop", "sidecar")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            pin(pids[name], 0)  # …and the process under test gets core 0 to itself
            runs[name].append(asyncio.run(throughput(urls[name], pids[name], seconds=seconds)))
    result = {
        name: {key: statistics.median(r[key] for r in results) for key in ("rps", "cpu_ms_per_request")}
        for name, results in runs.items()
    }
    for floor in ("bare_proxy", "bare_proxy_uvloop"):
        result["sidecar"][f"cpu_ratio_to_{floor}"] = statistics.median(
            s["cpu_ms_per_request"] / f["cpu_ms_per_request"] for s, f in zip(runs["sidecar"], runs[floor], strict=True)
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per target per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--throughput-seconds", type=float, default=3.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        targets = start_targets(stack, pathlib.Path(tmp))
        pids = {name: pid for name, (_, pid) in targets.items()}
        pin(pids["direct"], 1)
        idle = {name: rss_mb(pid) for name, pid in pids.items() if name != "direct"}
        urls = {name: url for name, (url, _) in targets.items()}
        latency = asyncio.run(measure(urls, requests=args.requests, rounds=args.rounds))
        pin(os.getpid(), 1)  # the load generator shares core 1 with the mock…
        tput = one_core_rounds(urls, pids, rounds=args.rounds, seconds=args.throughput_seconds)
        memory = {name: {"idle_rss_mb": idle[name], "peak_rss_mb": rss_mb(pids[name], "VmHWM")} for name in idle}
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "latency": latency,
        "added": added_latency(latency),
        "throughput_one_core": tput,
        "memory": memory,
    }
    pathlib.Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("added", "throughput_one_core", "memory")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
