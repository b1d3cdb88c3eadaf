"""The test environment itself: teardown leaves nothing running, the CLI works, the go.mod recipe is right."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from e2e.testenv import binaries, controlplane

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = pathlib.Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_stopping_a_control_plane_leaves_no_process_and_no_data(control_plane):
    plane = controlplane.ControlPlane(control_plane.bins).start()
    pids = [process.pid for process in plane.processes.values()]
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    assert plane.kubectl("get", "namespaces").returncode == 0
    plane.stop()
    assert not any(_alive(pid) for pid in pids)
    assert not plane.workdir.exists()


def test_the_up_and_down_commands_manage_a_background_control_plane(control_plane, tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    up = subprocess.run(
        [sys.executable, "-m", "e2e.testenv", "up"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    kubeconfig = up.stdout.strip().removeprefix("export KUBECONFIG=")
    try:
        listed = subprocess.run(
            [str(control_plane.bins.kubectl), "--kubeconfig", kubeconfig, "get", "ns"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "kube-system" in listed.stdout
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "e2e.testenv", "down"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
    assert down.stdout.strip() == "control plane stopped"
    assert not pathlib.Path(kubeconfig).exists()


def test_staging_modules_are_replaced_by_their_published_versions():
    go_mod = """\
require k8s.io/api v0.0.0
replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/apiserver => ./staging/src/k8s.io/apiserver
\tgithub.com/other/thing => github.com/fork/thing v1.2.3
)
"""
    assert binaries.staging_replaces(go_mod, version="1.33.13") == [
        "replace k8s.io/api => k8s.io/api v0.33.13",
        "replace k8s.io/apiserver => k8s.io/apiserver v0.33.13",
    ]


def test_kubebuilder_assets_take_precedence_over_the_cache(control_plane, tmp_path, monkeypatch):
    for name in ("kube-apiserver", "etcd"):
        (tmp_path / name).symlink_to(getattr(control_plane.bins, name.replace("-", "_")))
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    found = binaries.locate()
    assert found is not None and found.kube_apiserver == tmp_path / "kube-apiserver"
