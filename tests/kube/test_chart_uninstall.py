"""``helm uninstall`` leaves nothing of the operator's behind: the RoleBindings it made, one per
namespace with credentials, to read Secrets there, are owned by the chart's Secret-reader ClusterRole,
so the garbage collector deletes them once uninstalling has deleted that role.

The session's control plane runs no kube-controller-manager; this test runs one, with only the
garbage collector, after the uninstall (it collects on start what lost its owner before).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from e2e.testenv import binaries, controlplane, processes
from tests.kube.conftest import delete_namespace, stop_operator, wait_for
from tests.kube.test_chart import EXAMPLES, release, start_chart_operator  # noqa: F401 (release: a fixture)

BINDING = "pilotfish-secret-reader"


@contextlib.contextmanager
def garbage_collector(plane: controlplane.ControlPlane, log: pathlib.Path) -> Iterator[None]:
    """kube-controller-manager running only its garbage collector, as the admin, until the block ends."""
    node = binaries.locate_node()
    if node is None:
        pytest.skip("no kube-controller-manager built (python -m e2e.testenv build --node builds it)")
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                str(node.kube_controller_manager),
                f"--kubeconfig={plane.kubeconfig}",
                "--controllers=garbagecollector",
                "--leader-elect=false",
                "--secure-port=0",
                "--v=1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield
    finally:
        processes.stop_group(process.pid)
        process.poll()  # records the exit stop_group reaped, so Popen does not warn it is still running


def binding(plane: controlplane.ControlPlane, namespace: str) -> dict[str, object] | None:
    done = plane.kubectl("get", "rolebinding", BINDING, "-n", namespace, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def test_helm_uninstall_leaves_no_secret_reader_binding_behind(control_plane, release, tmp_path):  # noqa: F811
    release.install()
    app = f"app-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", app)
    control_plane.kubectl("create", "secret", "generic", "vendor-keys", "-n", app, "--from-literal=openai=sk-a")
    # a binding as operators before this rule made it, without an owner: it is made again with one
    reader = f"{release.fullname}-operator-secret-reader"
    account = f"{release.namespace}:{release.fullname}-operator"
    control_plane.kubectl(
        "create", "rolebinding", BINDING, "-n", app, f"--clusterrole={reader}", f"--serviceaccount={account}"
    )
    running = start_chart_operator(control_plane, release, tmp_path)
    try:
        control_plane.kubectl("apply", "-n", app, "-f", str(EXAMPLES / "workhorse.yaml"))
        made = wait_for(
            lambda: (found := binding(control_plane, app)) and found["metadata"].get("ownerReferences") and found,  # type: ignore[index,union-attr]
            timeout=60,
            what="the operator's RoleBinding, owned",
        )
    finally:
        stop_operator(running)  # as uninstalling deletes the operator's Deployment
    role = json.loads(control_plane.kubectl("get", "clusterrole", reader, "-o", "json").stdout)
    (owner,) = made["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("ClusterRole", reader, role["metadata"]["uid"])
    try:
        release.uninstall()
        with garbage_collector(control_plane, tmp_path / "gc.log"):
            wait_for(lambda: binding(control_plane, app) is None, timeout=90, what="the RoleBinding collected")
    finally:
        delete_namespace(control_plane, app)
