"""The real control plane for every test that needs Kubernetes: one per test session, torn down at the end.

Every test under ``tests/kube/`` is marked ``k8s``. Missing binaries with no Go toolchain to build
them is an error, not a silent skip: these tests are part of the README's test command and of CI.
Set PILOTFISH_SKIP_K8S=1 to skip them on purpose.

Fixtures: ``control_plane`` (session), ``kubeconfig`` (session), ``api_client`` (session, the
kubernetes Python client), ``crds_applied`` (session, ``crds/`` applied and Established) and
``namespace`` (a fresh one per test), ``operator`` (session: ``pilotfish operator`` with its webhook on
loopback TLS, signed by the control plane's CA).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import pathlib
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not put the checkout on sys.path
    sys.path.insert(0, str(ROOT))

from e2e.testenv import binaries, certs, controlplane  # noqa: E402

CRDS = ROOT / "crds"
CRD_NAMES = ("modelclasses.pilotfish.dev", "providercredentials.pilotfish.dev", "budgets.pilotfish.dev")
SKIP_ENV = "PILOTFISH_SKIP_K8S"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = pathlib.Path(__file__).parent
    for item in items:
        if here in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.k8s)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[controlplane.ControlPlane]:
    """etcd + kube-apiserver for the whole session; binaries found or built on first use (minutes, once)."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: the Kubernetes control-plane tests are skipped on purpose")
    try:
        bins = binaries.ensure()
    except binaries.BinariesUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    with controlplane.ControlPlane(bins=bins) as plane:
        yield plane


@pytest.fixture(scope="session")
def kubeconfig(control_plane: controlplane.ControlPlane) -> pathlib.Path:
    """Admin kubeconfig of the session's control plane, for kubectl, helm, kopf and the Python client."""
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def api_client(kubeconfig: pathlib.Path) -> Iterator[Any]:
    """A kubernetes.client.ApiClient bound to the control plane (never to the user's ~/.kube/config)."""
    import kubernetes

    client = kubernetes.config.new_client_from_config(str(kubeconfig))
    yield client
    client.close()


@pytest.fixture(scope="session")
def crds_applied(control_plane: controlplane.ControlPlane) -> controlplane.ControlPlane:
    """``crds/`` applied server-side and Established, so custom resources can be created right away."""
    missing = [
        name
        for name in (
            "pilotfish.dev_modelclasses.yaml",
            "pilotfish.dev_providercredentials.yaml",
            "pilotfish.dev_budgets.yaml",
        )
        if not (CRDS / name).exists()
    ]
    if missing:
        pytest.fail(f"CRD manifests missing from {CRDS}: {', '.join(missing)} (generate them with `pilotfish crds`)")
    # --force-conflicts: `helm install` (tests/kube/test_chart.py) may have created these CRDs first,
    # as field manager "helm"; taking the fields over keeps the tests independent of their order.
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{name}" for name in CRD_NAMES)
    )
    return control_plane


@pytest.fixture
def namespace(control_plane: controlplane.ControlPlane) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards.

    Names are unique because deletion never finishes here: no kube-controller-manager runs the
    namespace controller, so a deleted namespace stays Terminating until the control plane stops.
    """
    name = f"test-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    delete_namespace(control_plane, name)


def delete_namespace(plane: controlplane.ControlPlane, name: str) -> None:
    """Delete a test's namespace as the namespace controller (which does not run here) would start to: its
    pods first. Left behind in a namespace that stays Terminating, an opted-in pod would be counted as a
    missed injection by every later operator's sweep (firing PilotfishInjectionMissed in the observability
    test), and the Events a sweep posts there are refused with a 403; which tests saw that depended on
    their order. Unscheduled pods (no kubelet runs here) go at once."""
    plane.kubectl("delete", "pods", "--all", "-n", name, "--wait=false", check=False)
    plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@dataclasses.dataclass
class RunningOperator:
    """``pilotfish operator`` as a subprocess on the session's control plane, webhook served over TLS."""

    process: subprocess.Popen[bytes]
    metrics_url: str
    webhook_url: str
    ca_bundle: str  # base64 PEM of the CA that signed the webhook's certificate
    log: pathlib.Path
    sidecar_admin_port: int  # the injected sidecars' admin port, as its injector config says

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url + "/metrics", timeout=5) as response:
            return str(response.read().decode())

    def metric(self, series: str) -> float:
        """The sum of every sample of ``series`` (a name, or a name with some of its labels)."""
        name, _, labels = series.partition("{")
        wanted = [part for part in labels.rstrip("}").split(",") if part]
        total = 0.0
        for line in self.metrics().splitlines():
            sample, _, value = line.rpartition(" ")
            if sample.partition("{")[0] == name and all(part in sample for part in wanted):
                total += float(value)
        return total


def start_operator(
    plane: controlplane.ControlPlane,
    workdir: pathlib.Path,
    *extra: str,
    kubeconfig: pathlib.Path | None = None,
    standalone: bool = True,
    webhook_port: int | None = None,
) -> RunningOperator:
    """``kubeconfig``: whose credentials the operator uses (default: the admin's); ``webhook_port``: a
    port of an operator stopped before (a restart at the same address), else a free one."""
    assert plane.pki is not None
    cert, key = certs.serving_pair(workdir, ca_cert=plane.pki.ca_cert, ca_key=plane.pki.ca_key, name="webhook")
    metrics_port, sidecar_admin = controlplane.free_port(), controlplane.free_port()
    webhook_port = webhook_port or controlplane.free_port()
    injector = workdir / "injector.yaml"
    injector.write_text(f"adminPort: {sidecar_admin}\n")  # where its sweep reads each sidecar's routes digest
    log = workdir / "operator.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pilotfish.cli",
            "operator",
            *(["--standalone"] if standalone else []),
            f"--metrics-listen=127.0.0.1:{metrics_port}",
            f"--webhook-listen=127.0.0.1:{webhook_port}",
            f"--webhook-cert={cert}",
            f"--webhook-key={key}",
            "--sweep-interval=1",
            f"--injector-config={injector}",
            "--canary-tick=1",
            "--shutdown-delay=0",  # nothing routes admission through a Service here
            *extra,
        ],
        env={
            **os.environ,
            "KUBECONFIG": str(kubeconfig or plane.kubeconfig),
            "PYTHONPATH": f"{ROOT / 'sidecar'}:{ROOT / 'operator'}",
        },
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    running = RunningOperator(
        process=process,
        metrics_url=f"http://127.0.0.1:{metrics_port}",
        webhook_url=f"https://127.0.0.1:{webhook_port}",
        ca_bundle=base64.b64encode(plane.pki.ca_cert.read_bytes()).decode(),
        log=log,
        sidecar_admin_port=sidecar_admin,
    )
    deadline = time.monotonic() + 180  # generous: it returns as soon as /readyz answers, on a busy machine too
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the operator exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(running.metrics_url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return running
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"the operator did not become ready:\n{log.read_text()[-3000:]}")


def stop_operator(running: RunningOperator) -> None:
    running.process.terminate()
    try:
        running.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        running.process.kill()
        running.process.wait()


@pytest.fixture(scope="session")
def operator(
    crds_applied: controlplane.ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningOperator]:
    """One operator for the session, watching every namespace (tests use fresh namespaces)."""
    running = start_operator(crds_applied, tmp_path_factory.mktemp("operator"))
    yield running
    stop_operator(running)


def wait_for(check: Callable[[], Any], *, timeout: float = 30, what: str = "condition", every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
