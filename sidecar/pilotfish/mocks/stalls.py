"""Faults that happen on the wire before any answer (hang, reset, delay): the same for every format."""

from __future__ import annotations

import asyncio

from aiohttp import web

from pilotfish.mocks import faults

MID_STREAM_PAUSE = 0.05  # seconds between the last good chunk and a mid-stream fault


async def apply(request: web.Request, mode: faults.Mode, fault: faults.Fault) -> None:
    """Hang forever, drop the connection, or wait; return to answer normally afterwards."""
    if mode is faults.Mode.HANG:
        await asyncio.sleep(3600)
    if mode is faults.Mode.RESET:
        assert request.transport is not None
        request.transport.abort()
        raise asyncio.CancelledError  # aiohttp drops the handler; the client sees a disconnect
    if mode in (faults.Mode.SLOW_FIRST_TOKEN, faults.Mode.LATENCY):
        await asyncio.sleep(fault.delay)


def cut(request: web.Request) -> None:
    """Drop the connection mid-answer."""
    assert request.transport is not None
    request.transport.abort()


MID_STREAM = frozenset({faults.Mode.CUT, faults.Mode.STALL, faults.Mode.STREAM_ERROR})


async def break_stream(
    request: web.Request, response: web.StreamResponse, mode: faults.Mode, *, sent: bytes, error_event: bytes
) -> None:
    """Send what the stream had so far, then break it as ``mode`` says: drop the connection (cut), go
    silent with it open (stall), or send the vendor's in-stream error event after the 200 (stream-error)."""
    await response.write(sent)
    await asyncio.sleep(MID_STREAM_PAUSE)  # the client has these chunks before the stream breaks
    if mode is faults.Mode.CUT:
        cut(request)
    elif mode is faults.Mode.STALL:
        await asyncio.sleep(3600)
    else:
        await response.write(error_event)
        await response.write_eof()
