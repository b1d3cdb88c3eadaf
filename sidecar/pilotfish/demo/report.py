"""The demo's closing summary and plot, built from the sidecar's own request log (one JSON line per request).

Reading the log, rather than the demo's client-side tallies, shows what an operator would see:
who served, why requests moved, what it cost.
"""

from __future__ import annotations

import collections
import json
import pathlib
from collections.abc import Sequence
from typing import Any

BUCKET_SECONDS = 0.5


def load(path: pathlib.Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("msg") == "request":
                lines.append(record)
    return lines


def summary(requests: Sequence[dict[str, Any]]) -> str:
    """Requests, share, p95 latency and cost per serving member; failovers and same-member retries by reason."""
    by_member: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for request in requests:
        by_member[request.get("member") or _unserved(request)].append(request)
    total = len(requests) or 1
    rows = [("MEMBER", "REQUESTS", "SHARE", "P95", "COST USD")]
    for member, served in sorted(by_member.items(), key=lambda item: -len(item[1])):
        latencies = sorted(r["latency_ms"] for r in served)
        p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
        cost = sum(r.get("cost_usd") or 0 for r in served)
        rows.append((member, str(len(served)), f"{len(served) / total:.0%}", f"{p95:.1f}ms", f"{cost:.6f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
    failed_over, retried = _by_reason(requests, "failover_reason"), _by_reason(requests, "retry_reason")
    return f"{table}\nfailovers by reason: {failed_over}\nretries by reason: {retried}\n"


def _unserved(request: dict[str, Any]) -> str:
    """A request no member answered: refused by a Budget (the demo's last act), or failed."""
    return "(none: budget_exceeded)" if request.get("error_code") == "budget_exceeded" else "(none: failed)"


def _by_reason(requests: Sequence[dict[str, Any]], field: str) -> str:
    reasons = collections.Counter(r[field] for r in requests if r.get(field))
    return ", ".join(f"{reason} {count}" for reason, count in reasons.most_common()) or "none"


def plot(
    requests: Sequence[dict[str, Any]], phases: Sequence[tuple[float, str]], path: pathlib.Path
) -> pathlib.Path | None:
    """Requests served per member per second over time, phases marked; None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        return None
    if not requests:
        return None
    start = phases[0][0] if phases else min(r["ts"] for r in requests)
    members = sorted({r.get("member") or "failed" for r in requests})
    buckets: dict[str, collections.Counter[int]] = {m: collections.Counter() for m in members}
    for request in requests:
        buckets[request.get("member") or "failed"][int((request["ts"] - start) / BUCKET_SECONDS)] += 1
    last = max(max(counter, default=0) for counter in buckets.values())
    xs = [i * BUCKET_SECONDS for i in range(last + 1)]
    figure, axes = pyplot.subplots(figsize=(11, 4.5), dpi=100)
    for member in members:
        axes.plot(
            xs,
            [buckets[member][i] / BUCKET_SECONDS for i in range(last + 1)],
            label=member,
            linewidth=1.6,
            drawstyle="steps-post",
        )
    for at, name in phases:
        axes.axvline(at - start, color="grey", linestyle=":", linewidth=1)
        axes.text(at - start + 0.1, axes.get_ylim()[1] * 0.97, name, rotation=90, va="top", fontsize=7, color="dimgrey")
    axes.set_xlabel("seconds since the demo started")
    axes.set_ylabel("requests served per second")
    axes.set_title("Pilotfish demo: who served class 'workhorse' through the outages")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=len(members), fontsize=8, frameon=False)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
    return path
