"""Day-two operations on the real node: a class change reaching running sidecars, `pilotfish top -n`
through the pod proxy, the peering takeover when the active operator pod dies."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

from e2e.testenv import hoststate, node
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
    active = settled_peering(release)
    release.kubectl("delete", "pod", active, "-n", RELEASE_NAMESPACE, "--wait=false")
    killed = time.monotonic()
    took = reconciled_after(release, app_namespace, "after", killed)
    print(f"\nFIGURE peering takeover: a new class reconciled {took:.1f}s after the active pod was deleted")


def test_a_forced_kill_of_the_active_operator_hands_reconciliation_over_once_its_peering_entry_expires(
    release: node.Node, app_namespace: str
):
    """SIGKILL (a crash, an OOM kill, a lost node): the replica cannot leave the peering, so the other
    waits until its entry is older than kopf's peering lifetime, or until the replacement pod wins."""
    active = settled_peering(release)
    pod = get_json(release, "pod", active, "-n", RELEASE_NAMESPACE)
    assert pod is not None
    container = pod["status"]["containerStatuses"][0]["containerID"].split("//")[1]
    pids = container_pids(container)
    assert pids, f"no processes found for the operator container {container}"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    # the pod object goes at once and is not restarted in place: the ReplicaSet makes a new one
    release.kubectl("delete", "pod", active, "-n", RELEASE_NAMESPACE, "--grace-period=0", "--force", "--wait=false")
    peers = (get_json(release, "clusterkopfpeering", "pilotfish") or {}).get("status") or {}
    assert active in peers  # it never left: the kill gave it no chance to
    took = reconciled_after(release, app_namespace, "after-kill", killed)
    print(f"\nFIGURE peering takeover after SIGKILL: a new class reconciled {took:.1f}s after the kill")


def settled_peering(release: node.Node) -> str:
    """Once both operator pods are Ready and are the peering's only peers: the active one's name."""

    def settled() -> dict | None:
        peers = (get_json(release, "clusterkopfpeering", "pilotfish") or {}).get("status") or {}
        pods = get_json(release, "pods", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/name=pilotfish") or {}
        ready = {
            p["metadata"]["name"]
            for p in pods.get("items", [])
            if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
        }
        return peers if len(ready) == 2 and set(peers) == ready else None

    peers = wait_for(settled, what="two Ready operator pods, each a peer (POD_ID: the pod's name)", timeout=300)
    return str(max(peers, key=lambda pod: peers[pod]["priority"]))  # the highest priority reconciles


def reconciled_after(release: node.Node, namespace: str, name: str, since: float) -> float:
    """Seconds from ``since`` until a class applied now (after the kill) has its routes ConfigMap."""
    ip = workloads.start_mock(release, namespace, name)
    workloads.apply(release, namespace, [workloads.credential(name, ip), workloads.model_class(name)])
    wait_for(
        lambda: get_json(release, "configmap", "pilotfish-routes", "-n", namespace),
        what="a class applied after the kill to be reconciled by a live replica",
        timeout=300,
    )
    return time.monotonic() - since


def container_pids(container_id: str) -> list[int]:
    """The host PIDs of a container's processes, from its cgroup under the node's cgroup root."""
    base = pathlib.Path("/sys/fs/cgroup/memory") / hoststate.CGROUP_ROOT / "kubepods"
    for procs in base.rglob(f"{container_id}/cgroup.procs"):
        return [int(pid) for pid in procs.read_text().split()]
    return []
