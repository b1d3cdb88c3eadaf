"""Where ``pilotfish top`` reads from: sidecar admin endpoints by URL. (Through the API server's pod proxy:
``pilotfish_operator.top_proxy``, which needs the kubernetes client of the `operator` extra.)"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from pilotfish.top import stats


@dataclasses.dataclass
class Reading:
    scrape: stats.Scrape
    problems: list[str]  # one line per target that could not be read


class Direct:
    """Admin endpoints by URL (``http://127.0.0.1:4001``), e.g. one pod through ``kubectl port-forward``."""

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = [url.rstrip("/") for url in urls]

    async def read(self) -> Reading:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            results = await asyncio.gather(*(self._one(session, url) for url in self.urls), return_exceptions=True)
        return combine(list(zip(self.urls, results, strict=True)))

    async def _one(self, session: aiohttp.ClientSession, url: str) -> tuple[str, dict[str, Any]]:
        async with session.get(url + "/metrics") as response:
            response.raise_for_status()
            text = await response.text()
        async with session.get(url + "/debug/members") as response:
            response.raise_for_status()
            members = await response.json()
        return text, members


def combine(results: list[tuple[str, Any]]) -> Reading:
    series, members, problems = [], [], []
    for target, result in results:
        if isinstance(result, BaseException):
            problems.append(f"{target}: {type(result).__name__}: {result}".splitlines()[0][:200])
            continue
        text, debug = result
        series.append(stats.parse(text))
        members.append({cls: entry["members"] for cls, entry in debug.get("classes", {}).items()})
    scrape = stats.Scrape(at=time.monotonic(), series=stats.merge(series), members=stats.merge_members(members))
    return Reading(scrape=scrape, problems=problems)
