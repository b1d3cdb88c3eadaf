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
    """Writes request lines; ``enabled=False`` keeps them off (benchmarks measure both ways)."""

    def __init__(self, *, enabled: bool = True, stream: Any = None) -> None:
        self.enabled = enabled
        self._logger = logging.getLogger(LOGGER_NAME)
        if enabled and not self._logger.handlers:
            handler = logging.StreamHandler(stream or sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._logger.addHandler(handler)
            self._logger.setLevel(logging.INFO)
            self._logger.propagate = False

    def write(self, record: records.RequestRecord) -> None:
        if self.enabled:
            self._logger.info(orjson.dumps(request_fields(record)).decode())
