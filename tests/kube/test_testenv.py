"""The test environment itself: nothing outlives a test run, the CLI works, binaries are found and built right."""

from __future__ import annotations

import concurrent.futures
import fcntl
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from typing import Any

import pytest
from e2e.testenv import binaries, controlplane, gobuild, processes

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Starts a control plane in a separate Python process and reports it, so a test can kill that process.
HOLDER = textwrap.dedent("""\
    import json, pathlib, sys, time
    from e2e.testenv import binaries, controlplane
    paths = {k: pathlib.Path(v) for k, v in json.loads(sys.argv[1]).items()}
    plane = controlplane.ControlPlane(bins=binaries.Binaries(**paths)).start()
    print(json.dumps({"pids": list(plane.pids.values()), "workdir": str(plane.workdir)}), flush=True)
    time.sleep(300)  # not an event: this process only holds the control plane until the test kills it
    """)


def _alive(pid: int) -> bool:
    status = pathlib.Path(f"/proc/{pid}/status")
    try:
        return "zombie" not in status.read_text()
    except OSError:
        return False


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def _bins_json(plane: controlplane.ControlPlane) -> str:
    return json.dumps(
        {field: str(getattr(plane.bins, field)) for field in ("kube_apiserver", "etcd", "kubectl", "helm")}
    )


def test_stopping_a_control_plane_leaves_no_process_and_no_data(control_plane):
    plane = controlplane.ControlPlane(bins=control_plane.bins).start()
    pids = list(plane.pids.values())
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    assert plane.kubectl("get", "namespaces").returncode == 0
    plane.stop()
    assert not any(_alive(pid) for pid in pids)
    assert not plane.workdir.exists()


def test_a_failing_test_body_still_stops_the_control_plane(control_plane):
    with pytest.raises(ZeroDivisionError), controlplane.ControlPlane(bins=control_plane.bins) as plane:
        pids = list(plane.pids.values())
        _ = 1 / 0
    assert not any(_alive(pid) for pid in pids)
    assert not plane.workdir.exists()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_servers_die_with_the_test_process(control_plane, how):
    """SIGTERM: our handler stops them and deletes the data. SIGKILL: the kernel's parent-death signal stops them."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, _bins_json(control_plane)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        started = json.loads(holder.stdout.readline())
        assert all(_alive(pid) for pid in started["pids"])
        holder.send_signal(how)
        assert holder.wait(30) == -how
        # generous: on a loaded 2-core machine kube-apiserver can take a while over its graceful SIGTERM
        assert _gone_within(started["pids"], 45), "etcd or kube-apiserver outlived the process that started them"
        if how == signal.SIGTERM:
            assert not pathlib.Path(started["workdir"]).exists()
    finally:
        holder.kill()
        holder.wait()
        if "started" in locals():
            for pid in started["pids"]:
                processes.stop_group(pid, grace=2)
            shutil.rmtree(started["workdir"], ignore_errors=True)


def test_a_server_that_exits_at_start_is_reported_with_its_log(control_plane, tmp_path):
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\necho 'etcd: cannot start: simulated' >&2\nexit 3\n")
    fake.chmod(0o755)
    bins = binaries.Binaries(
        kube_apiserver=control_plane.bins.kube_apiserver,
        etcd=fake,
        kubectl=control_plane.bins.kubectl,
        helm=control_plane.bins.helm,
    )
    plane = controlplane.ControlPlane(bins=bins)
    with pytest.raises(controlplane.StartError, match=r"(?s)etcd exited with 3.*cannot start: simulated"):
        plane.start()
    assert not plane.workdir.exists()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "e2e.testenv", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_up_env_and_down_commands_manage_a_background_control_plane(control_plane, tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    up = _cli("up", env=env)
    assert up.returncode == 0, up.stderr
    assert up.stdout.startswith("export KUBECONFIG=")
    kubeconfig = up.stdout.strip().removeprefix("export KUBECONFIG=")
    state = json.loads(next(tmp_path.glob("pilotfish-testenv-*.json")).read_text())
    try:
        assert _cli("up", env=env).returncode == 1  # one at a time
        listed = control_plane.kubectl("--kubeconfig", kubeconfig, "get", "ns", "-o", "name")
        assert "namespace/kube-system" in listed.stdout.split()
        exports = _cli("env", env=env).stdout.splitlines()
        assert f"export KUBECONFIG={kubeconfig}" in exports
        assert any(line.startswith("export KUBEBUILDER_ASSETS=") for line in exports)
    finally:
        down = _cli("down", env=env)
    assert down.stdout.strip() == "control plane stopped"
    assert not any(_alive(pid) for pid in state["pids"].values())
    assert not pathlib.Path(kubeconfig).exists()
    assert _cli("down", env=env).returncode == 0  # idempotent


def test_the_build_command_reports_the_binaries(control_plane):
    if not control_plane.bins.from_cache():
        pytest.skip("the binaries come from KUBEBUILDER_ASSETS or PATH")
    built = _cli("build", env=dict(os.environ))
    assert built.returncode == 0, built.stderr
    assert "reused, nothing built" in built.stdout
    for name, path in control_plane.bins.paths().items():
        assert f"{name}: {path}" in built.stdout


KUBERNETES_GO_MOD = """\
module k8s.io/kubernetes

