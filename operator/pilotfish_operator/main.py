"""``pilotfish operator``: kopf reconcilers, the admission webhook, and /healthz /readyz /metrics.

All three run on one asyncio loop. The webhook and the metrics server run in every replica; kopf's
peering decides which replica reconciles.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import pathlib
import random
import signal
import sys
from collections.abc import Sequence

import kopf
import prometheus_client
from aiohttp import web

from pilotfish_operator import (
    handlers,
    injector_config,
    kube,
    metrics,
    peering,
    reconciler,
    secret_access,
    sweep,
    webhook,
)
from pilotfish_operator.budgets import granting

log = logging.getLogger("pilotfish.operator")
# After SIGTERM the webhook keeps answering this long before the operator stops: the API server keeps
# sending admission requests to a terminating pod until the endpoints controller has dropped it from
# the webhook Service, and during a rollout those requests would otherwise fail (found on a real node).
# 5 s was too short on a busy node (an admission got EOF during `helm upgrade` at load 10); 15 s stays
# well inside the default 30 s terminationGracePeriodSeconds.
SHUTDOWN_DELAY_SECONDS = 15.0
PRIORITY_RANGE = 2**31 - 1  # wide enough that two replicas drawing the same priority never happens in practice


@dataclasses.dataclass(frozen=True)
class Options:
    namespaces: Sequence[str] = ()
    standalone: bool = False
    peering: str = "pilotfish"
    peering_priority: int | None = None  # None: random (see _peering_priority)
    webhook_listen: str = "0.0.0.0:9443"
    webhook_cert: str | None = None
    webhook_key: str | None = None
    webhook_ca: str | None = None  # the CA of the webhook's certificate, handed to sidecars (default: ca.crt beside it)
    metrics_listen: str = "0.0.0.0:8080"
    injector_config: str | None = None
    sweep_interval: float = 60.0
    canary_tick: float = 10.0
    secret_reader_role: str | None = None  # bind ourselves to this ClusterRole where credentials are
    service_account: str | None = None  # our own ServiceAccount, NAMESPACE/NAME (with secret_reader_role)
    shutdown_delay: float = SHUTDOWN_DELAY_SECONDS


def main(options: Options) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one "Handler succeeded" per watch event
    if bool(options.webhook_cert) != bool(options.webhook_key):
        sys.stderr.write("pilotfish operator: --webhook-cert and --webhook-key go together\n")
        return 2
    if bool(options.secret_reader_role) != bool(options.service_account) or (
        options.service_account and options.service_account.count("/") != 1
    ):
        sys.stderr.write("pilotfish operator: --secret-reader-role needs --service-account NAMESPACE/NAME\n")
        return 2
    try:
        config = _with_budget_ca(injector_config.load(options.injector_config), options)
    except Exception as exc:
        sys.stderr.write(f"pilotfish operator: --injector-config {options.injector_config}: {exc}\n")
        return 2
    try:
        asyncio.run(_run(options, config))
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # typically an address already in use
        sys.stderr.write(f"pilotfish operator: {exc}\n")
        return 1
    return 0


async def _run(options: Options, config: injector_config.InjectorConfig) -> None:
    api = kube.Kube()
    bound = None
    if options.secret_reader_role and options.service_account:
        sa_namespace, sa_name = options.service_account.split("/")
        bound = secret_access.Bound(cluster_role=options.secret_reader_role, service_account=(sa_namespace, sa_name))
    recon = reconciler.Reconciler(api, canary_tick=options.canary_tick, secrets=secret_access.SecretAccess(api, bound))
    stop, terminating = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, terminating.set)
    ready = asyncio.Event()
    runners = [await _serve(_health_app(ready), options.metrics_listen, None)]
    background = [asyncio.create_task(_drain_then_stop(terminating, ready, stop, delay=options.shutdown_delay))]
    if options.webhook_cert and options.webhook_key:
        tls = webhook.ReloadingTLS(options.webhook_cert, options.webhook_key)
        grants = granting.Granting(api)
        admission = webhook.build_app(api, config, grants)
        close_connections_once(terminating, admission)
        runners.append(await _serve(admission, options.webhook_listen, tls))
        background.append(asyncio.create_task(tls.watch()))
        background.append(asyncio.create_task(grants.run_flush()))
    sweeper = sweep.Sweeper(
        api,
        own_namespace=os.environ.get("POD_NAMESPACE"),
        interval=options.sweep_interval,
        admin_port=config.admin_port,
    )
    recon.propagation = lambda namespace: sweeper.propagation.get(namespace)
    recon.rejections = lambda namespace: sweeper.rejections.get(namespace)
    recon.continuations = lambda namespace: sweeper.continuations.get(namespace)

    def propagated(namespace: str) -> None:
        if recon.knows(namespace):  # only the active replica writes status
            recon.trigger(namespace)

    background.append(asyncio.create_task(sweeper.run(propagated)))
    if not options.standalone:
        watch = peering.watch_missing(api, name=options.peering, namespaces=options.namespaces)
        background.append(asyncio.create_task(watch))
    settings = kopf.OperatorSettings()
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    operator = asyncio.create_task(
        kopf.operator(
            registry=handlers.build_registry(recon),
            settings=settings,
            clusterwide=not options.namespaces,
            namespaces=list(options.namespaces),
            standalone=options.standalone,
            peering_name=None if options.standalone else options.peering,
            priority=_peering_priority(options),
            stop_flag=stop,
            ready_flag=ready,
        )
    )
    log.info("pilotfish operator started (%s)", ", ".join(options.namespaces) or "all namespaces")
    try:
        await operator
    finally:
        for task in background:
            task.cancel()
        await recon.idle()
        for runner in runners:
            await runner.cleanup()


def close_connections_once(terminating: asyncio.Event, app: web.Application) -> None:
    """Once terminating, every answer says ``Connection: close``: the API server then opens a new
    connection, to a pod that stays, for its next admission request, instead of reusing one that this
    pod closes when it stops (a request sent on it at that moment fails with EOF)."""

    async def on_prepare(_: web.Request, response: web.StreamResponse) -> None:
        if terminating.is_set():
            response.force_close()  # this server closes the connection after the answer
            response.headers["Connection"] = "close"  # and says so (the headers are already prepared)

    app.on_response_prepare.append(on_prepare)


async def _drain_then_stop(
    terminating: asyncio.Event,
    ready: asyncio.Event,
    stop: asyncio.Event,
    *,
    delay: float,
) -> None:
    """On SIGTERM: report not ready, keep serving admission for ``delay`` seconds, then stop kopf."""
    await terminating.wait()
    ready.clear()
    if delay > 0:
        log.info("terminating: the webhook keeps answering for %.0fs while endpoints drop this pod", delay)
        await asyncio.sleep(delay)
    stop.set()


def _with_budget_ca(config: injector_config.InjectorConfig, options: Options) -> injector_config.InjectorConfig:
    """Sidecars must trust the allowance endpoint's certificate: the webhook's, whose CA the chart mounts as
    ca.crt beside it (self-signed and cert-manager Secrets both carry one)."""
    if config.budgets is None or config.budgets.ca_pem:
        return config
    path = options.webhook_ca or (
        str(pathlib.Path(options.webhook_cert).parent / "ca.crt") if options.webhook_cert else None
    )
    if path is None or not pathlib.Path(path).exists():
        log.warning("budgets: no CA for the allowance endpoint (%s); sidecars use the system trust store", path)
        return config
    budgets = config.budgets.model_copy(update={"ca_pem": pathlib.Path(path).read_text()})
    return config.model_copy(update={"budgets": budgets})


def _peering_priority(options: Options) -> int:
    """kopf pauses every replica when live peers share a priority ("Pausing all operators, including
    self"), so with the chart's two replicas and kopf's default priority 0 nothing would reconcile.
    Each replica draws its own; the highest live one reconciles, and when it goes the next takes over."""
    if options.peering_priority is not None:
        return options.peering_priority
    priority = random.SystemRandom().randint(1, PRIORITY_RANGE)
    if not options.standalone:
        log.info("peering %r with priority %d (the highest live replica reconciles)", options.peering, priority)
    return priority


async def _serve(app: web.Application, listen: str, tls: webhook.ReloadingTLS | None) -> web.AppRunner:
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host or "0.0.0.0", int(port), ssl_context=tls.context if tls else None)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    scheme = "https" if tls else "http"
    log.info(
        "serving %s on %s://%s:%s", ",".join(str(r.canonical) for r in app.router.resources()), scheme, host, bound
    )
    return runner


def _health_app(ready: asyncio.Event) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(text="ok") if ready.is_set() else web.Response(text="starting", status=503)

    async def metrics_page(_: web.Request) -> web.Response:
        return web.Response(body=prometheus_client.generate_latest(metrics.REGISTRY), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    return app
