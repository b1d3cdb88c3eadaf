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
import math

from pilotfish import scrub

# Upstream error text is scrubbed and cut to this before it reaches logs or a client, so a provider
# that echoes the prompt (or a key) back in an error cannot flood or leak through us.
DETAIL_MAX_CHARS = scrub.MAX_CHARS
CODE_MAX_CHARS = 64  # a provider's error code is a short identifier; anything longer is not one
# The longest wait we take from an upstream's Retry-After (inf and 1e308 included): ten minutes, the
# longest the breaker keeps a member out on a provider's word, so it is also the most we tell a client.
RETRY_AFTER_MAX_SECONDS = 600.0


# What a translator raises when JSON parses but is not the shape its format promises (a string where
# a number goes, a list where an object goes). Callers turn it into a malformed event, a bad response
# or a 400, never a 500: the upstream or the client sent garbage, the sidecar did not break.
SHAPE_ERRORS: tuple[type[Exception], ...] = (KeyError, TypeError, ValueError, AttributeError, IndexError)


class FailureKind(enum.StrEnum):
    """Why one attempt failed. Values appear in logs, headers and metric labels."""

    CONNECT = "connect_error"  # refused, reset or DNS failure before any response
    CONNECT_TIMEOUT = "connect_timeout"
    FIRST_TOKEN_TIMEOUT = "first_token_timeout"  # connected, but nothing useful by the deadline
    CUT_HUNG = "cut_member_hung"  # still waiting for its first token when another request found the member hung
    HEDGE_CANCELLED = "hedge_cancelled"  # a hedge cancelled because the member it hedged answered first
    TOTAL_TIMEOUT = "total_timeout"
    SERVER_ERROR = "server_error"  # 5xx other than overload
    OVERLOADED = "overloaded"  # 503/529 "overloaded": a capacity problem, not a bug
    RATE_LIMITED = "rate_limited"  # 429; honour Retry-After
    AUTH = "auth"  # the member's credential was rejected (invalid, no permission, region); others may be fine
    NOT_FOUND = "model_not_found"  # 404: the member's model or deployment does not exist
    BAD_REQUEST = "bad_request"  # 400/422 caused by the request: every member would say the same
    CONTEXT_LENGTH = "context_length_exceeded"  # a member with a larger window may still serve
    CONTENT_FILTER = "content_filter"  # the provider refused the content
    BAD_RESPONSE = "bad_response"  # 2xx whose body we cannot parse
    STREAM_INTERRUPTED = "stream_interrupted"  # the stream broke after it started
    RESPONSE_TOO_LARGE = "response_too_large"  # an answer, or one event of it, over its cap (memory budget)
    PREFILL_REJECTED = "prefill_rejected"  # a 400 to a continuation: this model does not continue a prefill
    REDIRECT = "upstream_redirect"  # a 3xx: never followed, a redirect would carry the key elsewhere


class CredentialProblem(enum.StrEnum):
    """Why a provider rejected a member's credential (an ``AUTH`` failure): a closed set, for metric
    labels and the ProviderCredential's status; never the provider's own words."""

    INVALID_KEY = "invalid_key"  # unknown, revoked or malformed key (401; Gemini's 400 API_KEY_INVALID)
    PERMISSION_DENIED = "permission_denied"  # the key is valid but may not use this API or model (403)
    REGION_NOT_SUPPORTED = "region_not_supported"  # the provider refuses the pod's country or region
    KEY_MISSING = "key_missing"  # the sidecar holds no key for the member: nothing was sent


class ContinuationProblem(enum.StrEnum):
    """Why a member was learned unable to continue a broken stream: a closed set, for /debug/members,
    /readyz and the ModelClass's PrefillMismatch condition; never the provider's own words."""

    PREFILL_REJECTED = "prefill_rejected"  # it answered the continuation with a 400 (no trailing model turn)
    RESTARTED = "restarted"  # it accepted the prefill but started the answer over instead of continuing
    DIVERGED = "diverged"  # it accepted the prefill and wrote something that contradicts the delivered text


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong in one attempt, already classified."""

    kind: FailureKind
    status: int | None = None  # upstream HTTP status, when there was one
    retry_after: float | None = None  # seconds, from Retry-After or the provider's own hint
    detail: str = ""  # short, truncated upstream message; never contains request text we sent
    code: str | None = None  # the provider's own error code/type, e.g. "rate_limit_error"
    credential: CredentialProblem | None = None  # for AUTH: why the credential was rejected

    def __post_init__(self) -> None:
        # key-shaped text goes at once; the held keys go in ``scrubbed`` (the engine knows them)
        object.__setattr__(self, "detail", scrub.scrubbed(self.detail, max_chars=scrub.RAW_MAX_CHARS))
        if self.code is not None:
            object.__setattr__(self, "code", scrub.scrubbed(self.code, max_chars=CODE_MAX_CHARS))

    def scrubbed(self, scrubber: scrub.Scrubber) -> Failure:
        """This failure as it may be shown: the held keys removed from its text, cut to DETAIL_MAX_CHARS."""
        detail = scrubber.text(self.detail, max_chars=DETAIL_MAX_CHARS)
        code = scrubber.text(self.code, max_chars=CODE_MAX_CHARS) if self.code is not None else None
        if detail == self.detail and code == self.code:
            return self
        return dataclasses.replace(self, detail=detail, code=code)


class PilotfishError(Exception):
    """Root of every exception Pilotfish raises on purpose."""


class AttemptFailed(PilotfishError):
    """One upstream attempt failed; the engine decides what happens next from ``failure``."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(f"{failure.kind.value}: {failure.detail}" if failure.detail else failure.kind.value)
        self.failure = failure


class MalformedEvent(AttemptFailed):
    """One upstream event was not what its format says; in a stream it is skipped and counted."""


# An event that is garbage, whether its adapter said so (MalformedEvent) or tripped over its shape.
GARBAGE_EVENT: tuple[type[Exception], ...] = (MalformedEvent, *SHAPE_ERRORS)


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
    """Seconds from a Retry-After header (delta-seconds form; HTTP dates are rare for APIs).

    Nonsense is no hint: NaN, a negative number or a malformed value give None; inf and 1e308 are
    capped at RETRY_AFTER_MAX_SECONDS, so no later arithmetic or client header sees them."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if math.isnan(seconds) or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_MAX_SECONDS)
