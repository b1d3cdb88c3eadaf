"""The node's configuration files: containerd, the CNI network, the kubelet. Pure: paths in, files out.

Every path points into the node's work directory, so nothing is shared with a containerd or kubelet
the host may run itself. The settings that matter, and why:
- containerd: the CRI plugin with cgroupfs (no systemd here), overlayfs, Debian's runc, a private CNI
  folder, and ``restrict_oom_score_adj`` (this VM withholds CAP_SYS_RESOURCE, and runc fails with
  "can't get final child's PID from pipe: EOF" when asked to lower a score). ``sandbox_image`` is the
  pause image the test environment builds and imports: nothing is ever pulled.
- CNI: one bridge with host-local addresses from ``netns.POD_SUBNET``, its state in the work directory.
- kubelet: cgroupfs under ``hoststate.CGROUP_ROOT``, cgroup v1 allowed, no swap check, no iptables
  chains, no read-only port, a serving certificate from the test CA and webhook authn/authz (so the API
  server's kubelet client can read logs and exec), image garbage collection off (the images cannot
  be pulled back), and ``syncFrequency`` from the caller (ConfigMap volumes refresh on that period).
"""

from __future__ import annotations

import json
import pathlib

import yaml

from e2e.testenv import hoststate, netns

PAUSE_IMAGE = "localhost/pilotfish-pause:testenv"
NODE_NAME = "pilotfish-node"


def containerd_socket(workdir: pathlib.Path) -> pathlib.Path:
    return workdir / "containerd" / "containerd.sock"


def write_containerd(workdir: pathlib.Path) -> pathlib.Path:
    base = workdir / "containerd"
    cni = workdir / "cni"
    base.mkdir(parents=True, exist_ok=True)
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    text = f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{containerd_socket(workdir)}"

[ttrpc]
  address = "{base / "containerd.sock.ttrpc"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni / "net.d"}"
"""
    path = base / "config.toml"
    path.write_text(text)
    return path


def write_cni(workdir: pathlib.Path) -> pathlib.Path:
    conf_dir = workdir / "cni" / "net.d"
    conf_dir.mkdir(parents=True, exist_ok=True)
    network = {
        "cniVersion": "1.0.0",
        "name": "pilotfish-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": netns.POD_BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(workdir / "cni" / "ipam"),
                    "ranges": [[{"subnet": netns.POD_SUBNET, "gateway": netns.POD_GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "loopback"},
        ],
    }
    path = conf_dir / "10-pilotfish.conflist"
    path.write_text(json.dumps(network, indent=2))
    return path


def write_kubelet(
    workdir: pathlib.Path,
    *,
    ca_cert: pathlib.Path,
    serving_cert: pathlib.Path,
    serving_key: pathlib.Path,
    sync_seconds: int,
) -> pathlib.Path:
    base = workdir / "kubelet"
    base.mkdir(parents=True, exist_ok=True)
    (workdir / "resolv.conf").write_text("")  # no cluster DNS, and never the host's resolvers
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": netns.NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzPort": 0,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{hoststate.CGROUP_ROOT}",
        "failCgroupV1": False,
        "failSwapOn": False,
        "makeIPTablesUtilChains": False,
        "protectKernelDefaults": False,
        "containerRuntimeEndpoint": f"unix://{containerd_socket(workdir)}",
        "tlsCertFile": str(serving_cert),
        "tlsPrivateKeyFile": str(serving_key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "podLogsDir": str(base / "pod-logs"),
        "volumePluginDir": str(base / "volume-plugins"),
        "resolvConf": str(workdir / "resolv.conf"),
        "syncFrequency": f"{sync_seconds}s",
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "serializeImagePulls": False,
        "maxPods": 40,
    }
    path = base / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
