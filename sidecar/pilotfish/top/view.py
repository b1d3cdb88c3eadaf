"""The table ``pilotfish top`` prints. Pure: rows in, text out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pilotfish.top import stats

HEADER = ("CLASS", "MEMBER", "PROVIDER", "CIRCUIT", "ATTEMPT/S", "SERVED/S", "ERR%", "FAILOVER/S", "P95", "TTFT P95")


def table(rows: Sequence[stats.Row], *, title: str = "", canaries: Mapping[str, float] | None = None) -> str:
    lines = [[*HEADER]]
    for row in rows:
        lines.append(
            [
                row.class_name,
                row.member,
                row.provider,
                row.state,
                f"{row.attempts_per_second:.1f}",
                f"{row.served_per_second:.1f}",
                "-" if row.error_ratio is None else f"{row.error_ratio * 100:.0f}%",
                f"{row.failovers_per_second:.1f}",
                _seconds(row.p95_seconds),
                _seconds(row.ttft_p95_seconds),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    text = "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )
    text += "".join(
        f"\ncanary {cls}: {share * 100:.1f}% of requests in the canary slice" for cls, share in (canaries or {}).items()
    )
    return f"{title}\n{text}\n" if title else text + "\n"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"
