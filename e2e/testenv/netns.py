"""The node's own network and mount namespaces, held open by one process, and the way in from the host.

Everything the node runs (etcd, the API server, controller-manager, scheduler, containerd, kubelet and
every pod) lives in one network namespace created here, so the host's interfaces and routes are never
touched, and in one private mount namespace, so every mount the node makes (container root
filesystems, volumes) disappears with it: when the last process inside exits, the kernel frees both
namespaces and their mounts. The namespaces are held by a ``sleep`` started under ``unshare``, not
named with ``ip netns add`` (which would leave /run/netns mounts on the host); the other processes
join it with ``nsenter --target``.

Inside: the node's address on a port-less bridge (the kernel here has no ``dummy`` links), and the pod
network on a second bridge that the CNI bridge plugin creates. From the host the API server is reached
through ``forward`` (a loopback port whose socket the host made).
"""

from __future__ import annotations

import pathlib
import socket
import subprocess
import sys
import time

from e2e.testenv import processes

NODE_IP = "10.200.0.1"  # the node's InternalIP: kubelet, API server and the webhook's callers use it
NODE_PREFIX = 24
NODE_BRIDGE = "pf-node0"
POD_SUBNET = "10.201.0.0/24"  # host-local IPAM hands pod addresses out of this
POD_GATEWAY = "10.201.0.1"
POD_BRIDGE = "pf-pods0"
START_TIMEOUT = 10.0


class Namespaces:
    """A holder process whose network and mount namespaces the node's processes join."""

    def __init__(self, holder: subprocess.Popen[bytes]) -> None:
        self.holder = holder

    @classmethod
    def create(cls, workdir: pathlib.Path, *, detached: bool = False) -> Namespaces:
        holder = processes.spawn(
            ["unshare", "--net", "--mount", "--propagation=private", "--", "sleep", "infinity"],
            log=workdir / "namespaces.log",
            detached=detached,
        )
        namespaces = cls(holder)
        deadline = time.monotonic() + START_TIMEOUT
        while namespaces.net_inode() == _inode("/proc/self/ns/net"):  # unshare has not exec'd sleep yet
            if holder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"unshare failed: {(workdir / 'namespaces.log').read_text(errors='replace')}")
            time.sleep(0.02)
        return namespaces

    @property
    def pid(self) -> int:
        return self.holder.pid

    def net_inode(self) -> int:
        return _inode(f"/proc/{self.pid}/ns/net")

    def prefix(self, *, mount: bool = True) -> list[str]:
        """The argv prefix that runs a command inside the node's namespaces."""
        return ["nsenter", f"--target={self.pid}", "--net", *(["--mount"] if mount else []), "--"]

    def run(self, *argv: str) -> str:
        done = subprocess.run([*self.prefix(), *argv], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed in the node's namespaces: {done.stderr.strip()}")
        return done.stdout

    def set_up_network(self) -> None:
        """Loopback up, and the node's address on its own bridge. The pod bridge comes from CNI."""
        self.run("ip", "link", "set", "lo", "up")
        self.run("ip", "link", "add", NODE_BRIDGE, "type", "bridge")
        self.run("ip", "addr", "add", f"{NODE_IP}/{NODE_PREFIX}", "dev", NODE_BRIDGE)
        self.run("ip", "link", "set", NODE_BRIDGE, "up")

    def forward(self, target_port: int, *, log: pathlib.Path, detached: bool) -> tuple[subprocess.Popen[bytes], int]:
        """A host loopback port that reaches ``127.0.0.1:target_port`` inside the namespace."""
        listener = socket.socket()
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
            port = int(listener.getsockname()[1])
            root = str(pathlib.Path(__file__).resolve().parents[2])
            argv = [
                *self.prefix(mount=False),
                "env",
                f"PYTHONPATH={root}",
                sys.executable,
                "-m",
                "e2e.testenv.forward",
                f"--fd={listener.fileno()}",
                f"--to=127.0.0.1:{target_port}",
            ]
            process = processes.spawn(argv, log=log, detached=detached, pass_fds=(listener.fileno(),))
        finally:
            listener.close()  # the child holds its own copy
        return process, port


def _inode(path: str) -> int:
    return pathlib.Path(path).stat().st_ino
