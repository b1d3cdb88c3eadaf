"""Day-two operations on the real node: a class change reaching running sidecars, `pilotfish top -n`
through the pod proxy, the peering takeover when the active operator pod dies."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from e2e.testenv import node
from tests.node import workloads
from tests.node.conftest import RELEASE_NAMESPACE, ROOT, get_json, wait_for


def running_app(release: node.Node, namespace: str, *members: str) -> dict[str, str]:
    ips = {name: workloads.start_mock(release, namespace, name) for name in members}
    credentials = [workloads.credential(name, ip) for name, ip in ips.items()]
    workloads.apply(release, namespace, [*credentials, workloads.model_class(members[0])])
    wait_for(lambda: get_json(release, "configmap", "pilotfish-routes", "-n", namespace), what="routes ConfigMap")
    workloads.apply(release, namespace, [workloads.app_pod("app", env={"APP_INTERVAL": "0.5"})])
    wait_for(lambda: workloads.ready_ip(release, namespace, "app"), what="app pod Ready", timeout=180)
    return ips


def test_a_class_change_reaches_the_running_sidecar_through_the_kubelets_configmap_refresh(
    release: node.Node, app_namespace: str
):
    running_app(release, app_namespace, "first", "second")
    before = workloads.sidecar_readyz(release, app_namespace, "app")["digest"]
    changed = time.monotonic()
    workloads.apply(release, app_namespace, [workloads.model_class("second")])

    def new_digest() -> str | None:
        configmap = get_json(release, "configmap", "pilotfish-routes", "-n", app_namespace)
        digest = workloads.sidecar_readyz(release, app_namespace, "app").get("digest")
        wanted = json.loads(configmap["data"]["routes.json"]) if configmap else None
        return digest if digest != before and wanted and "second" in json.dumps(wanted) else None

    wait_for(new_digest, what="the sidecar to serve the changed class", timeout=300, every=0.5)
    delay = time.monotonic() - changed
    calls = workloads.calls(release, app_namespace, "app")
    wait_for(
        lambda: workloads.calls(release, app_namespace, "app")[-1].get("text") == workloads.answer_of("second"),
        what="the app to be answered by the new member",
    )

    def current() -> dict | None:
        found = get_json(release, "modelclass", "workhorse", "-n", app_namespace)
        propagation = (found or {}).get("status", {}).get("propagation") or {}
        return propagation if propagation.get("current") == 1 and propagation.get("stale") == 0 else None

    propagation = wait_for(current, what="status.propagation to go current", timeout=300, every=1)
    status_delay = time.monotonic() - changed
    assert all(call["ok"] for call in calls)
    print(
        f"\nFIGURE ConfigMap propagation (kubelet syncFrequency {release.sync_seconds}s): sidecar serves the change "
        f"{delay:.1f}s after kubectl apply; status.propagation current after {status_delay:.1f}s: {propagation}"
    )


def test_pilotfish_top_reads_the_real_sidecars_through_the_pod_proxy(release: node.Node, app_namespace: str):
    running_app(release, app_namespace, "solo")
    wait_for(lambda: len(workloads.calls(release, app_namespace, "app")) >= 3, what="traffic")
    done = subprocess.run(
        [sys.executable, "-m", "pilotfish.cli", "top", "-n", app_namespace, "--once"],
        env={**release.env(), "PYTHONPATH": f"{ROOT / 'sidecar'}:{ROOT / 'operator'}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    solo = next((row for row in rows if row[:2] == ["workhorse", "solo/model-solo"]), None)
    assert solo is not None and solo[3] == "closed", done.stdout  # the class, its member, a closed circuit
    assert "unreachable" not in done.stdout, done.stdout


def test_killing_the_operator_pod_that_holds_the_peering_hands_reconciliation_to_the_other(
    release: node.Node, app_namespace: str
):
    peering = get_json(release, "clusterkopfpeering", "pilotfish")
    assert peering is not None
    peers = peering.get("status") or {}
    pods = get_json(release, "pods", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/name=pilotfish")
    names = {p["metadata"]["name"] for p in (pods or {}).get("items", [])}
    assert len(names) == 2 and set(peers) == names, (names, peers)  # POD_ID: each replica's pod name
    active = max(peers, key=lambda pod: peers[pod]["priority"])  # the highest priority reconciles
    release.kubectl("delete", "pod", active, "-n", RELEASE_NAMESPACE, "--wait=false")
    killed = time.monotonic()
    ip = workloads.start_mock(release, app_namespace, "after")
    workloads.apply(release, app_namespace, [workloads.credential("after", ip), workloads.model_class("after")])
    wait_for(
        lambda: get_json(release, "configmap", "pilotfish-routes", "-n", app_namespace),
        what="a class applied after the kill to be reconciled by the other replica",
        timeout=300,
    )
    print(
        f"\nFIGURE peering takeover: a new class reconciled {time.monotonic() - killed:.1f}s after the active pod was deleted"
    )
