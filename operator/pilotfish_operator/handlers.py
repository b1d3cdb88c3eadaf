"""What kopf watches, and the one thing every watch event does: mark a namespace dirty.

kopf gives us watches, peering (only the active replica reconciles) and login; the reconciler
decides what to write. Handlers are async so they run on the operator's loop, not in a thread.
"""

from __future__ import annotations

from typing import Any

import kopf

from pilotfish.routes import document
from pilotfish_operator import desired, reconciler
from pilotfish_operator.budgets import homes


def build_registry(recon: reconciler.Reconciler) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.event("pilotfish.dev", "v1alpha1", "providercredentials", registry=registry)
    async def pilotfish_object_changed(namespace: str | None, **_: Any) -> None:
        if namespace:
            recon.trigger(namespace)

    seen_classes: dict[tuple[str, str], str] = {}

    @kopf.on.event("pilotfish.dev", "v1alpha1", "modelclasses", registry=registry)
    async def class_changed(namespace: str | None, name: str | None, event: Any, type: str | None, **_: Any) -> None:
        """Any change re-renders but the member-quota counters in status, which change every second."""
        key, seen = (namespace or "", name or ""), homes.without_counters(event.get("object") or {})
        if namespace and (type == "DELETED" or seen_classes.get(key) != seen):
            seen_classes[key] = seen
            recon.trigger(namespace)

    generations: dict[tuple[str, str], int | None] = {}

    @kopf.on.event("pilotfish.dev", "v1alpha1", "budgets", registry=registry)
    async def budget_changed(namespace: str | None, name: str | None, body: Any, type: str | None, **_: Any) -> None:
        """Only a new spec (generation) or a deletion re-renders: the counters in status change every second."""
        generation = (body.get("metadata") or {}).get("generation")
        key = (namespace or "", name or "")
        if namespace and (type == "DELETED" or generations.get(key) != generation):
            generations[key] = generation
            recon.trigger(namespace)

    if recon.secrets.watches_secrets:  # otherwise the operator may not watch Secrets: it passes over them

        @kopf.on.event("", "v1", "secrets", registry=registry)
        async def secret_changed(namespace: str | None, name: str | None, **_: Any) -> None:
            if namespace and name and recon.uses_secret(namespace, name):
                recon.trigger(namespace)

    @kopf.on.event("", "v1", "configmaps", labels=desired.MANAGED_BY, registry=registry)
    async def routes_changed(namespace: str | None, name: str | None, **_: Any) -> None:
        """Someone edited or deleted our ConfigMap: put it back."""
        if namespace and name == document.CONFIGMAP_NAME:
            recon.trigger(namespace)

    return registry
