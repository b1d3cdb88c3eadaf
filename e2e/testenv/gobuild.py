"""Builds the control-plane binaries with the Go toolchain from the official Go modules.

Nothing prebuilt is downloaded: the Go module proxy serves source, and ``go build`` compiles it here.
``k8s.io/kubernetes`` cannot be ``go install``-ed directly (its go.mod replaces the staging modules
``k8s.io/api``, ``k8s.io/apiserver``, … with local paths at ``v0.0.0``), so a generated wrapper module
requires it and pins each locally-replaced module to its published version; the list is read from
the downloaded go.mod, not hard-coded. etcd gets the same treatment in its own wrapper module (its
gRPC and OpenTelemetry versions conflict with Kubernetes'), with a ``main.go`` that calls the
official ``etcdmain.Main``. Helm's module installs as is, stamped like its own release build.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess

from e2e.testenv import versions

TEMPLATES = pathlib.Path(__file__).resolve().parent / "gomod"
_PLACEHOLDER = "v0.0.0"


class GoBuildError(RuntimeError):
    """A ``go`` command failed; the message carries the tail of its output and where the full log is."""


def go(args: list[str], *, cwd: pathlib.Path, log: pathlib.Path, env: dict[str, str] | None = None) -> str:
    """Run ``go`` at low priority (the machine's cores are shared), never fetching another toolchain.

    Output is appended to ``log`` so a slow first build can be followed with ``tail -f``; stdout is
    returned because ``go mod download -json`` answers there.
    """
    goflags = " ".join(filter(None, [os.environ.get("GOFLAGS", ""), "-mod=mod", "-buildvcs=false"]))
    full_env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": goflags, "CGO_ENABLED": "0", **(env or {})}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as sink:
        sink.write(f"$ go {' '.join(args)}   (in {cwd})\n")
        sink.flush()
        done = subprocess.run(
            ["nice", "-n", "10", "go", *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=sink, text=True
        )
        sink.write(done.stdout)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise GoBuildError(f"go {' '.join(args)} failed in {cwd} (full log: {log}):\n{tail}")
    return done.stdout


def pinned_replaces(go_mod: str, *, placeholder_to: str) -> list[str]:
    """Replace lines that pin every module a go.mod requires but replaces with a local path.

    A published module's go.mod may say ``go.etcd.io/etcd/api/v3 => ../api``; that path does not exist
    outside its repository, so a wrapper module pins the published version instead: the one the go.mod
    requires, or ``placeholder_to`` where it requires the ``v0.0.0`` placeholder (Kubernetes' staging
    modules are published as ``v0.<minor>.<patch>``). Local replaces of modules it does not require
    (etcd's ``FORBIDDEN_DEPENDENCY`` guards) are left out.
    """
    required = dict(re.findall(r"^\s*(?:require\s+)?([\w.\-/]+\.[\w.\-/]+)\s+(v[^\s/]+)", go_mod, flags=re.MULTILINE))
    local = re.findall(r"^\s*(?:replace\s+)?([\w.\-/]+)\s*=>\s*\.{1,2}/", go_mod, flags=re.MULTILINE)
    lines = []
    for module in sorted(set(local)):
        if module not in required:
            continue
        version = placeholder_to if required[module] == _PLACEHOLDER else required[module]
        lines.append(f"replace {module} => {module} {version}")
    return lines


def _module_go_mod(module: str, version: str, *, cwd: pathlib.Path, log: pathlib.Path) -> str:
    info = json.loads(go(["mod", "download", "-json", f"{module}@{version}"], cwd=cwd, log=log))
    return pathlib.Path(info["GoMod"]).read_text()


def _write_wrapper(directory: pathlib.Path, *, module: str, require: str, replaces: list[str]) -> None:
    lines = [f"module {module}", "", "go 1.24", "", f"require {require}", "", *replaces]
    (directory / "go.mod").write_text("\n".join(lines) + "\n")


def build_kube(*, src: pathlib.Path, bin_dir: pathlib.Path, log: pathlib.Path) -> None:
    """kube-apiserver and kubectl from ``k8s.io/kubernetes`` at ``versions.KUBERNETES``."""
    _build_kubernetes("kube", ("kube-apiserver", "kubectl"), src=src, bin_dir=bin_dir, log=log)


def build_node(*, src: pathlib.Path, bin_dir: pathlib.Path, log: pathlib.Path) -> None:
    """kubelet, kube-scheduler and kube-controller-manager, same module and version as kube-apiserver."""
    commands = ("kubelet", "kube-scheduler", "kube-controller-manager")
    _build_kubernetes("node", commands, src=src, bin_dir=bin_dir, log=log)


def build_pause(*, src: pathlib.Path, bin_dir: pathlib.Path, log: pathlib.Path) -> None:
    """The pod sandbox process (``gomod/pause/main.go``), static, for the node's pause image."""
    src.mkdir(parents=True, exist_ok=True)
    for name in ("main.go", "go.mod"):
        shutil.copy(TEMPLATES / "pause" / name, src / name)
    go(["build", "-trimpath", "-ldflags=-s -w", "-o", str(bin_dir / "pause"), "."], cwd=src, log=log)


def _build_kubernetes(
    template: str, commands: tuple[str, ...], *, src: pathlib.Path, bin_dir: pathlib.Path, log: pathlib.Path
) -> None:
    """``commands`` (``cmd/<name>``) through a wrapper module that pins every staging module."""
    version = f"v{versions.KUBERNETES}"
    src.mkdir(parents=True, exist_ok=True)
    shutil.copy(TEMPLATES / template / "tools.go", src / "tools.go")
    upstream = _module_go_mod("k8s.io/kubernetes", version, cwd=src, log=log)
    staging = "v0." + versions.KUBERNETES.split(".", 1)[1]
    replaces = pinned_replaces(upstream, placeholder_to=staging)
    module = f"pilotfish.dev/testenv/{template}"
    _write_wrapper(src, module=module, require=f"k8s.io/kubernetes {version}", replaces=replaces)
    go(["mod", "tidy"], cwd=src, log=log)
    ldflags = f"-s -w {kube_version_ldflags(versions.KUBERNETES)}"
    packages = [f"k8s.io/kubernetes/cmd/{name}" for name in commands]
    go(["build", "-trimpath", f"-ldflags={ldflags}", "-o", f"{bin_dir}{os.sep}", *packages], cwd=src, log=log)


def kube_version_ldflags(version: str) -> str:
    """Stamp the version as Kubernetes' own build does: unstamped binaries report ``v0.0.0-master``,
    which breaks charts with a ``kubeVersion`` constraint and ``kubectl version`` skew checks."""
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


def build_etcd(*, src: pathlib.Path, bin_dir: pathlib.Path, log: pathlib.Path) -> None:
    """etcd from ``go.etcd.io/etcd/server/v3`` at ``versions.ETCD``, through ``etcdmain.Main``."""
    version = f"v{versions.ETCD}"
    src.mkdir(parents=True, exist_ok=True)
    shutil.copy(TEMPLATES / "etcd" / "main.go", src / "main.go")
    upstream = _module_go_mod("go.etcd.io/etcd/server/v3", version, cwd=src, log=log)
    replaces = pinned_replaces(upstream, placeholder_to=version)
    _write_wrapper(
        src, module="pilotfish.dev/testenv/etcd", require=f"go.etcd.io/etcd/server/v3 {version}", replaces=replaces
    )
    go(["mod", "tidy"], cwd=src, log=log)
    go(["build", "-trimpath", "-ldflags=-s -w", "-o", str(bin_dir / "etcd"), "."], cwd=src, log=log)


def build_helm(*, src: pathlib.Path, bin_dir: pathlib.Path, log: pathlib.Path) -> None:
    """helm from ``helm.sh/helm/v3/cmd/helm`` at ``versions.HELM``, stamped as helm's own Makefile does."""
    version = f"v{versions.HELM}"
    src.mkdir(parents=True, exist_ok=True)
    upstream = _module_go_mod("helm.sh/helm/v3", version, cwd=src, log=log)
    ldflags = f"-s -w {helm_version_ldflags(version, upstream)}"
    go(
        ["install", "-trimpath", f"-ldflags={ldflags}", f"helm.sh/helm/v3/cmd/helm@{version}"],
        cwd=src,
        log=log,
        env={"GOBIN": str(bin_dir)},
    )


def helm_version_ldflags(version: str, helm_go_mod: str) -> str:
    """Helm's version, and the Kubernetes version ``helm template`` and ``helm lint`` assume offline.

    Unstamped, helm assumes Kubernetes v1.20 and ``helm template`` rejects any chart whose
    ``kubeVersion`` asks for more; its Makefile derives 1.<minor> from the client-go it requires.
    """
    client_go = re.search(r"^\s*k8s\.io/client-go\s+v0\.(\d+)\.", helm_go_mod, flags=re.MULTILINE)
    if client_go is None:
        raise GoBuildError("helm's go.mod requires no k8s.io/client-go v0.x; cannot stamp its Kubernetes version")
    flags = [
        f"-X helm.sh/helm/v3/internal/version.version={version}",
        "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
    ]
    for package in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        flags += [f"-X {package}.k8sVersionMajor=1", f"-X {package}.k8sVersionMinor={client_go.group(1)}"]
    return " ".join(flags)
