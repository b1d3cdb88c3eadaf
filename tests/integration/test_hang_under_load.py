"""A member that starts to accept requests and never answer, while 20 clients send without pause.

Default settings, two members. The requests in flight when the primary hangs wait only its adaptive
first-token deadline (its own normal times four, at least 2 s), the first such timeout opens its circuit
for every request after it, and each of them moves to the healthy backup without spending the retry
budget: nobody gets an error. Timing is asserted through what the sidecar recorded (the deadline each
attempt was given, which attempts reached the hung member), never through wall-clock speed."""

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
    assert on_primary and all(a["result"] == "first_token_timeout" for a in on_primary)
    # each waited the adaptive deadline drawn from the primary's own normal, not firstTokenSeconds (15 s)
    # (the debug page rounds the p95 to 0.1 ms, so the deadline is compared within 1 ms)
    assert all(abs(a["first_token_deadline_ms"] - adaptive_ms) <= 1.0 for a in on_primary)
    assert adaptive_ms < 15_000
    skipped = [line for line in lines if {"member": "primary/model-a", "reason": "circuit_open"} in line["skipped"]]
    assert len(skipped) + len(on_primary) == len(lines)
    assert (await _samples(sidecar, "primary/model-a"))["state"] == "open"
