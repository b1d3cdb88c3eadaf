"""The engine counts a client request once, however many members it visits: a mid-stream recovery
continues the same request (one retry-budget entry), it does not start a new one.

Real mock providers on loopback, the engine in the test's loop: the budget is not visible from outside."""

from __future__ import annotations

import asyncio

from tests.pilotfish.failover import builders

from pilotfish import upstream
from pilotfish.failover import budget, streaming
from pilotfish.mocks import runner
from pilotfish.routes import document
from pilotfish.specs import credential, refs
from pilotfish.telemetry import records
from pilotfish.wire import openai


def _member(name: str, mock: runner.RunningMock, provider: credential.ProviderType, priority: int):
    return document.MemberRoute(
        id=f"{name}/m",
        credential=name,
        provider=provider,
        base_url=mock.url,
        api_key_ref=refs.SecretKeyRef(name="keys", key=name),
        model="m",
        priority=priority,
        prefill=provider is credential.ProviderType.ANTHROPIC,
    )


async def test_a_recovered_stream_is_one_request_in_the_retry_budget():
    primary = await runner.start_mock(name="primary", api_key="sk-primary", provider="openai")
    claude = await runner.start_mock(name="claude", api_key="sk-claude", provider="anthropic")
    sessions = upstream.Sessions()
    try:
        primary.set_fault(mode="cut", after_chunks=3)
        route = document.ClassRoute(
            name="c",
            members=(
                _member("primary", primary, credential.ProviderType.OPENAI_COMPATIBLE, 0),
                _member("claude", claude, credential.ProviderType.ANTHROPIC, 1),
            ),
        )
        the_engine = builders.engine_at(asyncio.get_running_loop().time, sessions=sessions)
        record = records.RequestRecord(class_name="c", stream=True)
        request = openai.ChatRequest.from_body({"model": "c", "messages": [{"role": "user", "content": "Hi."}]})
        committed = await the_engine.open(
            route,
            streaming.ChatStream(request, buffered=False, record=record),
            keys={("keys", "primary"): refs.ApiKey("sk-primary"), ("keys", "claude"): refs.ApiKey("sk-claude")},
            record=record,
            pin_key=None,
        )
        assert committed.rest is not None
        async for _ in committed.rest:
            pass
        assert record.recoveries == [("openai-compatible", "anthropic", "success")]
        assert claude.stats.requests == 1  # the continuation really went out
        ledger = the_engine.budget_for(route)
        one_request = budget.MIN_RETRIES_PER_WINDOW + route.routing.retry_budget_percent / 100
        assert ledger.allowed() == one_request  # a second record_request() would add another 0.2
        # the continuation moves off the member that broke onto a steady one: that amplifies nothing, so it
        # spends no retry budget (a retry of the same member, or a move onto a failing one, would)
        assert ledger.spent() == 0
    finally:
        await sessions.close()
        await primary.stop()
        await claude.stop()
