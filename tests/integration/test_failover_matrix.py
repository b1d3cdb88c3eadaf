"""The fault matrix: each way a provider fails, streaming and not, seen through the official SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from tests.integration.conftest import DEFAULT_CLASS, USER, Sidecar, answer_of, complete
from tests.waiting import eventually

STREAM = pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])


@STREAM
async def test_a_healthy_primary_answers_with_route_headers(sidecar: Sidecar, stream: bool):
    text, headers = await complete(sidecar.client(), stream=stream)
    assert text == answer_of("primary")
    assert headers["x-pilotfish-class"] == "workhorse"
    assert headers["x-pilotfish-provider"] == "openai-compatible"
    assert headers["x-pilotfish-model"] == "model-a"
    assert headers["x-pilotfish-attempts"] == "1"
    assert "x-pilotfish-failover-reason" not in headers


@STREAM
@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"mode": "status", "status": 503}, "overloaded"),
        ({"mode": "status", "status": 500}, "server_error"),
        ({"mode": "status", "status": 401}, "auth"),
        ({"mode": "status", "status": 404}, "model_not_found"),
        ({"mode": "rate-limit", "retry_after": 30}, "rate_limited"),
        ({"mode": "reset"}, "connect_error"),
        ({"mode": "hang"}, "first_token_timeout"),
        ({"mode": "slow-first-token", "delay": 3}, "first_token_timeout"),
    ],
    ids=lambda value: value.get("mode", "") + str(value.get("status", "")) if isinstance(value, dict) else value,
)
async def test_a_failing_primary_fails_over_to_the_backup(sidecar: Sidecar, mocks, stream, fault, reason):
    mocks["primary"].set_fault(**fault)
    text, headers = await complete(sidecar.client(), stream=stream)
    assert text == answer_of("backup")
    assert headers["x-pilotfish-failover-reason"] == reason
    # a transient 5xx or reset gets one quick retry on the same member first (spare attempts allow it)
    assert headers["x-pilotfish-attempts"] == ("3" if reason in ("server_error", "connect_error") else "2")
    assert headers["x-pilotfish-model"] == "model-b"


async def test_a_stream_cut_before_completion_fails_over_invisibly_when_not_streaming(sidecar: Sidecar, mocks):
    mocks["primary"].set_fault(mode="cut", after_chunks=3)
    text, headers = await complete(sidecar.client(), stream=False)
    assert text == answer_of("backup")
    assert headers["x-pilotfish-failover-reason"] == "stream_interrupted"


async def test_a_stream_cut_after_content_reached_the_client_ends_with_an_error_not_a_truncated_success(
    sidecar: Sidecar, mocks
):
    mocks["primary"].set_fault(mode="cut", after_chunks=3)
    received = ""
    stream = await sidecar.client().chat.completions.create(model="workhorse", messages=USER, stream=True)
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            if chunk.choices:
                received += chunk.choices[0].delta.content or ""
    assert answer_of("primary").startswith(received) and received != answer_of("primary")
    assert "stream_interrupted" in str(caught.value)
    assert mocks["backup"].stats.requests == 0
    assert (await sidecar.last_request_line())["outcome"] == "interrupted"


@STREAM
async def test_a_bad_request_is_answered_once_and_not_retried_on_every_member(sidecar: Sidecar, mocks, stream):
    mocks["primary"].set_fault(mode="status", status=400)
    with pytest.raises(openai.BadRequestError) as caught:
        await complete(sidecar.client(), stream=stream)
    assert caught.value.code == "invalid_request"
    assert mocks["primary"].stats.requests == 1
    assert mocks["backup"].stats.requests == 0


async def test_content_filtered_by_the_provider_is_not_sent_to_another_vendor(sidecar: Sidecar, mocks):
    mocks["primary"].set_fault(mode="content-filter")
    with pytest.raises(openai.BadRequestError) as caught:
        await complete(sidecar.client(), stream=False)
    assert caught.value.code == "content_filter"
    assert mocks["backup"].stats.requests == 0


async def test_context_length_exceeded_moves_only_to_a_member_with_a_larger_window(local_sidecar, mocks):
    sidecar = await local_sidecar("""\
        apiVersion: pilotfish.dev/v1alpha1
        kind: ModelClass
        metadata: {name: workhorse}
        spec:
          members:
            - {credentialRef: primary, model: small, contextWindow: 8192}
            - {credentialRef: backup, model: same-size, contextWindow: 8192}
            - {credentialRef: third, model: large, contextWindow: 200000}
        """)
    mocks["primary"].set_fault(mode="context-length")
    text, headers = await complete(sidecar.client(), stream=False)
    assert text == answer_of("third")
    assert headers["x-pilotfish-failover-reason"] == "context_length_exceeded"
    assert mocks["backup"].stats.requests == 0


async def test_members_whose_declared_window_is_too_small_are_skipped_before_any_call(local_sidecar, mocks):
    sidecar = await local_sidecar("""\
        apiVersion: pilotfish.dev/v1alpha1
        kind: ModelClass
        metadata: {name: workhorse}
        spec:
          members:
            - {credentialRef: primary, model: tiny, contextWindow: 50}
            - {credentialRef: backup, model: big, contextWindow: 100000}
        """)
    long_prompt = [{"role": "user", "content": "word " * 400}]
    text, headers = await complete(sidecar.client(), stream=False, messages=long_prompt)
    assert text == answer_of("backup")
    assert headers["x-pilotfish-attempts"] == "1"
    assert headers["x-pilotfish-failover-reason"] == "context_window_too_small"
    assert mocks["primary"].stats.requests == 0


@STREAM
async def test_when_every_member_fails_the_client_gets_one_clear_error(sidecar: Sidecar, mocks, stream):
    mocks["primary"].set_fault(mode="status", status=500)
    mocks["backup"].set_fault(mode="status", status=503)
    with pytest.raises(openai.APIStatusError) as caught:
        await complete(sidecar.client(), stream=stream)
    error = caught.value
    assert error.status_code == 503
    assert error.code == "all_members_failed"
    assert "primary/model-a: server_error (500)" in error.message
    assert "backup/model-b: overloaded (503)" in error.message


async def test_a_rate_limited_member_is_not_asked_again_until_its_retry_after(sidecar: Sidecar, mocks):
    mocks["primary"].set_fault(mode="rate-limit", retry_after=30)
    await complete(sidecar.client(), stream=False)
    text, headers = await complete(sidecar.client(), stream=False)
    assert text == answer_of("backup")
    assert headers["x-pilotfish-attempts"] == "1"
    assert headers["x-pilotfish-failover-reason"] == "circuit_open"
    assert mocks["primary"].stats.requests == 1  # no 429 cascade: the member is left alone
    member = await sidecar.member("workhorse", "primary/model-a")
    assert member["state"] == "open" and member["cooldownLeftSeconds"] > 20


async def test_the_breaker_opens_after_the_threshold_and_recovers_with_a_single_probe(sidecar: Sidecar, mocks):
    mocks["primary"].set_fault(mode="status", status=500)
    for _ in range(2):
        await complete(sidecar.client(), stream=False)
    assert (await sidecar.member("workhorse", "primary/model-a"))["state"] == "open"
    calls_while_open = await calls_to_an_open_member(sidecar, mocks["primary"])
    mocks["primary"].set_fault(mode="latency", delay=0.3)  # healthy again, and the probe takes a while…
    await eventually(  # cooldownSeconds: 1, with up to 10% jitter
        lambda: sidecar.member("workhorse", "primary/model-a"), lambda m: m["state"] == "half_open", what="half-open"
    )
    results = await asyncio.gather(*(complete(sidecar.client(), stream=False) for _ in range(5)))
    # …so all five arrive while the probe is out: exactly one reaches the primary, no herd
    assert mocks["primary"].stats.requests == calls_while_open + 1
    assert sum(text == answer_of("primary") for text, _ in results) == 1
    text, _ = await complete(sidecar.client(), stream=False)
    assert text == answer_of("primary")
    assert (await sidecar.member("workhorse", "primary/model-a"))["state"] == "closed"


async def calls_to_an_open_member(sidecar: Sidecar, mock: Any) -> int:
    """One request served while the member's circuit stayed open the whole time must not reach it. On a busy
    machine the 1 s cooldown may end before the request arrives, and the request rightly probes (a failure
    that reopens the circuit): then try again. Returns the member's calls so far."""
    for _ in range(5):
        before, calls = await sidecar.member("workhorse", "primary/model-a"), mock.stats.requests
        await complete(sidecar.client(), stream=False)
        after = await sidecar.member("workhorse", "primary/model-a")
        if after["state"] == "open" and after["consecutiveFailures"] == before["consecutiveFailures"]:
            assert mock.stats.requests == calls  # open throughout: not called at all
            return calls
    pytest.fail("the circuit never stayed open for the length of one request in 5 tries")


