"""The in-flight memory budget: takers wait for bytes to come back, and are refused when they never do."""

import asyncio

import pytest

from pilotfish import memory


async def test_a_hold_that_does_not_fit_waits_for_another_to_be_released() -> None:
    budget = memory.MemoryBudget(total=10 * memory.WEIGHT, wait=30)
    first, second = budget.hold(), budget.hold()
    await first.grow(8)
    growing = asyncio.create_task(second.grow(5))
    await asyncio.sleep(0)
    assert not growing.done()
    first.release()
    await asyncio.wait_for(growing, 5)
    assert budget.used == 5 * memory.WEIGHT


async def test_a_hold_is_refused_when_the_budget_stays_full() -> None:
    budget = memory.MemoryBudget(total=10 * memory.WEIGHT, wait=0.05)
    await budget.hold().grow(10)
    with pytest.raises(memory.OverBudget):
        await budget.hold().grow(1)


async def test_more_than_the_whole_budget_is_refused_at_once() -> None:
    budget = memory.MemoryBudget(total=10, wait=3600)
    with pytest.raises(memory.OverBudget):
        await asyncio.wait_for(budget.hold().grow(100), 5)


async def test_release_gives_back_everything_once() -> None:
    budget = memory.MemoryBudget(total=100 * memory.WEIGHT)
    hold = budget.hold()
    await hold.grow(30)
    await hold.grow(20)
    hold.release()
    hold.release()
    assert budget.used == 0
    assert budget.peak == 50 * memory.WEIGHT
