"""Members' provider quotas as an app sees them, through `pilotfish local` (the one process is the whole fleet,
so it counts in-process) and the openai SDK.

The primary mock enforces the same rpm as its member declares and answers 429 beyond it, as the vendor would:
every request past the share must go to the next member before the provider has to say 429, and be recorded
as a `quota_spent` failover in the header, the request log and the metrics. With every member spent the app
gets a 429 with Retry-After and its own error code.
"""

from __future__ import annotations

import math
import time

import openai
import pytest
from tests import waiting
from tests.integration.conftest import USER, answer_of, complete

QUOTA_CLASS = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: primary, model: model-a, %s}
    - {credentialRef: backup, model: model-b%s}
  timeouts: {connectSeconds: 1, firstTokenSeconds: 5, totalSeconds: 20}
"""
ROOM = 15.0  # seconds of the minute a test needs: its requests take milliseconds each


def same_minute(started: int) -> None:
    if waiting.minute() != started:
        pytest.skip("the requests straddled a minute boundary on this machine: quotas were counted in two windows")


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
async def test_past_its_rpm_a_member_is_skipped_before_its_provider_says_429_and_the_next_member_serves(
    local_sidecar, mocks, stream
):
    mocks["primary"].set_fault(rpm=3, retry_after=30)  # the provider's own quota: a 429 beyond it
    sidecar = await local_sidecar(QUOTA_CLASS % ("rpm: 3", ""))
    client = sidecar.client()
    minute = await waiting.minute_with_room(ROOM)
    served = [await complete(client, stream=stream) for _ in range(6)]
    same_minute(minute)
    assert [text for text, _ in served] == [answer_of("primary")] * 3 + [answer_of("backup")] * 3
    assert [h.get("x-pilotfish-failover-reason") for _, h in served] == [None] * 3 + ["quota_spent"] * 3
    assert mocks["primary"].stats.requests == 3
    assert mocks["primary"].stats.by_mode["rate-limit"] == 0  # the provider never had to refuse one
    line = await sidecar.last_request_line()
    assert line["failover_reason"] == "quota_spent"
    assert line["skipped"] == [{"member": "primary/model-a", "reason": "quota_spent"}]
    metrics = await sidecar.metrics()
    assert (
        'pilotfish_failovers_total{class="workhorse",from_provider="openai-compatible",reason="quota_spent"} 3.0'
        in metrics
    )


async def test_past_its_tpm_a_member_is_skipped_once_the_tokens_it_answered_with_reach_the_quota(local_sidecar, mocks):
    sidecar = await local_sidecar(QUOTA_CLASS % ("tpm: 1", ""))
    client = sidecar.client()
    minute = await waiting.minute_with_room(ROOM)
    first = await client.chat.completions.create(model="workhorse", messages=USER)  # type: ignore[arg-type]
    second, headers = await complete(client, stream=False)
    same_minute(minute)
    assert first.usage is not None and first.usage.total_tokens > 1  # counted once the answer said its cost
    assert first.choices[0].message.content == answer_of("primary")
    assert (second, headers.get("x-pilotfish-failover-reason")) == (answer_of("backup"), "quota_spent")


async def test_when_every_members_quota_is_spent_the_app_gets_429_with_retry_after_and_a_precise_code(
    local_sidecar, mocks
):
    sidecar = await local_sidecar(QUOTA_CLASS % ("rpm: 2", ", rpm: 1"))
    client = sidecar.client()
    minute = await waiting.minute_with_room(ROOM)
    served = [await complete(client, stream=False) for _ in range(3)]
    minute_left = (minute + 1) * 60 - time.time()  # the Retry-After can be no more than this
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="workhorse", messages=USER)  # type: ignore[arg-type]
    minute_left_after = (minute + 1) * 60 - time.time()  # and no less than this
    same_minute(minute)
    assert [text for text, _ in served] == [answer_of("primary")] * 2 + [answer_of("backup")]
    error = caught.value
    assert error.code == "member_quotas_spent"
    assert "primary/model-a: quota_spent" in error.message and "backup/model-b: quota_spent" in error.message
    retry_after = int(error.response.headers["retry-after"])
    assert math.floor(minute_left_after) <= retry_after <= math.ceil(minute_left)  # when the minute ends
    assert mocks["primary"].stats.requests == 2 and mocks["backup"].stats.requests == 1
