"""One chat request to a sidecar over plain HTTP, and its answer parsed: what the budget, quota, probe and
credential tests send when they need the status, the OpenAI body and the ``x-pilotfish-*`` headers of each
answer, error or not (the official SDK raises on an error status; these tests count errors).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import aiohttp

USER = [{"role": "user", "content": "Say hello."}]


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


async def post_chat(
    api: str,
    body: dict[str, Any] | None = None,
    *,
    session: aiohttp.ClientSession | None = None,
    timeout: float = 120.0,
) -> Answer:
    """POST ``body`` (a one-line chat to class ``workhorse`` if none) to ``api``'s /v1/chat/completions;
    ``session``: one to reuse (a fleet of sidecars), else a session of its own."""
    payload = body if body is not None else {"model": "workhorse", "messages": USER}
    if session is None:
        async with aiohttp.ClientSession() as own:
            return await post_chat(api, payload, session=own, timeout=timeout)
    async with session.post(
        api + "/v1/chat/completions", json=payload, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as response:
        return Answer(response.status, await response.json(), dict(response.headers))
