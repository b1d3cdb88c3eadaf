"""The chart's webhook configurations, rendered with ``helm template`` and pointed at the operator on loopback."""

from __future__ import annotations

import json
import pathlib
import uuid
from typing import Any

import yaml
from tests.kube.conftest import ROOT, RunningOperator, wait_for

CHART = ROOT / "charts" / "pilotfish"


def render(plane: Any, operator: RunningOperator, workdir: pathlib.Path, *, url: str | None = None) -> str:
    """Only the two *WebhookConfiguration documents, as the chart writes them with ``webhook.url`` set."""
    values = workdir / f"webhook-values-{uuid.uuid4().hex[:6]}.yaml"
    values.write_text(
        yaml.safe_dump(
            {"webhook": {"url": url or operator.webhook_url, "caBundle": operator.ca_bundle, "failurePolicy": "Ignore"}}
        )
    )
    out = plane.helm(
        "template",
        "pilotfish",
        str(CHART),
        "-n",
        "pilotfish-system",
        "-f",
        str(values),
        "--show-only",
        "templates/webhook.yaml",
    ).stdout
    configs = [d for d in yaml.safe_load_all(out) if d and d["kind"].endswith("WebhookConfiguration")]
    assert len(configs) == 2, [d["kind"] for d in configs]
    return yaml.safe_dump_all(configs)


def injected(pod: dict[str, Any]) -> bool:
    return any(c["name"] == "pilotfish" for c in pod["spec"].get("initContainers") or [])


def create_probe(plane: Any, namespace: str) -> dict[str, Any]:
    name = f"probe-{uuid.uuid4().hex[:6]}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"pilotfish.dev/inject": "true"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
    }
    done = plane.kubectl("create", "-n", namespace, "-f", "-", "-o", "json", stdin=json.dumps(manifest))
    return dict(json.loads(done.stdout))


def wait_until_injecting(plane: Any, namespace: str, *, expected: bool) -> None:
    """The API server loads webhook configurations from a watch: wait until the newest one is in effect."""
    wait_for(lambda: injected(create_probe(plane, namespace)) is expected, what=f"injection={expected} in effect")
