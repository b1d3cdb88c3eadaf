"""``pilotfish canary status|promote|abort|retry|pause|resume NAME``: the kubectl patches, with their names spelt out.

Each action is one merge patch of spec.canary, the same a user could send with ``kubectl patch``
(docs/canary.md lists those recipes); the operator does the rest on its next pass.
"""

from __future__ import annotations

import sys
from typing import Any

import kubernetes

from pilotfish.api import canary
from pilotfish_operator import kube

PATCHES: dict[str, dict[str, Any]] = {
    "promote": {"promote": "Step"},
    "promote-full": {"promote": "Full"},
    "abort": {"abort": True},
    "retry": {"abort": None, "retry": True},
    "pause": {"paused": True},
    "resume": {"paused": False},
}


def main(*, action: str, name: str, namespace: str | None, kubeconfig: str | None, full: bool) -> int:
    config: Any = kubernetes.config
    try:
        client = config.new_client_from_config(config_file=kubeconfig)
    except config.ConfigException as exc:
        sys.stderr.write(f"pilotfish canary: no usable kubeconfig: {exc}\n")
        return 2
    if namespace is None:
        try:
            namespace = (
                config.list_kube_config_contexts(config_file=kubeconfig)[1]["context"].get("namespace") or "default"
            )
        except (config.ConfigException, KeyError, TypeError):
            namespace = "default"
    custom: Any = kubernetes.client.CustomObjectsApi(client)
    try:
        obj = custom.get_namespaced_custom_object(kube.GROUP, kube.VERSION, namespace, "modelclasses", name)
        if action != "status":
            if not (obj.get("spec") or {}).get("canary"):
                sys.stderr.write(f'ModelClass "{name}" in namespace {namespace} has no spec.canary\n')
                return 1
            patch = PATCHES["promote-full" if action == "promote" and full else action]
            obj = custom.patch_namespaced_custom_object(
                kube.GROUP, kube.VERSION, namespace, "modelclasses", name, {"spec": {"canary": patch}}
            )
            sys.stdout.write(f"modelclass.pilotfish.dev/{name} patched: spec.canary {patch}\n")
    except kubernetes.client.exceptions.ApiException as exc:
        sys.stderr.write(f"pilotfish canary {action} {name}: {exc.status} {exc.reason}\n")
        return 1
    sys.stdout.write(describe(obj))
    return 0


def describe(obj: dict[str, Any]) -> str:
    """The canary's status as a short block of text."""
    spec = (obj.get("spec") or {}).get("canary") or {}
    status = (obj.get("status") or {}).get("canary") or {}
    if not spec and not status:
        return f"{obj['metadata']['name']}: no canary\n"
    member = spec.get("member") or {}
    steps = spec.get("steps") or []
    analysis = spec.get("analysis") or {}
    limit = analysis.get("failureLimit", 3)
    lines = [
        f"ModelClass:  {obj['metadata']['name']}",
        f"Canary:      {member.get('credentialRef', '?')}/{member.get('model', '?')}",
        f"Phase:       {status.get('phase', 'Idle')}",
        f"Step:        {min(status.get('currentStepIndex', 0) + 1, len(steps))}/{len(steps)}",
        *_weight_lines(
            status,
            window=f"{max(30, int(canary.seconds(analysis.get('interval', '1m'))))}s",
            measured=bool(analysis.get("prometheus")),
        ),
        f"Checks:      {status.get('failedChecks', 0)} failed of {limit} allowed",
        f"Message:     {status.get('message', '')}",
    ]
    return "\n".join(lines) + "\n"


def _weight_lines(status: dict[str, Any], *, window: str, measured: bool) -> list[str]:
    """The set weight, and what the sidecars were seen doing: a share of requests averaged over the query
    window, so it trails every weight change by up to one window (a promoted canary reads below 100% until
    the window holds only traffic from after the promotion)."""
    weight, observed = status.get("weight", 0), status.get("observedWeight")
    if not measured:
        return [f"Weight:      {weight}% (not observed: no analysis.prometheus to observe with)"]
    if observed is None:
        return [f"Weight:      {weight}% (observed: unknown, no slice series in Prometheus for this class yet)"]
    lines = [f"Weight:      {weight}% (observed {observed:.1f}% of requests over the last {window})"]
    if status.get("phase") in ("Promoting", "Succeeded") and observed < weight - 1:
        lines.append(f"             a trailing average: it reaches {weight}% one window after the last weight change")
    return lines
