"""The sidecar-tax figures and targets, computed from one run's raw results; the table in docs/benchmarks.md.

Every figure is the sidecar's beside the floor's from the same run: added latency is a target's
percentile minus the upstream's called directly; a CPU or throughput ratio is the median of the
per-round ratios (each round runs the floor and the sidecar back to back, so drift cancels).

    python -m benchmarks.report [benchmarks/results/sidecar_overhead.json] [--docs docs/benchmarks.md]

With ``--docs``, the table between the ``bench:begin`` and ``bench:end`` markers is replaced.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import statistics
import sys
from collections.abc import Callable
from typing import Any

from benchmarks import upstream

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
COMPARED_BEGIN, COMPARED_END = "<!-- bench-compare:begin -->", "<!-- bench-compare:end -->"
PARSING_BEGIN, PARSING_END = "<!-- bench-parsing:begin -->", "<!-- bench-parsing:end -->"
# Earlier runs the docs compare this one with, oldest first: (column heading, raw results)
EARLIER = (
    ("before issue 14", pathlib.Path("benchmarks/results/sidecar_overhead_before.json")),
    ("main at 671ab53", pathlib.Path("benchmarks/results/sidecar_overhead_671ab53.json")),
    ("main at 3f2301c", pathlib.Path("benchmarks/results/sidecar_overhead_3f2301c.json")),
    ("main at 4d97232", pathlib.Path("benchmarks/results/sidecar_overhead_4d97232.json")),
)
OPEN_CIRCUIT_NOISE_MS = 0.1  # "costs nothing measurable": within this of the plain case


@dataclasses.dataclass(frozen=True)
class Figure:
    name: str
    floor: str
    sidecar: str
    ratio: float | None  # sidecar ÷ floor (or the difference, for the ms targets)
    target: str
    met: bool | None  # None: reported, no target


def _added(results: dict[str, Any], scenario: str, name: str, key: str) -> float:
    rows = results["latency"][scenario]
    return float(rows[name][key] - rows["direct"][key])


def _per_round(results: dict[str, Any], scenario: str, key: str, top: str = "sidecar", bottom: str = "floor") -> float:
    runs = results["cpu"][scenario]
    return statistics.median(s[key] / f[key] for s, f in zip(runs[top], runs[bottom], strict=True))


def _median(results: dict[str, Any], scenario: str, name: str, key: str) -> float:
    return statistics.median(r[key] for r in results["cpu"][scenario][name])


def _cpu(results: dict[str, Any], scenario: str, label: str, *, per: int = 1) -> Figure:
    floor, side = (_median(results, scenario, n, "cpu_ms_per_request") / per for n in ("floor", "sidecar"))
    ratio = _per_round(results, scenario, "cpu_ms_per_request")
    unit = "µs" if per > 1 else "ms"
    scale = 1000 if per > 1 else 1
    return Figure(label, f"{floor * scale:.3g} {unit}", f"{side * scale:.3g} {unit}", ratio, "≤ 1.3×", ratio <= 1.3)


def _throughput(results: dict[str, Any], scenario: str, label: str) -> Figure:
    floor, side = (_median(results, scenario, n, "rps") for n in ("floor", "sidecar"))
    ratio = _per_round(results, scenario, "rps")
    return Figure(label, f"{floor:,.0f} rps", f"{side:,.0f} rps", ratio, "≥ 0.8×", ratio >= 0.8)


def _latency(results: dict[str, Any], scenario: str, key: str, label: str) -> Figure:
    floor, side = (_added(results, scenario, n, key) for n in ("floor", "sidecar"))
    if floor <= 0 or side < 0:  # a target faster than the upstream called directly: scheduling noise
        return Figure(label, f"{floor:.2f} ms", f"{side:.2f} ms (noise: negative)", None, "≤ 1.3×", None)
    ratio = side / floor
    return Figure(label, f"{floor:.2f} ms", f"{side:.2f} ms", ratio, "≤ 1.3×", ratio <= 1.3)


def _within_1ms(results: dict[str, Any], scenario: str, label: str) -> Figure:
    floor, side = (_added(results, scenario, n, "total_p50_ms") for n in ("floor", "sidecar"))
    return Figure(label, f"{floor:.2f} ms", f"{side:.2f} ms", None, "≤ floor + 1 ms", side - floor <= 1.0)


def _memory(results: dict[str, Any], key: str, label: str, limit: float) -> Figure:
    floor, side = results[key]["floor"], results[key]["sidecar"]
    return Figure(label, f"{floor:.1f} MiB", f"{side:.1f} MiB", side / floor, f"≤ {limit:g} MiB", side <= limit)


def _cost(results: dict[str, Any], label: str, top: str, bottom: str) -> Figure:
    ratio = _per_round(results, "non_stream_c64", "cpu_ms_per_request", top, bottom)
    return Figure(label, "—", f"{(ratio - 1) * 100:+.0f} % CPU per request", ratio, "reported", None)


def _open_circuit(results: dict[str, Any]) -> Figure:
    """The median of per-request differences (open-circuit class minus plain class, alternating on one
    sidecar); the plain class against itself shows the noise. Older results have only the two percentiles."""
    paired = results.get("open_circuit")
    if paired is None:
        plain = _added(results, "non_stream_c1", "sidecar", "total_p50_ms")
        opened = _added(results, "non_stream_c1", "open_circuit", "total_p50_ms")
        floor, side, cost = f"{plain:.2f} ms (plain)", f"{opened:.2f} ms", opened - plain
    else:
        same, cost = paired["plain_minus_plain"]["p50_ms"], paired["open_minus_plain"]["p50_ms"]
        floor, side = f"{same:+.3f} ms (plain vs plain)", f"{cost:+.3f} ms"
    return Figure(
        "one open-circuit member ahead: added time per request, c=1 p50 (paired with the plain class)",
        floor,
        side,
        None,
        f"within {OPEN_CIRCUIT_NOISE_MS} ms",
        abs(cost) <= OPEN_CIRCUIT_NOISE_MS,
    )


def _long_lived(results: dict[str, Any]) -> list[Figure]:
    runs = results["long_lived"]
    floor, side = runs["floor"], runs["sidecar"]
    streams = side["streams"]
    pace = f"{streams} streams × {upstream.PACED_TOKENS} tokens at {1 / upstream.PACE_SECONDS:g}/s"

    def failed(run: dict[str, Any]) -> str:
        return f", {run['failed_streams']} failed" if run.get("failed_streams") else ""

    share = side["cpu_share"] / floor["cpu_share"] if floor["cpu_share"] else None
    return [
        Figure(
            f"long-lived streams ({pace}): CPU share",
            f"{floor['cpu_share'] * 100:.1f} %{failed(floor)}",
            f"{side['cpu_share'] * 100:.1f} %{failed(side)}",
            share,
            "≤ 1.3×, none failed",
            share is not None and share <= 1.3 and not side.get("failed_streams"),
        ),
        Figure(
            "long-lived streams: RSS during",
            f"{floor['rss_mib_during']:.1f} MiB",
            f"{side['rss_mib_during']:.1f} MiB",
            side["rss_mib_during"] / floor["rss_mib_during"],
            "≤ 60 MiB",
            side["rss_mib_during"] <= 60,
        ),
    ]


FIGURES: list[Callable[[dict[str, Any]], Figure | list[Figure]]] = [
    lambda r: _cpu(r, "non_stream_c64", "CPU per request, non-streaming (c=64, one core)"),
    lambda r: _cpu(r, "stream_c64", "CPU per request, streaming (c=64, one core)"),
    lambda r: _cpu(r, "burst128_c8", "CPU per streamed chunk (128-chunk answers, c=8)", per=upstream.BURST_CHUNKS),
    lambda r: _throughput(r, "non_stream_c64", "throughput, non-streaming (c=64, one core)"),
    lambda r: _throughput(r, "stream_c64", "throughput, streaming (c=64, one core)"),
    lambda r: _latency(r, "non_stream_c1", "total_p50_ms", "added latency, non-streaming, c=1, p50"),
    lambda r: _latency(r, "non_stream_c1", "total_p99_ms", "added latency, non-streaming, c=1, p99"),
    lambda r: _latency(r, "stream_c1", "first_p50_ms", "added time to first content, streaming, c=1, p50"),
    lambda r: _latency(r, "stream_c1", "first_p99_ms", "added time to first content, streaming, c=1, p99"),
    lambda r: _within_1ms(r, "slow200_c8", "200 ms upstream, non-streaming, c=8: added p50"),
    lambda r: _within_1ms(r, "slow200_c64", "200 ms upstream, non-streaming, c=64: added p50"),
    lambda r: _latency(
        r, "burst128_c1", "first_p50_ms", "128 chunks in one burst, c=1: added time to first content p50"
    ),
    lambda r: _latency(r, "burst128_c1", "total_p50_ms", "128 chunks in one burst, c=1: added total p50"),
    lambda r: _memory(r, "memory_idle", "RSS idle", 45),
    lambda r: _memory(r, "memory_peak", "RSS peak, whole run (under load)", 60),
    _open_circuit,
    _long_lived,
    lambda r: _cost(r, "request log on (the default) vs off", "sidecar", "sidecar_no_log"),
    lambda r: _cost(r, "tracing on (OTLP export) vs off", "sidecar_traced", "sidecar"),
]


def figures(results: dict[str, Any]) -> list[Figure]:
    out: list[Figure] = []
    for build in FIGURES:
        made = build(results)
        out += made if isinstance(made, list) else [made]
    return out


def render(results: dict[str, Any]) -> str:
    run = results["run"]
    rows = [
        f"Run of {run['date']}: {run['cpus']} cores, Python {run['python']}, {run['rounds']} interleaved rounds, "
        f"load average at the end {run['load_average'][0]:.1f}, {run['seconds']:.0f} s; "
        "raw results `benchmarks/results/sidecar_overhead.json`.",
        "",
        "| figure | floor (bare aiohttp proxy) | sidecar (request log on) | sidecar ÷ floor | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures(results):
        ratio = "—" if f.ratio is None else f"{f.ratio:.2f}×"
        met = "—" if f.met is None else ("**yes**" if f.met else "**no**")
        rows.append(f"| {f.name} | {f.floor} | {f.sidecar} | {ratio} | {f.target} | {met} |")
    checked = [f for f in figures(results) if f.met is not None]
    unmeasured = sum(1 for f in figures(results) if f.met is None and f.target != "reported")
    rows += ["", f"Targets met: {sum(1 for f in checked if f.met)} of {len(checked)} measured"]
    rows[-1] += f" ({unmeasured} lost in noise in this run)." if unmeasured else "."
    return "\n".join(rows)


def _three(results: dict[str, Any], scenario: str, label: str, *, per: int = 1) -> str:
    """A CPU row of the parsing-floor table: each target's median, and the two per-round ratios."""
    floor, parsing, side = (
        _median(results, scenario, n, "cpu_ms_per_request") / per for n in ("floor", "parsing", "sidecar")
    )
    scale, unit = (1000, "µs") if per > 1 else (1, "ms")
    deadline = _per_round(results, scenario, "cpu_ms_per_request", "parsing", "floor")
    ours = _per_round(results, scenario, "cpu_ms_per_request", "sidecar", "parsing")
    cells = tuple(
        f"{value * scale:.3g} {unit}" if per > 1 else f"{value:.3f} {unit}" for value in (floor, parsing, side)
    )
    return f"| {label} | {' | '.join(cells)} | {deadline:.2f}× | {ours:.2f}× |"