async def test_a_pinned_conversation_stays_on_its_member_while_it_is_healthy(local_sidecar, mocks):
    sidecar = await local_sidecar("""\
        apiVersion: pilotfish.dev/v1alpha1
        kind: ModelClass
        metadata: {name: workhorse}
        spec:
          members:
            - {credentialRef: primary, model: a, priority: 0}
            - {credentialRef: backup, model: b, priority: 0}
          routing: {pinning: {header: x-conversation-id}}
          health: {failureThreshold: 1, cooldownSeconds: 30}
        """)
    client = sidecar.client()
    for conversation in ("c-1", "c-2", "c-3", "c-4"):
        first = await client.chat.completions.create(
            model="workhorse", messages=USER, extra_headers={"x-conversation-id": conversation}
        )
        for _ in range(4):
            again = await client.chat.completions.create(
                model="workhorse", messages=USER, extra_headers={"x-conversation-id": conversation}
            )
            assert again.choices[0].message.content == first.choices[0].message.content
    pinned_to_primary = await client.chat.completions.create(
        model="workhorse", messages=USER, extra_headers={"x-conversation-id": "moving"}
    )
    owner = "primary" if pinned_to_primary.choices[0].message.content == answer_of("primary") else "backup"
    other = "backup" if owner == "primary" else "primary"
    mocks[owner].set_fault(mode="status", status=503)
    moved = await client.chat.completions.create(
        model="workhorse", messages=USER, extra_headers={"x-conversation-id": "moving"}
    )
    assert moved.choices[0].message.content == answer_of(other)


