"""The node's configuration files (e2e/testenv/nodeconfig.py): everything private to the node's work
directory, and the settings this machine needs (see docs/testing.md, "The node")."""

from __future__ import annotations

import json
import pathlib
import tomllib

import yaml
from e2e.testenv import hoststate, netns, nodeconfig


def test_containerd_keeps_every_path_in_the_work_directory_and_never_lowers_oom_scores(tmp_path):
    config = tomllib.loads(nodeconfig.write_containerd(tmp_path).read_text())
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True  # runc cannot set -998 without CAP_SYS_RESOURCE here
    assert cri["sandbox_image"] == nodeconfig.PAUSE_IMAGE
    assert cri["containerd"]["runtimes"]["runc"]["options"] == {"BinaryName": "/usr/sbin/runc", "SystemdCgroup": False}
    private = [config["root"], config["state"], config["grpc"]["address"], cri["cni"]["conf_dir"]]
    assert all(pathlib.Path(path).is_relative_to(tmp_path) for path in private), private


def test_the_pod_network_is_one_bridge_with_addresses_and_state_inside_the_node(tmp_path):
    network = json.loads(nodeconfig.write_cni(tmp_path).read_text())
    bridge = network["plugins"][0]
    assert bridge["bridge"] == netns.POD_BRIDGE and bridge["isGateway"] is True
    assert bridge["ipam"]["ranges"] == [[{"subnet": netns.POD_SUBNET, "gateway": netns.POD_GATEWAY}]]
    assert pathlib.Path(bridge["ipam"]["dataDir"]).is_relative_to(tmp_path)  # not /var/lib/cni


def test_the_kubelet_runs_pods_under_the_nodes_own_cgroup_and_never_collects_the_local_images(tmp_path):
    path = nodeconfig.write_kubelet(
        tmp_path, ca_cert=tmp_path / "ca", serving_cert=tmp_path / "crt", serving_key=tmp_path / "key", sync_seconds=10
    )
    config = yaml.safe_load(path.read_text())
    assert config["cgroupDriver"] == "cgroupfs" and config["cgroupRoot"] == f"/{hoststate.CGROUP_ROOT}"
    assert config["failCgroupV1"] is False and config["failSwapOn"] is False
    assert config["makeIPTablesUtilChains"] is False and config["readOnlyPort"] == 0
    assert config["imageGCHighThresholdPercent"] == 100  # the images cannot be pulled back
    assert config["syncFrequency"] == "10s"
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert (tmp_path / "resolv.conf").read_text() == ""  # never the host's resolvers


def test_a_host_snapshot_survives_the_state_file_round_trip():
    snapshot = hoststate.Snapshot(sysctls={"kernel/panic": "1"}, existing=frozenset({"/run/containerd"}))
    assert hoststate.Snapshot.from_json(json.loads(json.dumps(snapshot.to_json()))) == snapshot
