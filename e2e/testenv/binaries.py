"""Finds, or builds once, kube-apiserver, etcd, kubectl and helm for the test control plane.

Each binary is looked for in ``KUBEBUILDER_ASSETS`` (envtest's convention) first, then in a cache
folder outside the checkout keyed by the pinned versions
(``${XDG_CACHE_HOME:-~/.cache}/pilotfish/testenv/<versions>/bin``); only what is still missing is
built there with Go (see ``gobuild``). A file lock keeps two pytest processes from building at once;
the second waits and reuses the first one's result. Without Go, kubectl and helm may come from PATH
(a fallback only: the version may differ from the pinned one).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import pathlib
import shutil
import sys
import time
from collections.abc import Callable

from e2e.testenv import gobuild, versions

NAMES = ("kube-apiserver", "etcd", "kubectl", "helm")
NODE_NAMES = ("kubelet", "kube-scheduler", "kube-controller-manager", "pause")


class BinariesUnavailable(RuntimeError):
    """Neither KUBEBUILDER_ASSETS, the cache nor a Go toolchain can provide the binaries."""


@dataclasses.dataclass(frozen=True)
class Binaries:
    """Where each binary is. ``built`` holds seconds per build step done by this call (empty: reused)."""

    kube_apiserver: pathlib.Path
    etcd: pathlib.Path
    kubectl: pathlib.Path
    helm: pathlib.Path
    built: dict[str, float] = dataclasses.field(default_factory=dict, compare=False)

    def paths(self) -> dict[str, pathlib.Path]:
        return {name: getattr(self, name.replace("-", "_")) for name in NAMES}

    def from_cache(self) -> bool:
        """True when every binary is the one this project built at the pinned versions."""
        return all(path.parent == bin_dir() for path in self.paths().values())


@dataclasses.dataclass(frozen=True)
class _Step:
    label: str
    outputs: tuple[str, ...]
    run: Callable[..., None]


_STEPS = (
    _Step("kube-apiserver+kubectl", ("kube-apiserver", "kubectl"), gobuild.build_kube),
    _Step("etcd", ("etcd",), gobuild.build_etcd),
    _Step("helm", ("helm",), gobuild.build_helm),
)
_NODE_STEPS = (
    _Step(
        "kubelet+kube-scheduler+kube-controller-manager",
        ("kubelet", "kube-scheduler", "kube-controller-manager"),
        gobuild.build_node,
    ),
    _Step("pause", ("pause",), gobuild.build_pause),
)


@dataclasses.dataclass(frozen=True)
class NodeBinaries:
    """The node's own binaries (the test node, ``e2e.testenv.node``), built like the control plane's."""

    kubelet: pathlib.Path
    kube_scheduler: pathlib.Path
    kube_controller_manager: pathlib.Path
    pause: pathlib.Path  # the pod sandbox process, packed into the node's pause image
    built: dict[str, float] = dataclasses.field(default_factory=dict, compare=False)

    def paths(self) -> dict[str, pathlib.Path]:
        return {name: getattr(self, name.replace("-", "_")) for name in NODE_NAMES}


def cache_root() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base) / "pilotfish" / "testenv" / versions.cache_key()


def bin_dir() -> pathlib.Path:
    return cache_root() / "bin"


def _executable(path: pathlib.Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _find(name: str, *, allow_path: bool) -> pathlib.Path | None:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    candidates = [pathlib.Path(assets) / name] if assets else []
    candidates.append(bin_dir() / name)
    if allow_path and name in ("kubectl", "helm") and (on_path := shutil.which(name)):
        candidates.append(pathlib.Path(on_path))
    return next((path for path in candidates if _executable(path)), None)


def locate(*, allow_path: bool = False) -> Binaries | None:
    """All four binaries if they already exist (``KUBEBUILDER_ASSETS`` first, then the cache); builds nothing."""
    apiserver, etcd, kubectl, helm = (_find(name, allow_path=allow_path) for name in NAMES)
    if apiserver is None or etcd is None or kubectl is None or helm is None:
        return None
    return Binaries(kube_apiserver=apiserver, etcd=etcd, kubectl=kubectl, helm=helm)


def ensure(*, log: bool = True) -> Binaries:
    """All four binaries, ready to run: found, or the missing ones built once (under a lock) into the cache."""
    found = locate()
    if found is not None:
        return found
    if shutil.which("go") is None:
        fallback = locate(allow_path=True)
        if fallback is not None:
            return fallback
        missing = [name for name in NAMES if _find(name, allow_path=True) is None]
        raise BinariesUnavailable(
            f"The Kubernetes tests need kube-apiserver, etcd, kubectl and helm; missing: {', '.join(missing)}. "
            "Install Go (they are then built from the official Go modules, once, into "
            f"{bin_dir()}), or point KUBEBUILDER_ASSETS at a folder holding them (envtest's setup-envtest "
            "provides kube-apiserver, etcd and kubectl). To skip these tests on purpose, set PILOTFISH_SKIP_K8S=1."
        )
    timings = _build_locked(_STEPS, log=log)
    found = locate()
    assert found is not None, f"built into {bin_dir()} but binaries are still missing"
    return dataclasses.replace(found, built=timings)


def locate_node() -> NodeBinaries | None:
    """The node's binaries if they already exist (``KUBEBUILDER_ASSETS`` first, then the cache); builds nothing."""
    found = [_find(name, allow_path=False) for name in NODE_NAMES]
    if any(path is None for path in found):
        return None
    kubelet, scheduler, controller_manager, pause = (path for path in found if path is not None)
    return NodeBinaries(
        kubelet=kubelet, kube_scheduler=scheduler, kube_controller_manager=controller_manager, pause=pause
    )


