"""How long the event loop goes without looking at its sockets, measured inside the sidecar.

Every request and every kubelet probe waits for the loop to come back to ``select()``. One iteration
of the loop (from a ``select()`` returning to the next one being called) is the time a new
connection or a probe can be kept waiting by the sidecar itself. ``TimedSelector`` times each
iteration twice:

- ``wall``: elapsed time. On a busy machine this grows when other processes hold the CPUs and this
  one simply is not running: it says how responsive the pod was, not whose fault it was.
- ``cpu``: CPU time the loop's thread spent in that iteration (``time.thread_time``). It does not
  grow while the process waits for a CPU, so it is the part of the stall the sidecar caused itself:
  a callback that inflates a whole bomb, parses megabytes, or copies a buffer again and again.

Iterations of at least ``RECORD_SECONDS`` (either clock) are observed in the
``pilotfish_event_loop_iteration_seconds`` histogram; shorter ones cost a read of each clock and nothing
else. An iteration whose own CPU time passes ``STALL_SECONDS`` is a stall, logged (throttled with the
rest of the log). Tests assert on the ``cpu`` figure (tests/integration/loopstalls.py): it tells a
blocked loop from a starved process on a shared machine.

Built on the public ``SelectorEventLoop(selector)`` constructor; ``loop_factory`` is what the
serving modes hand ``asyncio.Runner``.
"""

from __future__ import annotations

import asyncio
import logging
import selectors
import time
from collections.abc import Callable
from typing import Any

# Iterations this long or longer are recorded; the loop runs thousands of shorter ones a second.
RECORD_SECONDS = 0.001
# The issue-15 bar for /healthz: an iteration whose own CPU time passes this is a stall.
STALL_SECONDS = 0.1

Observe = Callable[[float, float], None]  # (wall seconds, cpu seconds) of one long iteration

_log = logging.getLogger("pilotfish.loop")


class TimedSelector(selectors.DefaultSelector):
    """The platform's default selector, timing the work the loop does between two ``select()`` calls."""

    def __init__(
        self,
        observe: Observe,
        *,
        wall_clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        super().__init__()
        self._observe = observe
        self._wall_clock, self._cpu_clock = wall_clock, cpu_clock
        self._woke: tuple[float, float] | None = None  # (wall, cpu) when select() last returned

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        woke = self._woke
        if woke is not None:
            wall = self._wall_clock() - woke[0]
            # A thread's CPU time over an interval never exceeds the time elapsed, so an iteration shorter
            # than RECORD_SECONDS elapsed is as short on its own CPU: its CPU clock is not read again (that
            # clock is a system call each time; the elapsed one is not).
            if wall >= RECORD_SECONDS:
                self._observe(wall, self._cpu_clock() - woke[1])
        events: list[tuple[selectors.SelectorKey, int]] = super().select(timeout)
        self._woke = (self._wall_clock(), self._cpu_clock())
        return events


def observer(histogram: Callable[[str, float], None]) -> Observe:
    """Feed ``histogram(clock, seconds)`` and log each stall."""

    def observe(wall: float, cpu: float) -> None:
        histogram("wall", wall)
        histogram("cpu", cpu)
        if cpu >= STALL_SECONDS:
            _log.warning("event loop stalled: one iteration took %.3fs of its own CPU (%.3fs elapsed)", cpu, wall)

    return observe


def loop_factory(observe: Observe) -> Callable[[], asyncio.AbstractEventLoop]:
    """For ``asyncio.Runner(loop_factory=...)``: a selector event loop whose iterations are timed."""

    def new_loop() -> asyncio.AbstractEventLoop:
        selector: Any = TimedSelector(observe)
        return asyncio.SelectorEventLoop(selector)

    return new_loop
