"""What one change to the sidecar bought: the working tree's sidecar beside a base revision's, in one run.

Both sidecars (and the floor) serve the same bench upstream; CPU per request and per streamed chunk
are measured in interleaved rounds, each target alone on one core, as ``sidecar_overhead`` does; RSS
idle (before any request) and at its peak after the load (VmHWM), as there too. The
base revision's ``sidecar/`` is exported to a temporary folder and put first on its ``PYTHONPATH``.

    python -m benchmarks.ab --base HEAD~1 [--change HEAD] [--rounds 3] [--seconds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pathlib
import statistics
import subprocess
import sys
import tarfile
import tempfile

from benchmarks import harness, sidecar_overhead, upstream

SCENARIOS = {  # name → (model, stream, concurrency, chunks per request)
    "non_stream_c64": ("fast", False, 64, 1),
    "stream_c64": ("fast", True, 64, 1),
    "burst128_c8": ("burst128", True, 8, upstream.BURST_CHUNKS),
}


def export(rev: str, into: pathlib.Path) -> pathlib.Path:
    archive = subprocess.run(["git", "archive", rev, "sidecar"], cwd=harness.ROOT, check=True, capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "sidecar"


def start(
    stack: contextlib.ExitStack, tmp: pathlib.Path, base: pathlib.Path, change: pathlib.Path | None
) -> sidecar_overhead.Procs:
    procs = sidecar_overhead.Procs()
    up_port, floor_port = harness.free_port(), harness.free_port()
    up = f"http://127.0.0.1:{up_port}"
    path = tmp / "ab.yaml"
    path.write_text(harness.manifest({"bench": f"{up}/v1"}, {m: [("bench", m)] for m in upstream.ANSWERS}))
    py = sys.executable
    runs = {
        "direct": (up_port, ["-m", "benchmarks.upstream", f"--listen=127.0.0.1:{up_port}"], {}),
        "floor": (
            floor_port,
            ["-m", "benchmarks.bare_proxy", f"--listen=127.0.0.1:{floor_port}", f"--upstream={up}"],
            {},
        ),
    }
    ready = [f"{up}/v1/models"]
    for name, env in (("base", {"PYTHONPATH": str(base)}), ("change", {"PYTHONPATH": str(change)} if change else {})):
        api, admin = harness.free_port(), harness.free_port()
        runs[name] = (api, harness.sidecar_args(path, api_port=api, admin_port=admin), env)
        ready.append(f"http://127.0.0.1:{admin}/readyz")
    for name, (port, args, env) in runs.items():
        proc = stack.enter_context(harness.process([py, *args], env=env))
        procs.origin[name], procs.pid[name] = f"http://127.0.0.1:{port}", proc.pid
    for url in ready:
        harness.wait_http(url)
    harness.wait_http(f"http://127.0.0.1:{floor_port}/", any_status=True)
    return procs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD")
    parser.add_argument("--change", default=None, help="a revision instead of the working tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        base = export(args.base, pathlib.Path(tmp) / "base")
        change = export(args.change, pathlib.Path(tmp) / "change") if args.change else None
        procs = start(stack, pathlib.Path(tmp), base, change)
        idle = {n: harness.rss_mib(procs.pid[n]) for n in ("floor", "base", "change")}
        for model in ("fast", "burst128"):
            rows = sidecar_overhead.latency(
                procs,
                ("direct", "floor", "base", "change"),
                model=model,
                stream=True,
                concurrency=1,
                requests=100,
                rounds=args.rounds,
            )
            added = {n: rows[n]["first_p50_ms"] - rows["direct"]["first_p50_ms"] for n in ("floor", "base", "change")}
            print(
                f"{model} stream c=1 added time to first content p50: floor {added['floor']:.2f} ms,"
                f" base {added['base']:.2f} ms, change {added['change']:.2f} ms",
                flush=True,
            )
        harness.pin(os.getpid(), 1)
        harness.pin(procs.pid["direct"], 1)
        for scenario, (model, stream, concurrency, chunks) in SCENARIOS.items():
            runs = sidecar_overhead.cpu_rounds(
                procs,
                ("floor", "base", "change"),
                model=model,
                stream=stream,
                concurrency=concurrency,
                seconds=args.seconds,
                rounds=args.rounds,
            )

            def ratio(top: str, bottom: str, runs: dict[str, list[dict[str, float]]] = runs) -> float:
                pairs = zip(runs[top], runs[bottom], strict=True)
                return statistics.median(t["cpu_ms_per_request"] / b["cpu_ms_per_request"] for t, b in pairs)

            cpu = {n: statistics.median(r["cpu_ms_per_request"] for r in runs[n]) * 1000 / chunks for n in runs}
            unit = "µs/chunk" if chunks > 1 else "µs/request"
            print(
                f"{scenario}: CPU {unit} floor {cpu['floor']:.0f}, base {cpu['base']:.0f}, change {cpu['change']:.0f};"
                f" change ÷ base {ratio('change', 'base'):.3f}; ÷ floor: base {ratio('base', 'floor'):.2f}×,"
                f" change {ratio('change', 'floor'):.2f}×",
                flush=True,
            )
        loaded = {n: harness.rss_mib(procs.pid[n], "VmHWM") for n in idle}
        print(
            "RSS idle / peak after the load above (MiB): "
            + ", ".join(f"{n} {idle[n]:.1f} / {loaded[n]:.1f}" for n in idle)
            + f"; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
