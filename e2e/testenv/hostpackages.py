"""The Debian packages the tests need on the host, checked (and installed where we may) before ``make test``.

Everything else the tests need is built or pip-installed by the project itself. These few come from
Debian because they are servers or kernel-facing tools: a real Prometheus for the dashboard, alert and
canary tests; and, for the node tests (``e2e.testenv.node``), containerd, runc, the CNI plugins,
iproute2, buildah and mmdebstrap. ``python -m e2e.testenv packages [--node]`` installs what is missing
with apt-get when it runs as root on Debian; otherwise it names exactly what is missing and how to
install it, and fails, so a fresh machine never meets a missing tool halfway through the tests.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys


@dataclasses.dataclass(frozen=True)
class Need:
    package: str  # the Debian package that provides it
    probe: str  # a command on PATH, or an absolute path, that proves the package is installed
    why: str  # which tests need it, for the message


BASE = (Need("prometheus", "prometheus", "the dashboard, alert and canary tests (a real Prometheus)"),)
NODE = (
    Need("containerd", "containerd", "the node tests (the container runtime)"),
    Need("runc", "runc", "the node tests (the OCI runtime containerd calls)"),
    Need("containernetworking-plugins", "/usr/lib/cni/bridge", "the node tests (the pod network)"),
    Need("iproute2", "ip", "the node tests (the network namespace's links and addresses)"),
    Need("util-linux", "nsenter", "the node tests (processes started inside the node's namespaces)"),
    Need("buildah", "buildah", "the node tests (the images, built without Docker)"),
    Need("mmdebstrap", "mmdebstrap", "the node tests (the Debian base image)"),
)


def _present(need: Need) -> bool:
    if need.probe.startswith("/"):
        return pathlib.Path(need.probe).exists()
    return shutil.which(need.probe) is not None or any(
        (pathlib.Path(folder) / need.probe).exists() for folder in ("/usr/sbin", "/sbin")
    )


def missing(needs: tuple[Need, ...]) -> list[Need]:
    return [need for need in needs if not _present(need)]


def describe(absent: list[Need]) -> str:
    """What is missing, who needs it, and the one command that installs it."""
    lines = [f"  {need.package}: for {need.why}" for need in absent]
    install = "apt-get install -y " + " ".join(need.package for need in absent)
    return "\n".join(
        [
            "The tests need these Debian packages, which are not installed:",
            *lines,
            f"Install them with:  sudo {install}",
            "(`make test` installs them itself when it runs as root on Debian.)",
        ]
    )


ROOT_NEEDED = """The node tests need root (they create a network namespace and cgroups and run containerd and the
kubelet), and this runs as uid {uid}. Run `make test` as root, or leave the node tier out with
PILOTFISH_SKIP_NODE=1 (every other tier runs unprivileged).
"""


def ensure(needs: tuple[Need, ...]) -> int:
    """0 when everything is there (installing it if we may), 2 with ``describe``'s message otherwise."""
    if any(need in NODE for need in needs) and os.geteuid() != 0:
        sys.stderr.write(ROOT_NEEDED.format(uid=os.geteuid()))
        return 2
    absent = missing(needs)
    if not absent:
        return 0
    if os.geteuid() == 0 and shutil.which("apt-get"):
        packages = [need.package for need in absent]
        sys.stderr.write(f"testenv: installing Debian packages: {' '.join(packages)}\n")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env, check=False, stdout=subprocess.DEVNULL)
        absent = missing(needs)
        if not absent:
            return 0
    sys.stderr.write(describe(absent) + "\n")
    return 2