def _three_rps(results: dict[str, Any], scenario: str, label: str) -> str:
    """A throughput row of the parsing-floor table."""
    floor, parsing, side = (_median(results, scenario, n, "rps") for n in ("floor", "parsing", "sidecar"))
    deadline = _per_round(results, scenario, "rps", "parsing", "floor")
    ours = _per_round(results, scenario, "rps", "sidecar", "parsing")
    return f"| {label} | {floor:,.0f} rps | {parsing:,.0f} rps | {side:,.0f} rps | {deadline:.2f}× | {ours:.2f}× |"


def _three_added(results: dict[str, Any], scenario: str, key: str, label: str, *, ratios: bool = True) -> str:
    """A latency row of the parsing-floor table: each target's added time, and (``ratios``) the two ratios."""
    floor, parsing, side = (_added(results, scenario, n, key) for n in ("floor", "parsing", "sidecar"))
    cells = f"{floor:.2f} ms | {parsing:.2f} ms | {side:.2f} ms"
    if not ratios:
        return f"| {label} | {cells} | {parsing - floor:+.2f} ms | {side - parsing:+.2f} ms |"
    if min(floor, parsing, side) <= 0:
        return f"| {label} | {cells} | noise | noise |"
    return f"| {label} | {cells} | {parsing / floor:.2f}× | {side / parsing:.2f}× |"


