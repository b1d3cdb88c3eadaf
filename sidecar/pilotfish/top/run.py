"""The refresh loop: read, compute rows against the previous reading, draw in place (or print once)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Protocol

from pilotfish.top import sources, stats, view


class Source(Protocol):
    async def read(self) -> sources.Reading: ...


async def _frames(source: Source, *, interval: float, once: bool) -> None:
    previous = (await source.read()).scrape
    drawn = 0
    while True:
        await asyncio.sleep(interval)
        reading = await source.read()
        title = (
            f"pilotfish top: rates over the last {reading.scrape.at - previous.at:.1f}s  {time.strftime('%H:%M:%S')}"
        )
        text = view.table(
            stats.rows(previous, reading.scrape), title=title, canaries=stats.canary_shares(previous, reading.scrape)
        )
        text += "".join(f"unreachable: {problem}\n" for problem in reading.problems)
        previous = reading.scrape
        if once:
            sys.stdout.write(text)
            return
        lines = text.count("\n")
        sys.stdout.write(
            (f"\x1b[{drawn}F" if drawn else "") + "".join(f"\x1b[2K{line}\n" for line in text.splitlines())
        )
        sys.stdout.write("\x1b[J")
        sys.stdout.flush()
        drawn = lines


def main(source: Source, *, interval: float, once: bool) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_frames(source, interval=interval, once=once or not sys.stdout.isatty()))
    return 0
