"""The single failure vocabulary: every failed attempt becomes one ``Failure``.

Each provider adapter classifies its own errors into a ``FailureKind`` (one function per provider);
``upstream`` maps transport errors; ``failover.policy`` decides what each kind means (retry, fail
over, trip the breaker) from one table. Nothing else inspects status codes or error bodies.

Exceptions::

    PilotfishError
    ├── AttemptFailed          one upstream attempt failed; carries its Failure
    └── RequestRejected        the client's request is unusable before any attempt (400/404/413)
"""

from __future__ import annotations

import dataclasses
import enum

# Upstream error text is cut to this before it reaches logs or a client, so a provider that echoes
# the prompt (or a key) back in an error cannot flood or leak through us.
DETAIL_MAX_CHARS = 300


class FailureKind(enum.StrEnum):
    """Why one attempt failed. Values appear in logs, headers and metric labels."""

    CONNECT = "connect_error"  # refused, reset or DNS failure before any response
    CONNECT_TIMEOUT = "connect_timeout"
    FIRST_TOKEN_TIMEOUT = "first_token_timeout"  # connected, but nothing useful by the deadline
    TOTAL_TIMEOUT = "total_timeout"
    SERVER_ERROR = "server_error"  # 5xx other than overload
    OVERLOADED = "overloaded"  # 503/529 "overloaded": a capacity problem, not a bug
    RATE_LIMITED = "rate_limited"  # 429; honour Retry-After
    AUTH = "auth"  # 401/403: this member's credential is bad; others may be fine
    NOT_FOUND = "model_not_found"  # 404: the member's model or deployment does not exist
    BAD_REQUEST = "bad_request"  # 400/422 caused by the request: every member would say the same
    CONTEXT_LENGTH = "context_length_exceeded"  # a member with a larger window may still serve
    CONTENT_FILTER = "content_filter"  # the provider refused the content
    BAD_RESPONSE = "bad_response"  # 2xx whose body we cannot parse
    STREAM_INTERRUPTED = "stream_interrupted"  # the stream broke after it started
    RESPONSE_TOO_LARGE = "response_too_large"  # an answer, or one event of it, over its cap (memory budget)
    PREFILL_REJECTED = "prefill_rejected"  # a 400 to a continuation: this model does not continue a prefill


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong in one attempt, already classified."""

    kind: FailureKind
    status: int | None = None  # upstream HTTP status, when there was one
    retry_after: float | None = None  # seconds, from Retry-After or the provider's own hint
    detail: str = ""  # short, truncated upstream message; never contains request text we sent
    code: str | None = None  # the provider's own error code/type, e.g. "rate_limit_error"

    def __post_init__(self) -> None:
        if len(self.detail) > DETAIL_MAX_CHARS:
            object.__setattr__(self, "detail", self.detail[:DETAIL_MAX_CHARS] + "…")


class PilotfishError(Exception):
    """Root of every exception Pilotfish raises on purpose."""


class AttemptFailed(PilotfishError):
    """One upstream attempt failed; the engine decides what happens next from ``failure``."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(f"{failure.kind.value}: {failure.detail}" if failure.detail else failure.kind.value)
        self.failure = failure


class MalformedEvent(AttemptFailed):
    """One upstream event was not what its format says; in a stream it is skipped and counted."""


class RequestRejected(PilotfishError):
    """The client's request cannot be served as sent; becomes an OpenAI-style error response."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.code = code
        self.param = param


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; HTTP dates are rare for APIs)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