def render_parsing(results: dict[str, Any]) -> str | None:
    """The floor, the parsing floor (``parsing_proxy``) and the sidecar side by side: what a first-token
    deadline costs any aiohttp proxy, and what Pilotfish's own work costs beyond it. None for a run
    made before the parsing floor was measured."""
    if "parsing" not in results["cpu"]["non_stream_c64"]:
        return None
    rows = [
        "| figure | floor | parsing floor | sidecar | parsing floor vs floor | sidecar vs parsing floor |",
        "|---|---|---|---|---|---|",
        _three(results, "non_stream_c64", "CPU per request, non-streaming (c=64, one core)"),
        _three(results, "stream_c64", "CPU per request, streaming (c=64, one core)"),
        _three(results, "burst128_c8", "CPU per streamed chunk (128-chunk answers, c=8)", per=upstream.BURST_CHUNKS),
        _three_rps(results, "non_stream_c64", "throughput, non-streaming (c=64, one core)"),
        _three_rps(results, "stream_c64", "throughput, streaming (c=64, one core)"),
        _three_added(results, "non_stream_c1", "total_p50_ms", "added latency, non-streaming, c=1, p50"),
        _three_added(results, "non_stream_c1", "total_p99_ms", "added latency, non-streaming, c=1, p99"),
        _three_added(results, "stream_c1", "first_p50_ms", "added time to first content, streaming, c=1, p50"),
        _three_added(results, "stream_c1", "first_p99_ms", "added time to first content, streaming, c=1, p99"),
        _three_added(results, "burst128_c1", "first_p50_ms", "128 chunks in one burst, c=1: added first content p50"),
        _three_added(results, "burst128_c1", "total_p50_ms", "128 chunks in one burst, c=1: added total p50"),
        _three_added(
            results, "slow200_c8", "total_p50_ms", "200 ms upstream, closed loop, c=8: added p50", ratios=False
        ),
        _three_added(
            results, "slow200_c64", "total_p50_ms", "200 ms upstream, closed loop, c=64: added p50", ratios=False
        ),
    ]
    lived = results["long_lived"]
    if "parsing" in lived:
        shares = [lived[name]["cpu_share"] * 100 for name in ("floor", "parsing", "sidecar")]
        rows.append(
            f"| long-lived streams: CPU share | {shares[0]:.1f} % | {shares[1]:.1f} % | {shares[2]:.1f} % "
            f"| {shares[1] / shares[0]:.2f}× | {shares[2] / shares[1]:.2f}× |"
        )
    opened = results["latency"].get("slow200_open")
    if opened is not None:
        rate = f"{opened['sidecar']['rate']:g}"
        for key, pct in (("total_p50_ms", "p50"), ("total_p99_ms", "p99")):
            label = f"200 ms upstream, open loop ({rate} arrivals/s): added {pct}"
            rows.append(_three_added(results, "slow200_open", key, label, ratios=False))
    return "\n".join(rows)


