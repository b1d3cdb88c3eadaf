"""The admin port: probes, metrics and a JSON view of every member's health.

Its own Application on its own TCPSite (as kopf does for its probes), so a flood on the API port
cannot starve the kubelet's probes, and it can listen on the pod IP while the API stays on loopback.

Beyond the pod's loopback it serves only ``PUBLIC``, read-only: what must be reached from outside
the pod (docs/security.md says who reaches what). Anything else added here is loopback-only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

from pilotfish.failover import breaker, engine
from pilotfish.routes import live
from pilotfish.telemetry import metrics

LIVE = web.AppKey("live", live.LiveRoutes)
METRICS = web.AppKey("metrics", metrics.Metrics)


class EngineRef:
    """The API app's engine, which exists only once that app has started."""

    def __init__(self, get: Callable[[], engine.Engine | None]) -> None:
        self.get = get


ENGINE_OF = web.AppKey("engine_of", EngineRef)


# Reached from outside the pod: the kubelet's probes (/healthz, /readyz), Prometheus (/metrics), the
# operator's propagation sweep (/readyz) and `pilotfish top -n` through the API server's pod proxy
# (/metrics, /debug/members). Nothing here writes, and nothing here holds a key.
PUBLIC = frozenset({"/healthz", "/readyz", "/metrics", "/debug/members"})
READ_ONLY = frozenset({"GET", "HEAD"})


def allowed(*, method: str, path: str, peer: str | None) -> bool:
    """Pure: may a peer at ``peer`` (an IP address, None if unknown) make this request?"""
    if method in READ_ONLY and path in PUBLIC:
        return True
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@web.middleware
async def _loopback_unless_public(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not allowed(method=request.method, path=request.path, peer=peer[0] if peer else None):
        body = {
            "error": {
                "message": "Only GET /healthz, /readyz, /metrics and /debug/members are served beyond the pod.",
                "type": "invalid_request_error",
                "param": None,
                "code": "loopback_only",
            }
        }
        return web.json_response(body, status=403)
    return await handler(request)


def build_app(
    *,
    routes: live.LiveRoutes,
    metrics_registry: metrics.Metrics,
    engine_of: Callable[[], engine.Engine | None],
) -> web.Application:
    app = web.Application(middlewares=[_loopback_unless_public])
    app[LIVE] = routes
    app[METRICS] = metrics_registry
    app[ENGINE_OF] = EngineRef(engine_of)
    app.router.add_get("/healthz", get_healthz)
    app.router.add_get("/readyz", get_readyz)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/debug/members", get_members)
    return app


async def get_healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def get_readyz(request: web.Request) -> web.Response:
    """Ready while a routes document is served; a rejected newer one is reported, not fatal.

    ``rejectedCredentials`` (credential name → reason, never key text) is what the operator's sweep
    turns into each ProviderCredential's CredentialRejected condition; ``cannotContinue`` (class → member
    id → reason) into each ModelClass's PrefillMismatch condition."""
    routes = request.app[LIVE]
    the_engine = request.app[ENGINE_OF].get()
    body = {
        **_routes_status(routes),
        "rejectedCredentials": the_engine.health.rejected_credentials() if the_engine is not None else {},
        "cannotContinue": the_engine.health.unable_to_continue() if the_engine is not None else {},
    }
    return web.json_response(body, status=200 if routes.ready else 503)


async def get_metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS]
    the_engine = request.app[ENGINE_OF].get()
    snapshot = request.app[LIVE].snapshot
    if the_engine is not None and snapshot is not None:
        registry.member_up.clear()
        registry.circuit.clear()
        registry.can_continue.clear()
        for class_name in snapshot.document.classes:
            for member_id, view in the_engine.health.snapshot(class_name).items():
                up = 0 if view.state is breaker.CircuitState.OPEN else 1
                registry.member_up.labels(class_name, member_id).set(up)
                registry.circuit.labels(class_name, member_id, view.state.value).set(1)
                registry.can_continue.labels(class_name, member_id).set(0 if view.cannot_continue else 1)
        registry.credential_rejected.clear()
        for credential, reason in the_engine.health.rejected_credentials().items():
            registry.credential_rejected.labels(credential, reason).set(1)
    return web.Response(
        body=registry.render(),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def get_members(request: web.Request) -> web.Response:
    routes = request.app[LIVE]
    the_engine = request.app[ENGINE_OF].get()
    classes: dict[str, object] = {}
    if routes.snapshot is not None:
        for name, route in routes.snapshot.document.classes.items():
            views = the_engine.health.snapshot(name) if the_engine is not None else {}
            classes[name] = {
                "members": [
                    {
                        "id": m.id,
                        "provider": m.provider.value,
                        "model": m.model,
                        "priority": m.priority,
                        "weight": m.weight,
                        **(views[m.id].to_dict() if m.id in views else {"state": "closed"}),
                    }
                    for m in route.members
                ]
            }
    return web.json_response({"routes": _routes_status(routes), "classes": classes})


def _routes_status(routes: live.LiveRoutes) -> dict[str, object]:
    snapshot = routes.snapshot
    return {
        "ready": routes.ready,
        "digest": snapshot.digest if snapshot else None,
        "namespace": snapshot.document.namespace if snapshot else None,
        "classes": sorted(snapshot.document.classes) if snapshot else [],
        "loadedAt": routes.loaded_at,
        "lastReloadError": routes.error,
    }
