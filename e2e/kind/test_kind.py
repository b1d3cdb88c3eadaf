"""End-to-end checks on a kind cluster where ``run.sh`` installed charts/pilotfish (needs Docker; not run in CI).

``pytest`` from the repository root never collects this file (``testpaths = ["tests"]``); ``run.sh``
runs it explicitly with KUBECONFIG pointing at the kind cluster.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

RELEASE_NAMESPACE = "pilotfish-system"
OPERATOR_DEPLOYMENT = "pilotfish-operator"
INJECTION_LABEL = "pilotfish.dev/injection=enabled"
SIDECAR_CONTAINER = "pilotfish"
APP_IMAGE = "registry.k8s.io/pause:3.10"  # any image will do: only the pod spec is inspected


def kubectl(*args: str, check: bool = True) -> str:
    done = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=240)
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


@pytest.fixture
def labelled_namespace() -> Iterator[str]:
    name = f"e2e-app-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, INJECTION_LABEL)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_the_operator_deployment_becomes_available():
    kubectl(
        "wait",
        "-n",
        RELEASE_NAMESPACE,
        "--for=condition=Available",
        "--timeout=180s",
        f"deployment/{OPERATOR_DEPLOYMENT}",
    )


def _container_names(pod: dict[str, object]) -> list[str]:
    spec = pod["spec"]
    assert isinstance(spec, dict)
    # a native sidecar is an init container with restartPolicy: Always; a classic one is a container
    return [c["name"] for c in spec.get("initContainers", []) + spec.get("containers", [])]


def test_a_pod_in_a_labelled_namespace_gets_the_sidecar(labelled_namespace):
    kubectl(
        "wait",
        "-n",
        RELEASE_NAMESPACE,
        "--for=condition=Available",
        "--timeout=180s",
        f"deployment/{OPERATOR_DEPLOYMENT}",
    )
    # The webhook mutates at admission; until its endpoint is served, a pod may be admitted untouched,
    # so a fresh pod is created per attempt rather than waiting on one.
    deadline = time.monotonic() + 90
    attempt, names = 0, []
    while time.monotonic() < deadline:
        attempt += 1
        pod = f"app-{attempt}"
        kubectl("run", pod, "-n", labelled_namespace, f"--image={APP_IMAGE}", "--restart=Never")
        names = _container_names(json.loads(kubectl("get", "pod", pod, "-n", labelled_namespace, "-o", "json")))
        if SIDECAR_CONTAINER in names:
            return
        time.sleep(3)
    raise AssertionError(f"no {SIDECAR_CONTAINER!r} container injected after {attempt} pods; last had {names}")


def test_a_pod_in_an_unlabelled_namespace_is_left_alone():
    name = f"e2e-plain-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    try:
        kubectl("run", "app", "-n", name, f"--image={APP_IMAGE}", "--restart=Never")
        pod = json.loads(kubectl("get", "pod", "app", "-n", name, "-o", "json"))
        assert SIDECAR_CONTAINER not in _container_names(pod)
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)
