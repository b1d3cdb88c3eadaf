"""How long a client waits for the next byte when its stream breaks, by the way it is recovered.

One sidecar (``pilotfish sidecar``), mock providers as separate processes, streaming clients one at a time.
The primary cuts every stream after 4 content chunks; the client measures the gap between the last chunk
before the break and the first chunk after it:

- *continuation*: an Anthropic member continues the delivered text as a prefill (verified at the seam);
- *splice*: no member can prefill; a replica of the primary (same model elsewhere, deterministic) is
  asked for the whole answer again and spliced (``streaming.splice``);
- *first byte, primary refuses*: the primary resets every connection before answering, so the time to the
  first byte includes one failed attempt (the invisible failover).

The mocks pause ``stalls.MID_STREAM_PAUSE`` (50 ms) between the last good chunk and the cut; that pause is
part of every mid-stream gap below.

    python -m benchmarks.recovery_gap [--streams 30] [--out benchmarks/results/recovery_gap.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import pathlib
import statistics
import sys
import tempfile
import time
from typing import Any

import aiohttp

from benchmarks import harness

ROOT = harness.ROOT
CUT = '{"mode": "cut", "after_chunks": 4}'
MOCKS = {  # name → (provider, mock name it answers as, initial fault)
    "primary": ("openai", "primary", CUT),
    "claude": ("anthropic", "claude", None),
    "replica": ("openai", "primary", None),  # the same model served elsewhere: the same deterministic answer
    "refuses": ("openai", "refuses", '{"mode": "reset"}'),
    "backup": ("openai", "backup", None),
}
PROVIDER_TYPE = {"openai": "openai-compatible", "anthropic": "anthropic", "gemini": "gemini"}
# Every stream must meet the failure: the failing member's circuit must not open and spare the later ones.
KEEP_TRYING = "  health: {failureThreshold: 100}\n"
CLASSES = {  # class → (members, extra spec)
    "continuation": (["primary/model-a", "claude/claude-sonnet-4-5"], KEEP_TRYING),
    "splice": (["primary/model-a", "replica/model-a"], KEEP_TRYING + "  streaming: {splice: {enabled: true}}\n"),
    "first-byte-after-reset": (
        ["refuses/model-r", "backup/model-b"],
        KEEP_TRYING + "  routing: {sameMemberRetries: 0}\n",
    ),
}


def _manifest(urls: dict[str, str]) -> str:
    credentials = {name: f"{urls[name]}/v1" if p == "openai" else urls[name] for name, (p, _, _) in MOCKS.items()}
    providers = {name: PROVIDER_TYPE[provider] for name, (provider, _, _) in MOCKS.items()}
    classes = {cls: [(m.split("/")[0], m.split("/")[1]) for m in members] for cls, (members, _) in CLASSES.items()}
    spec = {cls: extra for cls, (_, extra) in CLASSES.items()}
    return harness.manifest(credentials, classes, provider=providers, class_spec=spec)


async def _one(session: aiohttp.ClientSession, url: str, cls: str) -> dict[str, float]:
    """Seconds to the first content, and the longest gap between two content chunks after it."""
    body = {"model": cls, "stream": True, "messages": [{"role": "user", "content": "Say hello."}]}
    started = time.perf_counter()
    times: list[float] = []
    async with session.post(url, json=body) as response:
        async for line in response.content:
            if line.startswith(b"data:") and b'"content":"' in line and b'"content":""' not in line:
                times.append(time.perf_counter())
            if b'"error"' in line:
                raise RuntimeError(f"{cls}: the stream ended with an error: {line[:200]!r}")
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {"first_byte": times[0] - started, "gap": max(gaps) if gaps else 0.0}


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 1),
    }


async def _measure(api: str, *, streams: int) -> dict[str, Any]:
    url = f"{api}/v1/chat/completions"
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        for cls in CLASSES:
            runs = [await _one(session, url, cls) for _ in range(streams)]
            key = "first_byte" if cls.startswith("first-byte") else "gap"
            out[cls] = {"streams": streams, "measured": key, **_summary([r[key] for r in runs])}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=30)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "recovery_gap.json")
    args = parser.parse_args()
    python = sys.executable
    ports = {name: harness.free_port() for name in [*MOCKS, "api", "admin"]}
    urls = {name: f"http://127.0.0.1:{ports[name]}" for name in MOCKS}
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        manifest = pathlib.Path(tmp) / "recovery.yaml"
        manifest.write_text(_manifest(urls))
        for name, (provider, answers_as, fault) in MOCKS.items():
            mock = ["-m", "pilotfish.cli", "mock-provider", "--provider", provider, "--name", answers_as]
            mock += ["--listen", f"127.0.0.1:{ports[name]}", *(["--fault", fault] if fault else [])]
            stack.enter_context(harness.process([python, *mock]))
        sidecar = harness.sidecar_args(manifest, api_port=ports["api"], admin_port=ports["admin"])
        stack.enter_context(harness.process([python, *sidecar]))
        for name in MOCKS:
            harness.wait_http(f"{urls[name]}/_mock/stats")
        harness.wait_http(f"http://127.0.0.1:{ports['admin']}/readyz")
        result = asyncio.run(_measure(f"http://127.0.0.1:{ports['api']}", streams=args.streams))
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
