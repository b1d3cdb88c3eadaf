"""The real control plane for every test marked ``k8s``: one per test session, torn down at the end.

Missing binaries and no Go toolchain is an error, not a silent skip: these tests are part of the
README's test command and of CI. Set PILOTFISH_SKIP_K8S=1 to skip them on purpose.
"""

from __future__ import annotations

import os
import pathlib
import uuid
from collections.abc import Iterator

import pytest
from e2e.testenv import binaries, controlplane

ROOT = pathlib.Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/kube/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.k8s)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[controlplane.ControlPlane]:
    if os.environ.get("PILOTFISH_SKIP_K8S") == "1":
        pytest.skip("PILOTFISH_SKIP_K8S=1: Kubernetes tests skipped on purpose")
    try:
        bins = binaries.ensure()
    except binaries.BinariesUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    plane = controlplane.ControlPlane(bins).start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: controlplane.ControlPlane) -> pathlib.Path:
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def crds_applied(control_plane: controlplane.ControlPlane) -> controlplane.ControlPlane:
    control_plane.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/modelclasses.pilotfish.dev",
        "crd/providercredentials.pilotfish.dev",
    )
    return control_plane


@pytest.fixture
def namespace(control_plane: controlplane.ControlPlane) -> str:
    """A fresh namespace per test (the test control plane never finishes deleting one, so names are unique)."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    return name
