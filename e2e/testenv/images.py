"""The node's images, built on this machine without Docker and without any registry but Debian's and PyPI.

- ``pilotfish-base``: a Debian bookworm root filesystem made by ``mmdebstrap`` (minbase, python3,
  python3-venv; documentation and locales left out), committed by ``buildah`` from scratch. Cached.
- ``pilotfish-pause``: the pod sandbox process (``gomod/pause``) alone in an image. Cached.
- ``pilotfish-sidecar`` and ``pilotfish-operator``: the repository's own ``Dockerfile.sidecar`` and
  ``Dockerfile.operator``, built by ``buildah bud`` with ``BASE`` set to the base image and
  ``PIP_INSTALL_FLAGS`` pointing pip at wheels made on the host (``pip wheel``, mounted read-only at
  /wheels; the build itself runs with no network). Rebuilt whenever their build context changes: a
  digest of the Dockerfile, ``pyproject.toml``, ``README.md``, ``sidecar/`` and ``operator/`` (what the
  Dockerfiles copy; caches excluded as ``.dockerignore`` does) is recorded per image, and an image built
  from the same digest is reused.
- ``pilotfish-testapp``: the base plus a virtualenv with the ``openai`` SDK, for the tests' app pods
  (``Dockerfile.app`` beside this module). Cached: it does not depend on the checkout.
Each image is written as a docker-archive tar that ``node.Node`` imports into its containerd.

buildah keeps its storage under the test environment's cache, and every buildah command runs in a
private mount namespace (``unshare --mount``) with a fresh run root, so no overlay mount outlives it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from e2e.testenv import binaries, nodeconfig

ROOT = pathlib.Path(__file__).resolve().parents[2]
RECIPE = 1  # bump when the base image's recipe changes, so a cached base built the old way is rebuilt
BASE = f"localhost/pilotfish-base:bookworm-r{RECIPE}"
PAUSE = nodeconfig.PAUSE_IMAGE
SIDECAR = "localhost/pilotfish-sidecar:testenv"
OPERATOR = "localhost/pilotfish-operator:testenv"
APP = f"localhost/pilotfish-testapp:r{RECIPE}"
EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
WHEELS = ("setuptools>=77", "wheel", "openai>=1.40")  # build backend, and the test app's SDK
CONTEXT = ("pyproject.toml", "README.md", "sidecar", "operator")  # what Dockerfile.sidecar/.operator copy


class ImageBuildError(RuntimeError):
    """A build step failed; the message names it and carries the tail of its log."""


@dataclasses.dataclass(frozen=True)
class Images:
    tars: dict[str, pathlib.Path]  # image reference -> docker-archive tar, for ctr import
    sizes: dict[str, int]  # image reference -> bytes of its docker-archive tar (uncompressed layers)
    seconds: dict[str, float]  # build step -> seconds this call spent on it (cached steps absent)


def images_root() -> pathlib.Path:
    return binaries.cache_root() / "images"


def _buildah(*args: str, log: pathlib.Path, runroot: pathlib.Path) -> str:
    argv = [
        "unshare",
        "--mount",
        "--propagation=private",
        "--",
        "buildah",
        f"--root={images_root() / 'storage'}",
        f"--runroot={runroot}",
        "--storage-driver=overlay",
        *args,
    ]
    return _run(argv, log=log)


def _run(argv: list[str], *, log: pathlib.Path, cwd: pathlib.Path | None = None) -> str:
    with log.open("a") as sink:
        sink.write(f"$ {' '.join(argv)}\n")
        sink.flush()
        done = subprocess.run(["nice", "-n", "10", *argv], cwd=cwd, stdout=subprocess.PIPE, stderr=sink, text=True)
        sink.write(done.stdout)
    if done.returncode != 0:
        raise ImageBuildError(f"{argv[0]} failed (log: {log}):\n{log.read_text(errors='replace')[-3000:]}")
    return done.stdout


def build(*, workdir: pathlib.Path, pause_binary: pathlib.Path, log: pathlib.Path) -> Images:
    """Every image the node tests need, as tars in ``workdir``; the base and pause images come from cache."""
    images_root().mkdir(parents=True, exist_ok=True)
    runroot = pathlib.Path(tempfile.mkdtemp(prefix="pilotfish-buildah-"))
    seconds: dict[str, float] = {}
    try:
        present = set(_buildah("images", "--format={{.Name}}:{{.Tag}}", log=log, runroot=runroot).split())
        if BASE not in present:
            seconds.update(_timed("base", _build_base, log=log, runroot=runroot))
        if PAUSE not in present:
            seconds.update(_timed("pause", _build_pause, pause_binary, log=log, runroot=runroot))
        wheels = workdir / "wheels"
        built_from = _built_from()
        for name, dockerfile in (
            (SIDECAR, ROOT / "Dockerfile.sidecar"),
            (OPERATOR, ROOT / "Dockerfile.operator"),
            (APP, pathlib.Path(__file__).parent / "Dockerfile.app"),
        ):
            if name == APP and APP in present:
                continue  # the test app does not depend on the checkout: built once, like the base
            digest = context_digest(dockerfile)
            if name in present and built_from.get(name) == digest:
                continue  # built from this very context before
            if not wheels.exists():
                seconds.update(_timed("wheels", _build_wheels, wheels, log=log))
            label = name.split("/")[1].split(":")[0]
            seconds.update(_timed(label, _bud, name, dockerfile, wheels, log=log, runroot=runroot))
            _record_built_from(name, digest)
        tars = {}
        for name in (PAUSE, SIDECAR, OPERATOR, APP):
            tar = workdir / (name.split("/")[1].replace(":", "_") + ".tar")
            tar.unlink(missing_ok=True)
            _buildah("push", "--quiet", name, f"docker-archive:{tar}:{name}", log=log, runroot=runroot)
            tars[name] = tar
        sizes = {name: tar.stat().st_size for name, tar in tars.items()}
    finally:
        shutil.rmtree(runroot, ignore_errors=True)
    return Images(tars=tars, sizes=sizes, seconds=seconds)


def context_digest(dockerfile: pathlib.Path) -> str:
    """What an image built from ``dockerfile`` on the checkout depends on: its base and its context."""
    digest = hashlib.sha256(f"{BASE}\0".encode())
    files = [dockerfile]
    for entry in CONTEXT:
        path = ROOT / entry
        files += sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    for path in files:
        parts = path.relative_to(ROOT).parts if path.is_relative_to(ROOT) else path.parts
        if "__pycache__" in parts or path.suffix == ".pyc" or any(p.endswith(".egg-info") for p in parts):
            continue
        digest.update(f"{'/'.join(parts)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _built_from() -> dict[str, str]:
    """Image reference -> the context digest it was last built from (in the image cache)."""
    record = images_root() / "built-from.json"
    return dict(json.loads(record.read_text())) if record.exists() else {}


def _record_built_from(name: str, digest: str) -> None:
    record = images_root() / "built-from.json"
    record.write_text(json.dumps({**_built_from(), name: digest}, indent=2) + "\n")


def _timed(label: str, step: Callable[..., None], *args: object, **kwargs: object) -> dict[str, float]:
    started = time.monotonic()
    step(*args, **kwargs)
    return {label: round(time.monotonic() - started, 1)}


def _build_base(*, log: pathlib.Path, runroot: pathlib.Path) -> None:
    rootfs = images_root() / "base-rootfs.tar"
    excludes = [f"--dpkgopt=path-exclude={pattern}" for pattern in EXCLUDES]
    _run(
        [
            "mmdebstrap",
            "--variant=minbase",
            "--include=python3,python3-venv",
            '--aptopt=Acquire::Retries "3"',
            *excludes,
            "bookworm",
            str(rootfs),
        ],
        log=log,
    )
    container = _buildah("from", "scratch", log=log, runroot=runroot).strip()
    _buildah("add", container, str(rootfs), "/", log=log, runroot=runroot)
    path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    _buildah("config", f"--env={path}", "--env=LANG=C.UTF-8", container, log=log, runroot=runroot)
    _buildah("commit", "--quiet", "--rm", container, BASE, log=log, runroot=runroot)
    rootfs.unlink()


def _build_pause(pause_binary: pathlib.Path, *, log: pathlib.Path, runroot: pathlib.Path) -> None:
    container = _buildah("from", "scratch", log=log, runroot=runroot).strip()
    _buildah("copy", "--chmod=0755", container, str(pause_binary), "/pause", log=log, runroot=runroot)
    _buildah("config", '--entrypoint=["/pause"]', "--user=65535:65535", container, log=log, runroot=runroot)
    _buildah("commit", "--quiet", "--rm", container, PAUSE, log=log, runroot=runroot)


def _build_wheels(wheels: pathlib.Path, *, log: pathlib.Path) -> None:
    """Every dependency of the project (operator extra included) and of the test app, as wheels."""
    shutil.rmtree(wheels, ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", f"--wheel-dir={wheels}", ".[operator]", *WHEELS]
    _run(pip, log=log, cwd=ROOT)
    for own in wheels.glob("pilotfish-*.whl"):
        own.unlink()  # the images build the project from the checkout, as a Docker user's build does


def _bud(
    name: str, dockerfile: pathlib.Path, wheels: pathlib.Path, *, log: pathlib.Path, runroot: pathlib.Path
) -> None:
    _buildah(
        "bud",
        "--pull=never",
        "--network=none",
        f"--volume={wheels}:/wheels:ro",
        f"--build-arg=BASE={BASE}",
        "--build-arg=PIP_INSTALL_FLAGS=--no-index --find-links=/wheels",
        f"--file={dockerfile}",
        f"--tag={name}",
        str(ROOT),
        log=log,
        runroot=runroot,
    )