go 1.24.0

require (
\tgithub.com/other/thing v1.0.0
\tk8s.io/api v0.0.0
\tk8s.io/apiserver v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/apiserver => ./staging/src/k8s.io/apiserver
\tk8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
\tgithub.com/other/thing => github.com/fork/thing v1.2.3
)
"""

ETCD_GO_MOD = """\
module go.etcd.io/etcd/server/v3

require (
\tgo.etcd.io/etcd/api/v3 v3.5.21
\tgo.etcd.io/etcd/client/v2 v2.305.21
)

replace (
\tgo.etcd.io/etcd/api/v3 => ../api
\tgo.etcd.io/etcd/client/v2 => ../client/v2
)

replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""


def test_kubernetes_staging_modules_are_pinned_to_their_published_versions():
    assert gobuild.pinned_replaces(KUBERNETES_GO_MOD, placeholder_to="v0.33.13") == [
        "replace k8s.io/api => k8s.io/api v0.33.13",
        "replace k8s.io/apiserver => k8s.io/apiserver v0.33.13",
    ]


def test_etcd_sibling_modules_are_pinned_to_the_versions_etcd_requires():
    assert gobuild.pinned_replaces(ETCD_GO_MOD, placeholder_to="v3.5.21") == [
        "replace go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.5.21",
        "replace go.etcd.io/etcd/client/v2 => go.etcd.io/etcd/client/v2 v2.305.21",
    ]


def test_kubebuilder_assets_take_precedence_over_the_cache(control_plane, tmp_path, monkeypatch):
    for name, path in control_plane.bins.paths().items():
        if name != "helm":  # setup-envtest ships no helm: it comes from the cache then
            (tmp_path / name).symlink_to(path)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    found = binaries.locate()
    assert found is not None
    assert found.kube_apiserver == tmp_path / "kube-apiserver" and found.etcd == tmp_path / "etcd"
    assert found.helm == control_plane.bins.helm


def test_without_go_or_assets_the_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    with pytest.raises(binaries.BinariesUnavailable) as error:
        binaries.ensure()
    message = str(error.value)
    assert "missing: kube-apiserver, etcd, kubectl, helm" in message
    assert "Install Go" in message and "KUBEBUILDER_ASSETS" in message and "PILOTFISH_SKIP_K8S=1" in message


@pytest.mark.parametrize("skip", [False, True], ids=["fails", "skips-on-purpose"])
def test_without_binaries_the_kube_tests_fail_unless_skipped_on_purpose(tmp_path, skip):
    env = {**os.environ, "PATH": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("KUBEBUILDER_ASSETS", None)
    env.pop("PILOTFISH_SKIP_K8S", None)
    if skip:
        env["PILOTFISH_SKIP_K8S"] = "1"
    target = "tests/kube/test_control_plane.py::test_helm_runs"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if skip:
        assert run.returncode == 0 and "1 skipped" in run.stdout, run.stdout
        assert "PILOTFISH_SKIP_K8S=1" in run.stdout
    else:
        assert run.returncode == 1 and "1 error" in run.stdout, run.stdout
        assert "Install Go" in run.stdout and "PILOTFISH_SKIP_K8S=1" in run.stdout


def test_concurrent_callers_build_once(tmp_path, monkeypatch):
    """Two pytest processes starting at once: the file lock makes the second reuse the first one's build."""
    fake_go = tmp_path / "path" / "go"
    fake_go.parent.mkdir()
    fake_go.write_text("#!/bin/sh\nexit 1\n")
    fake_go.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake_go.parent))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    calls: list[str] = []
    at_the_lock = threading.Semaphore(0)  # released once per caller that reached the lock

    def flock(fd: Any, operation: int) -> None:
        at_the_lock.release()
        fcntl.flock(fd, operation)

    monkeypatch.setattr(binaries, "fcntl", types.SimpleNamespace(LOCK_EX=fcntl.LOCK_EX, flock=flock))

    def fake_step(*, src: pathlib.Path, bin_dir: pathlib.Path, log: pathlib.Path) -> None:
        if not calls:  # the builder holds the lock: go on once the other caller is waiting for it too
            assert at_the_lock.acquire(timeout=60) and at_the_lock.acquire(timeout=60), "the other caller never came"
        calls.append(src.name)
        for name in {"kube-apiserver": ("kube-apiserver", "kubectl")}.get(src.name, (src.name,)):
            (bin_dir / name).write_text("#!/bin/sh\n")
            (bin_dir / name).chmod(0o755)

    steps = tuple(binaries._Step(s.label, s.outputs, fake_step) for s in binaries._STEPS)
    monkeypatch.setattr(binaries, "_STEPS", steps)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: binaries.ensure(log=False), range(2)))
    assert sorted(calls) == ["etcd", "helm", "kube-apiserver"]
    assert results[0] == results[1] and results[0].from_cache()
    assert sorted(result.built != {} for result in results) == [False, True]
