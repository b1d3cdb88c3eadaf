"""Streams cut after they reached the client: finished by a member that can continue them, or ended with a
clean in-band error. The client gets the canonical answer exactly once, never a truncated success."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from tests.integration.conftest import USER, streamed

from pilotfish.mocks import answers

RECOVERING = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: primary, model: model-a}
    - {credentialRef: claude, model: claude-sonnet-4-5}
    - {credentialRef: gemini, model: gemini-2.5-pro}
  timeouts: {connectSeconds: 1, firstTokenSeconds: 1, totalSeconds: 20}
  health: {failureThreshold: 5, cooldownSeconds: 1}
"""


# how each mid-stream fault is classified: a cut or a stall is an interrupted stream, and OpenAI's in-stream
# error event says what went wrong
BROKEN_AS = {"cut": "stream_interrupted", "stall": "stream_interrupted", "stream-error": "server_error"}


@pytest.mark.parametrize("mode", ["cut", "stall", "stream-error"])
async def test_a_broken_stream_is_finished_by_a_member_that_can_continue_it(local_sidecar, mocks, mode):
    sidecar = await local_sidecar(RECOVERING)
    mocks["primary"].set_fault(mode=mode, after_chunks=4)
    text, models, finish = (await streamed(sidecar)).whole()
    primary_words = answers.words("primary")
    assert text == "".join(primary_words[:4]) + answers.ANSWER.format(name="primary")[len("".join(primary_words[:4])) :]
    assert text == answers.ANSWER.format(name="primary")  # whole, once: no word lost or repeated
    assert finish == "stop"
    assert models == ["model-a", "claude-sonnet-4-5"]  # honest: each chunk names who wrote it
    prefill = mocks["claude"].stats.last_body["messages"][-1]
    assert prefill["role"] == "assistant" and "".join(primary_words[:4]).rstrip() in str(prefill["content"])
    metrics = await sidecar.metrics()
    assert (
        'pilotfish_stream_recoveries_total{class="workhorse",from_provider="openai-compatible",result="success",to_provider="anthropic"} 1.0'
        in metrics
    )
    log = await sidecar.last_request_line(timeout=5)
    assert log["outcome"] == "success"
    # the interrupted attempt is recorded as failed, and the continuation as the one that served
    assert [(a["member"], a["result"]) for a in log["attempts"]] == [
        ("primary/model-a", BROKEN_AS[mode]),
        ("claude/claude-sonnet-4-5", "success"),
    ]


async def test_a_recovery_keeps_the_requests_one_total_deadline(local_sidecar, mocks):
    # the primary stalls after 3 chunks and is given up at streamIdleSeconds (2 s), leaving under 0.5 s of
    # totalSeconds; claude would continue the stream but needs 1 s to start: with a fresh deadline per
    # member (as before) it would finish the answer well past totalSeconds
    sidecar = await local_sidecar(
        RECOVERING.replace("    - {credentialRef: gemini, model: gemini-2.5-pro}\n", "").replace(
            "timeouts: {connectSeconds: 1, firstTokenSeconds: 1, totalSeconds: 20}",
            "timeouts: {connectSeconds: 1, firstTokenSeconds: 2, streamIdleSeconds: 2, totalSeconds: 2.5}",
        )
    )
    mocks["primary"].set_fault(mode="stall", after_chunks=3)
    mocks["claude"].set_fault(mode="slow-first-token", delay=1)
    with pytest.raises(openai.APIError) as raised:
        (await streamed(sidecar)).whole()
    assert "incomplete" in str(raised.value)
    log = await sidecar.last_request_line(timeout=10)
    assert log["outcome"] == "interrupted"
    results = [(a["member"], a["result"]) for a in log["attempts"]]
    # the continuation, if any time was left for it at all, ran out with the request's deadline
    assert results in (
        [("primary/model-a", "stream_interrupted")],
        [("primary/model-a", "stream_interrupted"), ("claude/claude-sonnet-4-5", "total_timeout")],
    )


async def test_when_no_member_can_continue_the_stream_ends_with_an_in_band_error_and_no_done(local_sidecar, mocks):
    sidecar = await local_sidecar(
        """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: primary, model: model-a}
    - {credentialRef: backup, model: model-b}
"""
    )
    mocks["primary"].set_fault(mode="cut", after_chunks=3)
    with pytest.raises(openai.APIError) as raised:
        (await streamed(sidecar)).whole()
    assert "incomplete" in str(raised.value)
    assert mocks["backup"].stats.requests == 0  # openai-compatible cannot prefill: never sent one
    metrics = await sidecar.metrics()
    assert 'result="failed",to_provider="none"} 1.0' in metrics


