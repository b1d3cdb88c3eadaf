"""Measuring a sidecar process from outside while something hostile runs: its memory and CPU from
/proc, and how long its admin /healthz takes to answer, sampled all the while.

The figures are recorded (printed, and quoted in docs/security.md); assertions on them stay generous
because the machine is shared: the old behaviour was a 20-27 s stall and hundreds of MB, so a bound
of seconds and tens of MB still tells the two apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pathlib
import time
from collections.abc import AsyncIterator

import aiohttp

MIB = 1024 * 1024
HEALTHZ_EVERY = 0.05  # seconds between two /healthz probes
HEALTHZ_GIVE_UP = 60.0  # a probe that takes this long is recorded as this long


def _status_field(pid: int, field: str) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def rss(pid: int) -> int:
    """Resident memory now, in bytes."""
    return _status_field(pid, "VmRSS")


def peak_rss(pid: int) -> int:
    """The highest resident memory since the process started, in bytes."""
    return _status_field(pid, "VmHWM")


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / 100.0


@dataclasses.dataclass
class HealthzWatch:
    """Every /healthz latency seen while the watch ran, and the probes that failed."""

    latencies: list[float] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)
    peak_rss: int = 0  # the highest VmRSS sampled while watching

    @property
    def worst(self) -> float:
        return max(self.latencies, default=0.0)


@contextlib.asynccontextmanager
async def watching_healthz(admin: str, *, pid: int) -> AsyncIterator[HealthzWatch]:
    """Probe ``admin``/healthz back to back (one at a time, as a kubelet does) until the block ends."""
    watch = HealthzWatch()

    async def probe_forever() -> None:
        timeout = aiohttp.ClientTimeout(total=HEALTHZ_GIVE_UP)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                started = time.monotonic()
                try:
                    async with session.get(admin + "/healthz") as response:
                        await response.read()
                        if response.status != 200:
                            watch.failures.append(f"status {response.status}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    watch.failures.append(f"{type(exc).__name__}: {exc}")
                watch.latencies.append(time.monotonic() - started)
                with contextlib.suppress(OSError, LookupError):
                    watch.peak_rss = max(watch.peak_rss, rss(pid))
                await asyncio.sleep(HEALTHZ_EVERY)

    task = asyncio.create_task(probe_forever())
    try:
        await asyncio.sleep(HEALTHZ_EVERY)  # not an event: at least one probe before the hostile part starts
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def settled_rss(pid: int, *, below: int, timeout: float = 30.0) -> int:
    """Wait until the process's memory is back under ``below`` (or the timeout); the last reading."""
    deadline = time.monotonic() + timeout
    now = rss(pid)
    while now >= below and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        now = rss(pid)
    return now


def report(case: str, **figures: float) -> None:
    """One line per measured case: ``pytest -s`` shows them; docs/security.md quotes them."""
    shown = " ".join(
        f"{name}={value / MIB:.1f}MiB" if name.endswith("rss") else f"{name}={value:.3f}"
        for name, value in figures.items()
    )
    print(f"\n[measured] {case}: {shown}")
