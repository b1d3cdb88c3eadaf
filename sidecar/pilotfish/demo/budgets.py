"""The demo's third act: a team budget at work. Called by ``pilotfish.demo.run`` after the tiers act, on
the same sidecar, which keeps the Budgets of ``examples/demo/budgets.yaml`` itself (``pilotfish local``).

The app keeps asking ``frontier``. Its spend budget pays for the first few answers; once it is spent, the
sidecar downgrades each request to ``cheap``; once ``cheap``'s own rate limit is spent too, it answers
429 ``budget_exceeded`` with Retry-After. Each line shows what the sidecar decided, from its response.
"""

from __future__ import annotations

import dataclasses

import aiohttp

MAX_REQUESTS = 20  # more than the budgets allow, even across a minute boundary: the act ends at the first 429


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: int
    served_by: str  # the class that answered (the downgrade target, or the one asked for)
    budget: str  # the Budget that downgraded or refused, "" if none
    detail: str  # the error code and Retry-After of a refusal


async def run(api: str) -> list[str]:
    """Ask ``frontier`` until refused; print each answer; the problems, if the budgets did not act as declared."""
    print(
        "\nBudgets: 'frontier' may spend $0.004 a day, then is downgraded to 'cheap'; "
        "'cheap' allows 3 requests a minute, then 429."
    )
    outcomes: list[Outcome] = []
    async with aiohttp.ClientSession() as session:
        for number in range(1, MAX_REQUESTS + 1):
            got = await _send(session, api)
            outcomes.append(got)
            print(f"  request {number:>2} for frontier -> {_describe(got)}")
            if got.status != 200:
                break
    return _problems(outcomes)


def _describe(got: Outcome) -> str:
    if got.status == 429:
        return f"429 {got.detail} (budget {got.budget})"
    if got.status != 200:
        return f"HTTP {got.status} {got.detail}".rstrip()
    if got.budget:
        return f"{got.served_by:<9} (downgraded: budget {got.budget} spent)"
    return got.served_by


def _problems(outcomes: list[Outcome]) -> list[str]:
    served = [o.served_by for o in outcomes if o.status == 200]
    problems = []
    if not served or served[0] != "frontier":
        problems.append("budgets: the first request was not served by frontier")
    if "cheap" not in served:
        problems.append("budgets: no request was downgraded to cheap")
    if served != sorted(served, key=lambda name: name != "frontier"):
        problems.append("budgets: frontier served again after the downgrade began")
    last = outcomes[-1] if outcomes else None
    if last is None or last.status != 429 or last.budget != "cheap-rate" or "Retry-After" not in last.detail:
        problems.append(f"budgets: the last request was not refused by cheap-rate with Retry-After: {last}")
    return problems


async def _send(session: aiohttp.ClientSession, api: str) -> Outcome:
    body = {"model": "frontier", "messages": [{"role": "user", "content": "Draft the quarterly summary."}]}
    try:
        async with session.post(api + "/v1/chat/completions", json=body) as response:
            data = await response.json(content_type=None)
            h = response.headers
            budget = h.get("x-pilotfish-budget", "")
            if response.status != 200:
                code = (data.get("error") or {}).get("code", "") if isinstance(data, dict) else ""
                detail = f"{code}, Retry-After {h['Retry-After']}s" if "Retry-After" in h else code
                return Outcome(response.status, "", budget, detail)
            served_by = h.get("x-pilotfish-downgraded-to") or h.get("x-pilotfish-class") or ""
            return Outcome(200, served_by, budget, "")
    except (aiohttp.ClientError, ValueError) as exc:
        return Outcome(0, "", "", f"error {exc}")
