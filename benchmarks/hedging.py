"""What hedging costs and buys: upstream calls per request and time to first byte under a slow-primary incident.

One sidecar (``pilotfish sidecar``), a class of two members (two mock providers, separate processes), C
streaming clients sending without pause. The primary serves normally first (so it has a normal: first
tokens in milliseconds), then every request to it waits ``--delay`` seconds before its first byte. Each
configuration runs on a fresh sidecar and fresh mocks: default settings (adaptive deadline, no hedging) and
``routing.hedge: true``.

- *upstream calls per request*: calls both mocks received after the onset, over client requests after it;
  one means no extra call at all;
- *time to first byte*: from sending a request to the first byte of its streamed body, over the requests
  in flight at the onset or sent after it (p50, p99, max).

    python -m benchmarks.hedging [--clients 20] [--delay 5] [--after 15] [--out benchmarks/results/hedging.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import statistics
import time
from typing import Any

import aiohttp

from benchmarks import hang_onset, harness

ROOT = harness.ROOT
BODY = {**hang_onset.BODY, "stream": True}
HEDGE = "  routing: {hedge: true}\n"


async def _client(session: aiohttp.ClientSession, url: str, stop: asyncio.Event, out: list[dict[str, Any]]) -> None:
    while not stop.is_set():
        started = time.monotonic()
        first_byte = None
        try:
            async with session.post(url, json=BODY) as response:
                async for _ in response.content.iter_any():
                    if first_byte is None:
                        first_byte = time.monotonic() - started
                status = response.status
        except aiohttp.ClientError:
            status = -1
        out.append({"started": started, "ended": time.monotonic(), "ttfb": first_byte, "status": status})


async def _calls(session: aiohttp.ClientSession, mocks: list[str]) -> int:
    total = 0
    for mock in mocks:
        async with session.get(f"{mock}/_mock/stats") as response:
            total += int((await response.json())["requests"])
    return total


async def _scenario(api: str, primary: str, backup: str, *, clients: int, delay: float, after: float) -> dict[str, Any]:
    url = f"{api}/v1/chat/completions"
    stop = asyncio.Event()
    results: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session,
        aiohttp.ClientSession() as control,
    ):
        workers = [asyncio.create_task(_client(session, url, stop, results)) for _ in range(clients)]
        while len(results) < max(3 * clients, 60):  # the primary's normal: well over minSamples first tokens
            await asyncio.sleep(0.05)
        calls_before = await _calls(control, [primary, backup])
        async with control.put(f"{primary}/_mock/fault", json={"mode": "slow-first-token", "delay": delay}) as r:
            r.raise_for_status()
        onset = time.monotonic()
        done_before = len(results)
        await asyncio.sleep(after)
        stop.set()
        await asyncio.gather(*workers)
        calls = await _calls(control, [primary, backup]) - calls_before
    hit = [r for r in results[done_before:] if r["ended"] > onset]
    waits = sorted(r["ttfb"] for r in hit if r["ttfb"] is not None)
    return {
        "clients": clients,
        "requests_after_onset": len(hit),
        "failed": sum(1 for r in hit if r["status"] != 200),
        "upstream_calls_per_request": round(calls / len(hit), 4) if hit else 0.0,
        "ttfb_p50_s": round(statistics.median(waits), 3) if waits else 0.0,
        "ttfb_p99_s": round(waits[min(len(waits) - 1, int(0.99 * len(waits)))], 3) if waits else 0.0,
        "ttfb_max_s": round(waits[-1], 3) if waits else 0.0,
    }


def _run_one(*, clients: int, delay: float, after: float, hedge: bool) -> dict[str, Any]:
    with hang_onset.running(spec=HEDGE if hedge else "") as (api, primary, backup):
        result = asyncio.run(_scenario(api, primary, backup, clients=clients, delay=delay, after=after))
    return {"hedge": hedge, "primary_first_byte_delay_s": delay, **result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--delay", type=float, default=5.0, help="the slow primary's wait before its first byte")
    parser.add_argument("--after", type=float, default=15.0, help="seconds the clients go on after the onset")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "hedging.json")
    args = parser.parse_args()
    runs = [_run_one(clients=args.clients, delay=args.delay, after=args.after, hedge=hedge) for hedge in (False, True)]
    for run in runs:
        print(json.dumps(run))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"after_seconds": args.after, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