async def test_the_answer_reports_the_model_that_actually_answered(sidecar: Sidecar, mocks):
    mocks["primary"].set_fault(mode="status", status=503)
    response = await sidecar.client().chat.completions.create(model="workhorse", messages=USER)
    assert response.model == "model-b"
    assert mocks["backup"].stats.last_model == "model-b"


async def test_a_class_whose_circuits_are_all_open_still_tries_the_member_closest_to_recovery(local_sidecar, mocks):
    sidecar = await local_sidecar("""\
        apiVersion: pilotfish.dev/v1alpha1
        kind: ModelClass
        metadata: {name: workhorse}
        spec:
          members:
            - {credentialRef: primary, model: a}
            - {credentialRef: backup, model: b}
          health: {failureThreshold: 1, cooldownSeconds: 3600}
        """)
    # Both circuits must still be open when the second request is planned, however slow the machine:
    # the primary opens for 300 s (its Retry-After), the backup for an hour, so the primary is the
    # closest to recovery and neither recovers while the test runs. (It once opened for 5 s, and on a
    # busy machine the primary had recovered before the states were read.)
    mocks["backup"].set_fault(mode="status", status=500)
    mocks["primary"].set_fault(mode="rate-limit", retry_after=300)
    with pytest.raises(openai.APIStatusError):
        await complete(sidecar.client(), stream=False)
    assert [(await sidecar.member("workhorse", m))["state"] for m in ("primary/a", "backup/b")] == ["open", "open"]
    mocks["primary"].set_fault(mode="ok")
    text, headers = await complete(sidecar.client(), stream=False)
    assert text == answer_of("primary")  # one attempt, not an error without trying
    assert headers["x-pilotfish-attempts"] == "1"


async def test_one_transient_500_is_retried_on_the_same_member_and_the_backup_is_not_called(sidecar: Sidecar, mocks):
    mocks["primary"].set_fault(mode="status", status=500, count=1)
    text, headers = await complete(sidecar.client(), stream=False)
    assert text == answer_of("primary") and headers["x-pilotfish-attempts"] == "2"
    assert mocks["backup"].stats.requests == 0


