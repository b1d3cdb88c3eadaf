"""One JSON line per request, on stdout, where kubectl logs and log shippers expect it.

The line is built from the RequestRecord only, which holds no prompt text and no key; upstream error
details in it were truncated when the Failure was made.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from pilotfish.telemetry import records

LOGGER_NAME = "pilotfish.requests"
_log = logging.getLogger(LOGGER_NAME)


def _rounded(value: float, scale: int) -> float:
    """``round(value, log10(scale))`` for a value that is never negative, at half its cost (``round`` with
    digits goes through a decimal string; a line rounds six figures). Only an exact binary half may round
    the other way, in the last digit."""
    return int(value * scale + 0.5) / scale


def _ms(seconds: float) -> float:
    return _rounded(seconds * 1000, 100)


def request_fields(record: records.RequestRecord) -> dict[str, Any]:
    """The log line's fields, in a stable order (also what tests assert on)."""
    return {
        "ts": _rounded(time.time(), 1000),
        "level": "info" if record.outcome is records.Outcome.SUCCESS else "warning",
        "msg": "request",
        "class": record.class_name,
        "operation": record.operation,
        "stream": record.stream,
        "outcome": record.outcome.value,
        "status": record.status,
        "provider": record.provider,
        "model": record.model,
        "member": record.member_id,
        "attempts": [_attempt_fields(attempt) for attempt in record.attempts],
        "skipped": [{"member": member, "reason": reason} for member, reason in record.skipped],
        "failover_reason": record.failover_reason(),
        "retry_reason": record.retry_reason(),
        "error_code": record.error_code,
        "latency_ms": _ms(record.latency),
        "ttft_ms": None if record.time_to_first_token is None else _ms(record.time_to_first_token),
        "tokens_in": record.prompt_tokens,
        "tokens_out": record.completion_tokens,
        "cost_usd": _rounded(record.cost_usd, 100_000_000),
        "trace_id": record.trace_id,
        "canary_slice": record.canary_slice,
        "tier": record.served_tier(),
        "tier_chosen": record.tier,
        "tier_reason": record.tier_reason,
        "budget": "/".join(record.budget_decision) if record.budget_decision else None,
        "downgraded_to": record.downgraded_to,
        "quota_failed_open": record.quotas_failed_open or None,
    }


def _attempt_fields(attempt: records.AttemptRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "member": attempt.member_id,
        "provider": attempt.provider,
        "model": attempt.model,
        "result": attempt.result,
        "duration_ms": _ms(attempt.duration),
    }
    if attempt.first_token_deadline is not None:
        fields["first_token_deadline_ms"] = _ms(attempt.first_token_deadline)
    if attempt.failure is not None:
        fields["status"] = attempt.failure.status
        fields["detail"] = attempt.failure.detail
    return fields


class RequestLog:
    """Writes request lines; ``enabled=False`` keeps them off (benchmarks measure both ways).

    Straight to the stream, one write and one flush a line, as ``logging.StreamHandler`` would, without
    the logging machinery (a LogRecord, a formatter, level checks, a lock: two thirds of what the line cost);
    the line is already formatted and the loop is single-threaded. The bytes orjson makes go to the
    stream's binary buffer as they are, newline included (no decode, concatenation and re-encode through
    the text layer); the request log is all the sidecar writes to stdout, so nothing text-buffered can be
    overtaken. Like a handler, a failing stream (stdout closed, a broken pipe) costs the request nothing."""

    def __init__(self, *, enabled: bool = True, stream: Any = None) -> None:
        self.enabled = enabled
        self._stream = stream or sys.stdout

    def write(self, record: records.RequestRecord) -> None:
        if not self.enabled:
            return
        try:
            line = orjson.dumps(request_fields(record), option=orjson.OPT_APPEND_NEWLINE)
            out = getattr(self._stream, "buffer", None)
            if out is None:  # a text-only stream (a test's StringIO)
                self._stream.write(line.decode())
                self._stream.flush()
            else:
                out.write(line)
                out.flush()
        except (OSError, ValueError):  # ValueError: the stream was closed
            _log.warning("request log line lost: stdout is not writable")
