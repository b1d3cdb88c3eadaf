"""``pilotfish top -n NS``: every injected pod of a namespace, read through the API server's pod proxy.

Here rather than in ``pilotfish.top`` because it needs the kubernetes client (the `operator` extra),
which the sidecar image does not carry.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import kubernetes

from pilotfish.top import sources
from pilotfish_operator import inject


class PodProxy:
    """Every injected pod of a namespace, read through ``/api/v1/namespaces/NS/pods/POD:PORT/proxy``."""

    def __init__(self, *, namespace: str, kubeconfig: str | None, port: int = 4001) -> None:
        self.namespace, self.port = namespace, port
        config: Any = kubernetes.config
        client = config.new_client_from_config(config_file=kubeconfig)
        self.core: Any = kubernetes.client.CoreV1Api(client)

    async def read(self) -> sources.Reading:
        pods = await asyncio.to_thread(self._pods)
        results = await asyncio.gather(*(asyncio.to_thread(self._one, pod) for pod in pods), return_exceptions=True)
        reading = sources.combine(list(zip(pods, results, strict=True)))
        if not pods:
            reading.problems.append(
                f"no pod with the {inject.STATUS_ANNOTATION} annotation in namespace {self.namespace}"
            )
        return reading

    def _pods(self) -> list[str]:
        pods = self.core.list_namespaced_pod(self.namespace).items
        return sorted(p.metadata.name for p in pods if inject.STATUS_ANNOTATION in (p.metadata.annotations or {}))

    def _one(self, pod: str) -> tuple[str, dict[str, Any]]:
        return self._get(pod, "metrics"), json.loads(self._get(pod, "debug/members"))

    def _get(self, pod: str, path: str) -> str:
        """The body as sent. Without ``_preload_content=False`` the client parses a JSON body and hands
        back ``str(dict)``, a Python repr with single quotes that no JSON parser reads (found on the
        real node: every pod showed as unreachable)."""
        response = self.core.connect_get_namespaced_pod_proxy_with_path(
            f"{pod}:{self.port}", self.namespace, path, _preload_content=False
        )
        return str(response.data.decode("utf-8"))