def ensure_node(*, log: bool = True) -> NodeBinaries:
    """kubelet, kube-scheduler, kube-controller-manager and pause: found, or built once into the cache."""
    found = locate_node()
    if found is not None:
        return found
    if shutil.which("go") is None:
        missing = [name for name in NODE_NAMES if _find(name, allow_path=False) is None]
        raise BinariesUnavailable(
            f"The node tests need {', '.join(missing)}, built from the official Go modules into {bin_dir()}: "
            "install Go, or put them in KUBEBUILDER_ASSETS. To skip the node tests on purpose, deselect them "
            "with -m 'not node'."
        )
    timings = _build_locked(_NODE_STEPS, log=log)
    found = locate_node()
    assert found is not None, f"built into {bin_dir()} but node binaries are still missing"
    return dataclasses.replace(found, built=timings)


def _build_locked(steps: tuple[_Step, ...], *, log: bool) -> dict[str, float]:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent builder finishes first; then we find its work
        return _build_missing(root, steps, log=log)


def _build_missing(root: pathlib.Path, steps: tuple[_Step, ...], *, log: bool) -> dict[str, float]:
    """Run each build step whose outputs are found nowhere; record seconds per step in build-times.json."""
    bins = bin_dir()
    bins.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    for step in steps:
        if all(_find(name, allow_path=False) is not None for name in step.outputs):
            continue
        build_log = root / "logs" / f"{step.label}.log"
        if log:
            sys.stderr.write(f"testenv: building {step.label} from Go modules (first run only; log: {build_log})\n")
        started = time.monotonic()
        step.run(src=root / "src" / step.outputs[0], bin_dir=bins, log=build_log)
        timings[step.label] = round(time.monotonic() - started, 1)
        if log:
            sys.stderr.write(f"testenv: {step.label} built in {timings[step.label]:.0f}s\n")
    if timings:
        path = root / "build-times.json"
        previous = json.loads(path.read_text())["seconds"] if path.exists() else {}
        record = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": {**previous, **timings}}
        path.write_text(json.dumps(record, indent=2) + "\n")
    return timings


def last_build_times() -> dict[str, object] | None:
    """What the last build into the cache took, for ``python -m e2e.testenv build``."""
    path = cache_root() / "build-times.json"
    return json.loads(path.read_text()) if path.exists() else None
