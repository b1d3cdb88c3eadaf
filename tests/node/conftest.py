"""The real node for the end-to-end tests: images built here, one node per session, the chart on it.

Every test under ``tests/node/`` is marked ``node`` (and ``k8s``). They run when selected on purpose
(``pytest -m node``) or when ``PILOTFISH_NODE_TESTS=1`` (``make test-node``); otherwise they are
deselected with a notice, so a plain ``pytest`` does not build images and start a node. Missing Debian
packages are named by ``python -m e2e.testenv packages --node``.

Fixtures: ``node_images`` (session: base, pause, sidecar, operator and test-app images),
``node`` (session: the running ``e2e.testenv.node.Node``; its teardown fails the session if anything is
left on the host), ``release`` (session: ``charts/pilotfish`` installed with those images, operator
Ready) and ``app_namespace`` (a fresh namespace labelled for injection).
"""

from __future__ import annotations

import json
import os
import pathlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from e2e.testenv import binaries, hostpackages, hoststate, images, netns, node
from tests.kube import conftest as kube_conftest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pilotfish"
RELEASE = "pilotfish"
RELEASE_NAMESPACE = "pilotfish-system"
ENABLE_ENV = "PILOTFISH_NODE_TESTS"
OPERATOR_PORT = 9443  # the operator pod's webhook and allowance port (the chart's containerPort)
TEST_TIMEOUT = 900  # seconds per test: pods, kubelet syncs and the operator's sweep, on a busy machine


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = pathlib.Path(__file__).parent
    mine = [item for item in items if here in pathlib.Path(str(item.fspath)).parents]
    for item in mine:
        item.add_marker(pytest.mark.node)
        item.add_marker(pytest.mark.k8s)
        item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))
    selected = "node" in (config.getoption("markexpr") or "") and "not node" not in config.getoption("markexpr")
    if mine and not selected and os.environ.get(ENABLE_ENV) != "1":
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]


PATIENCE = 180.0  # seconds: a node on a busy 2-core machine starts pods in 3 s idle, far longer loaded


def wait_for(check: Callable[[], Any], **options: Any) -> Any:
    """``tests.kube.conftest.wait_for`` with the node's patience as the default timeout."""
    return kube_conftest.wait_for(check, **{"timeout": PATIENCE, **options})


@pytest.fixture(scope="session")
def node_images(tmp_path_factory: pytest.TempPathFactory) -> images.Images:
    absent = hostpackages.missing(hostpackages.NODE)
    if absent:
        pytest.fail(hostpackages.describe(absent), pytrace=False)
    node_bins = binaries.ensure_node()
    workdir = tmp_path_factory.mktemp("images")
    return images.build(workdir=workdir, pause_binary=node_bins.pause, log=workdir / "images.log")


@pytest.fixture(scope="session")
def node_cluster(node_images: images.Images) -> Iterator[node.Node]:
    cluster = node.Node(images=list(node_images.tars.values())).start()
    try:
        yield cluster
    finally:
        cluster.stop()
        leftovers = leftovers_of(cluster)
        assert not leftovers, f"the node left things behind: {leftovers}"


def leftovers_of(cluster: node.Node) -> list[str]:
    """Anything of a stopped node still on the host: processes, cgroups, mounts, files, problems."""
    found = list(cluster.teardown_problems)
    found += [f"pid {pid} ({name})" for name, pid in cluster.pids.items() if _alive(pid)]
    found += [str(h / hoststate.CGROUP_ROOT) for h in hoststate.hierarchies() if (h / hoststate.CGROUP_ROOT).exists()]
    found += hoststate.mounts_under(str(cluster.workdir))
    if cluster.workdir.exists():
        found.append(str(cluster.workdir))
    token = str(cluster.containerd_socket).encode()
    for cmdline in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if token in cmdline.read_bytes():
                found.append(f"pid {cmdline.parent.name}: {cmdline.read_bytes()[:80]!r}")
        except OSError:
            pass
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def chart_values() -> dict[str, Any]:
    """The chart as the tests install it: the images built here, the API server at the node's address."""
    api = [
        # No kube-proxy: the kubernetes Service's ClusterIP routes nowhere, so in-cluster clients are
        # pointed at the node's address (container env wins over the kubelet's service variables).
        {"name": "KUBERNETES_SERVICE_HOST", "value": netns.NODE_IP},
        {"name": "KUBERNETES_SERVICE_PORT", "value": str(node.API_PORT)},
    ]
    repository, tag = images.OPERATOR.rsplit(":", 1)
    sidecar_repository, sidecar_tag = images.SIDECAR.rsplit(":", 1)
    return {
        "operator": {
            "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
            "extraEnv": api,
        },
        "sidecar": {"image": {"repository": sidecar_repository, "tag": sidecar_tag, "pullPolicy": "Never"}},
        # No cluster DNS and no kube-proxy: a pod reaches the operator's Service name only through a host
        # alias to an operator pod (workloads.operator_hosts), so the Service port is the pod's own 9443.
        "service": {"webhookPort": OPERATOR_PORT},
        # Fail: a dropped admission request shows as a failed pod creation. 30 s (the most allowed):
        # the API server's deadline must not trip only because this 2-core machine is busy.
        "webhook": {"failurePolicy": "Fail", "timeoutSeconds": 30},
    }


@pytest.fixture(scope="session")
def release(node_cluster: node.Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[node.Node]:
    """``helm install pilotfish charts/pilotfish`` with the images built here; returns once the operator is Ready."""
    values = tmp_path_factory.mktemp("chart") / "values.yaml"
    values.write_text(yaml.safe_dump(chart_values()))
    node_cluster.kubectl("create", "namespace", RELEASE_NAMESPACE)
    node_cluster.helm(
        "install",
        RELEASE,
        str(CHART),
        "-n",
        RELEASE_NAMESPACE,
        "-f",
        str(values),
        "--wait",
        "--timeout=5m",
        timeout=330,
    )
    yield node_cluster
    node_cluster.helm("uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait", "--timeout=2m", timeout=150)

    def leftovers() -> list[str]:
        selector = f"app.kubernetes.io/instance={RELEASE}"
        namespaced = (
            "deployments,services,configmaps,secrets,serviceaccounts,roles,rolebindings,pods,poddisruptionbudgets"
        )
        cluster = "mutatingwebhookconfigurations,validatingwebhookconfigurations,clusterroles,clusterrolebindings"
        found = node_cluster.kubectl("get", namespaced, "-n", RELEASE_NAMESPACE, "-l", selector, "-o", "name")
        found_cluster = node_cluster.kubectl("get", cluster, "-l", selector, "-o", "name")
        return found.stdout.split() + found_cluster.stdout.split()

    wait_for(lambda: leftovers() == [], what="helm uninstall to leave nothing behind", timeout=120)


@pytest.fixture
def app_namespace(release: node.Node) -> Iterator[str]:
    """A fresh namespace labelled for injection; deleted afterwards (the node's controllers finish it)."""
    name = f"app-{uuid.uuid4().hex[:6]}"
    release.kubectl("create", "namespace", name)
    release.kubectl("label", "namespace", name, "pilotfish.dev/injection=enabled")
    yield name
    release.kubectl("delete", "namespace", name, "--wait=false", check=False)


def get_json(cluster: node.Node, *args: str) -> dict[str, Any] | None:
    done = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None