def compared(earlier: list[tuple[str, dict[str, Any]]], after: dict[str, Any]) -> str:
    """Each figure's ratio to the floor in each earlier run and in this one (each within its own run)."""
    heads = [f"{label} ({run['run']['date']})" for label, run in earlier]
    rows = [
        f"| figure | {' | '.join(heads)} | now ({after['run']['date']}) |",
        "|---|" + "---|" * (len(earlier) + 1),
    ]

    def shown(f: Figure) -> str:
        return f"{f.ratio:.2f}×" if f.ratio is not None else f.sidecar

    columns = [figures(run) for _, run in earlier]
    for index, new in enumerate(figures(after)):
        rows.append(f"| {new.name} | {' | '.join(shown(column[index]) for column in columns)} | {shown(new)} |")
    return "\n".join(rows)


def update_docs(docs: pathlib.Path, table: str, *, begin: str = BEGIN, end: str = END) -> None:
    text = docs.read_text()
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    if not rest:
        raise SystemExit(f"{docs}: no {begin} marker")
    docs.write_text(f"{head}{begin}\n{table}\n{end}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "results", nargs="?", type=pathlib.Path, default=pathlib.Path("benchmarks/results/sidecar_overhead.json")
    )
    parser.add_argument("--docs", type=pathlib.Path, default=None)
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    table = render(results)
    if args.docs is not None:
        update_docs(args.docs, table)
        earlier = [(label, json.loads(path.read_text())) for label, path in EARLIER if path.exists()]
        if earlier and args.results not in {path for _, path in EARLIER}:
            update_docs(args.docs, compared(earlier, results), begin=COMPARED_BEGIN, end=COMPARED_END)
    parsing = render_parsing(results)
    if args.docs is not None and parsing is not None:
        update_docs(args.docs, parsing, begin=PARSING_BEGIN, end=PARSING_END)
    print(table)
    if parsing is not None:
        print(f"\n{parsing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
