"""What a hang costs: requests slowed and failed when a member starts to accept requests and never answer.

The scenario of issue 17, as a user would run it: one sidecar (``pilotfish sidecar``, default settings), a
class of two members (two mock providers, separate processes), C clients sending without pause. The
primary first serves normally (so it has a normal to be judged by), then hangs; the clients go on for
``--after`` seconds. Each concurrency runs on a fresh sidecar and fresh mocks, once with the defaults and
once with the adaptive first-token deadline off (the fixed 15 s deadline alone).

- *slowed*: requests that took more than ``SLOW_SECONDS`` longer than the normal, the p99 of the requests
  before the onset (a few ms on an idle machine; on a loaded one, the queueing every request pays anyway);
- *failed*: requests that got anything but a 200 with the answer.

    python -m benchmarks.hang_onset [--clients 20 100] [--after 20] [--out benchmarks/results/hang_onset.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import aiohttp

from benchmarks import harness

ROOT = harness.ROOT
SLOW_SECONDS = 1.0  # over the normal: a request that waited on the hung member waits its deadline, seconds
BODY = {"model": "workhorse", "messages": [{"role": "user", "content": "Say hello."}]}
ADAPTIVE_OFF = "  timeouts: {adaptiveFirstToken: {enabled: false}}\n"
MEMBERS = [("primary", "model-a"), ("backup", "model-b")]


async def _client(session: aiohttp.ClientSession, url: str, stop: asyncio.Event, out: list[dict[str, Any]]) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            async with session.post(url, json=BODY) as response:
                await response.read()
                status = response.status
        except aiohttp.ClientError:
            status = -1  # a dropped connection is a failed request too
        out.append({"started": started, "seconds": time.monotonic() - started, "status": status})


async def _scenario(api: str, primary: str, *, clients: int, after: float) -> dict[str, Any]:
    """Clients run throughout; the primary serves for a warm-up, then hangs for ``after`` seconds."""
    url = f"{api}/v1/chat/completions"
    stop = asyncio.Event()
    results: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        workers = [asyncio.create_task(_client(session, url, stop, results)) for _ in range(clients)]
        while len(results) < max(3 * clients, 60):  # the primary's normal: well over minSamples first tokens
            await asyncio.sleep(0.05)
        async with (
            aiohttp.ClientSession() as control,
            control.put(f"{primary}/_mock/fault", json={"mode": "hang"}) as r,
        ):
            r.raise_for_status()  # its own connection: the clients' pool is busy by design
        onset = time.monotonic()
        await asyncio.sleep(after)
        stop.set()
        await asyncio.gather(*workers)
    hit = [r for r in results if r["started"] + r["seconds"] > onset]  # in flight at the onset, or later
    before = sorted(r["seconds"] for r in results[clients:] if r["started"] + r["seconds"] <= onset)  # warm
    normal = before[min(len(before) - 1, int(0.99 * len(before)))]
    slowed = [r for r in hit if r["seconds"] > normal + SLOW_SECONDS]
    return {
        "clients": clients,
        "normal_p50_s": round(statistics.median(before), 3),
        "normal_p99_s": round(normal, 3),
        "requests_after_onset": len(hit),
        "slowed": len(slowed),
        "failed": sum(1 for r in hit if r["status"] != 200),
        "slowed_wait_p50_s": round(statistics.median([r["seconds"] for r in slowed]), 2) if slowed else 0.0,
        "slowed_wait_max_s": round(max(r["seconds"] for r in slowed), 2) if slowed else 0.0,
    }


@contextlib.contextmanager
def running(*, spec: str) -> Iterator[tuple[str, str, str]]:
    """Two mock providers and a sidecar serving the two-member class (``spec``: extra lines of its spec), each
    its own process; yields the sidecar's API URL and the two mocks' origins."""
    python = sys.executable
    ports = [harness.free_port() for _ in range(4)]
    primary, backup = (f"http://127.0.0.1:{port}" for port in ports[:2])
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        manifest = pathlib.Path(tmp) / "class.yaml"
        credentials = {"primary": f"{primary}/v1", "backup": f"{backup}/v1"}
        manifest.write_text(harness.manifest(credentials, {"workhorse": MEMBERS}, class_spec={"workhorse": spec}))
        for name, port in (("primary", ports[0]), ("backup", ports[1])):
            mock = ["-m", "pilotfish.cli", "mock-provider", "--name", name, "--listen", f"127.0.0.1:{port}"]
            stack.enter_context(harness.process([python, *mock]))
        sidecar = harness.sidecar_args(manifest, api_port=ports[2], admin_port=ports[3])
        stack.enter_context(harness.process([python, *sidecar]))
        harness.wait_http(f"{primary}/v1/models")
        harness.wait_http(f"{backup}/v1/models")
        harness.wait_http(f"http://127.0.0.1:{ports[3]}/readyz")
        yield f"http://127.0.0.1:{ports[2]}", primary, backup


def _run_one(*, clients: int, after: float, adaptive: bool) -> dict[str, Any]:
    with running(spec="" if adaptive else ADAPTIVE_OFF) as (api, primary, _):
        result = asyncio.run(_scenario(api, primary, clients=clients, after=after))
    return {"adaptive_first_token": adaptive, **result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--after", type=float, default=20.0, help="seconds the clients go on after the onset")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "hang_onset.json")
    args = parser.parse_args()
    runs = [
        _run_one(clients=clients, after=args.after, adaptive=adaptive)
        for clients in args.clients
        for adaptive in (True, False)
    ]
    for run in runs:
        print(json.dumps(run))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"slow_seconds": SLOW_SECONDS, "after_seconds": args.after, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
