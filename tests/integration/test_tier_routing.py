"""Tier routing as an app sees it: one class name, a cheap and a frontier tier, escalation on failure.

`assistant` has no members: its rules send each request to `cheap` or `frontier`, the decision comes
back in x-pilotfish-tier headers, the request log and the metrics, and when every member of the chosen
tier fails, the tier above answers in the same request.
"""

from __future__ import annotations

import openai
import pytest
from tests.integration.conftest import USER, answer_of, complete

TIERED = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: cheap}
spec:
  members: [{credentialRef: primary, model: small-model}]
  timeouts: {connectSeconds: 1, firstTokenSeconds: 0.5, totalSeconds: 10}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: frontier}
spec:
  members: [{credentialRef: backup, model: big-model}]
  timeouts: {connectSeconds: 1, firstTokenSeconds: 0.5, totalSeconds: 10}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: assistant}
spec:
  tiers:
    ladder: [cheap, frontier]
    default: cheap
    escalate: %s
    rules:
      - {tier: frontier, when: {header: {name: x-pilotfish-tier, values: [frontier]}}}
      - {tier: frontier, when: {hasTools: true}}
      - {tier: frontier, when: {promptTokensAtLeast: 2000}}
      - {tier: frontier, when: {podLabels: {team: research}}}
"""
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])


def tier_headers(headers: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    return (
        headers.get("x-pilotfish-tier"),
        headers.get("x-pilotfish-tier-reason"),
        headers.get("x-pilotfish-tier-escalated-from"),
    )


@pytest.fixture
async def tiered(local_sidecar):
    return await local_sidecar(TIERED % "true")


@STREAM
async def test_requests_without_a_matching_rule_go_to_the_default_cheap_tier(tiered, stream):
    text, headers = await complete(tiered.client(), stream=stream, model="assistant")
    assert text == answer_of("primary") and headers["x-pilotfish-model"] == "small-model"
    assert tier_headers(headers) == ("cheap", "default", None)
    assert headers["x-pilotfish-class"] == "assistant"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"extra_headers": {"x-pilotfish-tier": "frontier"}}, "rules[0]"),
        ({"tools": TOOLS}, "rules[1]"),
        ({"messages": [{"role": "user", "content": "word " * 2000}]}, "rules[2]"),
    ],
    ids=["header", "tools", "long-prompt"],
)
async def test_rules_send_hard_requests_to_the_frontier_tier(tiered, kwargs, reason):
    _, headers = await complete(tiered.client(), stream=False, model="assistant", **kwargs)
    assert headers["x-pilotfish-model"] == "big-model"
    assert tier_headers(headers) == ("frontier", reason, None)


@STREAM
async def test_when_the_cheap_tier_fails_the_frontier_tier_answers_the_same_request(tiered, mocks, stream):
    mocks["primary"].set_fault(mode="status", status=503)
    text, headers = await complete(tiered.client(), stream=stream, model="assistant")
    assert text == answer_of("backup")
    assert tier_headers(headers) == ("frontier", "default", "cheap")
    line = await tiered.last_request_line()
    assert (line["tier"], line["tier_chosen"], line["tier_reason"]) == ("frontier", "cheap", "default")
    assert [attempt["member"] for attempt in line["attempts"]][-1] == "backup/big-model"
    metrics = await tiered.metrics()
    assert 'pilotfish_tier_escalations_total{class="assistant",from_tier="cheap",to_tier="frontier"} 1.0' in metrics
    assert 'pilotfish_tier_decisions_total{class="assistant",reason="default",tier="cheap"} 1.0' in metrics


async def test_with_escalation_off_a_failed_tier_is_the_answer(local_sidecar, mocks):
    sidecar = await local_sidecar(TIERED % "false")
    mocks["primary"].set_fault(mode="status", status=503)
    with pytest.raises(openai.APIStatusError) as caught:
        await sidecar.client().chat.completions.create(model="assistant", messages=USER)
    assert caught.value.status_code == 503 and mocks["backup"].stats.requests == 0
    assert caught.value.response.headers["x-pilotfish-tier"] == "cheap"


async def test_the_calling_pods_labels_route_through_the_downward_api_file(local_sidecar, tmp_path):
    labels = tmp_path / "labels"
    labels.write_text('app="notebook"\nteam="research"\n')
    sidecar = await local_sidecar(TIERED % "true", "--pod-labels-file", str(labels))
    _, headers = await complete(sidecar.client(), stream=False, model="assistant")
    assert tier_headers(headers) == ("frontier", "rules[3]", None)


async def test_a_request_the_cheap_provider_refuses_as_invalid_is_not_escalated(tiered, mocks):
    mocks["primary"].set_fault(mode="status", status=400)
    with pytest.raises(openai.BadRequestError):
        await tiered.client().chat.completions.create(model="assistant", messages=USER)
    assert mocks["backup"].stats.requests == 0  # a bad request is bad on every tier: no escalation


async def test_anthropic_sdk_clients_are_routed_by_the_same_rules(tiered):
    client = tiered.anthropic_client()
    raw = await client.messages.with_raw_response.create(
        model="assistant",
        max_tokens=64,
        messages=[{"role": "user", "content": "Hi"}],
        extra_headers={"x-pilotfish-tier": "frontier"},
    )
    assert (await raw.parse()).model == "big-model"
    assert (raw.headers["x-pilotfish-tier"], raw.headers["x-pilotfish-tier-reason"]) == ("frontier", "rules[0]")


async def test_embeddings_follow_the_header_and_pod_label_rules_but_not_the_chat_rules(local_sidecar, tmp_path):
    sidecar = await local_sidecar(TIERED % "true")
    embeddings = sidecar.client().embeddings.with_raw_response
    long_input = await embeddings.create(model="assistant", input="word " * 3000)  # rules[2] reads chat prompts only
    assert tier_headers(long_input.headers) == ("cheap", "default", None)
    assert long_input.headers["x-pilotfish-model"] == "small-model"
    asked = await embeddings.create(model="assistant", input="hi", extra_headers={"x-pilotfish-tier": "frontier"})
    assert tier_headers(asked.headers) == ("frontier", "rules[0]", None)
    assert asked.headers["x-pilotfish-model"] == "big-model" and asked.parse().data[0].embedding
    line = await sidecar.last_request_line(nth=2)  # the second request's, not the first's
    assert (line["operation"], line["tier"], line["tier_reason"]) == ("embeddings", "frontier", "rules[0]")
    labels = tmp_path / "labels"
    labels.write_text('team="research"\n')
    research = await local_sidecar(TIERED % "true", "--pod-labels-file", str(labels))
    by_pod = await research.client().embeddings.with_raw_response.create(model="assistant", input="hi")
    assert tier_headers(by_pod.headers) == ("frontier", "rules[3]", None)
