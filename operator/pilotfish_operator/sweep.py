"""Finds opted-in pods that run without the sidecar: injection missed while the webhook was down.

With ``failurePolicy: Ignore`` an operator outage never blocks pod creation, so it has to be
visible afterwards instead: a Warning Event on each such pod (once) and a gauge to alert on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from pilotfish_operator import inject, kube, metrics

log = logging.getLogger("pilotfish.operator.sweep")
ALWAYS_EXCLUDED = frozenset({"kube-system", "kube-public", "kube-node-lease"})


def missed(pod: Any, *, namespace_enabled: bool, own_namespace: str | None) -> bool:
    """Pure: should this pod have the sidecar and does it lack it?"""
    meta = pod.metadata
    if meta.namespace in ALWAYS_EXCLUDED or meta.namespace == own_namespace:
        return False
    labels: Mapping[str, str] = meta.labels or {}
    annotations: Mapping[str, str] = meta.annotations or {}
    opted_in = labels.get(inject.INJECT_LABEL) == "true" or (
        namespace_enabled and labels.get(inject.INJECT_LABEL) != "false"
    )
    if not opted_in or inject.STATUS_ANNOTATION in annotations or (pod.spec and pod.spec.host_network):
        return False
    return (pod.status is None or pod.status.phase not in ("Succeeded", "Failed")) and meta.deletion_timestamp is None


class Sweeper:
    def __init__(self, api: kube.Kube, *, own_namespace: str | None, interval: float) -> None:
        self.api, self.own_namespace, self.interval = api, own_namespace, interval
        self._reported: set[str] = set()

    def sweep(self) -> list[str]:
        """One pass (blocking): the ``namespace/name`` of every pod that missed injection."""
        enabled = set(self.api.namespaces_labelled(f"{inject.INJECTION_NS_LABEL}=enabled"))
        pods = {p.metadata.uid: p for ns in sorted(enabled) for p in self.api.pods(namespace=ns)}
        pods.update({p.metadata.uid: p for p in self.api.pods(selector=f"{inject.INJECT_LABEL}=true")})
        found = [
            p
            for p in pods.values()
            if missed(p, namespace_enabled=p.metadata.namespace in enabled, own_namespace=self.own_namespace)
        ]
        metrics.INJECTION_MISSED.set(len(found))
        for pod in found:
            if pod.metadata.uid in self._reported:
                continue
            self._reported.add(pod.metadata.uid)
            involved = {
                "api_version": "v1",
                "kind": "Pod",
                "name": pod.metadata.name,
                "namespace": pod.metadata.namespace,
                "uid": pod.metadata.uid,
            }
            message = "opted in to the pilotfish sidecar but runs without it (was the webhook down?); recreate the pod"
            try:
                self.api.event(
                    pod.metadata.namespace, involved, type_="Warning", reason="InjectionMissed", message=message
                )
            except Exception as exc:
                log.warning(
                    "could not post InjectionMissed on %s/%s: %s", pod.metadata.namespace, pod.metadata.name, exc
                )
        self._reported &= {p.metadata.uid for p in found}
        return [f"{p.metadata.namespace}/{p.metadata.name}" for p in found]

    async def run(self) -> None:
        while True:
            try:
                names = await asyncio.to_thread(self.sweep)
                if names:
                    log.warning("pods opted in but without the sidecar: %s", ", ".join(names))
            except Exception as exc:
                log.warning("missed-injection sweep failed: %s", exc)
            await asyncio.sleep(self.interval)
