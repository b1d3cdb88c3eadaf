"""A deadline on each of the awaits a stream repeats thousands of times, for the price of a clock read.

``asyncio.timeout()`` around every await arms and cancels a loop timer each time (a Timeout, a
TimerHandle on the loop's heap, its cancellation: several µs, more than the rest of what one chunk
costs in the sidecar's own code); a
committed stream awaits once per upstream read (``failover.streaming``: the stream idle limit and the
total deadline) and once per write to the client (``server.serving``: the write deadline). A
``Watchdog`` keeps one timer for the whole stream instead: each await only notes when it began, and
the timer, when it fires, either finds the await in progress overdue and cancels it, exactly as
``asyncio.timeout`` would (``TimeoutError`` out of the ``async with``), or re-arms itself for the due
time of the await now in progress. So a steady stream costs one timer per ``seconds``, not one per chunk.

Used as ``async with watch: await ...`` by one task, never nested; ``close()`` when the stream ends.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType


class Watchdog:
    """Each guarded await must end within ``seconds`` of its start, and all of them by ``until`` (loop time)."""

    __slots__ = ("_armed_for", "_cancelling", "_fired", "_handle", "_loop", "_seconds", "_started", "_task", "_until")

    def __init__(self, seconds: float, *, until: float = math.inf) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "a Watchdog guards the awaits of a task"
        self._task = task
        self._seconds = seconds
        self._until = until
        self._started: float | None = None  # when the await in progress began; None between awaits
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = 0.0  # the due time the live timer was armed for
        self._fired = False
        self._cancelling = 0

    async def __aenter__(self) -> Watchdog:
        self._started = self._loop.time()
        self._fired = False
        self._cancelling = self._task.cancelling()
        if self._handle is None:
            self._arm(self._due(self._started))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._started = None
        if self._fired:
            self._fired = False
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def close(self) -> None:
        """The stream is over: drop the timer (it would otherwise hold the task until it fires)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _due(self, started: float) -> float:
        return min(started + self._seconds, self._until)

    def _arm(self, when: float) -> None:
        self._armed_for = when
        self._handle = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        self._handle = None
        if self._started is None:
            return  # between awaits: the next one arms it again
        due = self._due(self._started)
        if due <= self._armed_for:  # the await in progress is the one this timer was set for, or older
            self._fired = True
            self._task.cancel()
        else:
            self._arm(due)
