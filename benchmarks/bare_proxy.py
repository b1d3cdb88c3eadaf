"""The floor: a bare aiohttp pass-through proxy, what any aiohttp sidecar pays before doing any work.

One ClientSession, the body forwarded as is, the upstream response streamed back chunk by chunk, on
asyncio's selector loop by default: the loop the sidecar runs on (it times each loop iteration for
stall detection, telemetry/looptime.py, which needs a selector loop); ``--uvloop`` for comparison.
Run: python -m benchmarks.bare_proxy --listen 127.0.0.1:PORT --upstream http://127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def forward(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    session = request.app[SESSION]
    async with session.post(
        request.app[UPSTREAM] + request.path, data=body, headers={"Content-Type": "application/json"}
    ) as upstream:
        response = web.StreamResponse(status=upstream.status, headers={"Content-Type": upstream.content_type})
        await response.prepare(request)
        async for data in upstream.content.iter_any():
            await response.write(data)
        await response.write_eof()
        return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(upstream: str, handler: Handler = forward) -> web.Application:
    """One ``POST /v1/chat/completions`` route to ``handler``, which finds the session and the upstream's
    origin in the app (``SESSION``, ``UPSTREAM``)."""
    app = web.Application()
    app[UPSTREAM] = upstream

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        # no connection limit (aiohttp's default is 100): hundreds of concurrent streams must not queue here
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", handler)
    return app


def main(handler: Handler = forward) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--upstream", required=True, help="origin of the mock, e.g. http://127.0.0.1:9101")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio's loop")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    if args.uvloop:
        import uvloop  # only for the comparison: a dev dependency, never the sidecar's

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    web.run_app(
        build_app(args.upstream.rstrip("/"), handler), host=host, port=int(port), access_log=None, print=None, loop=loop
    )


if __name__ == "__main__":
    main()
