"""A real one-node Kubernetes cluster for the node tests: control plane, containerd, kubelet, all in
namespaces of their own.

``Node`` is a ``ControlPlane`` (same kubectl/helm/env helpers, same admin kubeconfig) whose servers
run inside the node's network and mount namespaces (``netns``): etcd, kube-apiserver,
kube-controller-manager (service-account tokens, Deployments, ReplicaSets, garbage collection),
kube-scheduler, containerd and the kubelet. The API server lives beside the pods so that with
``--enable-aggregator-routing`` it dials a Service's endpoints (pod addresses) itself: that is how
the admission webhook is reached through its Service, and how the pod proxy reaches sidecars, with
no kube-proxy. Pods reach the API server at the node's address (``NODE_IP:API_PORT``); the host
reaches it through a forwarded loopback port (``self.server``).

``stop()`` stops every process by PID (the kubelet first, then the containerd shims, found by the
node's own socket path in their command line, then every server), kills by PID whatever is left in
the node's cgroups, lets the kernel drop the namespaces and every mount in them, and puts back what
the kubelet changed on the host (``hoststate``). It runs on normal exit, on SIGTERM/SIGHUP and, via
each child's parent-death signal, when the test process is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence

from e2e.testenv import binaries, certs, controlplane, hoststate, kubeconfig, netns, nodeconfig, processes

API_PORT = 6443  # inside the node's network namespace, so no clash with anything on the host
ETCD_PORT = 2379
NODE_READY_TIMEOUT = 180.0  # seconds; the kubelet registers in ~2 s idle, far longer on a busy machine
SERVICE_IP = "10.0.0.1"  # the kubernetes Service's ClusterIP (first of controlplane.SERVICE_CIDR)
API_DNS = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
# the order stop() stops them in: consumers of the API before it, etcd after it, the holder last
STOP_ORDER = (
    "kubelet",
    "kube-scheduler",
    "kube-controller-manager",
    "containerd",
    "kube-apiserver",
    "api-forward",
    "etcd",
    "namespaces",
)


class Node(controlplane.ControlPlane):
    """``Node(images=[...]).start()`` or ``with Node(...) as node:``; ``images`` are docker-archive
    tars imported into containerd before the kubelet starts (the pause image must be among them)."""

    def __init__(
        self,
        *,
        images: Sequence[pathlib.Path],
        bins: binaries.Binaries | None = None,
        node_bins: binaries.NodeBinaries | None = None,
        workdir: pathlib.Path | None = None,
        detached: bool = False,
        sync_seconds: int = 10,
    ) -> None:
        workdir = workdir or pathlib.Path(tempfile.mkdtemp(prefix="pilotfish-node-"))
        super().__init__(bins=bins, workdir=workdir, detached=detached)
        self.node_bins = node_bins or binaries.ensure_node()
        self.images = tuple(images)
        self.sync_seconds = sync_seconds  # the kubelet's syncFrequency: ConfigMap volumes refresh on it
        self.namespaces: netns.Namespaces | None = None
        self.snapshot: hoststate.Snapshot | None = None
        self.teardown_problems: list[str] = []

    @property
    def inner_server(self) -> str:
        """The API server as pods (and the node's own components) reach it."""
        return f"https://{netns.NODE_IP}:{API_PORT}"

    @property
    def containerd_socket(self) -> pathlib.Path:
        return nodeconfig.containerd_socket(self.workdir)

    def start(self) -> Node:
        if not self.detached:
            self._exit_token = processes.at_exit(self.stop)
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.snapshot = hoststate.Snapshot.take()
            (self.workdir / "host-snapshot.json").write_text(json.dumps(self.snapshot.to_json()))
            hoststate.create_cgroups()
            self.namespaces = netns.Namespaces.create(self.workdir, detached=self.detached)
            self.processes["namespaces"] = self.namespaces.holder
            self.namespaces.set_up_network()
            self.pki = certs.generate(self.workdir / "pki", ips=(netns.NODE_IP, SERVICE_IP), dns_names=API_DNS)
            self._start_etcd()
            self._start_apiserver()
            self._start_controllers()
            self._start_containerd()
            self._start_kubelet()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Every process by PID, then the host put back; see the module docstring. Safe to call twice."""
        groups = {name: process.pid for name, process in self.processes.items()}
        self.teardown_problems = teardown(
            groups, socket=self.containerd_socket, snapshot=self.snapshot, workdir=self.workdir
        )
        for process in self.processes.values():
            process.poll()
        self.processes.clear()
        self.snapshot = None
        if self._exit_token is not None:
            processes.cancel(self._exit_token)
            self._exit_token = None
        if not self.detached:
            _remove_workdir(self.workdir)

    def record(self) -> dict[str, object]:
        """What ``python -m e2e.testenv down`` needs to stop a detached node (``teardown_record``)."""
        return {
            "node": True,
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "workdir": str(self.workdir),
            "pids": self.pids,
            "socket": str(self.containerd_socket),
            "snapshot": self.snapshot.to_json() if self.snapshot else None,
        }

    def _spawn(self, name: str, argv: list[str]) -> None:
        assert self.namespaces is not None
        self.processes[name] = processes.spawn(
            [*self.namespaces.prefix(), *argv], log=self.workdir / f"{name}.log", detached=self.detached
        )

    def _start_etcd(self) -> None:
        self.etcd_port = ETCD_PORT
        client, peer = f"http://127.0.0.1:{ETCD_PORT}", f"http://127.0.0.1:{ETCD_PORT + 1}"
        self._spawn(
            "etcd",
            [
                str(self.bins.etcd),
                "--name=node",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=node={peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

    def _apiserver_flags(self) -> dict[str, str]:
        assert self.pki is not None
        flags = super()._apiserver_flags()
        for dropped in ("disable-admission-plugins", "endpoint-reconciler-type"):
            del flags[dropped]  # the controller-manager makes the tokens; the node's address is real
        return {
            **flags,
            "secure-port": str(API_PORT),
            "bind-address": "0.0.0.0",
            "advertise-address": netns.NODE_IP,
            "enable-aggregator-routing": "true",  # Services → endpoint addresses, dialled from here
            "kubelet-client-certificate": str(self.pki.admin_cert),
            "kubelet-client-key": str(self.pki.admin_key),
            "kubelet-certificate-authority": str(self.pki.ca_cert),
            "kubelet-preferred-address-types": "InternalIP",
        }

    def _start_apiserver(self) -> None:
        assert self.namespaces is not None and self.pki is not None
        flags = self._apiserver_flags()
        self._spawn("kube-apiserver", [str(self.bins.kube_apiserver), *(f"--{k}={v}" for k, v in flags.items())])
        forward, self.api_port = self.namespaces.forward(
            API_PORT, log=self.workdir / "api-forward.log", detached=self.detached
        )
        self.processes["api-forward"] = forward
        self._await_apiserver()
        kubeconfig.write(
            self.workdir / "node.kubeconfig",
            server=self.inner_server,
            ca_cert=self.pki.ca_cert,
            client_cert=self.pki.admin_cert,
            client_key=self.pki.admin_key,
        )

    def _start_controllers(self) -> None:
        assert self.pki is not None
        inner = self.workdir / "node.kubeconfig"
        self._spawn(
            "kube-controller-manager",
            [
                str(self.node_bins.kube_controller_manager),
                f"--kubeconfig={inner}",
                f"--service-account-private-key-file={self.pki.sa_private}",
                f"--root-ca-file={self.pki.ca_cert}",
                "--leader-elect=false",
                "--secure-port=0",
                "--v=0",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [str(self.node_bins.kube_scheduler), f"--kubeconfig={inner}", "--leader-elect=false", "--v=0"],
        )

    def _start_containerd(self) -> None:
        config = nodeconfig.write_containerd(self.workdir)
        nodeconfig.write_cni(self.workdir)
        self._spawn("containerd", ["containerd", f"--config={config}"])
        self._wait("containerd", lambda: self._ctr("version").returncode == 0)
        for tar in self.images:
            done = self._ctr("images", "import", str(tar))
            if done.returncode != 0:
                raise controlplane.StartError(f"importing {tar} into containerd failed: {done.stderr}")

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = ["ctr", f"--address={self.containerd_socket}", "--namespace=k8s.io", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=300)

    def _start_kubelet(self) -> None:
        assert self.pki is not None
        cert, key = certs.serving_pair(
            self.workdir / "pki", ca_cert=self.pki.ca_cert, ca_key=self.pki.ca_key, name="kubelet", ips=(netns.NODE_IP,)
        )
        config = nodeconfig.write_kubelet(
            self.workdir, ca_cert=self.pki.ca_cert, serving_cert=cert, serving_key=key, sync_seconds=self.sync_seconds
        )
        self._spawn(
            "kubelet",
            [
                str(self.node_bins.kubelet),
                f"--config={config}",
                f"--kubeconfig={self.workdir / 'node.kubeconfig'}",
                f"--root-dir={self.workdir / 'kubelet' / 'root'}",
                f"--hostname-override={nodeconfig.NODE_NAME}",
                f"--node-ip={netns.NODE_IP}",
                "--v=1",
            ],
        )
        deadline = time.monotonic() + NODE_READY_TIMEOUT
        while not self.node_ready():
            kubelet = self.processes["kubelet"]
            if kubelet.poll() is not None:
                raise controlplane.StartError(f"kubelet exited with {kubelet.returncode}:\n{self._log_tail('kubelet')}")
            if time.monotonic() > deadline:
                raise controlplane.StartError(f"the node was not Ready after {NODE_READY_TIMEOUT:.0f}s")
            time.sleep(0.5)

    def node_ready(self) -> bool:
        done = self.kubectl("get", "node", nodeconfig.NODE_NAME, "-o", "json", check=False)
        if done.returncode != 0:
            return False
        conditions = json.loads(done.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def teardown(
    groups: dict[str, int],
    *,
    socket: pathlib.Path,
    snapshot: hoststate.Snapshot | None,
    workdir: pathlib.Path,
) -> list[str]:
    """Stop the kubelet, the shims, then every other process group in ``STOP_ORDER``; restore the host.

    Returns what could not be restored (empty: the host is as it was), also written beside the work
    directory (``<workdir>.teardown-problems``) for a human to find."""
    if "kubelet" in groups:
        processes.stop_group(groups["kubelet"])
    stop_shims(socket)
    for name in STOP_ORDER:
        if name in groups:
            processes.stop_group(groups[name])
    problems = snapshot.restore() if snapshot is not None else []
    if problems:
        (workdir.parent / f"{workdir.name}.teardown-problems").write_text("\n".join(problems) + "\n")
    return problems


def teardown_record(record: dict[str, object]) -> list[str]:
    """``teardown`` for a node started by ``python -m e2e.testenv up --node`` (from its state file)."""
    pids, snapshot, workdir = record["pids"], record["snapshot"], pathlib.Path(str(record["workdir"]))
    assert isinstance(pids, dict)
    recorded = hoststate.Snapshot.from_json(snapshot) if isinstance(snapshot, dict) else None
    problems = teardown(
        {str(k): int(v) for k, v in pids.items()},
        socket=pathlib.Path(str(record["socket"])),
        snapshot=recorded,
        workdir=workdir,
    )
    _remove_workdir(workdir)
    return problems


def stop_shims(socket: pathlib.Path) -> None:
    """containerd's shims leave its process group on purpose; find ours by our socket in their argv."""
    token = str(socket).encode()
    for _ in range(3):
        pids = []
        for cmdline in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError):
                if b"containerd-shim" in cmdline.read_bytes() and token in cmdline.read_bytes():
                    pids.append(int(cmdline.parent.name))
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _remove_workdir(workdir: pathlib.Path) -> None:
    """The work directory, unless a mount is still inside it (never delete through a mount)."""
    if hoststate.mounts_under(str(workdir)):
        return
    subprocess.run(["rm", "-rf", "--one-file-system", str(workdir)], check=False)
