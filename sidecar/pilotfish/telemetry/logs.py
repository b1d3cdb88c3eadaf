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


def request_fields(record: records.RequestRecord) -> dict[str, Any]:
    """The log line's fields, in a stable order (also what tests assert on)."""
    return {
        "ts": round(time.time(), 3),
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
        "latency_ms": round(record.latency * 1000, 2),
        "ttft_ms": None if record.time_to_first_token is None else round(record.time_to_first_token * 1000, 2),
        "tokens_in": record.prompt_tokens,
        "tokens_out": record.completion_tokens,
        "cost_usd": round(record.cost_usd, 8),
        "trace_id": record.trace_id,
        "canary_slice": record.canary_slice,
        "tier": record.served_tier(),
        "tier_chosen": record.tier,
        "tier_reason": record.tier_reason,
        "budget": "/".join(record.budget_decision) if record.budget_decision else None,
        "downgraded_to": record.downgraded_to,
    }


def _attempt_fields(attempt: records.AttemptRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "member": attempt.member_id,
        "provider": attempt.provider,
        "model": attempt.model,
        "result": attempt.result,
        "duration_ms": round(attempt.duration * 1000, 2),
    }
    if attempt.first_token_deadline is not None:
        fields["first_token_deadline_ms"] = round(attempt.first_token_deadline * 1000, 2)
    if attempt.failure is not None:
        fields["status"] = attempt.failure.status
        fields["detail"] = attempt.failure.detail
    return fields


class RequestLog:
    """Writes request lines; ``enabled=False`` keeps them off (benchmarks measure both ways).

    Straight to the stream, one write and one flush a line, as ``logging.StreamHandler`` would, without
    the logging machinery (a LogRecord, a formatter, level checks, a lock: two thirds of what the line cost);
    the line is already formatted and the loop is single-threaded. Like a handler, a failing stream
    (stdout closed, a broken pipe) costs the request nothing."""

    def __init__(self, *, enabled: bool = True, stream: Any = None) -> None:
        self.enabled = enabled
        self._stream = stream or sys.stdout

    def write(self, record: records.RequestRecord) -> None:
        if not self.enabled:
            return
        try:
            self._stream.write(orjson.dumps(request_fields(record)).decode() + "\n")
            self._stream.flush()
        except (OSError, ValueError):  # ValueError: the stream was closed
            _log.warning("request log line lost: stdout is not writable")
