"""Budgets in ``pilotfish local``: the one process is the whole fleet, so it keeps the counters itself.

A real ``pilotfish local`` process on a folder of manifests with a Budget beside the classes, the openai
SDK as the app: a spent ``reject`` budget answers 429 ``budget_exceeded`` with Retry-After, a spent
``downgrade`` budget serves from the cheaper class, a tokens-per-minute limit counts the usage the mock
provider reports, and a broken Budget is refused with the field named while the last good one keeps
counting. Rate limits count in fixed UTC minutes, so each burst starts in a minute with room for it.
"""

from __future__ import annotations

import asyncio
import dataclasses

import openai
from tests.integration.conftest import DEFAULT_CLASS, USER, Sidecar, answer_of
from tests.waiting import minute, minute_with_room

CHEAP = """\
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: cheap}
spec:
  members: [{credentialRef: third, model: small-model}]
"""
BURST_SECONDS = 15  # a burst starts only with this much of its minute left: ample for a few local requests


def with_budget(spec: str) -> str:
    return (
        DEFAULT_CLASS
        + CHEAP
        + f"---\napiVersion: pilotfish.dev/v1alpha1\nkind: Budget\nmetadata: {{name: team}}\nspec: {spec}\n"
    )


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    text: str = ""
    tokens: int = 0  # usage.total_tokens, as the provider reported it
    error: openai.APIStatusError | None = None


async def ask(sidecar: Sidecar) -> Answer:
    """One chat request through the openai SDK."""
    try:
        raw = await sidecar.client().chat.completions.with_raw_response.create(model="workhorse", messages=USER)
    except openai.APIStatusError as exc:
        return Answer(exc.status_code, {k.lower(): v for k, v in exc.response.headers.items()}, error=exc)
    completion = raw.parse()
    tokens = completion.usage.total_tokens if completion.usage else 0
    headers = {k.lower(): v for k, v in raw.headers.items()}
    return Answer(200, headers, completion.choices[0].message.content or "", tokens)


async def test_a_spent_reject_budget_answers_429_budget_exceeded_with_retry_after(local_sidecar):
    sidecar = await local_sidecar(with_budget("{classes: [workhorse], requestsPerMinute: 3}"))
    started = await minute_with_room(BURST_SECONDS)
    answers = [await ask(sidecar) for _ in range(5)]
    assert minute() == started, "the burst crossed a minute boundary"
    assert [a.status for a in answers] == [200, 200, 200, 429, 429]
    refused = answers[3].error
    assert isinstance(refused, openai.RateLimitError)
    assert refused.code == "budget_exceeded" and refused.type == "rate_limit_error"
    assert "Budget 'team'" in refused.message and "requests limit" in refused.message
    assert 1 <= int(answers[3].headers["retry-after"]) <= 60
    assert answers[3].headers["x-pilotfish-budget"] == "team"
    metrics = await sidecar.metrics()
    assert (
        'pilotfish_budget_decisions_total{budget="team",class="workhorse",decision="rejected",limit="requests"} 2.0'
        in metrics
    )
    line = await sidecar.last_request_line()
    assert (line["status"], line["budget"]) == (429, "team/requests/rejected")


async def test_a_spent_downgrade_budget_serves_from_the_cheaper_class(local_sidecar, mocks):
    sidecar = await local_sidecar(
        with_budget("{classes: [workhorse], requestsPerMinute: 2, action: downgrade, downgradeTo: cheap}")
    )
    started = await minute_with_room(BURST_SECONDS)
    answers = [await ask(sidecar) for _ in range(4)]
    assert minute() == started, "the burst crossed a minute boundary"
    assert [a.text for a in answers] == [answer_of("primary")] * 2 + [answer_of("third")] * 2
    downgraded = answers[2].headers
    assert (downgraded["x-pilotfish-downgraded-to"], downgraded["x-pilotfish-budget"]) == ("cheap", "team")
    assert downgraded["x-pilotfish-class"] == "workhorse" and downgraded["x-pilotfish-model"] == "small-model"
    assert "x-pilotfish-downgraded-to" not in answers[1].headers
    assert mocks["third"].stats.requests == 2
    assert (
        'pilotfish_budget_decisions_total{budget="team",class="workhorse",decision="downgraded",limit="requests"} 2.0'
        in await sidecar.metrics()
    )


async def test_a_tokens_per_minute_budget_counts_the_usage_the_provider_reports(local_sidecar):
    limit = 100
    sidecar = await local_sidecar(with_budget(f"{{classes: [workhorse], tokensPerMinute: {limit}}}"))
    started = await minute_with_room(BURST_SECONDS)
    served: list[int] = []
    refused = None
    for _ in range(limit):  # every answer costs at least one token: the budget must refuse long before
        answer = await ask(sidecar)
        if answer.error is not None:
            refused = answer.error
            break
        served.append(answer.tokens)
    assert minute() == started, "the burst crossed a minute boundary"
    assert isinstance(refused, openai.RateLimitError) and refused.code == "budget_exceeded"
    assert "tokens limit" in refused.message
    # a request is admitted while the tokens used are below the limit, and costs what it costs: the
    # overshoot is at most one request's worth (docs/budgets.md, P x C with one process)
    cost = served[0]
    assert len(set(served)) == 1 and cost > 1
    assert sum(served[:-1]) < limit <= sum(served) < limit + cost
    assert len(served) == -(-limit // cost)


async def test_a_broken_budget_is_refused_by_field_and_the_last_good_one_keeps_counting(local_sidecar, tmp_path):
    sidecar = await local_sidecar(with_budget("{classes: [workhorse], requestsPerMinute: 2}"))
    before = (await sidecar.get_json("/readyz"))["digest"]
    manifest = tmp_path / "manifests" / "all.yaml"
    manifest.write_text(manifest.read_text().replace("requestsPerMinute: 2}", "requestsPerMinute: 2, action: later}"))

    async def rejected() -> bool:
        return (await sidecar.get_json("/readyz"))["lastReloadError"] is not None

    async with asyncio.timeout(10):
        while not await rejected():
            await asyncio.sleep(0.05)
    ready = await sidecar.get_json("/readyz")
    assert ready["digest"] == before
    assert "Budget \"team\": spec.action: Input should be 'reject' or 'downgrade'" in ready["lastReloadError"]
    started = await minute_with_room(BURST_SECONDS)
    statuses = [(await ask(sidecar)).status for _ in range(3)]
    assert minute() == started, "the burst crossed a minute boundary"
    assert statuses == [200, 200, 429]


async def test_a_budget_that_downgrades_to_a_class_not_served_is_warned_about_and_rejects(local_sidecar):
    spec = "{classes: [workhorse], requestsPerMinute: 1, action: downgrade, downgradeTo: nowhere}"
    sidecar = await local_sidecar(with_budget(spec))
    async with asyncio.timeout(10):
        while not any("spec.downgradeTo" in line for line in sidecar.stderr_lines):
            await asyncio.sleep(0.05)
    warning = next(line for line in sidecar.stderr_lines if "spec.downgradeTo" in line)
    assert 'Budget "team": spec.downgradeTo: "nowhere" is not a class that can serve' in warning
    started = await minute_with_room(BURST_SECONDS)
    statuses = [(await ask(sidecar)).status for _ in range(2)]
    assert minute() == started, "the burst crossed a minute boundary"
    assert statuses == [200, 429]
