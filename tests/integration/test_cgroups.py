"""The memory-limit test finds its cgroup on either version: v1's memory hierarchy, or v2's unified one
on a v2-only host or a hybrid one. The parsing is checked on what each kind of host shows."""

from __future__ import annotations

import pathlib

from tests.integration import cgroups

HYBRID_CGROUP = "4:memory:/process_api/5caf\n1:cpu:/\n0::/\n"
HYBRID_MOUNTS = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
V2_CGROUP = "0::/user.slice/user-1000.slice/session-3.scope\n"
V2_MOUNTS = (
    "25 30 0:22 / /sys rw,nosuid - sysfs sysfs rw\n"
    "27 25 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"
)


def test_a_v1_memory_hierarchy_is_found_from_the_memory_line():
    assert cgroups.v1_parent(HYBRID_CGROUP) == pathlib.Path("/sys/fs/cgroup/memory/process_api/5caf")
    assert cgroups.v1_parent(V2_CGROUP) is None


def test_a_v2_group_is_found_under_the_cgroup2_mount_on_v2_only_and_hybrid_hosts():
    assert cgroups.v2_parent(V2_CGROUP, V2_MOUNTS) == pathlib.Path(
        "/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope"
    )
    assert cgroups.v2_parent(HYBRID_CGROUP, HYBRID_MOUNTS) == pathlib.Path("/sys/fs/cgroup/unified")
    assert cgroups.v2_parent(V2_CGROUP, "25 30 0:22 / /sys rw - sysfs sysfs rw\n") is None


def test_each_version_reports_ooms_and_peak_under_the_same_names(tmp_path):
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (v1 / "memory.max_usage_in_bytes").write_text("1048576\n")
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n")
    (v2 / "memory.current").write_text("2097152\n")
    assert cgroups.MemoryGroup(v1, 1).ooms() == {"oom": 0, "oom_kill": 2}
    assert cgroups.MemoryGroup(v2, 2).ooms() == {"oom": 1, "oom_kill": 1}
    assert cgroups.MemoryGroup(v1, 1).peak() == 1048576
    assert cgroups.MemoryGroup(v2, 2).peak() == 2097152  # no memory.peak (before Linux 5.19): current
    (v2 / "memory.peak").write_text("3145728\n")
    assert cgroups.MemoryGroup(v2, 2).peak() == 3145728
