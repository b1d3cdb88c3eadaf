"""Says why a replica does nothing while kopf waits for its peering object.

With peering on (no ``--standalone``), kopf keeps every watch paused until the replica has seen the
peering object and found itself the one to reconcile. When the object (or its CRD) was never created,
kopf waits forever without a word, and the operator looks hung. ``watch_missing`` checks the object
at start and every ``interval`` seconds while it is missing, and logs what it waits for and the two
ways out, until the object appears. Called by ``main`` beside kopf; the API call is in ``kube``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from pilotfish_operator import kube

log = logging.getLogger("pilotfish.operator.peering")

RECHECK_SECONDS = 30.0  # often enough to notice a fix soon, rare enough to keep the log readable


def describe_missing(*, name: str, namespace: str | None) -> str:
    """The log line for a peering object that does not exist: what is awaited, and how to fix it."""
    if namespace is None:
        what = f"the ClusterKopfPeering {name!r} (kopf.dev/v1, cluster-wide)"
        manifest = f"apiVersion: kopf.dev/v1, kind: ClusterKopfPeering, metadata: {{name: {name}}}"
        crd = "kopf.dev_clusterkopfpeerings.yaml"
    else:
        what = f"the KopfPeering {name!r} in namespace {namespace!r} (kopf.dev/v1)"
        manifest = f"apiVersion: kopf.dev/v1, kind: KopfPeering, metadata: {{name: {name}, namespace: {namespace}}}"
        crd = "kopf.dev_kopfpeerings.yaml"
    return (
        f"waiting for {what}: it does not exist, so this replica neither reconciles nor hands over to another. "
        f"Fix: create it ({manifest}; the Helm chart does with operator.peering.enabled=true, and installs its "
        f"CRD from charts/pilotfish/crds/{crd}), or run a single replica with --standalone."
    )


async def watch_missing(
    api: kube.Kube,
    *,
    name: str,
    namespaces: Sequence[str],
    interval: float = RECHECK_SECONDS,
) -> None:
    """Log, until every peering object this replica needs exists; then log once that it was found."""
    wanted: list[str | None] = list(namespaces) or [None]
    reported = False
    while wanted:
        for namespace in list(wanted):
            try:
                exists = await asyncio.to_thread(api.peering_exists, name, namespace)
            except Exception:  # the API server unreachable for now: kopf reports that itself
                exists = None
            if exists:
                wanted.remove(namespace)
                if reported:
                    log.info("peering %r found%s", name, f" in {namespace!r}" if namespace else "")
            elif exists is False:
                log.warning("%s", describe_missing(name=name, namespace=namespace))
                reported = True
        if wanted:
            await asyncio.sleep(interval)
