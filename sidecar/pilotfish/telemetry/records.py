"""What one request did, as plain values: the engine fills attempts, the server the rest.

One record feeds the log line, the metrics and the response headers, so the three never disagree.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any

from pilotfish import failures


class Outcome(enum.StrEnum):
    """How a request ended, as the ``outcome`` metric label."""

    SUCCESS = "success"
    FAILED = "failed"  # every member tried failed (or none could be tried)
    REJECTED = "rejected"  # the client's request was refused before or at the first attempt
    INTERRUPTED = "interrupted"  # a stream broke after it was committed to the client
    CANCELLED = "cancelled"  # the client went away


# Skip reasons of members that cannot serve this kind of request at all: leaving them out is routing,
# not a failover (failover.plan.SkipReason values).
NEVER_A_CHOICE = frozenset({"operation_not_supported", "input_not_supported"})


@dataclasses.dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One upstream call."""

    member_id: str
    provider: str
    model: str
    duration: float  # seconds from send to commit or failure
    failure: failures.Failure | None = None  # None: this attempt served the request
    first_token_deadline: float | None = None  # seconds it was given to its first content (adaptive or configured)

    @property
    def result(self) -> str:
        return "success" if self.failure is None else self.failure.kind.value


@dataclasses.dataclass(slots=True)
class RequestRecord:
    """The whole request; mutable while the request runs, read once at its end."""

    class_name: str
    stream: bool
    operation: str = "chat"  # chat | embeddings: the GenAI operation of the endpoint
    attempts: list[AttemptRecord] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (member id, reason)
    provider: str | None = None  # the member that answered
    model: str | None = None
    member_id: str | None = None
    outcome: Outcome = Outcome.SUCCESS
    status: int = 200
    error_code: str | None = None
    latency: float = 0.0
    time_to_first_token: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    trace_id: str | None = None
    canary_slice: str | None = None  # "canary" or "stable" when the class has a canary
    canary_member: str | None = None  # the canary member's id, to tell its attempts apart
    span: Any = None  # tracing.RequestSpan while tracing is on: the parent of the attempt spans
    # mid-stream recoveries: (from provider, to provider or "none", "success" | "failed")
    recoveries: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    # hedges started (failover.hedging): (member hedged to, "won" | "lost" | "failed")
    hedges: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    malformed_events: int = 0  # upstream stream events skipped because they could not be parsed
    delivered_chunks: int = 0  # content chunks handed to the client: what an interrupted stream is billed for
    tier: str | None = None  # a class with tiers: the tier (class) its rules chose
    tier_reason: str | None = None  # why: "rules[N]" (the first rule that matched) or "default"
    escalations: list[str] = dataclasses.field(default_factory=list)  # tiers moved up to, in order
    # a Budget acted on this request: (budget, limit, "rejected" | "downgraded" | "failed_open")
    budget_decision: tuple[str, str, str] | None = None
    # charges the serving member's provider quota with the request's tokens (failover.engine sets it,
    # server.serving calls it once the request ends)
    quota_settle: Callable[[int], None] | None = None
    # members whose provider quota admitted an attempt on its fail-open share (the operator unreachable)
    quotas_failed_open: list[str] = dataclasses.field(default_factory=list)
    downgraded_to: str | None = None  # the class that served, when a spent budget downgraded the request

    def served_tier(self) -> str | None:
        """The tier that answered (or was tried last): the chosen one, or the last it escalated to."""
        return self.escalations[-1] if self.escalations else self.tier

    def failover_reason(self) -> str | None:
        """Why the request moved to another member: the first failed attempt followed by an attempt on another
        member, else the first skip of a member that could have served (one with no such API, e.g. embeddings
        on Anthropic, never was a choice). A retry on the same member is not a move (``retry_reason``)."""
        for attempt, same_member in self.handovers():
            if not same_member:
                return attempt.result
        return next((reason for _, reason in self.skipped if reason not in NEVER_A_CHOICE), None)

    def retry_reason(self) -> str | None:
        """Why a member was asked again (a waited-out Retry-After, a transient 5xx): the first such failure."""
        return next((attempt.result for attempt, same_member in self.handovers() if same_member), None)

    def handovers(self) -> list[tuple[AttemptRecord, bool]]:
        """Each failed attempt another attempt followed, and whether that one went to the same member (a
        retry) or not (a failover). A failed last attempt is neither: the request ended there."""
        attempts = self.attempts
        if len(attempts) < 2:  # nearly every request: one attempt, nothing handed over
            return []
        return [
            (attempt, attempts[index + 1].member_id == attempt.member_id)
            for index, attempt in enumerate(attempts[:-1])
            if attempt.failure is not None
        ]


def cost_usd(
    *,
    prompt_tokens: int,
    completion_tokens: int,
    input_per_million: float,
    output_per_million: float,
) -> float:
    return (prompt_tokens * input_per_million + completion_tokens * output_per_million) / 1_000_000
