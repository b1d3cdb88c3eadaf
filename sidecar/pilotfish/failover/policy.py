"""What each kind of failure means, in one table: fail over or not, hurt the member's health or not,
and what the client gets if it is the last word.

Providers classify (``failures.FailureKind``); this module decides. ``failover.engine`` looks every
failed attempt up here, and ``server.chat`` turns the final one into the client's error. A test
asserts that the table covers every kind, so a new kind cannot be added without a decision.

A client error (a malformed request, refused content) is answered once: retrying it on every member
would multiply load and cost for an answer that cannot change. Capacity problems (429, overload, 5xx,
timeouts) and a misconfigured member (a rejected key, 404, a redirect) move to the next member and count
against the member that had them; a rejected key opens its circuit at once, for long. The client never
sees a member's 401 or 404: its own request was fine.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping

from pilotfish import failures
from pilotfish.specs import modelclass

K = failures.FailureKind

# OpenAI's error ``type`` values, as its API and SDKs use them.
INVALID_REQUEST = "invalid_request_error"
RATE_LIMIT = "requests"  # OpenAI's 429: type "requests" (or "tokens"), code "rate_limit_exceeded"
SERVER_ERROR = "server_error"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """The decision for one failure kind."""

    failover: bool
    """Try the next member in the plan (before the commit point only; the engine enforces that)."""

    counts_against_health: bool
    """Counts toward the member's circuit breaker and its error rate."""

    needs_larger_window: bool = False
    """Only members with a larger context window than the failed one may be tried next."""

    learns_cannot_continue: failures.ContinuationProblem | None = None
    """The member is marked unable to continue a stream (for a while), for this reason, and continuations
    skip it."""

    trips_circuit: bool = False
    """Opens the member's circuit at once (not after ``failureThreshold`` in a row): one such failure shows
    the member hung, and every request in flight or still to come would wait just as long to learn it."""

    client_status: int
    """HTTP status the client gets when this failure ends the request."""

    client_error_type: str
    """OpenAI error ``type`` for that response."""

    client_error_code: str
    """OpenAI error ``code`` for that response."""

    open_circuit_seconds: float | None = None
    """Open the member's circuit at once for this long (a rejected key will not heal by itself in a
    cooldown; a rotated key resets the member, see ``health.HealthRegistry.reconcile``)."""


# How long a member whose credential was rejected stays out before one probe tries it again: long
# enough that a revoked key costs one failed attempt per pod every few minutes, not one per request;
# short enough that a fixed key (the same Secret value restored) serves again without a restart.
CREDENTIAL_OPEN_SECONDS = 300.0


def _member_problem(
    status: int, code: str, *, trips_circuit: bool = False, open_circuit_seconds: float | None = None
) -> Policy:
    """A capacity, availability or configuration problem of one member: move on, count it."""
    return Policy(
        failover=True,
        counts_against_health=True,
        trips_circuit=trips_circuit,
        client_status=status,
        client_error_type=SERVER_ERROR,
        client_error_code=code,
        open_circuit_seconds=open_circuit_seconds,
    )


def _request_problem(code: str, *, failover: bool = False, needs_larger_window: bool = False) -> Policy:
    """The request itself cannot be served as sent: the member is not to blame."""
    return Policy(
        failover=failover,
        counts_against_health=False,
        needs_larger_window=needs_larger_window,
        client_status=400,
        client_error_type=INVALID_REQUEST,
        client_error_code=code,
    )


