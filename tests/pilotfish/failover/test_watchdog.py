"""A stream's awaits share one timer (failover/watchdog.py): an overdue await still times out, exactly as
under asyncio.timeout, while a steady stream arms one timer for all of its awaits, not one per await."""

from __future__ import annotations

import asyncio

import pytest

from pilotfish.failover import watchdog


class _CountedTimers:
    """The running loop's call_at, counted: how many timers a stream armed, and whether they are all gone."""

    def __init__(self, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch) -> None:
        self.handles: list[asyncio.TimerHandle] = []
        real = loop.call_at

        def call_at(when, callback, *args, **kwargs):  # type: ignore[no-untyped-def]
            handle = real(when, callback, *args, **kwargs)
            self.handles.append(handle)
            return handle

        monkeypatch.setattr(loop, "call_at", call_at)

    @property
    def live(self) -> int:
        return sum(1 for handle in self.handles if not handle.cancelled())


async def _answered() -> int:
    future = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(future.set_result, 1)
    return await future


async def test_a_thousand_awaits_of_a_steady_stream_arm_one_timer(monkeypatch):
    timers = _CountedTimers(asyncio.get_running_loop(), monkeypatch)
    watch = watchdog.Watchdog(60.0)
    for _ in range(1000):
        async with watch:
            assert await _answered() == 1
    assert len(timers.handles) == 1
    watch.close()
    assert timers.live == 0  # nothing left to hold the task once the stream is over


async def test_an_await_that_outlives_its_seconds_times_out_and_the_task_goes_on():
    watch = watchdog.Watchdog(0.05)
    never = asyncio.Event()
    with pytest.raises(TimeoutError):
        async with watch:
            await never.wait()
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]  # the cancel was taken back
    async with watch:  # and the same watchdog guards the next await
        assert await _answered() == 1
    watch.close()


async def test_the_total_deadline_caps_an_await_that_is_within_its_own_seconds():
    loop = asyncio.get_running_loop()
    watch = watchdog.Watchdog(3600.0, until=loop.time() + 0.05)
    with pytest.raises(TimeoutError):
        async with watch:
            await asyncio.Event().wait()
    watch.close()


async def test_a_cancel_from_outside_stays_a_cancel():
    started = asyncio.Event()

    async def guarded() -> None:
        watch = watchdog.Watchdog(3600.0)
        try:
            async with watch:
                started.set()
                await asyncio.Event().wait()
        finally:
            watch.close()

    task = asyncio.create_task(guarded())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
