"""The fault model: what a mock does to the next requests, switchable at run time."""

from __future__ import annotations

import dataclasses
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
    tpm: int | None = pydantic.Field(
        default=None,
        ge=0,
        description="a provider quota in tokens: a request whose tokens would take its UTC minute past this many "
        "gets the vendor's 429 for tokens, whatever the mode. A request's tokens are counted when it arrives, as "
        "OpenAI counts them (the OpenAI mock knows the prompt and its own answer; the other mocks count none)",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    """Which quota refused the request that just arrived, and the figures the vendor's 429 states."""

    limit: str  # "requests" or "tokens": OpenAI's error ``type`` and the x-ratelimit-*-<limit> headers
    allowed: int  # the quota
    used: int  # what the minute had used before this request
    requested: int  # what this request asked for
    reset_seconds: float  # until the minute ends


class FaultState:
    """The current fault and the seeded chance that decides which requests it hits."""

    def __init__(self, fault: Fault | None = None, *, seed: int = 0) -> None:
        self.wall = time.time  # the clock quota minutes are counted on; tests may set their own
        self._rng = random.Random(seed)
        self.fault = fault or Fault()
        self._left = self.fault.count
        self._minute = (0, 0, 0)  # (UTC minute, requests, tokens in it): what ``rpm`` and ``tpm`` count
        self.refusal: Refusal | None = None  # the quota that refused the last request, if one did

    def set(self, fault: Fault) -> None:
        self.fault = fault
        self._left = fault.count
        self._minute = (0, 0, 0)

    def next_mode(self, *, tokens: int = 0) -> Mode:
        """The mode for the request that just arrived, which will cost ``tokens`` if answered."""
        fault = self.fault
        self.refusal = self._over_quota(tokens)
        if self.refusal is not None:
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

    def _over_quota(self, tokens: int) -> Refusal | None:
        """Count the request in its UTC minute; the quota it goes past, if any. Every request counts against
        ``rpm`` (OpenAI counts refused ones too); only an admitted one's tokens count against ``tpm``."""
        fault = self.fault
        if fault.rpm is None and fault.tpm is None:
            return None
        now = self.wall()
        minute = int(now // 60)
        _, requests, used = self._minute if self._minute[0] == minute else (minute, 0, 0)
        reset = (minute + 1) * 60 - now
        self._minute = (minute, requests + 1, used)
        if fault.rpm is not None and requests + 1 > fault.rpm:
            return Refusal("requests", fault.rpm, requests, 1, reset)
        if fault.tpm is not None and used + tokens > fault.tpm:
            return Refusal("tokens", fault.tpm, used, tokens, reset)
        self._minute = (minute, requests + 1, used + tokens)
        return None