async def test_a_stream_of_tool_calls_is_never_continued(local_sidecar, mocks):
    sidecar = await local_sidecar(RECOVERING)
    mocks["primary"].set_fault(mode="cut", after_chunks=2)
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}]
    with pytest.raises(openai.APIError):
        (await streamed(sidecar, tools=tools)).whole()
    assert mocks["claude"].stats.requests == 0 and mocks["gemini"].stats.requests == 0


async def test_gemini_continues_a_stream_openai_broke_with_an_in_stream_error(local_sidecar, mocks):
    sidecar = await local_sidecar(RECOVERING.replace("    - {credentialRef: claude, model: claude-sonnet-4-5}\n", ""))
    mocks["primary"].set_fault(mode="stream-error", after_chunks=5)
    text, models, _ = (await streamed(sidecar)).whole()
    assert text == answers.ANSWER.format(name="primary") and models == ["model-a", "gemini-2.5-pro"]


async def test_a_prefill_rejected_by_a_member_that_claimed_it_is_not_the_error_the_client_gets(local_sidecar, mocks):
    claims = f"""\
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: claims-prefill}}
spec:
  provider: openai-compatible
  baseURL: {mocks["backup"].url}
  apiKeySecretRef: {{name: test-keys, key: backup}}
  capabilities: {{prefill: true}}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {{name: workhorse}}
spec:
  members:
    - {{credentialRef: primary, model: model-a}}
    - {{credentialRef: claims-prefill, model: model-b}}
"""
    sidecar = await local_sidecar(claims)
    mocks["primary"].set_fault(mode="cut", after_chunks=3)
    mocks["backup"].set_fault(mode="no-prefill")
    with pytest.raises(openai.APIError) as raised:
        (await streamed(sidecar)).whole()
    assert mocks["backup"].stats.requests == 1  # it was asked, since it claimed it could
    assert "incomplete" in str(raised.value) and "prefill" not in str(raised.value)


async def test_a_malformed_event_is_skipped_and_counted_and_the_stream_goes_on(local_sidecar, mocks):
    sidecar = await local_sidecar(RECOVERING)
    mocks["primary"].set_fault(mode="malformed", after_chunks=3)
    text, models, finish = (await streamed(sidecar)).whole()
    assert text == answers.ANSWER.format(name="primary") and models == ["model-a"] and finish == "stop"
    assert 'pilotfish_stream_malformed_events_total{class="workhorse",provider="openai-compatible"} 1.0' in (
        await sidecar.metrics()
    )


@pytest.mark.parametrize("stream", [True, False])
async def test_a_stream_that_finished_without_done_is_complete_at_once_not_at_a_timeout(local_sidecar, mocks, stream):
    sidecar = await local_sidecar(RECOVERING)
    mocks["primary"].set_fault(mode="no-done")
    if stream:
        text, models, finish = (await streamed(sidecar)).whole()
    else:
        answer = await sidecar.client().chat.completions.create(model="workhorse", messages=USER)
        text, models, finish = answer.choices[0].message.content, [answer.model], answer.choices[0].finish_reason
    assert text == answers.ANSWER.format(name="primary") and models == ["model-a"] and finish == "stop"
    log = await sidecar.last_request_line(timeout=5)
    assert [a["result"] for a in log["attempts"]] == ["success"]  # no first-token timeout, no failover
    assert mocks["claude"].stats.requests == 0


async def test_a_hold_back_window_makes_an_early_cut_invisible_even_without_a_member_that_can_continue(
    local_sidecar, mocks
):
    sidecar = await local_sidecar(
        """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: primary, model: model-a}
    - {credentialRef: backup, model: model-b}
  streaming: {holdBackTokens: 8}
"""
    )
    mocks["primary"].set_fault(mode="cut", after_chunks=5)
    text, models, finish = (await streamed(sidecar)).whole()
    assert text == answers.ANSWER.format(name="backup") and models == ["model-b"] and finish == "stop"
    mocks["primary"].set_fault(mode="cut", after_chunks=10)  # past the window: no continuation possible
    with pytest.raises(openai.APIError):
        (await streamed(sidecar)).whole()


