"""A real control plane for tests: etcd and kube-apiserver on free loopback ports, no nodes.

What controller-runtime's envtest does, for Python: a throw-away data directory and PKI, an admin
kubeconfig for kubectl, helm, kopf and the Python client, readiness waited for, and teardown that
leaves no process behind (see ``processes``). There is no kube-controller-manager and no kubelet:
objects are stored and validated, nothing reconciles them (namespaces never finish terminating,
Deployments get no pods) — which is what the operator's tests want to own themselves.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from types import TracebackType

from e2e.testenv import binaries, certs, kubeconfig, processes

START_TIMEOUT = 90.0  # seconds; a cold kube-apiserver takes 5-20 on a busy 2-core machine
SERVICE_CIDR = "10.0.0.0/24"
ISSUER = "https://kubernetes.default.svc.cluster.local"


class StartError(RuntimeError):
    """etcd or kube-apiserver exited or never became ready; the message ends with its log."""


class CommandFailed(subprocess.CalledProcessError):
    """kubectl or helm exited non-zero; unlike its base class, the message shows what it said."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


def free_port() -> int:
    """A loopback port nobody listens on right now (the servers bind it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ControlPlane:
    """etcd + kube-apiserver. ``start()``/``stop()``, or ``with ControlPlane() as plane:``.

    ``bins`` defaults to ``binaries.ensure()`` (which may build them, once). ``detached=True`` lets the
    servers outlive this Python process (``python -m e2e.testenv up``) and keeps the work directory.
    """

    def __init__(
        self,
        *,
        bins: binaries.Binaries | None = None,
        workdir: pathlib.Path | None = None,
        detached: bool = False,
    ) -> None:
        self.bins = bins or binaries.ensure()
        self.workdir = workdir or pathlib.Path(tempfile.mkdtemp(prefix="pilotfish-cp-"))
        self.detached = detached
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.api_port = 0
        self.etcd_port = 0
        self.pki: certs.Pki | None = None
        self._exit_token: int | None = None

    @property
    def kubeconfig(self) -> pathlib.Path:
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.processes.items()}

    def start(self) -> ControlPlane:
        """Start etcd, then kube-apiserver; return once ``/readyz`` says ok and ``default`` exists."""
        if not self.detached:
            self._exit_token = processes.at_exit(self.stop)
        try:
            self.pki = certs.generate(self.workdir / "pki")
            self._start_etcd()
            self._start_apiserver()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd (whole process groups); delete the work directory unless detached."""
        for name in ("kube-apiserver", "etcd"):
            process = self.processes.pop(name, None)
            if process is not None:
                processes.stop_group(process.pid)
                process.poll()
        if self._exit_token is not None:
            processes.cancel(self._exit_token)
            self._exit_token = None
        if not self.detached:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (kubectl, helm, kopf, the operator) that should use this cluster."""
        helm_home = self.workdir / "helm"
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": os.pathsep.join([str(self.bins.kubectl.parent), str(self.bins.helm.parent), os.environ["PATH"]]),
            # helm's repositories, plugins and cache: this cluster's, not the user's ~/.config/helm
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_DATA_HOME": str(helm_home / "data"),
        }

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane; ``check=False`` to assert on a rejection's stderr."""
        return self._run(self.bins.kubectl, args, check=check, stdin=stdin, timeout=timeout)

    def helm(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run helm against this control plane (never ``--wait``: there are no nodes to run pods)."""
        return self._run(self.bins.helm, args, check=check, stdin=None, timeout=timeout)

    def _run(
        self, binary: pathlib.Path, args: tuple[str, ...], *, check: bool, stdin: str | None, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(binary), *args], env=self.env(), input=stdin, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise CommandFailed(done.returncode, done.args, done.stdout, done.stderr)
        return done

    def _start_etcd(self) -> None:
        self.etcd_port, peer_port = free_port(), free_port()
        client, peer = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{peer_port}"
        self._spawn(
            "etcd",
            [
                str(self.bins.etcd),
                "--name=testenv",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=testenv={peer}",
                "--unsafe-no-fsync=true",  # a throw-away store: durability only costs time
                "--log-level=warn",
            ],
        )
        self._wait("etcd", lambda: _get(f"{client}/health") is not None)

    def _start_apiserver(self) -> None:
        self.api_port = free_port()
        flags = self._apiserver_flags()
        self._spawn("kube-apiserver", [str(self.bins.kube_apiserver), *(f"--{k}={v}" for k, v in flags.items())])
        self._await_apiserver()

    def _apiserver_flags(self) -> dict[str, str]:
        """kube-apiserver's flags, by name (the node's control plane changes a few)."""
        pki = self.pki
        assert pki is not None
        return {
            "etcd-servers": f"http://127.0.0.1:{self.etcd_port}",
            "cert-dir": str(self.workdir / "apiserver-certs"),
            "secure-port": str(self.api_port),
            "bind-address": "127.0.0.1",
            "advertise-address": "127.0.0.1",
            "tls-cert-file": str(pki.serving_cert),
            "tls-private-key-file": str(pki.serving_key),
            "client-ca-file": str(pki.ca_cert),
            "service-cluster-ip-range": SERVICE_CIDR,
            "service-account-issuer": ISSUER,
            "service-account-key-file": str(pki.sa_public),
            "service-account-signing-key-file": str(pki.sa_private),
            "authorization-mode": "RBAC",
            "disable-admission-plugins": "ServiceAccount",  # no controller-manager creates the tokens it wants
            "allow-privileged": "true",
            "enable-priority-and-fairness": "false",
            "endpoint-reconciler-type": "none",  # nothing to reconcile the kubernetes Service's endpoints onto
            "v": "0",
        }

    def _await_apiserver(self) -> None:
        """Write the admin kubeconfig for ``self.server``; return once /readyz is ok and ``default`` exists."""
        pki = self.pki
        assert pki is not None
        kubeconfig.write(
            self.kubeconfig,
            server=self.server,
            ca_cert=pki.ca_cert,
            client_cert=pki.admin_cert,
            client_key=pki.admin_key,
        )
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self._wait("kube-apiserver", lambda: _get(f"{self.server}/readyz", context=context) == b"ok")
        self._wait("kube-apiserver", lambda: _namespace_exists(f"{self.server}/api/v1/namespaces/default", context))

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.processes[name] = processes.spawn(argv, log=self.workdir / f"{name}.log", detached=self.detached)

    def _wait(self, name: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise StartError(f"{name} exited with {process.returncode}:\n{self._log_tail(name)}")
            if ready():
                return
            time.sleep(0.1)
        raise StartError(f"{name} was not ready after {START_TIMEOUT:.0f}s:\n{self._log_tail(name)}")

    def _log_tail(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"


def _get(url: str, *, context: ssl.SSLContext | None = None) -> bytes | None:
    """The body of a 200 answer, or None for anything else (not listening yet, 500 while starting)."""
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bytes(response.read()) if response.status == 200 else None
    except OSError:
        return None


def _namespace_exists(url: str, context: ssl.SSLContext) -> bool:
    body = _get(url, context=context)
    return body is not None and json.loads(body).get("status", {}).get("phase") == "Active"
