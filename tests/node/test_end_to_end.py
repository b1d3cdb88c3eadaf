"""Pilotfish on a real node, as a user meets it: the chart installed with images built here, an app pod
in a labelled namespace, the openai SDK inside the app container, kubectl for everything else."""

from __future__ import annotations

import datetime
import time
import uuid

from e2e.testenv import node
from tests.node import workloads
from tests.node.conftest import RELEASE_NAMESPACE, get_json, wait_for


def started_at(status: dict, name: str) -> datetime.datetime:
    stamp = status["state"]["running"]["startedAt"]
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def statuses(pod: dict) -> dict[str, dict]:
    status = pod["status"]
    return {s["name"]: s for s in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])}


def test_the_operator_deployment_comes_up_ready_with_two_replicas(release: node.Node):
    deployment = get_json(release, "deployment", "pilotfish-operator", "-n", RELEASE_NAMESPACE)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 2 and deployment["status"].get("readyReplicas") == 2


def test_an_injected_app_starts_after_its_ready_sidecar_and_its_first_openai_call_succeeds(
    release: node.Node, app_namespace: str
):
    ip = workloads.start_mock(release, app_namespace, "primary")
    workloads.apply(release, app_namespace, [workloads.credential("primary", ip), workloads.model_class("primary")])
    wait_for(lambda: get_json(release, "configmap", "pilotfish-routes", "-n", app_namespace), what="routes ConfigMap")
    created = time.monotonic()
    workloads.apply(release, app_namespace, [workloads.app_pod("app")])  # admitted through the webhook's Service
    pod = wait_for(lambda: workloads.ready_ip(release, app_namespace, "app"), what="app pod Ready", timeout=180)
    ready_after = time.monotonic() - created
    found = get_json(release, "pod", "app", "-n", app_namespace)
    assert found is not None
    init = found["spec"]["initContainers"][0]
    assert init["name"] == "pilotfish" and init["restartPolicy"] == "Always"  # the native sidecar
    containers = statuses(found)
    assert containers["pilotfish"]["started"] is True and containers["pilotfish"]["ready"] is True
    assert started_at(containers["pilotfish"], "pilotfish") <= started_at(containers["app"], "app")
    first = wait_for(lambda: workloads.calls(release, app_namespace, "app"), what="the app's first call")[0]
    assert first["n"] == 1 and first["ok"] is True, first
    assert first["text"] == workloads.answer_of("primary") and first["model"] == "model-primary"
    print(f"\nFIGURE pod create to Ready (injected app): {ready_after:.1f}s; pod IP {pod}")


def test_an_injected_pod_in_a_namespace_without_any_class_starts_and_picks_one_up_later_without_restart(
    release: node.Node, app_namespace: str
):
    """The class applied later needs a key no Secret held when the pod started: it goes into
    ``pilotfish-keys``, the Secret every injected sidecar mounts (optional), and arrives with no restart."""
    workloads.apply(release, app_namespace, [workloads.app_pod("app", env={"APP_INTERVAL": "1"})])
    wait_for(lambda: workloads.ready_ip(release, app_namespace, "app"), what="app pod Ready", timeout=180)
    early = wait_for(lambda: workloads.calls(release, app_namespace, "app"), what="a first call")
    assert early[0]["ok"] is False and "NotFoundError" in early[0]["error"] and "workhorse" in early[0]["error"]
    key = f"sk-late-{uuid.uuid4().hex[:8]}"
    ip = workloads.start_mock(release, app_namespace, "late", api_key=key)  # refuses any other key
    applied = time.monotonic()
    workloads.apply(
        release,
        app_namespace,
        [
            workloads.secret("pilotfish-keys", {"late": key}),
            workloads.credential("late", ip, key_in="pilotfish-keys"),
            workloads.model_class("late"),
        ],
    )

    def served() -> bool:
        return any(call["ok"] for call in workloads.calls(release, app_namespace, "app"))

    wait_for(served, what="the class (and its new key) to be served", timeout=240, every=1)
    print(
        f"\nFIGURE class and its key applied to first success in a running pod (no ConfigMap, no Secret before): "
        f"{time.monotonic() - applied:.1f}s"
    )
    found = get_json(release, "pod", "app", "-n", app_namespace)
    assert found is not None
    assert all(status.get("restartCount", 0) == 0 for status in statuses(found).values())


def test_a_deleted_provider_pod_fails_over_to_the_other_and_no_app_request_fails(
    release: node.Node, app_namespace: str
):
    primary, backup = (workloads.start_mock(release, app_namespace, name) for name in ("primary", "backup"))
    workloads.apply(
        release,
        app_namespace,
        [
            workloads.credential("primary", primary),
            workloads.credential("backup", backup),
            workloads.model_class("primary", "backup"),
        ],
    )
    wait_for(lambda: get_json(release, "configmap", "pilotfish-routes", "-n", app_namespace), what="routes ConfigMap")
    workloads.apply(release, app_namespace, [workloads.app_pod("app", env={"APP_INTERVAL": "0.2"})])
    wait_for(lambda: workloads.ready_ip(release, app_namespace, "app"), what="app pod Ready", timeout=180)
    wait_for(lambda: len(workloads.calls(release, app_namespace, "app")) >= 5, what="traffic")
    release.kubectl("delete", "pod", "primary", "-n", app_namespace, "--wait=true", timeout=120)
    deleted = len(workloads.calls(release, app_namespace, "app"))

    def backup_answers() -> bool:
        later = workloads.calls(release, app_namespace, "app")[deleted:]
        return sum(call.get("text") == workloads.answer_of("backup") for call in later) >= 10

    wait_for(backup_answers, what="ten answers from the backup after the primary's pod was deleted", timeout=120)
    failed = [call for call in workloads.calls(release, app_namespace, "app") if not call["ok"]]
    assert failed == []
