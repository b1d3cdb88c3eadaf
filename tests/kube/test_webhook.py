"""Admission on a real API server: it calls the operator's webhook over TLS for Pods and Pilotfish objects."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from tests.kube import webhooks
from tests.kube.conftest import RunningOperator, delete_namespace, wait_for

POD = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s, labels: %(labels)s}
spec:
  containers:
    - {name: app, image: registry.example/app:1}
"""


@dataclasses.dataclass(frozen=True)
class Admission:
    operator: RunningOperator
    workdir: pathlib.Path
    probes: str  # a namespace for probe pods that show which configuration is in effect


@pytest.fixture(scope="module")
def admission(
    crds_applied: Any, operator: RunningOperator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Admission]:
    """The chart's webhook configurations, pointed at the operator on loopback, in effect."""
    workdir = tmp_path_factory.mktemp("webhooks")
    manifests = webhooks.render(crds_applied, operator, workdir)
    probes = f"probes-{uuid.uuid4().hex[:6]}"
    crds_applied.kubectl("create", "namespace", probes)
    crds_applied.kubectl("apply", "-f", "-", stdin=manifests)
    try:
        webhooks.wait_until_injecting(crds_applied, probes, expected=True)
        yield Admission(operator, workdir, probes)
    finally:
        crds_applied.kubectl("delete", "--ignore-not-found", "-f", "-", stdin=manifests)
        delete_namespace(crds_applied, probes)


def create_pod(plane: Any, namespace: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    manifest = POD % {"name": name, "labels": json.dumps(labels or {})}
    done = plane.kubectl("create", "-n", namespace, "-f", "-", "-o", "json", stdin=manifest)
    return dict(json.loads(done.stdout))


def label_namespace(plane: Any, namespace: str) -> None:
    plane.kubectl("label", "namespace", namespace, "pilotfish.dev/injection=enabled")


def reasons(plane: Any, namespace: str, name: str) -> set[str]:
    done = plane.kubectl(
        "get", "-n", namespace, "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
    )
    return {event["reason"] for event in json.loads(done.stdout)["items"]}


def test_a_pod_in_an_injection_namespace_gets_the_sidecar_and_the_namespace_secrets(crds_applied, namespace, admission):
    label_namespace(crds_applied, namespace)
    crds_applied.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin="""
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {name: openai-prod}
spec: {provider: openai, apiKeySecretRef: {name: vendor-keys, key: openai}}
""",
    )
    pod = create_pod(crds_applied, namespace, "app")
    init = pod["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["pilotfish"] and init[0]["restartPolicy"] == "Always"
    assert {v["name"] for v in pod["spec"]["volumes"]} >= {"pilotfish-routes", "pilotfish-secret-vendor-keys"}
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:4000/v1"
    assert "pilotfish.dev/status" in pod["metadata"]["annotations"]
    wait_for(lambda: "Injected" in reasons(crds_applied, namespace, "app"), what="Injected event")
    assert admission.operator.metric('pilotfish_operator_injections_total{result="injected"') >= 1


def test_an_already_injected_pod_gets_nothing_more(crds_applied, namespace, admission):
    label_namespace(crds_applied, namespace)
    first = create_pod(crds_applied, namespace, "first")
    again = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "again", "annotations": first["metadata"]["annotations"]},
        "spec": {k: first["spec"][k] for k in ("initContainers", "containers", "volumes")},
    }
    done = crds_applied.kubectl("create", "-n", namespace, "-f", "-", "-o", "json", stdin=json.dumps(again))
    pod = json.loads(done.stdout)
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["pilotfish"]
    assert len(pod["spec"]["volumes"]) == len(first["spec"]["volumes"])
    assert sum(e["name"] == "OPENAI_BASE_URL" for e in pod["spec"]["containers"][0]["env"]) == 1


def test_pods_that_did_not_opt_in_are_untouched_and_opted_out_ones_too(crds_applied, namespace, admission):
    plain = create_pod(crds_applied, namespace, "plain")
    assert "initContainers" not in plain["spec"] and "env" not in plain["spec"]["containers"][0]
    label_namespace(crds_applied, namespace)
    out = create_pod(crds_applied, namespace, "out", {"pilotfish.dev/inject": "false"})
    assert "initContainers" not in out["spec"]


def test_a_pod_can_opt_in_by_label_in_any_namespace(crds_applied, namespace, admission):
    pod = create_pod(crds_applied, namespace, "opted", {"pilotfish.dev/inject": "true"})
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["pilotfish"]


def test_with_the_webhook_unreachable_pods_are_still_created_and_the_miss_is_reported(
    crds_applied, namespace, admission
):
    dead = webhooks.render(
        crds_applied, admission.operator, admission.workdir, url="https://127.0.0.1:1"
    )  # nothing listens
    crds_applied.kubectl("apply", "-f", "-", stdin=dead)
    try:
        webhooks.wait_until_injecting(crds_applied, admission.probes, expected=False)
        label_namespace(crds_applied, namespace)
        # the API server waits at most timeoutSeconds for a webhook, then, with failurePolicy Ignore, admits the
        # pod: how long that takes is the configuration's to say, not this machine's speed to measure
        mutating = [doc for doc in yaml.safe_load_all(dead) if doc and doc["kind"] == "MutatingWebhookConfiguration"]
        hooks = [hook for doc in mutating for hook in doc["webhooks"]]
        assert hooks and all(h["failurePolicy"] == "Ignore" and h["timeoutSeconds"] <= 10 for h in hooks)
        pod = create_pod(crds_applied, namespace, "missed")
        assert "initContainers" not in pod["spec"]  # failurePolicy Ignore: created, without the sidecar
    finally:
        crds_applied.kubectl(
            "apply", "-f", "-", stdin=webhooks.render(crds_applied, admission.operator, admission.workdir)
        )
        webhooks.wait_until_injecting(crds_applied, admission.probes, expected=True)
    wait_for(lambda: "InjectionMissed" in reasons(crds_applied, namespace, "missed"), what="InjectionMissed event")
    assert admission.operator.metric("pilotfish_operator_injection_missed_pods") >= 1


def test_the_validating_webhook_refuses_what_the_schema_cannot_say_naming_the_field(crds_applied, namespace, admission):
    bad = {
        "apiVersion": "pilotfish.dev/v1alpha1",
        "kind": "ModelClass",
        "metadata": {"name": "slow"},
        "spec": {
            "members": [{"credentialRef": "c", "model": "m"}],
            "timeouts": {"firstTokenSeconds": 120, "totalSeconds": 60},
        },
    }
    done = crds_applied.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(bad), check=False)
    assert done.returncode != 0
    assert (
        'denied the request: ModelClass "slow" is invalid: spec.timeouts: Value error, firstTokenSeconds (120)'
        in done.stderr
    )
    bad["spec"]["timeouts"]["totalSeconds"] = 300
    crds_applied.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(bad))


def test_the_validating_webhook_refuses_a_class_that_is_its_own_tier(crds_applied, namespace, admission):
    looped = {
        "apiVersion": "pilotfish.dev/v1alpha1",
        "kind": "ModelClass",
        "metadata": {"name": "assistant"},
        "spec": {"tiers": {"ladder": ["cheap", "assistant"], "default": "cheap"}},
    }
    done = crds_applied.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(looped), check=False)
    assert done.returncode != 0
    assert (
        'denied the request: ModelClass "assistant" is invalid: '
        "Value error, spec.tiers.ladder names the class itself ('assistant')" in done.stderr
    )