async def test_a_short_retry_after_is_waited_out_on_the_same_member_and_reported_as_a_retry(sidecar: Sidecar, mocks):
    mocks["primary"].set_fault(mode="rate-limit", retry_after=0.2, count=1)
    text, headers = await complete(sidecar.client(), stream=True)
    assert text == answer_of("primary") and headers["x-pilotfish-attempts"] == "2"
    assert mocks["backup"].stats.requests == 0
    assert (await sidecar.member("workhorse", "primary/model-a"))["state"] == "closed"
    # it never moved: a retry, with its reason, and not a failover in the headers, the log or the metrics
    assert "x-pilotfish-failover-reason" not in headers
    assert headers["x-pilotfish-retry-reason"] == "rate_limited"
    line = await sidecar.last_request_line()
    assert (line["retry_reason"], line["failover_reason"]) == ("rate_limited", None)
    metrics = await sidecar.metrics()
    assert (
        'pilotfish_retries_total{class="workhorse",provider="openai-compatible",reason="rate_limited"} 1.0' in metrics
    )
    assert "pilotfish_failovers_total{" not in metrics


# the default class with a third member: maxAttempts 3 (the default) = members, so no attempt is spare
THREE_MEMBERS = DEFAULT_CLASS.replace(
    "    - {credentialRef: backup, model: model-b}\n",
    "    - {credentialRef: backup, model: model-b}\n    - {credentialRef: third, model: model-c}\n",
)
assert "third" in THREE_MEMBERS


@STREAM
async def test_a_short_retry_after_is_waited_out_even_when_every_attempt_has_a_member_waiting(
    local_sidecar, mocks, stream
):
    sidecar = await local_sidecar(THREE_MEMBERS)  # maxAttempts 3 (the default) = members: no spare attempt
    mocks["primary"].set_fault(mode="rate-limit", retry_after=0.2, count=1)
    text, headers = await complete(sidecar.client(), stream=stream)
    assert text == answer_of("primary") and headers["x-pilotfish-attempts"] == "2"
    assert mocks["backup"].stats.requests == 0 and mocks["third"].stats.requests == 0  # no 429 cascade
    assert (await sidecar.member("workhorse", "primary/model-a"))["state"] == "closed"
    assert headers["x-pilotfish-retry-reason"] == "rate_limited"


async def test_a_transient_500_with_every_attempt_spoken_for_fails_over_without_a_quick_retry(local_sidecar, mocks):
    sidecar = await local_sidecar(THREE_MEMBERS)
    mocks["primary"].set_fault(mode="status", status=500, count=1)
    text, headers = await complete(sidecar.client(), stream=False)
    assert text == answer_of("backup") and headers["x-pilotfish-attempts"] == "2"
    assert headers["x-pilotfish-failover-reason"] == "server_error" and "x-pilotfish-retry-reason" not in headers


async def test_a_long_retry_after_fails_over_at_once_and_keeps_the_member_out_for_that_long(sidecar: Sidecar, mocks):
    mocks["primary"].set_fault(mode="rate-limit", retry_after=30)
    text, headers = await complete(sidecar.client(), stream=False)
    assert text == answer_of("backup") and headers["x-pilotfish-attempts"] == "2"
    assert (await sidecar.member("workhorse", "primary/model-a"))["state"] == "open"
    text, headers = await complete(sidecar.client(), stream=False)
    assert text == answer_of("backup") and mocks["primary"].stats.requests == 1  # not called again


async def test_refused_content_is_answered_once_unless_the_class_sends_it_elsewhere(local_sidecar, mocks):
    strict = await local_sidecar()
    mocks["primary"].set_fault(mode="content-filter")
    with pytest.raises(openai.BadRequestError) as refused:
        await strict.client().chat.completions.create(model="workhorse", messages=USER)
    assert refused.value.code == "content_filter" and mocks["backup"].stats.requests == 0
    lenient = await local_sidecar(DEFAULT_CLASS.replace("routing: {", "routing: {onContentFilter: failover, "))
    answer = await lenient.client().chat.completions.create(model="workhorse", messages=USER)
    assert answer.choices[0].message.content == answer_of("backup")