async def test_a_stall_longer_than_stream_idle_seconds_is_recovered_even_under_a_long_first_token_timeout(
    local_sidecar, mocks
):
    sidecar = await local_sidecar(
        RECOVERING.replace(
            "timeouts: {connectSeconds: 1, firstTokenSeconds: 1, totalSeconds: 20}",
            "timeouts: {connectSeconds: 1, firstTokenSeconds: 10, totalSeconds: 20, streamIdleSeconds: 0.5}",
        )
    )
    mocks["primary"].set_fault(mode="stall", after_chunks=4)
    text, models, _ = (await streamed(sidecar)).whole()
    assert text == answers.ANSWER.format(name="primary") and models == ["model-a", "claude-sonnet-4-5"]
    log = await sidecar.last_request_line(timeout=5)
    assert log["attempts"][0]["result"] == "stream_interrupted"


async def test_a_client_that_goes_away_cancels_the_upstream_call(local_sidecar, mocks):
    sidecar = await local_sidecar(
        RECOVERING.replace(
            "timeouts: {connectSeconds: 1, firstTokenSeconds: 1, totalSeconds: 20}",
            "timeouts: {connectSeconds: 1, firstTokenSeconds: 30, totalSeconds: 60}",
        )
    )
    mocks["primary"].set_fault(mode="stall", after_chunks=3)  # would hold the request for 30 s
    body = {"model": "workhorse", "stream": True, "messages": USER}
    async with (
        aiohttp.ClientSession() as session,
        session.post(sidecar.api + "/v1/chat/completions", json=body) as response,
    ):
        await response.content.readline()  # the stream has started
    log = await sidecar.last_request_line(timeout=5)  # written when the handler ends: long before the 30 s stall
    assert log["outcome"] == "cancelled"
    assert mocks["claude"].stats.requests == 0  # a client that left is not served by anyone else


async def test_the_final_usage_of_a_recovered_stream_adds_up_both_attempts(local_sidecar, mocks):
    sidecar = await local_sidecar(RECOVERING)
    mocks["primary"].set_fault(mode="cut", after_chunks=4)
    stream = await sidecar.client().chat.completions.create(
        model="workhorse", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    usage = [chunk.usage async for chunk in stream if chunk.usage is not None]
    assert len(usage) == 1
    asked = answers.prompt_tokens([m["content"] for m in USER])
    words = len(answers.words("primary"))
    # the cut attempt: the prompt, and 4 delivered chunks; the continuation: the prompt plus those 4 as prefill
    assert usage[0].completion_tokens == words
    assert usage[0].prompt_tokens == asked + (asked + 4)
    assert usage[0].total_tokens == usage[0].prompt_tokens + usage[0].completion_tokens


async def test_an_anthropic_sdk_client_gets_the_recovered_answer_whole(local_sidecar, mocks):
    sidecar = await local_sidecar(RECOVERING)
    mocks["primary"].set_fault(mode="stall", after_chunks=4)
    client = sidecar.anthropic_client()
    async with client.messages.stream(model="workhorse", max_tokens=200, messages=USER) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == answers.ANSWER.format(name="primary")
    assert final.stop_reason == "end_turn"


async def test_a_stream_interrupted_for_good_logs_the_tokens_and_cost_of_what_was_delivered(local_sidecar, mocks):
    pricing = "{inputPerMillionTokens: 1.0, outputPerMillionTokens: 2.0}"
    sidecar = await local_sidecar(
        "apiVersion: pilotfish.dev/v1alpha1\nkind: ModelClass\nmetadata: {name: workhorse}\n"
        f"spec: {{members: [{{credentialRef: primary, model: model-a, pricing: {pricing}}}]}}\n"
    )
    mocks["primary"].set_fault(mode="cut", after_chunks=9)
    delivered = []
    with pytest.raises(openai.APIError):
        stream = await sidecar.client().chat.completions.create(model="workhorse", messages=USER, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                delivered.append(chunk.choices[0].delta.content)
    log = await sidecar.last_request_line(timeout=5)
    assert log["outcome"] == "interrupted"
    assert log["tokens_out"] == len(delivered) == 9  # about a token a delivered chunk, as a recovery counts them
    assert log["tokens_in"] > 0
    assert log["cost_usd"] == pytest.approx((log["tokens_in"] * 1.0 + 9 * 2.0) / 1_000_000)
