"""A memory cgroup of its own for a process a test starts: the hard limit a kubelet would set.

cgroup v1 where the memory controller is mounted there (``/sys/fs/cgroup/memory``), else cgroup v2
where the unified hierarchy offers the memory controller and this process may create a child group
with it. Each version names the same things differently; ``MemoryGroup`` hides which one it is:

| what | v1 | v2 |
|---|---|---|
| hard limit | ``memory.limit_in_bytes`` | ``memory.max`` |
| no swapping out of it | ``memory.memsw.limit_in_bytes`` | ``memory.swap.max`` = 0 |
| peak usage | ``memory.max_usage_in_bytes`` | ``memory.peak`` (Linux 5.19+), else ``memory.current`` |
| OOM kills | ``memory.oom_control`` ``oom_kill``, ``under_oom`` | ``memory.events`` ``oom_kill``, ``oom`` |

``create`` raises ``Unavailable`` with the reason where neither can be had (no controller, no
permission, or v2's rule that a group with processes in it cannot hand controllers to children).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import time
from collections.abc import Callable

ROOT = pathlib.Path("/sys/fs/cgroup")


class Unavailable(Exception):
    """No memory cgroup can be made here; the message says why."""


@dataclasses.dataclass(frozen=True)
class MemoryGroup:
    path: pathlib.Path
    version: int  # 1 or 2

    def preexec(self) -> Callable[[], None]:
        """Run in the child before it starts: it joins this group."""
        procs = self.path / "cgroup.procs"
        return lambda: procs.write_text(str(os.getpid()))

    def peak(self) -> int:
        """The most memory the group has used (v2 without ``memory.peak``: what it uses now)."""
        if self.version == 1:
            return int((self.path / "memory.max_usage_in_bytes").read_text())
        peak = self.path / "memory.peak"
        return int((peak if peak.exists() else self.path / "memory.current").read_text())

    def ooms(self) -> dict[str, int]:
        """``oom``: times the group hit its limit with nothing left to reclaim (v1: whether it is so now);
        ``oom_kill``: processes the kernel killed for it."""
        if self.version == 1:
            fields = _fields((self.path / "memory.oom_control").read_text())
            return {"oom": fields.get("under_oom", 0), "oom_kill": fields.get("oom_kill", 0)}
        fields = _fields((self.path / "memory.events").read_text())
        return {"oom": fields.get("oom", 0), "oom_kill": fields.get("oom_kill", 0)}

    def remove(self) -> None:
        for _ in range(50):  # the process has exited; its charge drains away before rmdir succeeds
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def create(name: str, *, limit: int) -> MemoryGroup:
    """A child of this process's memory cgroup, limited to ``limit`` bytes with no swap."""
    proc_cgroup = pathlib.Path("/proc/self/cgroup").read_text()
    v1 = v1_parent(proc_cgroup)
    if v1 is not None and (v1 / "memory.limit_in_bytes").exists():
        return _made(v1 / name, 1, {"memory.limit_in_bytes": str(limit), "memory.memsw.limit_in_bytes": str(limit)})
    v2 = v2_parent(proc_cgroup, pathlib.Path("/proc/self/mountinfo").read_text())
    if v2 is None:
        raise Unavailable("no cgroup v1 memory controller and no cgroup v2 hierarchy mounted for this process")
    if "memory" not in (v2 / "cgroup.controllers").read_text().split():
        raise Unavailable(f"the cgroup v2 group {v2} does not offer the memory controller")
    if "memory" not in (v2 / "cgroup.subtree_control").read_text().split():
        try:
            (v2 / "cgroup.subtree_control").write_text("+memory")
        except OSError as exc:  # EBUSY: processes live in v2 itself (the no-internal-processes rule)
            raise Unavailable(f"cannot hand the memory controller to children of {v2}: {exc}") from exc
    return _made(v2 / name, 2, {"memory.max": str(limit), "memory.swap.max": "0"})


def _made(path: pathlib.Path, version: int, settings: dict[str, str]) -> MemoryGroup:
    try:
        path.mkdir()
        for file, value in settings.items():
            if (path / file).exists():  # memsw / swap.max exist only where swap accounting is on
                (path / file).write_text(value)
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.rmdir()
        raise Unavailable(f"cannot create a memory cgroup at {path}: {exc}") from exc
    return MemoryGroup(path, version)


def v1_parent(proc_cgroup: str, *, root: pathlib.Path = ROOT) -> pathlib.Path | None:
    """This process's group in the v1 memory hierarchy, from /proc/self/cgroup."""
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return root / "memory" / path.lstrip("/")
    return None


def v2_parent(proc_cgroup: str, mountinfo: str) -> pathlib.Path | None:
    """This process's group in the v2 hierarchy: the ``0::`` line of /proc/self/cgroup under the
    cgroup2 mount point (/sys/fs/cgroup on a v2-only host, /sys/fs/cgroup/unified on a hybrid one)."""
    path = next((line[3:] for line in proc_cgroup.splitlines() if line.startswith("0::")), None)
    mount = next(
        (line.split()[4] for line in mountinfo.splitlines() if " - cgroup2 " in line),
        None,
    )
    if path is None or mount is None:
        return None
    return pathlib.Path(mount) / path.lstrip("/")


def _fields(text: str) -> dict[str, int]:
    return {key: int(value) for key, value in (line.split() for line in text.splitlines() if line.strip())}
