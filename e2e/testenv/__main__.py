"""``python -m e2e.testenv build|up|down|env|packages``: the test control plane, by hand and for CI.

python -m e2e.testenv packages [--node]   # the Debian packages the tests need: installed (root) or named
python -m e2e.testenv build [--node]      # build (or find) the binaries; prints paths and timings
eval "$(python -m e2e.testenv up)"        # start one in the background; exports KUBECONFIG
eval "$(python -m e2e.testenv up --node)" # a real one-node cluster instead: images built, pods run
kubectl apply -f crds/ && kubectl get mc
python -m e2e.testenv down                # stop it and delete its data
eval "$(python -m e2e.testenv env)"       # KUBEBUILDER_ASSETS (and KUBECONFIG while one is up)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import shutil
import sys
import tempfile
import time

from e2e.testenv import binaries, controlplane, hostpackages, images, node, processes, versions


def state_file() -> pathlib.Path:
    """Where ``up`` records what ``down`` must stop: one control plane per user and temp directory."""
    return pathlib.Path(tempfile.gettempdir()) / f"pilotfish-testenv-{os.getuid()}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.testenv", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["build", "up", "down", "env", "packages"])
    parser.add_argument(
        "--node", action="store_true", help="build/up/packages: the real node's binaries, cluster, packages too"
    )
    args = parser.parse_args(argv)
    if args.command == "packages":
        return hostpackages.ensure(hostpackages.BASE + (hostpackages.NODE if args.node else ()))
    try:
        if args.command == "up" and args.node:
            return up_node()
        if args.command == "build":
            return build(node=args.node)
        return {"up": up, "down": down, "env": env}[args.command]()
    except binaries.BinariesUnavailable as exc:
        sys.stderr.write(f"{exc}\n")
        return 2


def build(*, node: bool = False) -> int:
    """Build or reuse the binaries (``--node``: the node's too); print where they are and what it cost."""
    started = time.monotonic()
    bins = binaries.ensure()
    node_bins = binaries.ensure_node() if node else None
    elapsed = time.monotonic() - started
    print(f"versions: kubernetes {versions.KUBERNETES}, etcd {versions.ETCD}, helm {versions.HELM}")
    for name, path in {**bins.paths(), **(node_bins.paths() if node_bins else {})}.items():
        print(f"{name}: {path}")
    built = {**bins.built, **(node_bins.built if node_bins else {})}
    if built:
        steps = ", ".join(f"{label} {seconds:.0f}s" for label, seconds in built.items())
        print(f"built in {elapsed:.0f}s ({steps})")
    else:
        print(f"reused, nothing built ({elapsed:.1f}s)")
        last = binaries.last_build_times()
        if last is not None and bins.from_cache():
            print(f"the cache was built at {last['when']}: {json.dumps(last['seconds'])}")
    return 0


def up() -> int:
    state = state_file()
    if state.exists():
        recorded = json.loads(state.read_text())
        if any(processes.group_alive(pid) for pid in recorded["pids"].values()):
            sys.stderr.write(f"a control plane is already up ({state}); run `python -m e2e.testenv down` first\n")
            return 1
        _forget(recorded)  # a stale record: its servers died (reboot, kill -9)
    plane = controlplane.ControlPlane(detached=True).start()
    record = {
        "server": plane.server,
        "kubeconfig": str(plane.kubeconfig),
        "workdir": str(plane.workdir),
        "pids": plane.pids,
        "bin_dir": str(plane.bins.kube_apiserver.parent),
    }
    state.write_text(json.dumps(record, indent=2) + "\n")
    print(f"export KUBECONFIG={shlex.quote(str(plane.kubeconfig))}")
    sys.stderr.write(
        f"control plane up at {plane.server} (pids {plane.pids}, logs in {plane.workdir}); "
        "stop it with `python -m e2e.testenv down`\n"
    )
    return 0


def up_node() -> int:
    """A real one-node cluster in the background: node binaries and images built (or reused) first."""
    state = state_file()
    if state.exists():
        sys.stderr.write(f"something is already up ({state}); run `python -m e2e.testenv down` first\n")
        return 1
    if hostpackages.ensure(hostpackages.NODE) != 0:
        return 2
    started = time.monotonic()
    node_bins = binaries.ensure_node()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="pilotfish-node-"))
    built = images.build(workdir=workdir, pause_binary=node_bins.pause, log=workdir / "images.log")
    node_ = node.Node(images=list(built.tars.values()), node_bins=node_bins, workdir=workdir, detached=True).start()
    state.write_text(json.dumps(node_.record(), indent=2) + "\n")
    print(f"export KUBECONFIG={shlex.quote(str(node_.kubeconfig))}")
    sizes = ", ".join(f"{name} {size / 1e6:.0f} MB" for name, size in sorted(built.sizes.items()))
    sys.stderr.write(
        f"node up in {time.monotonic() - started:.0f}s at {node_.server} (work directory {workdir}); images: {sizes}; "
        "stop it with `python -m e2e.testenv down`\n"
    )
    return 0


def down() -> int:
    state = state_file()
    if not state.exists():
        sys.stderr.write("no control plane is up\n")
        return 0
    recorded = json.loads(state.read_text())
    if recorded.get("node"):
        problems = node.teardown_record(recorded)
        state.unlink()
        print("node stopped" + (f"; NOT restored: {problems}" if problems else ", host restored"))
        return 1 if problems else 0
    _forget(recorded)
    state.unlink()
    print("control plane stopped")
    return 0


def _forget(recorded: dict[str, object]) -> None:
    pids = recorded["pids"]
    assert isinstance(pids, dict)
    for name in ("kube-apiserver", "etcd"):
        if name in pids:
            processes.stop_group(int(pids[name]))
    shutil.rmtree(str(recorded["workdir"]), ignore_errors=True)


def env() -> int:
    """Shell exports: KUBEBUILDER_ASSETS for envtest-style tools, KUBECONFIG while a control plane is up."""
    found = binaries.locate()
    if found is None:
        sys.stderr.write("the binaries are not built yet: run `python -m e2e.testenv build`\n")
        return 1
    print(f"export KUBEBUILDER_ASSETS={shlex.quote(str(found.kube_apiserver.parent))}")
    state = state_file()
    if state.exists():
        print(f"export KUBECONFIG={shlex.quote(json.loads(state.read_text())['kubeconfig'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
