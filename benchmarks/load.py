"""The benchmark's clients: timed requests, closed-loop load, and long-lived streams.

A *sample* is one request's (time to first content, time to the whole answer), in seconds; for a
non-streaming request both are the time to the whole body.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Sequence

import aiohttp

MESSAGES = [{"role": "user", "content": "Say hello in a short sentence."}]
Sample = tuple[float, float]


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """Where to send, and the ``model`` to ask for (a class of the sidecar, or the upstream's model)."""

    url: str
    model: str


def _is_content(line: bytes) -> bool:
    return line.startswith(b"data:") and b'"content":"' in line and b'"content":""' not in line


async def one_request(session: aiohttp.ClientSession, target: Target, *, stream: bool) -> Sample:
    started = time.perf_counter()
    body = {"model": target.model, "messages": MESSAGES, "stream": stream}
    async with session.post(target.url, json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"{target}: HTTP {response.status}: {await response.text()}")
        if not stream:
            await response.read()
            done = time.perf_counter() - started
            return done, done
        first: float | None = None
        async for line in response.content:
            if first is None and _is_content(line):
                first = time.perf_counter() - started
        done = time.perf_counter() - started
        return (first if first is not None else done), done


def _session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))


async def samples(target: Target, *, requests: int, concurrency: int, stream: bool) -> list[Sample]:
    """``requests`` requests from ``concurrency`` clients, each sending its next as soon as one is answered."""
    out: list[Sample] = []
    queue = iter(range(requests))
    async with _session(concurrency) as session:

        async def client() -> None:
            for _ in queue:
                out.append(await one_request(session, target, stream=stream))

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return out


async def alternating(targets: Sequence[Target], *, rounds: int, stream: bool) -> list[list[Sample]]:
    """One request to each target in turn, ``rounds`` times, one connection each; the order rotates every
    round. At one client this is how targets are compared: the machine's drift hits every target of a
    round alike, where runs of a few hundred requests each would each meet a different moment of it."""
    out: list[list[Sample]] = [[] for _ in targets]
    sessions = [_session(1) for _ in targets]
    try:
        for index in range(rounds):
            for offset in range(len(targets)):
                which = (index + offset) % len(targets)
                out[which].append(await one_request(sessions[which], targets[which], stream=stream))
    finally:
        for session in sessions:
            await session.close()
    return out


async def closed_loop(target: Target, *, seconds: float, concurrency: int, stream: bool) -> tuple[int, float]:
    """Requests answered in ``seconds`` by ``concurrency`` clients sending without pause; and the seconds taken."""
    started = time.perf_counter()
    done = 0
    async with _session(concurrency) as session:

        async def client() -> None:
            nonlocal done
            while time.perf_counter() - started < seconds:
                await one_request(session, target, stream=stream)
                done += 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return done, time.perf_counter() - started


async def open_loop(target: Target, *, rate: float, seconds: float, seed: int, warm: int) -> list[Sample]:
    """Requests arriving on their own, as a fleet's do (a Poisson process of ``rate`` a second, the same
    arrivals for every target given the same ``seed``), each sent when it arrives whatever is in flight;
    after ``warm`` requests at once, unmeasured, so that the client's connections are open."""
    gaps = random.Random(seed)
    out: list[Sample] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(one_request(session, target, stream=False) for _ in range(warm)))
        pending = []
        started = time.perf_counter()
        due = 0.0
        while due < seconds:
            await asyncio.sleep(max(0.0, started + due - time.perf_counter()))
            pending.append(asyncio.ensure_future(one_request(session, target, stream=False)))
            due += gaps.expovariate(rate)
        out += await asyncio.gather(*pending)
    return out


async def long_streams(target: Target, *, streams: int) -> tuple[int, int]:
    """``streams`` streams at once, each read to its end: (bytes received, streams refused or cut)."""
    received = failed = 0
    async with _session(streams) as session:

        async def client() -> None:
            nonlocal received, failed
            body = {"model": target.model, "messages": MESSAGES, "stream": True}
            try:
                async with session.post(target.url, json=body, timeout=aiohttp.ClientTimeout(total=300)) as response:
                    if response.status != 200:
                        failed += 1
                        return
                    async for data in response.content.iter_any():
                        received += len(data)
                        if b'"error"' in data:
                            failed += 1
            except aiohttp.ClientError:
                failed += 1

        await asyncio.gather(*(client() for _ in range(streams)))
    return received, failed
