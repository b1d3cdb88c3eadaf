"""pilotfish top's arithmetic: rates and quantiles from two scrapes, summed over pods."""

from __future__ import annotations

from pilotfish.top import stats, view


def exposition(attempts_ok: float, attempts_failed: float, buckets: dict[str, float]) -> str:
    lines = [
        "# TYPE pilotfish_attempts counter",
        f'pilotfish_attempts_total{{class="w",provider="openai",model="m",result="success"}} {attempts_ok}',
        f'pilotfish_attempts_total{{class="w",provider="openai",model="m",result="server_error"}} {attempts_failed}',
        "# TYPE pilotfish_request_duration_seconds histogram",
    ]
    lines += [
        f'pilotfish_request_duration_seconds_bucket{{class="w",provider="openai",le="{le}"}} {count}'
        for le, count in buckets.items()
    ]
    return "\n".join(lines) + "\n"


MEMBERS = {"w": [{"id": "c/m", "provider": "openai", "model": "m", "state": "closed"}]}


def test_rates_error_ratio_and_p95_come_from_the_difference_between_scrapes():
    before = stats.Scrape(0.0, stats.parse(exposition(100, 0, {"0.1": 50, "1.0": 100, "+Inf": 100})), MEMBERS)
    after = stats.Scrape(2.0, stats.parse(exposition(118, 2, {"0.1": 50, "1.0": 120, "+Inf": 120})), MEMBERS)
    (row,) = stats.rows(before, after)
    assert row.attempts_per_second == 10.0
    assert row.error_ratio == 0.1
    # all 20 new observations fell in (0.1, 1.0]: p95 interpolates to 0.1 + 0.9 * 19/20
    assert row.p95_seconds is not None and abs(row.p95_seconds - 0.955) < 1e-9


def test_the_first_frame_has_no_rates_yet():
    (row,) = stats.rows(None, stats.Scrape(0.0, stats.parse(exposition(1, 0, {"+Inf": 1})), MEMBERS))
    assert row.attempts_per_second == 0 and row.error_ratio is None and row.p95_seconds is None


def test_pods_are_summed_and_disagreeing_circuits_say_how_many():
    one = {"w": [{"id": "c/m", "provider": "openai", "model": "m", "state": "open"}]}
    two = {"w": [{"id": "c/m", "provider": "openai", "model": "m", "state": "closed"}]}
    assert stats.merge_members([one, two, two])["w"][0]["state"] == "open 1/3"
    merged = stats.merge([stats.parse(exposition(1, 0, {})), stats.parse(exposition(2, 1, {}))])
    assert (
        merged[
            (
                "pilotfish_attempts_total",
                (("class", "w"), ("model", "m"), ("provider", "openai"), ("result", "success")),
            )
        ]
        == 3
    )


def test_the_table_lines_up_and_marks_unknowns():
    row = stats.Row("w", "c/m", "openai", "closed", 1.0, 1.0, None, 0.0, None, 1.5)
    text = view.table([row])
    header, line = text.splitlines()
    assert header.index("PROVIDER") == line.index("openai")
    assert line.split()[-4:] == ["-", "0.0", "-", "1.50s"]


def test_the_canary_share_is_the_growth_of_the_canary_slice_over_all_requests():
    def scrape(at: float, canary: float, stable: float) -> stats.Scrape:
        text = (
            "# TYPE pilotfish_slice_requests counter\n"
            f'pilotfish_slice_requests_total{{class="w",slice="canary"}} {canary}\n'
            f'pilotfish_slice_requests_total{{class="w",slice="stable"}} {stable}\n'
        )
        return stats.Scrape(at, stats.parse(text), MEMBERS)

    assert stats.canary_shares(scrape(0, 10, 90), scrape(2, 40, 160)) == {"w": 0.3}
    assert stats.canary_shares(None, scrape(2, 40, 160)) == {}
    assert "canary w: 30.0% of requests in the canary slice" in view.table([], canaries={"w": 0.3})
