"""Finds or builds kube-apiserver, etcd, kubectl and helm for the test control plane.

Order: ``KUBEBUILDER_ASSETS`` (envtest's convention) when it holds them; else a per-version cache
folder outside the checkout (``$XDG_CACHE_HOME/pilotfish/testenv/<versions>/bin``); else build them
there with the Go toolchain from the official Go modules through the Go module proxy, never from a
prebuilt download. A file lock keeps two test processes from building at once.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

from e2e.testenv import versions

GOMOD_TEMPLATES = pathlib.Path(__file__).resolve().parent / "gomod"
NAMES = ("kube-apiserver", "etcd", "kubectl", "helm")


class BinariesUnavailable(RuntimeError):
    """Neither KUBEBUILDER_ASSETS nor a Go toolchain can provide the binaries."""


@dataclasses.dataclass(frozen=True)
class Binaries:
    kube_apiserver: pathlib.Path
    etcd: pathlib.Path
    kubectl: pathlib.Path
    helm: pathlib.Path

    @classmethod
    def in_dir(cls, directory: pathlib.Path) -> Binaries:
        return cls(*(directory / name for name in NAMES))

    def all_exist(self) -> bool:
        return all(os.access(path, os.X_OK) for path in dataclasses.astuple(self))


def cache_root() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base) / "pilotfish" / "testenv" / versions.cache_key()


def locate() -> Binaries | None:
    """Binaries that already exist, without building anything."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        found = Binaries.in_dir(pathlib.Path(assets))
        helm = found.helm if os.access(found.helm, os.X_OK) else Binaries.in_dir(cache_root() / "bin").helm
        kubectl = found.kubectl if os.access(found.kubectl, os.X_OK) else pathlib.Path(shutil.which("kubectl") or "")
        candidate = dataclasses.replace(found, helm=helm, kubectl=kubectl)
        if candidate.all_exist():
            return candidate
    cached = Binaries.in_dir(cache_root() / "bin")
    return cached if cached.all_exist() else None


def ensure(*, log: bool = True) -> Binaries:
    """Binaries ready to run: found, or built once (under a lock) into the cache."""
    found = locate()
    if found is not None:
        return found
    if shutil.which("go") is None:
        raise BinariesUnavailable(
            "The Kubernetes tests need kube-apiserver, etcd, kubectl and helm. Install Go (they are then built "
            "from the official Go modules, once, into ~/.cache/pilotfish/testenv), or point KUBEBUILDER_ASSETS "
            "at a folder holding them (envtest's setup-envtest provides one). To skip these tests on purpose, "
            "set PILOTFISH_SKIP_K8S=1."
        )
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = Binaries.in_dir(root / "bin")
        if not cached.all_exist():
            build(root, log=log)
    return Binaries.in_dir(root / "bin")


def build(root: pathlib.Path, *, log: bool = True) -> dict[str, float]:
    """Build every missing binary into ``root/bin``; returns seconds per step."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    steps = [
        ("kube-apiserver+kubectl", ("kube-apiserver", "kubectl"), _build_kube),
        ("etcd", ("etcd",), _build_etcd),
        ("helm", ("helm",), _build_helm),
    ]
    for label, outputs, step in steps:
        if all((bin_dir / name).exists() for name in outputs):
            continue
        started = time.monotonic()
        if log:
            sys.stderr.write(f"testenv: building {label} from Go modules (first run only)…\n")
        step(root, bin_dir)
        timings[label] = time.monotonic() - started
        if log:
            sys.stderr.write(f"testenv: {label} built in {timings[label]:.0f}s\n")
    (root / "build-times.json").write_text(json.dumps(timings, indent=2))
    return timings


def _go(args: list[str], *, cwd: pathlib.Path, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", **(env or {})}
    done = subprocess.run(["nice", "-n", "10", "go", *args], cwd=cwd, env=full_env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"go {' '.join(args)} failed in {cwd}:\n{done.stderr[-4000:]}")
    return done.stdout


def staging_replaces(kubernetes_go_mod: str, *, version: str) -> list[str]:
    """``k8s.io/X => ./staging/src/k8s.io/X`` lines of kubernetes' go.mod → published ``v0.Y.Z`` modules."""
    minor_version = "v0." + version.split(".", 1)[1]
    staged = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/src/", kubernetes_go_mod, flags=re.MULTILINE)
    return [f"replace {module} => {module} {minor_version}" for module in sorted(set(staged))]


def _build_kube(root: pathlib.Path, bin_dir: pathlib.Path) -> None:
    version = versions.KUBERNETES
    module_dir = root / "src" / "kube"
    module_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(GOMOD_TEMPLATES / "kube" / "tools.go", module_dir / "tools.go")
    info = json.loads(_go(["mod", "download", "-json", f"k8s.io/kubernetes@v{version}"], cwd=module_dir))
    replaces = staging_replaces(pathlib.Path(info["GoMod"]).read_text(), version=version)
    go_mod = [
        "module pilotfish.dev/testenv/kube",
        "",
        "go 1.24",
        "",
        f"require k8s.io/kubernetes v{version}",
        "",
        *replaces,
    ]
    (module_dir / "go.mod").write_text("\n".join(go_mod) + "\n")
    _go(["mod", "tidy"], cwd=module_dir)
    _go(
        [
            "build",
            "-trimpath",
            f"-ldflags=-s -w {_kube_version_flags(version)}",
            "-o",
            str(bin_dir) + "/",
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kubectl",
        ],
        cwd=module_dir,
    )


def _kube_version_flags(version: str) -> str:
    """Stamp the version as Kubernetes' own build does; unstamped binaries report v0.0.0-master."""
    major, minor, _ = version.split(".")
    flags = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion=v{version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(flags)


def _build_etcd(root: pathlib.Path, bin_dir: pathlib.Path) -> None:
    module_dir = root / "src" / "etcd"
    module_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(GOMOD_TEMPLATES / "etcd" / "main.go", module_dir / "main.go")
    go_mod = [
        "module pilotfish.dev/testenv/etcd",
        "",
        "go 1.23",
        "",
        f"require go.etcd.io/etcd/server/v3 v{versions.ETCD}",
    ]
    (module_dir / "go.mod").write_text("\n".join(go_mod) + "\n")
    _go(["mod", "tidy"], cwd=module_dir)
    _go(["build", "-trimpath", "-ldflags=-s -w", "-o", str(bin_dir / "etcd"), "."], cwd=module_dir)


def _build_helm(root: pathlib.Path, bin_dir: pathlib.Path) -> None:
    _go(
        [
            "install",
            "-trimpath",
            f"-ldflags=-s -w -X helm.sh/helm/v3/internal/version.version=v{versions.HELM}",
            f"helm.sh/helm/v3/cmd/helm@v{versions.HELM}",
        ],
        cwd=root,
        env={"GOBIN": str(bin_dir)},
    )
