"""What the node changes on the host, recorded before it starts and put back when it stops.

The node runs in its own network and mount namespaces (``netns``), but three things are host-wide:
- sysctls the kubelet sets at start (``vm.overcommit_memory``, ``kernel.panic``,
  ``kernel.panic_on_oops``): recorded before, written back after;
- a few fixed paths created even with private configurations (containerd's shim sockets under
  /run/containerd, the CNI and kubelet folders): removed after, but only those that did not exist
  before;
- cgroups: the kubelet runs every pod under ``CGROUP_ROOT`` in each hierarchy; after the processes are
  stopped, any process left in that tree is killed by PID, and the tree is removed leaf first.
``Snapshot.take()`` before the node starts, ``snapshot.restore()`` after its processes are stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import shutil
import signal
import time

SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
FIXED_PATHS = (
    "/run/containerd",
    "/var/run/netns",
    "/run/netns",
    "/var/lib/cni",
    "/var/lib/kubelet",
    "/etc/cni/net.d",
    "/etc/cni",
    "/opt/cni",
    "/var/log/pods",
    "/var/log/containers",
)
CGROUP_FS = pathlib.Path("/sys/fs/cgroup")
CGROUP_ROOT = "pilotfish-node"  # the kubelet's cgroupRoot: every pod's cgroup lives under it


@dataclasses.dataclass(frozen=True)
class Snapshot:
    sysctls: dict[str, str]
    existing: frozenset[str]  # which of FIXED_PATHS existed before the node started

    @classmethod
    def take(cls) -> Snapshot:
        values = {key: (pathlib.Path("/proc/sys") / key).read_text().strip() for key in SYSCTLS}
        return cls(sysctls=values, existing=frozenset(p for p in FIXED_PATHS if os.path.lexists(p)))

    def to_json(self) -> dict[str, object]:
        return {"sysctls": self.sysctls, "existing": sorted(self.existing)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Snapshot:
        sysctls, existing = data["sysctls"], data["existing"]
        assert isinstance(sysctls, dict) and isinstance(existing, list)
        return cls(sysctls={str(k): str(v) for k, v in sysctls.items()}, existing=frozenset(map(str, existing)))

    def restore(self) -> list[str]:
        """Put everything back; returns what could not be (empty when the host is as it was)."""
        problems = remove_cgroups()
        for key, value in self.sysctls.items():
            path = pathlib.Path("/proc/sys") / key
            if path.read_text().strip() != value:
                try:
                    path.write_text(value + "\n")
                except OSError as exc:
                    problems.append(f"sysctl {key}: {exc}")
        for created in FIXED_PATHS:  # listed children first, so a parent is empty when its turn comes
            if created not in self.existing and os.path.lexists(created):
                if mounts_under(created):  # never delete through a mount
                    problems.append(f"{created} has mounts: {mounts_under(created)}")
                    continue
                shutil.rmtree(created, ignore_errors=True)
                if os.path.lexists(created):
                    problems.append(f"could not remove {created}")
        return problems


def mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path`` in this process's mount namespace (the host's, for the tests)."""
    points = [line.split()[4] for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines()]
    return [point for point in points if point == path or point.startswith(path.rstrip("/") + "/")]


def hierarchies() -> list[pathlib.Path]:
    """Every mounted cgroup hierarchy (v1 controllers, the named systemd one, the unified v2 one)."""
    found = []
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype in ("cgroup", "cgroup2") and fields[4].startswith(str(CGROUP_FS)):
            found.append(pathlib.Path(fields[4]))
    return found


def create_cgroups() -> None:
    """The kubelet refuses a cgroupRoot that does not exist; cpuset needs its cpus and mems filled in."""
    for hierarchy in hierarchies():
        path = hierarchy / CGROUP_ROOT
        path.mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (path / knob).exists() and not (path / knob).read_text().strip():
                (path / knob).write_text((hierarchy / knob).read_text())


def remove_cgroups() -> list[str]:
    """Kill what is left in the node's cgroups (by PID), then remove them, deepest first."""
    problems: list[str] = []
    trees = [h / CGROUP_ROOT for h in hierarchies() if (h / CGROUP_ROOT).is_dir()]
    for _ in range(50):
        pids = {pid for tree in trees for pid in _pids_in(tree)}
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for tree in trees:
        for directory in sorted((p for p in tree.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            _rmdir(directory, problems)
        _rmdir(tree, problems)
    return problems


def _pids_in(tree: pathlib.Path) -> set[int]:
    pids: set[int] = set()
    for procs in tree.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids.update(int(line) for line in procs.read_text().split())
    return pids


def _rmdir(directory: pathlib.Path, problems: list[str]) -> None:
    for _ in range(20):
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)  # a cgroup is busy for a moment after its last process died
    problems.append(f"could not remove cgroup {directory}")
