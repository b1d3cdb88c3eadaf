"""Builds the API Application: typed app keys, error middleware, and the cleanup context that owns
the upstream sessions (born at startup, closed at shutdown, even when startup fails half-way)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from aiohttp import web

from pilotfish import failures, memory, upstream
from pilotfish.budgets import allowances, quotas
from pilotfish.failover import engine, health, pinning, probing
from pilotfish.routes import live
from pilotfish.server import bodies, browsers, chat, embeddings, errors, keys, messages, models, serving
from pilotfish.telemetry import logs, metrics, tracing

# The default cap on a request body: generous for long prompts with images, small enough that a
# buggy client cannot make every pod's sidecar buffer gigabytes.
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024

_log = logging.getLogger("pilotfish.server")


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """Knobs of the API port."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    write_seconds: float = serving.WRITE_SECONDS  # a stream's client must take each write within this
    memory_budget_bytes: int = memory.DEFAULT_BYTES  # request bodies and buffered answers in flight, weighted
    request_log: bool = True  # one JSON line per request on stdout
    seed: int | None = None  # for reproducible weighted choices in tests
    browser_guard: bool = False  # local mode: JSON Content-Type and a loopback Host only (server.browsers)
    pod_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)  # the calling pod's, for tier rules
    allowances: allowances.Source | None = None  # who keeps the namespace's Budgets (None: not enforced)


def build_app(
    *,
    routes: live.LiveRoutes,
    metrics_registry: metrics.Metrics,
    settings: ServerSettings,
    engine_holder: list[engine.Engine] | None = None,
) -> web.Application:
    """The API application; ``engine_holder`` receives the engine once it exists (admin uses it)."""
    middlewares = [browsers.guard, _error_middleware] if settings.browser_guard else [_error_middleware]
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares)
    app[keys.LIVE] = routes
    app[keys.METRICS] = metrics_registry
    app[keys.REQUEST_LOG] = logs.RequestLog(enabled=settings.request_log)
    app[keys.MAX_BODY_BYTES] = settings.max_body_bytes
    app[keys.LARGE_PARSES] = asyncio.Lock()
    app[keys.WRITE_SECONDS] = settings.write_seconds
    app[keys.BUDGET] = memory.MemoryBudget(settings.memory_budget_bytes)
    app[keys.POD_LABELS] = settings.pod_labels
    app.cleanup_ctx.append(_engine_context(settings, engine_holder))
    if settings.allowances is not None:
        app.cleanup_ctx.append(_allowances_context(settings.allowances))
    app.router.add_post("/v1/chat/completions", chat.post_chat_completions)
    app.router.add_post("/v1/embeddings", embeddings.post_embeddings)
    app.router.add_post("/v1/messages", messages.post_messages)
    app.router.add_get("/v1/models", models.get_models)
    app.router.add_get("/v1/models/{model}", models.get_model)
    return app


def _engine_context(
    settings: ServerSettings, holder: list[engine.Engine] | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        rng = random.Random(settings.seed)
        sessions = upstream.Sessions()
        traces = tracing.Tracing.from_environment()
        if traces is not None:
            app[keys.TRACING] = traces
        the_engine = engine.Engine(
            sessions=sessions,
            health_registry=health.HealthRegistry(now=loop.time, rng=rng),
            pins=pinning.PinStore(now=loop.time),
            now=loop.time,
            rng=rng,
            tracing=traces,
        )
        app[keys.ENGINE] = the_engine
        app[keys.LIVE].subscribe(lambda snapshot: the_engine.health.reconcile(snapshot.document, keys=snapshot.keys))
        if holder is not None:
            holder.append(the_engine)
        live_routes = app[keys.LIVE]
        prober = probing.Prober(
            registry_=the_engine.health,
            sessions=sessions,
            keys_of=lambda: live_routes.snapshot.keys if live_routes.snapshot else {},
            observe=app[keys.METRICS],
            rng=rng,
            now=loop.time,
        )
        probes = asyncio.create_task(prober.run())
        try:
            yield
        finally:
            probes.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probes
            await sessions.close()
            if traces is not None:
                traces.shutdown()

    return context


def _allowances_context(
    source: allowances.Source,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Budget and member-quota allowances, and the loop that reports usage and refills them, for the life
    of the app."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        keeper = app[keys.ALLOWANCES] = allowances.Allowances(source, wall=time.time)
        app[keys.ENGINE].quotas = quotas.Shared(keeper)  # members' provider quotas: counters of the same allowances
        live = app[keys.LIVE]
        task = asyncio.create_task(keeper.run(lambda: live.snapshot.document if live.snapshot else None))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return context


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as OpenAI-style JSON; nothing leaves as a stack trace. Each request holds its
    share of the memory budget from here, and gives it all back however it ends."""
    hold = request[keys.HOLD] = request.app[keys.BUDGET].hold()
    try:
        return await handler(request)
    except memory.OverBudget as exc:
        return errors.from_rejection(bodies.budget_exhausted(exc))
    except failures.RequestRejected as exc:
        return errors.from_rejection(exc)
    except web.RequestPayloadError:  # a body that does not decode as its Content-Encoding says (bad gzip)
        request.content.feed_eof()  # nothing more of it will be read: aiohttp must not drain it after us
        response = errors.error_response(
            400,
            "The request body could not be read: it does not decode as its Content-Encoding says.",
            code="invalid_body",
        )
        response.force_close()  # and the connection is not reused: where that body ends is unknown
        return response
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[keys.MAX_BODY_BYTES]
        return errors.error_response(
            413, f"Request body too large: the limit is {limit} bytes.", code="request_too_large"
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = "Not found." if exc.status == 404 else exc.reason
        if exc.status == 405:
            message = f"Method {request.method} is not allowed on {request.path}."
        return errors.error_response(exc.status, message, code=exc.reason.lower().replace(" ", "_"))
    except Exception:
        _log.exception("unhandled error serving %s %s", request.method, request.path)
        return errors.error_response(
            500,
            "The sidecar failed to handle this request; see its logs.",
            error_type="server_error",
            code="internal_error",
        )
    finally:
        hold.release()
