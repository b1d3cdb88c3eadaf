"""The loop's iterations are timed by its selector, on two clocks, so a stall the sidecar causes itself
(its own CPU time) is told apart from a process that merely waited for a CPU (elapsed time only)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pilotfish.telemetry import looptime, metrics


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def timed() -> tuple[looptime.TimedSelector, Clock, Clock, list[tuple[float, float]]]:
    wall, cpu, seen = Clock(), Clock(), []
    selector = looptime.TimedSelector(lambda w, c: seen.append((w, c)), wall_clock=wall, cpu_clock=cpu)
    return selector, wall, cpu, seen


def test_the_work_between_two_selects_is_observed_on_both_clocks():
    selector, wall, cpu, seen = timed()
    try:
        selector.select(0)
        wall.now, cpu.now = 0.4, 0.02  # a process that waited for a CPU: long elapsed, little of its own
        selector.select(0)
        wall.now, cpu.now = 0.7, 0.27  # a callback that computed for 250 ms
        selector.select(0)
    finally:
        selector.close()
    assert seen == [(0.4, 0.02), (pytest.approx(0.3), pytest.approx(0.25))]


def test_iterations_shorter_than_a_millisecond_are_not_recorded():
    selector, wall, cpu, seen = timed()
    try:
        selector.select(0)
        wall.now, cpu.now = 0.0005, 0.0004
        selector.select(0)
    finally:
        selector.close()
    assert seen == []


def test_a_short_iteration_reads_the_cpu_clock_once_not_twice():
    reads = 0

    def cpu() -> float:  # a system call each time on Linux (CLOCK_THREAD_CPUTIME_ID has no vDSO)
        nonlocal reads
        reads += 1
        return 0.0

    wall, seen = Clock(), []
    selector = looptime.TimedSelector(lambda w, c: seen.append((w, c)), wall_clock=wall, cpu_clock=cpu)
    try:
        for step in range(1, 11):
            wall.now = step * 0.0005  # ten iterations of half a millisecond
            selector.select(0)
        wall.now += 0.002  # and one long one
        selector.select(0)
    finally:
        selector.close()
    assert reads == 12  # when each select() returned (11), and at the end of the long iteration (1)
    assert seen == [(pytest.approx(0.002), 0.0)]


def test_an_iteration_over_the_bar_on_its_own_cpu_is_a_logged_stall_and_a_starved_one_is_not(caplog):
    registry = metrics.Metrics()
    observe = looptime.observer(registry.loop_iteration)
    with caplog.at_level(logging.WARNING, logger="pilotfish.loop"):
        observe(0.9, 0.01)  # starved
        observe(0.3, 0.2)  # blocked
    assert [r.getMessage() for r in caplog.records] == [
        "event loop stalled: one iteration took 0.200s of its own CPU (0.300s elapsed)"
    ]
    value = registry.registry.get_sample_value
    assert value("pilotfish_event_loop_iteration_seconds_count", {"clock": "wall"}) == 2
    assert value("pilotfish_event_loop_iteration_seconds_bucket", {"clock": "cpu", "le": "0.1"}) == 1
    assert value("pilotfish_event_loop_iteration_seconds_bucket", {"clock": "wall", "le": "0.1"}) == 0


def test_a_loop_from_the_factory_runs_coroutines_and_times_a_blocking_callback():
    seen: list[tuple[float, float]] = []

    async def block() -> None:
        sum(range(2_000_000))  # CPU work in one callback: tens of milliseconds
        await asyncio.sleep(0)

    with asyncio.Runner(loop_factory=looptime.loop_factory(lambda w, c: seen.append((w, c)))) as runner:
        runner.run(block())
    assert seen and max(cpu for _, cpu in seen) >= looptime.RECORD_SECONDS
