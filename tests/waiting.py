"""Waiting on events, the one way tests wait: poll a condition with a generous timeout.

A test never sleeps for a fixed time to let something happen: on a busy machine (two cores shared by
several test runs) the something takes longer, and the test fails or, worse, passes without checking.
It polls for the condition instead; the timeout is only the point at which the test gives up, so it
can be generous. ``tests/test_hygiene.py`` flags any other sleep in tests/ (see docs/testing.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
POLL_SECONDS = 0.05  # how often a condition is read again: quick to notice, cheap to ask


async def eventually(
    fetch: Callable[[], Awaitable[T]],
    ready: Callable[[T], object] = bool,
    *,
    timeout: float = 30.0,
    what: str = "condition",
) -> T:
    """The first value of ``await fetch()`` that ``ready`` accepts; fails with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if ready(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {value!r}")
        await asyncio.sleep(POLL_SECONDS)


def minute() -> int:
    """The UTC minute the wall clock is in: the window rate limits and quotas count in."""
    return int(time.time() // 60)


async def minute_with_room(seconds: float) -> int:
    """The UTC minute once at least ``seconds`` of it are left, so that requests counted per minute fit in one."""
    while 60 - time.time() % 60 < seconds:
        await asyncio.sleep(0.2)  # waits for the wall clock to reach the next minute: the event under test
    return minute()
