"""Team budgets at the edge of a request: admit it, downgrade it, or refuse it with a 429; settle its cost.

``server.serving`` calls ``admit`` once the class is known and ``settle`` however the request ends.
The decision is ``budgets.allowances``'s; this module writes it on the request record (from where it
reaches the metrics and the log) and turns a refusal into the OpenAI-style 429 with Retry-After.
"""

from __future__ import annotations

import math

from aiohttp import web

from pilotfish.budgets import allowances, ledger, windows
from pilotfish.routes import document
from pilotfish.server import headers, keys, replies
from pilotfish.telemetry import records

BUDGET_EXCEEDED = "budget_exceeded"


async def admit(
    request: web.Request,
    doc: document.RoutesDocument,
    route: document.ClassRoute,
    record: records.RequestRecord,
) -> allowances.Decision | replies.Reply:
    """The decision to go on with (its ``route`` may be the cheaper class), or the reply that refuses."""
    keeper = request.app.get(keys.ALLOWANCES)
    if keeper is None or not doc.budgets:
        return allowances.Decision(route, None, ledger.Verdict(ledger.Outcome.OK))
    decision = await keeper.admit(doc, route)
    verdict = decision.verdict
    limit = verdict.limit.value if verdict.limit else ""
    if decision.failed_open:
        record.budget_decision = (verdict.budget, limit, "failed_open")
    if decision.route is None:
        record.budget_decision = (verdict.budget, limit, "rejected")
        return refusal(verdict, record)
    if decision.route.name != route.name:
        record.budget_decision = (verdict.budget, limit, "downgraded")
        record.downgraded_to = decision.route.name
    return decision


def settle(request: web.Request, decision: allowances.Decision | None, record: records.RequestRecord) -> None:
    """Charge what the request cost (tokens and USD, as the record counted them) to its budgets."""
    keeper = request.app.get(keys.ALLOWANCES)
    if keeper is not None and decision is not None:
        keeper.settle(
            decision.ticket,
            tokens=record.prompt_tokens + record.completion_tokens,
            micro_usd=windows.micro_usd(record.cost_usd),
        )


def refusal(verdict: ledger.Verdict, record: records.RequestRecord) -> replies.Reply:
    """429, as OpenAI answers a rate limit, naming the budget and the limit; Retry-After is when it resets."""
    record.outcome, record.status, record.error_code = records.Outcome.REJECTED, 429, BUDGET_EXCEEDED
    limit = verdict.limit.value if verdict.limit else "limit"
    message = (
        f"Budget '{verdict.budget}' of this namespace has spent its {limit} limit for this window "
        f"(class '{record.class_name}'); it resets in {math.ceil(verdict.retry_after)}s."
    )
    extra = {**replies.route_headers(record), "Retry-After": str(max(1, math.ceil(verdict.retry_after)))}
    extra[headers.BUDGET] = verdict.budget
    return replies.Reply(
        status=429, message=message, error_type="rate_limit_error", code=BUDGET_EXCEEDED, headers=extra
    )
