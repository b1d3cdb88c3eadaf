"""The sidecar injection patch for one Pod. Pure: a Pod in, JSONPatch operations (or a reason to skip) out.

Shape learnt from Istio's and Linkerd's injectors, on the native-sidecar model (Kubernetes 1.29+):
the sidecar is an init container with ``restartPolicy: Always`` and a startup probe, so app
containers start only once it serves, and it outlives them on shutdown. The routes ConfigMap is
mounted as a directory (a subPath mount never sees updates); only the Secrets that the namespace's
ProviderCredentials name are mounted, into the sidecar alone, plus ``LATE_KEYS_SECRET`` (optional):
a pod's volumes are fixed when it is created, so a key for a credential applied later reaches running
pods only through a Secret they already mount; that one is always mounted, so it is where such keys
go. The status annotation makes the patch idempotent: a re-invoked webhook or a re-applied Pod never
gets a second sidecar.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pilotfish.routes import document
from pilotfish_operator import injector_config

CONTAINER = "pilotfish"
STATUS_ANNOTATION = "pilotfish.dev/status"
INJECT_LABEL = "pilotfish.dev/inject"
INJECTION_NS_LABEL = "pilotfish.dev/injection"
SIDECAR_LABEL = "pilotfish.dev/sidecar"  # set on injected pods: the chart's PodMonitor selects them
CPU_ANNOTATION = "pilotfish.dev/sidecar-cpu"
MEMORY_ANNOTATION = "pilotfish.dev/sidecar-memory"
ROUTES_DIR = "/etc/pilotfish/routes"
SECRETS_DIR = "/etc/pilotfish/secrets"
ROUTES_VOLUME = "pilotfish-routes"
PODINFO_DIR = "/etc/pilotfish/podinfo"  # the pod's own labels (downward API), for tier rules on podLabels
PODINFO_VOLUME = "pilotfish-podinfo"
# Always mounted (optional: absent is fine), so a Secret created or extended after a pod started still
# reaches its sidecar through the kubelet's refresh. The operator never reads or writes its values.
LATE_KEYS_SECRET = "pilotfish-keys"
TOKEN_DIR = "/var/run/secrets/pilotfish"  # the pod's ServiceAccount token for audience pilotfish (Budgets)
TOKEN_VOLUME = "pilotfish-token"
TOKEN_SECONDS = 3600  # the kubelet rotates it at 80% of this; the sidecar re-reads it on every call
BUDGET_CA_ENV = "PILOTFISH_BUDGET_CA_PEM"
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


@dataclasses.dataclass(frozen=True)
class Decision:
    patch: list[dict[str, Any]]  # empty when skipped
    reason: str  # Injected, or why not
    warnings: tuple[str, ...] = ()

    @property
    def injected(self) -> bool:
        return bool(self.patch)


def decide(pod: Mapping[str, Any], *, secrets: Sequence[str], config: injector_config.InjectorConfig) -> Decision:
    """``secrets``: the Secret names the namespace's ProviderCredentials reference."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    if STATUS_ANNOTATION in (meta.get("annotations") or {}):
        return Decision([], "AlreadyInjected")
    if (meta.get("labels") or {}).get(INJECT_LABEL) == "false":
        return Decision([], "OptedOut")
    if spec.get("hostNetwork"):
        return Decision([], "HostNetwork")  # 127.0.0.1:4000 would be the node's, shared by every such pod

    warnings: list[str] = []
    secret_names = sorted({*secrets, LATE_KEYS_SECRET})
    sidecar = _sidecar(config, secret_names, meta.get("annotations") or {}, warnings)
    containers = copy.deepcopy(list(spec.get("containers") or []))
    init_containers = copy.deepcopy(list(spec.get("initContainers") or []))
    user = _pop_named(containers, CONTAINER) or _pop_named(init_containers, CONTAINER)
    if user is not None:  # the user's fields win over our template's
        sidecar = {**sidecar, **user, "restartPolicy": "Always"}
    for container in containers:
        _set_env_defaults(container, config)
    ours = _volumes(secret_names, budgets=config.budgets is not None)
    taken = {volume["name"] for volume in ours}
    volumes = [v for v in copy.deepcopy(list(spec.get("volumes") or [])) if v.get("name") not in taken] + ours
    annotations = {
        **(meta.get("annotations") or {}),
        STATUS_ANNOTATION: json.dumps(
            {"version": 1, "image": sidecar.get("image"), "secrets": secret_names}, separators=(",", ":")
        ),
    }
    patch: list[dict[str, Any]] = [
        {"op": "add", "path": "/spec/initContainers", "value": [sidecar, *init_containers]},
        {"op": "add", "path": "/spec/containers", "value": containers},
        {"op": "add", "path": "/spec/volumes", "value": volumes},
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
        {"op": "add", "path": "/metadata/labels", "value": {**(meta.get("labels") or {}), SIDECAR_LABEL: "injected"}},
    ]
    return Decision(patch, "Injected", tuple(warnings))


