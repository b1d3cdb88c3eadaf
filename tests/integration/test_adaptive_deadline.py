"""The adaptive first-token deadline, seen through a real sidecar: a member that is usually fast and goes
silent is abandoned at its own deadline, far under firstTokenSeconds; a member that is always slow keeps
its long normal. Asserted through the deadline each attempt was given and where requests went, never
through wall-clock speed."""

from __future__ import annotations

import asyncio

from tests.integration.conftest import Sidecar, answer_of, complete

TWO_MEMBERS = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {{name: workhorse}}
spec:
  members:
    - {{credentialRef: primary, model: model-a}}
    - {{credentialRef: backup, model: model-b}}
{timeouts}"""


async def _request_line(sidecar: Sidecar, number: int) -> dict[str, object]:
    """The request log line of the ``number``-th request (from 1): written as its response ends."""
    for _ in range(500):
        lines = [r for r in sidecar.log_records() if r.get("msg") == "request"]
        if len(lines) >= number:
            return lines[number - 1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no request log line {number}")


async def test_a_usually_fast_member_silent_for_twenty_seconds_is_abandoned_at_its_adaptive_deadline(
    local_sidecar, mocks
):
    sidecar = await local_sidecar(TWO_MEMBERS.format(timeouts=""))  # defaults: firstTokenSeconds 15
    for _ in range(20):  # its normal: 20 first tokens in milliseconds
        assert (await complete(sidecar.client(), stream=True))[0] == answer_of("primary")
    p95 = float((await sidecar.member("workhorse", "primary/model-a"))["ttftP95Seconds"])  # type: ignore[arg-type]
    mocks["primary"].set_fault(mode="slow-first-token", delay=20)
    text, headers = await complete(sidecar.client(), stream=True)
    assert text == answer_of("backup") and headers["x-pilotfish-failover-reason"] == "first_token_timeout"
    attempt = (await _request_line(sidecar, 21))["attempts"][0]  # type: ignore[index]
    assert attempt["member"] == "primary/model-a" and attempt["result"] == "first_token_timeout"
    # max(2 s floor, 4 x its p95), not 15 s: with a normal under 0.75 s that is at most 3 s
    assert abs(attempt["first_token_deadline_ms"] - max(2.0, 4 * p95) * 1000) <= 1.0
    assert attempt["first_token_deadline_ms"] < 15_000


async def test_a_member_that_always_thinks_long_is_not_cut_below_its_own_normal(local_sidecar, mocks):
    timeouts = "  timeouts: {firstTokenSeconds: 10, adaptiveFirstToken: {minSamples: 5, floorSeconds: 0.5}}\n"
    sidecar = await local_sidecar(TWO_MEMBERS.format(timeouts=timeouts))
    mocks["primary"].set_fault(mode="slow-first-token", delay=1.0)  # its normal: a second to the first token
    for _ in range(7):
        text, headers = await complete(sidecar.client(), stream=True)
        assert text == answer_of("primary") and headers["x-pilotfish-attempts"] == "1"
    attempt = (await _request_line(sidecar, 7))["attempts"][0]  # type: ignore[index]
    assert 1000 <= attempt["first_token_deadline_ms"] < 10_000  # adaptive (4 x its p95), yet above its normal
    assert mocks["backup"].stats.requests == 0


async def test_a_class_that_hedges_asks_the_next_member_at_the_adaptive_deadline_and_keeps_the_first_answer(
    local_sidecar, mocks
):
    routing = "  routing: {hedge: true}\n  timeouts: {adaptiveFirstToken: {minSamples: 5, floorSeconds: 0.5}}\n"
    sidecar = await local_sidecar(TWO_MEMBERS.format(timeouts=routing))
    for _ in range(5):  # its normal: first tokens in milliseconds
        assert (await complete(sidecar.client(), stream=True))[0] == answer_of("primary")
    mocks["primary"].set_fault(mode="slow-first-token", delay=20)
    text, _ = await complete(sidecar.client(), stream=True)
    assert text == answer_of("backup")  # the hedge answered first
    line = await _request_line(sidecar, 6)
    results = {a["member"]: a["result"] for a in line["attempts"]}  # type: ignore[union-attr]
    assert results == {"primary/model-a": "first_token_timeout", "backup/model-b": "success"}
    assert mocks["primary"].stats.requests == 6 and mocks["backup"].stats.requests == 1
    assert 'pilotfish_hedges_total{class="workhorse",result="won"} 1.0' in await sidecar.metrics()
