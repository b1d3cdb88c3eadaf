"""Request bodies read under a budget: capped after decompression, inflated in bounded steps.

aiohttp would inflate a gzip body in one go and, after a 413, keep reading (and inflating) the rest
of it for its lingering close: a 1 MiB body that inflates to 1 GiB cost 85 MB and 1.5 CPU-seconds.
Here the API port's parser leaves bodies compressed (``auto_decompress=False`` in ``modes.serve``);
``read_body`` inflates them with ``wire.inflate`` a step at a time, counts the inflated bytes
against the body limit and the request's memory hold; the rest of a refused body is drained raw,
never inflated. Called by every endpoint before it parses its JSON; ``parsing_turn`` then gives a
large body's parse a loop iteration of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import hdrs, web

from pilotfish import failures, memory
from pilotfish.server import keys
from pilotfish.wire import inflate

# The longest pause allowed between two pieces of a body: a client that sends half a body and stops
# must not hold a connection (and its buffer) for ever.
BODY_IDLE_SECONDS = 30.0
# A body this large takes a millisecond or more to parse, validate and translate. A 9 MB body costs about
# 45 ms of CPU from its last byte to its upstream call (60 % of it the kernel's, faulting in fresh memory),
# all of it in one loop iteration: half the 0.1 s stall bar, and once 0.15 s on a busy machine. Its read,
# its parse and its upstream call now take separate iterations, and large parses take turns.
LARGE_BODY_BYTES = 1 << 20


async def read_body(request: web.Request) -> bytes:
    """The request body, inflated; raises RequestRejected (413, 400, 415) and memory.OverBudget."""
    limit = request.app[keys.MAX_BODY_BYTES]
    hold = request[keys.HOLD]
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(limit)
    # A declared body is reserved whole before reading, all or nothing: bodies that each held part of
    # what they need and waited for the rest could wait on one another until they all time out.
    reserved = declared or 0
    await hold.grow(reserved)
    try:
        inflater = None if inflate.is_identity(request.headers.get(hdrs.CONTENT_ENCODING)) else _inflater(request)
        pieces: list[bytes] = []
        seen = 0
        while True:
            if request.content.is_eof():  # the rest is already in: nothing to wait for, no timer to arm
                raw = await request.content.readany()
            else:
                async with asyncio.timeout(BODY_IDLE_SECONDS):
                    raw = await request.content.readany()
            if not raw:
                break
            for piece in [raw] if inflater is None else inflater.feed(raw):
                seen += len(piece)
                if seen > limit:
                    raise too_large(limit)
                if seen > reserved:
                    await hold.grow(seen - reserved)
                    reserved = seen
                pieces.append(piece)
                if inflater is not None:
                    await asyncio.sleep(0)  # a turn for everyone else between two inflated steps
        if inflater is not None:
            inflater.finish()
    except inflate.CorruptBody as exc:
        raise failures.RequestRejected(
            f"The request body could not be decompressed: {exc}.", code="invalid_body"
        ) from None
    except TimeoutError:
        request.protocol.force_close()
        raise failures.RequestRejected(
            f"The request body stopped arriving for {BODY_IDLE_SECONDS:g}s.", status=408, code="body_timeout"
        ) from None
    return b"".join(pieces)


@contextlib.asynccontextmanager
async def parsing_turn(request: web.Request, raw: bytes) -> AsyncIterator[None]:
    """Wrap the parse of ``raw`` (and what is built from it at once). A large body's parse gets a loop
    iteration of its own: apart from the read that joined the body, from the upstream call that encodes
    it again, and from any other large parse (the app's one turn)."""
    if len(raw) < LARGE_BODY_BYTES:
        yield
        return
    async with request.app[keys.LARGE_PARSES]:
        await asyncio.sleep(0)
        yield
        await asyncio.sleep(0)


def _inflater(request: web.Request) -> inflate.Inflater:
    try:
        return inflate.Inflater(request.headers.get(hdrs.CONTENT_ENCODING, ""))
    except inflate.UnsupportedEncoding as exc:
        raise failures.RequestRejected(f"{exc}.", status=415, code="unsupported_content_encoding") from None


def too_large(limit: int) -> failures.RequestRejected:
    """The body is over the limit. (What is left of it is drained raw, never inflated, by aiohttp's
    lingering close, so the client still reads the 413.)"""
    return failures.RequestRejected(
        f"Request body too large: the limit is {limit} bytes (after decompression).",
        status=413,
        code="request_too_large",
    )


def budget_exhausted(exc: memory.OverBudget) -> failures.RequestRejected:
    """The sidecar is holding all the memory it may: the client should retry shortly."""
    return failures.RequestRejected(
        f"The sidecar is at its in-flight memory budget ({exc}); retry shortly.",
        status=503,
        error_type="server_error",
        code="sidecar_busy",
    )
