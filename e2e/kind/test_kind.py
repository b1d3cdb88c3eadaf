"""End-to-end checks on a kind cluster where run.sh installed the chart (needs Docker; not run in CI)."""

from __future__ import annotations

import json
import subprocess
import time


def kubectl(*args: str) -> str:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, check=True).stdout


def test_the_operator_deployment_becomes_available():
    kubectl(
        "wait", "-n", "pilotfish-system", "--for=condition=Available", "--timeout=180s", "deployment/pilotfish-operator"
    )


def test_a_pod_in_a_labelled_namespace_gets_the_sidecar():
    kubectl("create", "namespace", "e2e-app")
    kubectl("label", "namespace", "e2e-app", "pilotfish.dev/injection=enabled")
    kubectl("run", "app", "-n", "e2e-app", "--image=busybox:1.36", "--restart=Never", "--", "sleep", "3600")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pod = json.loads(kubectl("get", "pod", "app", "-n", "e2e-app", "-o", "json"))
        names = [c["name"] for c in pod["spec"].get("initContainers", [])]
        if "pilotfish" in names:
            return
        time.sleep(2)
    raise AssertionError(f"no pilotfish sidecar in {names}")
