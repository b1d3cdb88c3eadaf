"""What both modes share: logging set-up, the reload loop, and running ``serve`` from CLI options."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable

from pilotfish import garbage
from pilotfish.budgets import allowances
from pilotfish.modes import podinfo, serve
from pilotfish.routes import live
from pilotfish.server import app as api_app
from pilotfish.telemetry import looptime, metrics, throttle

_log = logging.getLogger("pilotfish")

# Returns a new snapshot, None when nothing changed, or raises ValueError/LoadError-like errors.
Reload = Callable[[], "live.Snapshot | None"]


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(throttle.Throttle())


def apply_reload(
    reload: Reload,
    *,
    routes: live.LiveRoutes,
    registry: metrics.Metrics,
) -> None:
    """One reload: publish a new snapshot, or keep the last good one and say why."""
    try:
        snapshot = reload()
    except Exception as exc:  # any reason at all to reject the new routes keeps the old ones
        routes.reject(str(exc))
        registry.reload_result(ok=False)
        serving = f"still serving {routes.snapshot.digest}" if routes.snapshot else "not serving"
        _log.warning("routes rejected (%s): %s", serving, exc)
        return
    if snapshot is None:
        return
    routes.publish(snapshot)
    registry.reload_result(ok=True)
    registry.set_routes(snapshot.document, digest=snapshot.digest)
    _log.info(
        "routes %s loaded: classes %s",
        snapshot.digest,
        ", ".join(sorted(snapshot.document.classes)) or "none",
    )


async def poll_reloads(reload: Reload, *, routes: live.LiveRoutes, registry: metrics.Metrics, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        apply_reload(reload, routes=routes, registry=registry)


def run_with_reloads(
    reload: Reload,
    *,
    options: argparse.Namespace,
    browser_guard: bool = False,
    budgets: allowances.Source | None = None,
) -> int:
    """Load once, then serve while polling for changes every ``--reload-interval`` seconds.

    ``browser_guard``: on a laptop, refuse what a web page could send (``server.browsers``).
    ``budgets``: where Budget allowances come from; default: the operator named by ``--budget-url``."""
    configure_logging()
    try:
        listen = serve.Address.parse(options.listen)
        admin = serve.Address.parse(options.admin)
    except ValueError as exc:
        _log.error("%s", exc)
        return 2
    routes = live.LiveRoutes()
    registry = metrics.Metrics()
    apply_reload(reload, routes=routes, registry=registry)
    settings = api_app.ServerSettings(
        max_body_bytes=options.max_body_bytes,
        write_seconds=options.write_deadline_seconds,
        request_log=not options.no_request_log,
        pod_labels=podinfo.read_labels(options.pod_labels_file),
        browser_guard=browser_guard,
        allowances=budgets or operator_source(options),
    )

    async def reloads() -> None:
        await poll_reloads(reload, routes=routes, registry=registry, interval=options.reload_interval)

    garbage.tune()  # startup is done: what it built is frozen, and young objects are collected less often
    # the loop's iterations are timed from its selector (telemetry.looptime): a stall shows in /metrics
    with asyncio.Runner(loop_factory=looptime.loop_factory(looptime.observer(registry.loop_iteration))) as runner:
        runner.run(
            serve.serve(
                routes=routes,
                registry=registry,
                listen=listen,
                admin_listen=admin,
                settings=settings,
                background=[reloads],
            )
        )
    return 0


BUDGET_CA_ENV = "PILOTFISH_BUDGET_CA_PEM"  # what the injector sets: the CA of the operator's certificate


def operator_source(options: argparse.Namespace) -> allowances.OperatorSource | None:
    """In container mode, Budgets are enforced with the operator when ``--budget-url`` is given; else not."""
    url = getattr(options, "budget_url", None)
    if not url:
        return None
    settings = allowances.AllowanceSettings(
        url=url,
        namespace=options.namespace,
        token_file=options.budget_token_file,
        ca_file=options.budget_ca_file,
        ca_pem=os.environ.get(BUDGET_CA_ENV) or None,
        pod=os.environ.get("HOSTNAME", ""),
    )
    return allowances.OperatorSource(settings)
