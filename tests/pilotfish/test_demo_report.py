"""The demo's summary is computed from the sidecar's request log lines."""

import json

from pilotfish.demo import report


def _line(member, latency, reason=None, cost=0.001, ts=0.0, retried=None):
    return {
        "msg": "request",
        "member": member,
        "latency_ms": latency,
        "failover_reason": reason,
        "retry_reason": retried,
        "cost_usd": cost,
        "ts": ts,
    }


def test_summary_counts_share_p95_cost_and_failover_and_retry_reasons():
    lines = (
        [_line("a/m", 1.0)] * 2
        + [_line("a/m", 1.0, retried="rate_limited")]
        + [_line("b/m", 5.0, "overloaded")]
        + [_line(None, 9.0, "circuit_open", 0)]
    )
    text = report.summary(lines)
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:] if "by reason" not in line}
    assert rows["a/m"] == ["a/m", "3", "60%", "1.0ms", "0.003000"]
    assert rows["b/m"][1:3] == ["1", "20%"]
    assert "(none:" in text
    # a request its first member served after waiting out a 429 was retried, not failed over
    assert text.splitlines()[-2:] == [
        "failovers by reason: overloaded 1, circuit_open 1",
        "retries by reason: rate_limited 1",
    ]


def test_load_keeps_only_request_lines(tmp_path):
    log = tmp_path / "requests.jsonl"
    log.write_text("\n".join([json.dumps(_line("a/m", 1.0)), '{"msg": "listening"}', "not json"]) + "\n")
    assert [r["member"] for r in report.load(log)] == ["a/m"]


def test_plot_writes_a_png(tmp_path):
    lines = [_line("a/m", 1.0, ts=t / 10) for t in range(30)] + [_line("b/m", 1.0, ts=3 + t / 10) for t in range(30)]
    png = report.plot(lines, [(0.0, "healthy"), (3.0, "outage")], tmp_path / "plot.png")
    assert png is not None and png.read_bytes()[:4] == b"\x89PNG"


def test_a_request_a_budget_refused_is_shown_apart_from_failed_ones():
    refused = {**_line(None, 0.5, cost=0), "error_code": "budget_exceeded"}
    text = report.summary([refused, _line(None, 9.0, cost=0)])
    assert sorted(line.split("  ")[0] for line in text.splitlines()[1:3]) == [
        "(none: budget_exceeded)",
        "(none: failed)",
    ]
