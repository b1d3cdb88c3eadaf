"""The real control plane for every test that needs Kubernetes: one per test session, torn down at the end.

Every test under ``tests/kube/`` is marked ``k8s``. Missing binaries with no Go toolchain to build
them is an error, not a silent skip: these tests are part of the README's test command and of CI.
Set PILOTFISH_SKIP_K8S=1 to skip them on purpose.

Fixtures: ``control_plane`` (session), ``kubeconfig`` (session), ``api_client`` (session, the
kubernetes Python client), ``crds_applied`` (session, ``crds/`` applied and Established) and
``namespace`` (a fresh one per test).
"""

from __future__ import annotations

import os
import pathlib
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not put the checkout on sys.path
    sys.path.insert(0, str(ROOT))

from e2e.testenv import binaries, controlplane  # noqa: E402

CRDS = ROOT / "crds"
CRD_NAMES = ("modelclasses.pilotfish.dev", "providercredentials.pilotfish.dev")
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
        for name in ("pilotfish.dev_modelclasses.yaml", "pilotfish.dev_providercredentials.yaml")
        if not (CRDS / name).exists()
    ]
    if missing:
        pytest.fail(f"CRD manifests missing from {CRDS}: {', '.join(missing)} (generate them with `pilotfish crds`)")
    control_plane.kubectl("apply", "--server-side", "-f", str(CRDS))
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
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
