"""The demo's second act: one class name, two tiers. Called by ``pilotfish.demo.run`` once the failover
phases are over, on the same sidecar and mock providers.

The app asks ``assistant`` for everything. Plain questions go to the cheap tier; a request that sets
``x-pilotfish-tier: frontier``, declares tools or carries a long prompt goes to the frontier tier; and
when the cheap tier's provider is down, a plain question escalates to the frontier tier in the same
request. Each line shows what the sidecar decided, from its response headers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import aiohttp

from pilotfish.mocks import runner

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    body: dict[str, Any]  # added to the request body
    headers: dict[str, str]
    expected: tuple[str, str, str]  # tier that answers, reason, tier escalated from ("" if none)
    cheap_down: bool = False


CASES = [
    Case("a plain question", {}, {}, ("cheap", "default", "")),
    Case("the app asks for the frontier", {}, {"x-pilotfish-tier": "frontier"}, ("frontier", "rules[0]", "")),
    Case("a request with tools", {"tools": TOOLS}, {}, ("frontier", "rules[1]", "")),
    Case(
        "a long prompt (~1,500 tokens)",
        {"messages": [{"role": "user", "content": "x" * 6000}]},
        {},
        ("frontier", "rules[2]", ""),
    ),
    Case("a plain question, cheap tier down", {}, {}, ("frontier", "default", "cheap"), cheap_down=True),
]


async def run(api: str, mocks: dict[str, runner.RunningMock]) -> list[str]:
    """Send each case once, print what happened; the problems, if any tier decision was not as expected."""
    print("\nTiers: the app asks for 'assistant'; cheap = OpenAI gpt-5-mini, frontier = Anthropic claude-opus-4-1.")
    problems = []
    async with aiohttp.ClientSession() as session:
        for case in CASES:
            mocks["openai"].set_fault(**({"mode": "status", "status": 503} if case.cheap_down else {"mode": "ok"}))
            got = await _send(session, api, case)
            escalated = f", escalated from {got[2]}" if got[2] else ""
            print(f"  {case.name:<36} -> {got[0] or 'error':<9} ({got[1]}{escalated})")
            if got != case.expected:
                problems.append(f"tiers: {case.name}: got {got}, expected {case.expected}")
    mocks["openai"].set_fault(mode="ok")
    return problems


async def _send(session: aiohttp.ClientSession, api: str, case: Case) -> tuple[str, str, str]:
    body = {"model": "assistant", "messages": [{"role": "user", "content": "Hi"}], **case.body}
    try:
        async with session.post(api + "/v1/chat/completions", json=body, headers=case.headers) as response:
            await response.read()
            if response.status != 200:
                return "", f"HTTP {response.status}", ""
            h = response.headers
            return (
                h.get("x-pilotfish-tier", ""),
                h.get("x-pilotfish-tier-reason", ""),
                h.get("x-pilotfish-tier-escalated-from", ""),
            )
    except aiohttp.ClientError as exc:
        return "", f"error {exc}", ""
