"""A real control plane for tests: etcd and kube-apiserver on free loopback ports, no nodes.

What controller-runtime's envtest does, for Python: throw-away data dir and PKI, an admin kubeconfig
for kubectl, helm, kopf and the Python client, readiness waited for, and teardown that leaves no
process behind (own process groups, killed on stop, at exit, and when the test process dies).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from types import TracebackType

from e2e.testenv import binaries, certs

START_TIMEOUT = 90.0  # seconds; a cold kube-apiserver on a busy 2-core machine takes ~10-20
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: its own process group, and SIGTERM when the parent dies."""
    os.setpgrp()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclasses.dataclass
class ControlPlane:
    """Start with ``start()`` (or ``with ControlPlane() as cp``); ``kubeconfig`` is ready to use."""

    bins: binaries.Binaries
    workdir: pathlib.Path = dataclasses.field(
        default_factory=lambda: pathlib.Path(tempfile.mkdtemp(prefix="pilotfish-cp-"))
    )
    detached: bool = False  # `python -m e2e.testenv up`: outlive this process
    processes: dict[str, subprocess.Popen[bytes]] = dataclasses.field(default_factory=dict)
    api_port: int = 0
    etcd_port: int = 0

    @property
    def kubeconfig(self) -> pathlib.Path:
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def start(self) -> ControlPlane:
        self.pki = certs.generate(self.workdir / "pki")
        self.etcd_port, peer_port, self.api_port = free_port(), free_port(), free_port()
        self._spawn(
            "etcd",
            [
                str(self.bins.etcd),
                "--name=testenv",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=testenv=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait(lambda: _http_ok(f"http://127.0.0.1:{self.etcd_port}/health"), "etcd")
        pki = self.pki
        self._spawn(
            "kube-apiserver",
            [
                str(self.bins.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--secure-port={self.api_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.sa_public}",
                f"--service-account-signing-key-file={pki.sa_private}",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--endpoint-reconciler-type=none",
                "--v=0",
            ],
        )
        self._write_kubeconfig()
        self._wait(self._api_ready, "kube-apiserver")
        return self

    def stop(self) -> None:
        for name in ("kube-apiserver", "etcd"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if not self.detached:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (kubectl, helm, the operator) that should use this cluster."""
        path = os.pathsep.join([str(self.bins.kubectl.parent), str(self.bins.helm.parent), os.environ.get("PATH", "")])
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bins.kubectl), *args],
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bins.helm), *args],
            env={**self.env(), "HELM_CACHE_HOME": str(self.workdir / "helm")},
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=os.setpgrp if self.detached else _die_with_parent,
        )

    def _wait(self, ready: object, name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                log = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log}")
            if ready():  # type: ignore[operator]
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{name} was not ready after {START_TIMEOUT:.0f}s")

    def _api_ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return _http_ok(f"{self.server}/readyz", context=context)

    def _write_kubeconfig(self) -> None:
        pki = self.pki
        self.kubeconfig.write_text(f"""\
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster: {{server: "{self.server}", certificate-authority: "{pki.ca_cert}"}}
users:
- name: admin
  user: {{client-certificate: "{pki.admin_cert}", client-key: "{pki.admin_key}"}}
contexts:
- name: testenv
  context: {{cluster: testenv, user: admin, namespace: default}}
current-context: testenv
""")


def _http_ok(url: str, *, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def running() -> Iterator[ControlPlane]:
    """Build or find the binaries, start a control plane, and always stop it."""
    plane = ControlPlane(binaries.ensure())
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()
