"""A terminating replica tells the API server to stop reusing its connections: every admission answer
after SIGTERM says ``Connection: close``, so no request is sent on a connection the replica is about
to close (that request would fail with EOF during a rollout)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from pilotfish_operator import main


async def admit(_: web.Request) -> web.Response:
    return web.json_response({})


async def test_answers_say_connection_close_only_once_terminating() -> None:
    terminating = asyncio.Event()
    app = web.Application()
    app.router.add_post("/mutate-pods", admit)
    main.close_connections_once(terminating, app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/mutate-pods"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json={}) as before:
                assert before.status == 200
                assert before.headers.get("Connection", "").lower() != "close"
            terminating.set()
            async with session.post(url, json={}) as after:
                assert after.status == 200
                assert after.headers.get("Connection", "").lower() == "close"
    finally:
        await runner.cleanup()
