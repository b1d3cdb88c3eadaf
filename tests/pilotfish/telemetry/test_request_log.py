"""The request log line: one JSON object and its newline in one write, figures rounded as documented."""

from __future__ import annotations

import io

import orjson

from pilotfish import failures
from pilotfish.telemetry import logs, records


def _record() -> records.RequestRecord:
    failure = failures.Failure(kind=failures.FailureKind.OVERLOADED, status=529)
    record = records.RequestRecord(class_name="c", stream=True, provider="openai", model="m", member_id="b/m")
    record.attempts = [
        records.AttemptRecord("a/m", "anthropic", "m", 0.0123456, failure, first_token_deadline=2.0004999),
        records.AttemptRecord("b/m", "openai", "m", 0.25),
    ]
    record.latency, record.time_to_first_token, record.cost_usd = 0.2837261, 0.0405, 0.000123456789
    return record


class _Stdout(io.TextIOWrapper):
    """A text stream over bytes, as ``sys.stdout`` is; counts the writes that reach the bytes."""

    def __init__(self) -> None:
        self.raw_writes: list[bytes] = []
        outer = self

        class Bytes(io.BytesIO):
            def write(self, data: bytes) -> int:  # type: ignore[override]
                outer.raw_writes.append(bytes(data))
                return super().write(data)

        super().__init__(Bytes(), encoding="utf-8")


def test_a_line_is_the_record_as_json_and_a_newline_in_one_write():
    stdout = _Stdout()
    logs.RequestLog(stream=stdout).write(_record())
    (written,) = stdout.raw_writes
    assert written.endswith(b"}\n") and written.count(b"\n") == 1
    line = orjson.loads(written)
    assert list(line) == list(logs.request_fields(_record()))
    assert line["attempts"][0]["status"] == 529 and line["failover_reason"] == "overloaded"


def test_figures_are_rounded_as_round_would():
    line = logs.request_fields(_record())
    assert (line["latency_ms"], line["ttft_ms"], line["cost_usd"]) == (283.73, 40.5, round(0.000123456789, 8))
    assert [a["duration_ms"] for a in line["attempts"]] == [12.35, 250.0]
    assert line["attempts"][0]["first_token_deadline_ms"] == 2000.5
    assert abs(line["ts"] - round(line["ts"], 3)) < 1e-9


def test_a_text_only_stream_gets_the_same_line():
    text = io.StringIO()
    logs.RequestLog(stream=text).write(_record())
    assert orjson.loads(text.getvalue())["member"] == "b/m" and text.getvalue().endswith("}\n")


def test_a_closed_stream_costs_the_request_nothing():
    stdout = _Stdout()
    stdout.close()
    logs.RequestLog(stream=stdout).write(_record())  # no exception


def test_members_admitted_on_a_quota_fail_open_share_are_named_and_null_otherwise():
    record = _record()
    assert logs.request_fields(record)["quota_failed_open"] is None
    record.quotas_failed_open = ["b/m"]
    assert logs.request_fields(record)["quota_failed_open"] == ["b/m"]