def secret_volume_name(secret: str) -> str:
    """A volume name is a DNS label (63 chars); long Secret names get a stable hash instead."""
    name = f"pilotfish-secret-{secret}"
    if len(name) <= 63 and "." not in secret:
        return name
    return f"pilotfish-secret-{hashlib.sha256(secret.encode()).hexdigest()[:16]}"


def _sidecar(
    config: injector_config.InjectorConfig, secrets: Sequence[str], annotations: Mapping[str, str], warnings: list[str]
) -> dict[str, Any]:
    requests, limits = dict(config.resources.requests), dict(config.resources.limits)
    for annotation, resource in ((CPU_ANNOTATION, "cpu"), (MEMORY_ANNOTATION, "memory")):
        value = annotations.get(annotation)
        if value is None:
            continue
        if not QUANTITY.match(value):
            warnings.append(f"{annotation}: {value!r} is not a resource quantity; using {requests.get(resource)}")
            continue
        requests[resource] = value
        if resource in limits:
            limits[resource] = value
    admin = config.admin_port
    probe = {"httpGet": {"path": "/readyz", "port": admin}, "periodSeconds": 1, "failureThreshold": 60}
    return {
        "name": CONTAINER,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "restartPolicy": "Always",
        "args": [
            "--config-dir",
            ROUTES_DIR,
            "--secrets-dir",
            SECRETS_DIR,
            "--listen",
            f"127.0.0.1:{config.listen_port}",
            "--admin",
            f"0.0.0.0:{admin}",
            "--pod-labels-file",
            f"{PODINFO_DIR}/labels",
            *_budget_args(config),
        ],
        "ports": [{"name": "pf-admin", "containerPort": admin, "protocol": "TCP"}],
        **({"env": env} if (env := _sidecar_env(config)) else {}),
        "startupProbe": probe,
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": admin}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": admin}, "periodSeconds": 10},
        "resources": {"requests": requests, "limits": limits},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": ROUTES_VOLUME, "mountPath": ROUTES_DIR, "readOnly": True},
            {"name": PODINFO_VOLUME, "mountPath": PODINFO_DIR, "readOnly": True},
            *({"name": secret_volume_name(s), "mountPath": f"{SECRETS_DIR}/{s}", "readOnly": True} for s in secrets),
            *([{"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True}] if config.budgets else []),
        ],
    }


def _budget_args(config: injector_config.InjectorConfig) -> list[str]:
    if config.budgets is None:
        return []
    return ["--budget-url", config.budgets.url, "--budget-token-file", f"{TOKEN_DIR}/token"]


def _sidecar_env(config: injector_config.InjectorConfig) -> list[dict[str, Any]]:
    """The chart's variables; the pod's namespace; the CA the sidecar trusts for the allowance endpoint."""
    env: list[dict[str, Any]] = [variable.to_wire() for variable in config.env]
    if config.budgets is not None:
        env.append({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})
        if config.budgets.ca_pem:
            env.append({"name": BUDGET_CA_ENV, "value": config.budgets.ca_pem})
    return env


def _volumes(secrets: Sequence[str], *, budgets: bool) -> list[dict[str, Any]]:
    # optional: a Secret created later, or a class not applied yet, must not keep the pod from starting
    routes = {"name": ROUTES_VOLUME, "configMap": {"name": document.CONFIGMAP_NAME, "optional": True}}
    labels = {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
    podinfo = {"name": PODINFO_VOLUME, "downwardAPI": {"items": [labels]}}
    keys = ({"name": secret_volume_name(s), "secret": {"secretName": s, "optional": True}} for s in secrets)
    token = {
        "name": TOKEN_VOLUME,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"audience": "pilotfish", "expirationSeconds": TOKEN_SECONDS, "path": "token"}}
            ]
        },
    }
    return [routes, podinfo, *keys, *([token] if budgets else [])]


def _set_env_defaults(container: dict[str, Any], config: injector_config.InjectorConfig) -> None:
    """Point the OpenAI and Anthropic SDKs at the sidecar, unless the app set these itself."""
    env = container.setdefault("env", [])
    have = {item.get("name") for item in env}
    base = f"http://127.0.0.1:{config.listen_port}"
    for name, value in (("OPENAI_BASE_URL", f"{base}/v1"), ("ANTHROPIC_BASE_URL", base)):
        if name not in have:
            env.append({"name": name, "value": value})


def _pop_named(containers: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for index, container in enumerate(containers):
        if container.get("name") == name:
            return containers.pop(index)
    return None
