"""What each kind of failure means, in one table: fail over or not, hurt the member's health or not,
and what the client gets if it is the last word.

A client error (a malformed request, refused content) is answered once: retrying it on every member
would multiply load and cost for an answer that cannot change. Capacity problems (429, overload, 5xx,
timeouts) move to the next member and count against the member that had them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from pilotfish.failures import FailureKind as K


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    failover: bool
    """Try the next member in the plan."""
    counts_against_health: bool
    """Counts toward the member's circuit breaker."""
    client_status: int
    """HTTP status the client gets when this failure ends the request."""
    client_error_type: str
    """OpenAI error ``type`` for that response."""
    client_error_code: str
    """OpenAI error ``code`` for that response."""
    needs_larger_window: bool = False
    """Only members with a larger context window may be tried next."""
    same_member_retries: int = 0
    """Quick retries on the same member before failing over (none by default: fail over at once)."""


def _capacity(status: int, code: str) -> Policy:
    """A capacity or availability problem of one member: move on, and count it against the member."""
    return Policy(
        failover=True,
        counts_against_health=True,
        client_status=status,
        client_error_type="server_error",
        client_error_code=code,
    )


POLICY: Mapping[K, Policy] = MappingProxyType(
    {
        K.CONNECT: _capacity(502, "upstream_unreachable"),
        K.CONNECT_TIMEOUT: _capacity(504, "upstream_timeout"),
        K.FIRST_TOKEN_TIMEOUT: _capacity(504, "upstream_timeout"),
        K.TOTAL_TIMEOUT: _capacity(504, "upstream_timeout"),
        K.SERVER_ERROR: _capacity(502, "upstream_error"),
        K.OVERLOADED: _capacity(503, "upstream_overloaded"),
        K.RATE_LIMITED: Policy(
            failover=True,
            counts_against_health=True,
            client_status=429,
            client_error_type="rate_limit_error",
            client_error_code="rate_limit_exceeded",
        ),
        K.AUTH: _capacity(502, "upstream_auth_failed"),
        K.NOT_FOUND: _capacity(502, "upstream_model_not_found"),
        K.BAD_RESPONSE: _capacity(502, "upstream_bad_response"),
        K.STREAM_INTERRUPTED: _capacity(502, "upstream_stream_interrupted"),
        K.BAD_REQUEST: Policy(
            failover=False,
            counts_against_health=False,
            client_status=400,
            client_error_type="invalid_request_error",
            client_error_code="invalid_request",
        ),
        K.CONTEXT_LENGTH: Policy(
            failover=True,
            counts_against_health=False,
            needs_larger_window=True,
            client_status=400,
            client_error_type="invalid_request_error",
            client_error_code="context_length_exceeded",
        ),
        K.CONTENT_FILTER: Policy(
            failover=False,
            counts_against_health=False,
            client_status=400,
            client_error_type="invalid_request_error",
            client_error_code="content_filter",
        ),
    }
)


def policy_for(kind: K) -> Policy:
    return POLICY[kind]