POLICY: Mapping[failures.FailureKind, Policy] = types.MappingProxyType(
    {
        K.CONNECT: _member_problem(502, "upstream_unreachable"),
        K.CONNECT_TIMEOUT: _member_problem(504, "upstream_timeout"),
        # Connected, then silent past the deadline: hung. Its circuit opens for everyone at once.
        K.FIRST_TOKEN_TIMEOUT: _member_problem(504, "upstream_timeout", trips_circuit=True),
        # Waiting on that member when it was found hung: cut at once and moved on, not left to its own deadline.
        K.CUT_HUNG: _member_problem(504, "upstream_timeout"),
        # A hedge that lost the race: the member did nothing wrong; never the last word of a request.
        K.HEDGE_CANCELLED: Policy(
            failover=True,
            counts_against_health=False,
            client_status=504,
            client_error_type=SERVER_ERROR,
            client_error_code="upstream_timeout",
        ),
        K.TOTAL_TIMEOUT: _member_problem(504, "upstream_timeout"),
        K.SERVER_ERROR: _member_problem(502, "upstream_error"),
        K.OVERLOADED: _member_problem(503, "upstream_overloaded"),
        # Counts, and a Retry-After opens the member's circuit at once (see breaker): no 429 cascade.
        K.RATE_LIMITED: Policy(
            failover=True,
            counts_against_health=True,
            client_status=429,
            client_error_type=RATE_LIMIT,
            client_error_code="rate_limit_exceeded",
        ),
        # the member's key is bad, not the client's: no use trying it again on the next request
        K.AUTH: _member_problem(502, "upstream_auth_failed", open_circuit_seconds=CREDENTIAL_OPEN_SECONDS),
        # the base URL points somewhere that moved: following would send the key and prompt to the new host
        K.REDIRECT: _member_problem(502, "upstream_redirected"),
        K.NOT_FOUND: _member_problem(502, "upstream_model_not_found"),  # the member's model does not exist
        K.BAD_RESPONSE: _member_problem(502, "upstream_bad_response"),
        K.STREAM_INTERRUPTED: _member_problem(502, "upstream_stream_interrupted"),  # fails over before commit only
        # an endless or huge answer: the member misbehaves (another may answer within the cap)
        K.RESPONSE_TOO_LARGE: _member_problem(502, "upstream_response_too_large"),
        K.BAD_REQUEST: _request_problem("invalid_request"),  # every member would say the same
        K.CONTEXT_LENGTH: _request_problem("context_length_exceeded", failover=True, needs_larger_window=True),
        K.CONTENT_FILTER: _request_problem("content_filter"),  # another vendor answering is a compliance call
        # A continuation refused (Gemini: "Requests ending with a model turn are not supported"): the member is
        # fine for everything else; the continuation moves on to the next member that can continue.
        K.PREFILL_REJECTED: Policy(
            failover=True,
            counts_against_health=False,
            learns_cannot_continue=failures.ContinuationProblem.PREFILL_REJECTED,
            client_status=502,
            client_error_type=SERVER_ERROR,
            client_error_code="upstream_prefill_rejected",
        ),
    }
)


def policy_for(kind: failures.FailureKind) -> Policy:
    """The decision for ``kind``; every kind has one."""
    return POLICY[kind]


# Transient failures worth one quick retry on the same member (a blip, not an outage): not an
# overload (retrying adds to it) and not a timeout (a member silent past the first-token deadline
# gets no second chance on this request).
TRANSIENT = frozenset({K.SERVER_ERROR, K.CONNECT})


def retry_same_member(
    failure: failures.Failure,
    routing: modelclass.RoutingSpec,
    *,
    retried: int,
    attempts_left: int,
    members_waiting: int,
) -> bool:
    """Retry this member before moving on? ``attempts_left``: upstream calls this request may still make
    (``maxAttempts`` is a hard cap); ``members_waiting``: members still queued behind this one.

    A transient 5xx or reset: up to ``sameMemberRetries`` times, and only with a spare attempt, so a quick
    retry never costs a member further down its turn. A 429 whose Retry-After is at most
    ``maxRetryAfterWaitSeconds``: waited out and retried once, even if that takes the last member's turn,
    because the wait is cheap and moving a class's traffic to its backup on a short hint spreads the 429
    to the backup (a small cascade), while the member will take the request again in a moment."""
    if attempts_left < 1:
        return False
    if failure.kind in TRANSIENT:
        return retried < routing.same_member_retries and attempts_left > members_waiting
    if failure.kind is K.RATE_LIMITED:
        wait = failure.retry_after
        return retried == 0 and wait is not None and 0 <= wait <= routing.max_retry_after_wait_seconds
    return False


def fails_over(failure: failures.Failure, routing: modelclass.RoutingSpec) -> bool:
    """Try the next member? The table's answer, except that a class may send refused content elsewhere."""
    if failure.kind is K.CONTENT_FILTER:
        return routing.on_content_filter == "failover"
    return policy_for(failure.kind).failover
