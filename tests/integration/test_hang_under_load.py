"""A member that starts to accept requests and never answer, while 20 clients send without pause.

Default settings, two members. The requests in flight when the primary hangs wait at most its adaptive
first-token deadline (its own normal times four, at least 2 s); the first such timeout opens its circuit
for every request after it and cuts the others still waiting there; each of them moves to the healthy
backup without spending the retry budget: nobody gets an error. Timing is asserted through what the
sidecar recorded (the deadline each attempt was given, how each attempt on the hung member ended, which
attempts reached it), never through wall-clock speed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.integration.conftest import USER, Sidecar, answer_of

TWO_MEMBERS_DEFAULTS = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: primary, model: model-a}
    - {credentialRef: backup, model: model-b}
"""
CLIENTS = 20
REQUESTS_EACH = 3


async def _clients(sidecar: Sidecar, *, clients: int, each: int) -> list[str | BaseException]:
    """``clients`` concurrent clients, each sending ``each`` requests back to back; every answer or error."""
    # a generous client timeout: what is asserted is the deadline the sidecar recorded for each attempt,
    # and on a machine starved by other jobs a healthy answer can take far longer than it would alone.
    # Closed when done (``Sidecar.sdk_clients`` says why a client must never be left to the collector).
    client = sidecar.client(timeout=300)

    async def one() -> list[str | BaseException]:
        out: list[str | BaseException] = []
        for _ in range(each):
            try:
                answer = await client.chat.completions.create(model="workhorse", messages=USER)
                out.append(answer.choices[0].message.content or "")
            except Exception as exc:  # every failure is a result here
                out.append(exc)
        return out

    async with client:
        results = await asyncio.gather(*(one() for _ in range(clients)))
    return [answer for per_client in results for answer in per_client]


async def _samples(sidecar: Sidecar, member_id: str) -> dict[str, object]:
    return await sidecar.member("workhorse", member_id)


@pytest.mark.timeout(600)  # 120 requests; a starved machine stretches them, never their recorded deadlines
async def test_a_hang_under_twenty_clients_fails_no_request_and_waits_only_the_adaptive_deadline(local_sidecar, mocks):
    sidecar = await local_sidecar(TWO_MEMBERS_DEFAULTS)
    warm = await _clients(sidecar, clients=CLIENTS, each=2)  # the primary learns its normal: 40 first tokens
    assert warm == [answer_of("primary")] * (CLIENTS * 2)
    primary = await _samples(sidecar, "primary/model-a")
    assert primary["ttftSamples"] >= 20  # the adaptive deadline applies from 20
    p95 = float(primary["ttftP95Seconds"])  # type: ignore[arg-type]
    adaptive_ms = min(15.0, max(2.0, 4 * p95)) * 1000

    mocks["primary"].set_fault(mode="hang")
    mocks["primary"].stats.reset()
    lines_before = len(sidecar.log_records())
    results = await _clients(sidecar, clients=CLIENTS, each=REQUESTS_EACH)

    assert results == [answer_of("backup")] * (CLIENTS * REQUESTS_EACH)  # 0 failed requests
    # only requests already in flight before the first timeout reached the hung member: the circuit
    # opened for everyone at that first timeout, not after each request had waited on its own
    assert mocks["primary"].stats.requests <= CLIENTS
    lines: list[dict[str, Any]] = []
    for _ in range(500):  # each line is written as its response ends: give the pipe a moment
        lines = [r for r in sidecar.log_records()[lines_before:] if r.get("msg") == "request"]
        if len(lines) >= CLIENTS * REQUESTS_EACH:
            break
        await asyncio.sleep(0.02)
    assert len(lines) == CLIENTS * REQUESTS_EACH and all(line["outcome"] == "success" for line in lines)
    on_primary = [a for line in lines for a in line["attempts"] if a["member"] == "primary/model-a"]
    # the first to reach its deadline found the member hung; those still waiting then were cut at once
    assert any(a["result"] == "first_token_timeout" for a in on_primary)
    assert all(a["result"] in ("first_token_timeout", "cut_member_hung") for a in on_primary)
    # each was given the adaptive deadline drawn from the primary's own normal, not firstTokenSeconds (15 s)
    # (the debug page rounds the p95 to 0.1 ms, so the deadline is compared within 1 ms)
    assert all(abs(a["first_token_deadline_ms"] - adaptive_ms) <= 1.0 for a in on_primary)
    assert adaptive_ms < 15_000
    skipped = [line for line in lines if {"member": "primary/model-a", "reason": "circuit_open"} in line["skipped"]]
    assert len(skipped) + len(on_primary) == len(lines)
    assert (await _samples(sidecar, "primary/model-a"))["state"] == "open"


async def _request_lines(sidecar: Sidecar, count: int) -> list[dict[str, Any]]:
    """The first ``count`` request log lines: each is written as its response ends."""
    for _ in range(500):
        lines = [r for r in sidecar.log_records() if r.get("msg") == "request"]
        if len(lines) >= count:
            return lines
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} request log lines")


@pytest.mark.timeout(300)
async def test_a_request_waiting_on_a_member_another_request_finds_hung_is_cut_then_and_moved_on(local_sidecar, mocks):
    sidecar = await local_sidecar(TWO_MEMBERS_DEFAULTS)
    client = sidecar.client(timeout=120)
    for _ in range(19):  # one first token short of the adaptive deadline: the next request gets 15 s
        assert (await client.chat.completions.create(model="workhorse", messages=USER)).choices[0].message.content
    mocks["primary"].stats.reset()
    mocks["primary"].set_fault(mode="hang", count=1)
    patient = asyncio.create_task(client.chat.completions.create(model="workhorse", messages=USER))
    for _ in range(1000):  # until it waits on the primary
        if mocks["primary"].stats.requests:
            break
        await asyncio.sleep(0.02)
    normal = await client.chat.completions.create(model="workhorse", messages=USER)  # the 20th first token
    assert normal.choices[0].message.content == answer_of("primary")
    mocks["primary"].set_fault(mode="hang")
    finder = await client.chat.completions.create(model="workhorse", messages=USER)  # adaptive: times out first

    answer = await asyncio.wait_for(patient, 120)
    assert answer.choices[0].message.content == answer_of("backup")
    assert finder.choices[0].message.content == answer_of("backup")
    lines = (await _request_lines(sidecar, 22))[19:]
    by_result = {line["attempts"][0]["result"]: line for line in lines if len(line["attempts"]) == 2}
    assert set(by_result) == {"cut_member_hung", "first_token_timeout"}  # without the cut: two timeouts
    cut, found = by_result["cut_member_hung"], by_result["first_token_timeout"]
    # the patient request had the configured 15 s deadline, and was cut as soon as the finder, given the
    # adaptive one, found the member hung: it never waited out its own deadline
    assert cut["attempts"][0]["first_token_deadline_ms"] == 15_000
    assert found["attempts"][0]["first_token_deadline_ms"] < 15_000
    assert [a["member"] for a in cut["attempts"]] == ["primary/model-a", "backup/model-b"]
    assert cut["attempts"][1]["result"] == "success" and cut["outcome"] == "success"
