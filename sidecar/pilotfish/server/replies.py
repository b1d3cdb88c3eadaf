"""What a client is told, whatever its dialect: the x-pilotfish-* headers, usage counts, and the
error for a request no member served. Shared by every endpoint (chat, messages, embeddings) so that
they cannot disagree; each dialect only renders a ``Reply`` in its own error format.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from pilotfish.failover import engine, policy
from pilotfish.routes import document
from pilotfish.server import headers
from pilotfish.telemetry import records

# What an ineligibility skip means, for the 400 a client gets when no member is left.
INELIGIBLE_HINTS = {
    "operation_not_supported": "A member was skipped because its provider has no API for this operation "
    "(Anthropic has no embeddings).",
    "input_not_supported": "A member was skipped because its provider cannot take this input "
    "(token-id arrays need an OpenAI-format member; send text instead).",
}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """An error reply before any rendering: OpenAI's vocabulary (type, code), which dialects map."""

    status: int
    message: str
    error_type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


def route_headers(record: records.RequestRecord) -> dict[str, str]:
    out = {headers.CLASS: record.class_name, headers.ATTEMPTS: str(len(record.attempts))}
    if record.provider:
        out[headers.PROVIDER] = record.provider
        out[headers.MODEL] = record.model or ""
        out[headers.MEMBER] = record.member_id or ""
    reason = record.failover_reason()
    if reason:
        out[headers.FAILOVER_REASON] = reason
    if retried := record.retry_reason():
        out[headers.RETRY_REASON] = retried
    if record.downgraded_to is not None and record.budget_decision is not None:
        out[headers.DOWNGRADED_TO], out[headers.BUDGET] = record.downgraded_to, record.budget_decision[0]
    if record.tier is not None:
        out[headers.TIER] = record.served_tier() or ""
        out[headers.TIER_REASON] = record.tier_reason or ""
        if record.escalations:
            out[headers.TIER_ESCALATED_FROM] = record.tier
    return out


def served_by(member: document.MemberRoute, record: records.RequestRecord, *, time_to_first_token: float) -> None:
    """Note which member answered."""
    record.provider, record.model, record.member_id = member.provider.value, member.model, member.id
    record.time_to_first_token = time_to_first_token


def count_usage(
    *,
    prompt_tokens: int,
    completion_tokens: int,
    member: document.MemberRoute,
    record: records.RequestRecord,
) -> None:
    record.prompt_tokens, record.completion_tokens = prompt_tokens, completion_tokens
    if member.pricing:
        record.cost_usd = records.cost_usd(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            input_per_million=member.pricing.input_per_million_tokens,
            output_per_million=member.pricing.output_per_million_tokens,
        )


def failure_reply(exc: engine.AllMembersFailed, record: records.RequestRecord) -> Reply:
    """The one error for a request no member served, naming every attempt and skip; fills the record."""
    failure = exc.failure
    rule = policy.policy_for(failure.kind) if failure else None
    detail = _tried_and_skipped(record)
    if exc.code == "no_eligible_members":
        status, error_type, code = 400, "invalid_request_error", exc.code
        hints = " ".join(
            hint for reason, hint in INELIGIBLE_HINTS.items() if any(r == reason for _, r in record.skipped)
        )
        message = f"No member of class '{exc.class_name}' can serve this request. {detail} {hints}"
        record.outcome = records.Outcome.REJECTED
    elif exc.code == engine.QUOTAS_SPENT:
        status, error_type, code = 429, "rate_limit_error", exc.code
        message = (
            f"Every member of class '{exc.class_name}' that could serve has spent its provider quota (rpm/tpm) "
            f"for this minute. {detail}"
        )
        record.outcome = records.Outcome.REJECTED
    elif rule is not None and not rule.failover:
        status, error_type, code = rule.client_status, rule.client_error_type, rule.client_error_code
        message = f"The provider refused the request ({failure.kind.value}): {failure.detail}" if failure else ""
        record.outcome = records.Outcome.REJECTED
    elif exc.code in ("retry_budget_exhausted", "no_available_members") or rule is None:
        status, error_type, code = 503, "server_error", exc.code
        message = f"No member of class '{exc.class_name}' could serve the request ({exc.code}). {detail}"
        record.outcome = records.Outcome.FAILED
    else:
        status, error_type, code = rule.client_status, rule.client_error_type, exc.code
        message = f"Every member of class '{exc.class_name}' failed. {detail}"
        record.outcome = records.Outcome.FAILED
    record.status, record.error_code = status, code
    extra = route_headers(record)
    if failure and failure.retry_after is not None and status in (429, 503):
        extra["Retry-After"] = str(max(1, round(failure.retry_after)))
    if exc.retry_after is not None:
        extra["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return Reply(status=status, message=message.strip(), error_type=error_type, code=code, headers=extra)


def _tried_and_skipped(record: records.RequestRecord) -> str:
    tried = "; ".join(_attempt_result(a) for a in record.attempts)
    skipped = "; ".join(f"{member}: {reason}" for member, reason in record.skipped)
    return " ".join(part for part in (f"Tried {tried}." if tried else "", f"Skipped {skipped}." if skipped else ""))


def _attempt_result(attempt: records.AttemptRecord) -> str:
    """``member: result (status, credential problem)``: enough to act on, without upstream text."""
    failure = attempt.failure
    notes = (
        [] if failure is None else [str(failure.status or ""), failure.credential.value if failure.credential else ""]
    )
    said = ", ".join(note for note in notes if note)
    return f"{attempt.member_id}: {attempt.result}" + (f" ({said})" if said else "")


def unknown_class(name: str, routes: document.RoutesDocument) -> Reply:
    known = ", ".join(sorted(routes.classes)) or "none"
    return Reply(
        status=404,
        message=f"The model '{name}' does not exist: it is not a class in this namespace (classes: {known}). "
        "Ask for a class name, not a vendor model.",
        code="model_not_found",
        param="model",
    )


ROUTES_NOT_LOADED = Reply(
    status=503, message="The sidecar has no routes loaded yet.", error_type="server_error", code="routes_not_loaded"
)
