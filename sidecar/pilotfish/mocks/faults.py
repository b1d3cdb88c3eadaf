"""The fault model: what a mock does to the next requests, switchable at run time."""

from __future__ import annotations

import enum
import random
import time

import pydantic


class Mode(enum.StrEnum):
    OK = "ok"
    STATUS = "status"  # answer `status` with the vendor's error body
    RATE_LIMIT = "rate-limit"  # 429 with Retry-After: `retry_after`
    HANG = "hang"  # accept, never answer
    RESET = "reset"  # drop the connection without a response
    SLOW_FIRST_TOKEN = "slow-first-token"  # wait `delay` before the first byte, then answer
    CUT = "cut"  # stream `after_chunks` content chunks, then drop the connection
    LATENCY = "latency"  # wait `delay`, then answer normally
    CONTEXT_LENGTH = "context-length"  # 400 context_length_exceeded
    CONTENT_FILTER = "content-filter"  # 400 content_filter
    STALL = "stall"  # stream `after_chunks` content chunks, then send nothing more (connection kept open)
    STREAM_ERROR = "stream-error"  # 200, `after_chunks` content chunks, then the vendor's in-stream error event
    NO_PREFILL = "no-prefill"  # refuse a conversation ending in an assistant message with a 400
    RESTART = "restart"  # take a prefill, but start the answer over (word for word) instead of continuing it
    DIVERGE = "diverge"  # take a prefill, start over, and say something else after the same opening
    MALFORMED = "malformed"  # one event that is not JSON after `after_chunks` chunks; the stream goes on
    NO_DONE = "no-done"  # the whole stream, usage included, but never the terminal [DONE]; the connection stays


class Fault(pydantic.BaseModel):
    """A mode and its parameters; ``fail_rate`` and ``count`` limit which requests it hits."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
    mode: Mode = Mode.OK
    status: int = pydantic.Field(default=500, ge=400, le=599)
    retry_after: float = pydantic.Field(default=1.0, ge=0)
    delay: float = pydantic.Field(default=1.0, ge=0)
    after_chunks: int = pydantic.Field(default=3, ge=0)
    fail_rate: float = pydantic.Field(default=1.0, ge=0, le=1, description="share of requests hit")
    count: int | None = pydantic.Field(default=None, ge=0, description="hit only the next N requests")
    rpm: int | None = pydantic.Field(
        default=None,
        ge=0,
        description="a provider quota: requests beyond this many in one UTC minute get the vendor's 429 "
        "(rate-limit, with retry_after), whatever the mode",
    )


class FaultState:
    """The current fault and the seeded chance that decides which requests it hits."""

    def __init__(self, fault: Fault | None = None, *, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self.fault = fault or Fault()
        self._left = self.fault.count
        self._minute = (0, 0)  # (UTC minute, requests in it): what the ``rpm`` quota counts

    def set(self, fault: Fault) -> None:
        self.fault = fault
        self._left = fault.count
        self._minute = (0, 0)

    def next_mode(self) -> Mode:
        """The mode for the request that just arrived."""
        fault = self.fault
        if fault.rpm is not None:
            minute = int(time.time() // 60)
            seen = self._minute[1] + 1 if self._minute[0] == minute else 1
            self._minute = (minute, seen)
            if seen > fault.rpm:
                return Mode.RATE_LIMIT
        if fault.mode is Mode.OK:
            return Mode.OK
        if self._left is not None:
            if self._left <= 0:
                return Mode.OK
            self._left -= 1
        if fault.fail_rate < 1.0 and self._rng.random() >= fault.fail_rate:
            return Mode.OK
        return fault.mode
