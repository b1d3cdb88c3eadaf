"""Runs the API and admin ports until SIGTERM/SIGINT, with background tasks beside them.

On SIGTERM the listeners close first and in-flight requests get ``SHUTDOWN_GRACE_SECONDS`` to
finish, so a rolling restart does not cut answers that are still streaming. Two lines on stderr mark
the drain (``stopping``, with the client connections then open, and ``stopped``): on a node they show the
order in which the kubelet stopped the pod's containers (the app first, this native sidecar after).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from aiohttp import web

from pilotfish import admin
from pilotfish.failover import engine
from pilotfish.modes import connections
from pilotfish.routes import live
from pilotfish.server import app as api_app
from pilotfish.telemetry import metrics

SHUTDOWN_GRACE_SECONDS = 20.0

Background = Callable[[], Coroutine[Any, Any, None]]


@dataclasses.dataclass(frozen=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        """'127.0.0.1:4000', ':4000' (all interfaces) or '[::1]:4000'."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        return cls(host=host.strip("[]") or "0.0.0.0", port=int(port))


async def serve(
    *,
    routes: live.LiveRoutes,
    registry: metrics.Metrics,
    listen: Address,
    admin_listen: Address,
    settings: api_app.ServerSettings,
    background: list[Background],
    stop: asyncio.Event | None = None,
) -> None:
    stop = stop or asyncio.Event()
    engines: list[engine.Engine] = []
    api = api_app.build_app(routes=routes, metrics_registry=registry, settings=settings, engine_holder=engines)
    admin_app = admin.build_app(
        routes=routes, metrics_registry=registry, engine_of=lambda: engines[0] if engines else None
    )
    # handler_cancellation: a client that goes away cancels its request at once, upstream call included,
    # instead of holding a provider (and a retry budget slot) until a timeout notices
    # auto_decompress off: request bodies are inflated in bounded steps by server.bodies, under the body limit
    api_runner = web.AppRunner(
        api,
        access_log=None,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        handler_cancellation=True,
        auto_decompress=False,
        keepalive_timeout=connections.KEEPALIVE_SECONDS,
    )
    admin_runner = web.AppRunner(admin_app, access_log=None, keepalive_timeout=connections.KEEPALIVE_SECONDS)
    await api_runner.setup()
    await admin_runner.setup()
    caps = connections.caps(connections.open_files_limit())
    tasks: list[asyncio.Task[None]] = []
    listeners: list[asyncio.Server] = []
    try:
        gate = connections.Gate(name="api", cap=caps.api)
        listeners.append(await connections.listen(api_runner, host=listen.host, port=listen.port, gate=gate))
        gate = connections.Gate(name="admin", cap=caps.admin)
        listeners.append(
            await connections.listen(admin_runner, host=admin_listen.host, port=admin_listen.port, gate=gate)
        )
        api_port, admin_port = _bound_port(listeners[0], listen.port), _bound_port(listeners[1], admin_listen.port)
        tasks = [asyncio.create_task(job()) for job in background]
        _announce(listen, api_port, admin_listen, admin_port)
        _install_signal_handlers(stop)
        await stop.wait()
        _say("stopping", connections=_open_connections(api_runner))
    finally:
        for listener in listeners:
            listener.close()  # stop accepting; the runners' cleanup lets in-flight requests finish
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await api_runner.cleanup()
        await admin_runner.cleanup()
    _say("stopped")


def _bound_port(listener: asyncio.Server, fallback: int) -> int:
    """The port the OS chose when 0 was asked for."""
    sockets = listener.sockets
    return int(sockets[0].getsockname()[1]) if sockets else fallback


def _announce(listen: Address, api_port: int, admin_listen: Address, admin_port: int) -> None:
    """One machine-readable line on stderr: tests and the demo wait for it."""
    api, admin_url = f"http://{_display(listen.host)}:{api_port}", f"http://{_display(admin_listen.host)}:{admin_port}"
    _say("listening", api=api, admin=admin_url)


def _say(msg: str, **fields: object) -> None:
    """A lifecycle line on stderr (listening, stopping, stopped), machine-readable."""
    sys.stderr.write(orjson.dumps({"msg": msg, **fields}).decode() + "\n")
    sys.stderr.flush()


def _open_connections(runner: web.AppRunner) -> int:
    """Client connections open on the API port when the drain begins (streams in flight among them)."""
    return len(runner.server.connections) if runner.server is not None else 0


def _display(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
