"""The repository layout guards: `operator/` must never shadow the standard library."""

import ast
import importlib
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_operator_folder_is_not_a_package():
    assert not (ROOT / "operator" / "__init__.py").exists()
    assert not (ROOT / "sidecar" / "__init__.py").exists()


def test_stdlib_operator_wins_when_run_from_the_repository_root():
    code = "import operator, asyncio; print(operator.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert str(ROOT / "operator") not in out.stdout
    assert "operator.py" in out.stdout


def _loaded_by(imports: str, packages: tuple[str, ...]) -> list[str]:
    """The modules of ``packages`` a fresh interpreter has loaded after ``import sys, <imports>``."""
    code = f"import sys, {imports}; print(sorted(m for m in sys.modules if m.split('.')[0] in {packages!r}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded: list[str] = ast.literal_eval(out.stdout.strip())
    return loaded


def test_sidecar_package_never_imports_the_operator_or_kubernetes():
    imports = "pilotfish.cli, pilotfish.server.app, pilotfish.modes.serve"
    assert _loaded_by(imports, ("kopf", "kubernetes", "pilotfish_operator")) == []


def test_both_import_packages_resolve_from_their_source_roots():
    pilotfish = importlib.import_module("pilotfish")
    operator_package = importlib.import_module("pilotfish_operator")
    assert pathlib.Path(pilotfish.__file__).parent == ROOT / "sidecar" / "pilotfish"
    assert pathlib.Path(operator_package.__file__).parent == ROOT / "operator" / "pilotfish_operator"


def test_a_serving_sidecar_loads_no_ctypes_opentelemetry_or_yaml_until_it_needs_them():
    # each costs resident memory in every pod: ctypes is for the first heap trim, OpenTelemetry only for an
    # exporter that OTEL_* configures, YAML only for the manifests of `pilotfish local`
    imports = "pilotfish.modes.local, pilotfish.modes.sidecar, pilotfish.server.app"
    assert _loaded_by(imports, ("ctypes", "opentelemetry", "yaml")) == []


def test_a_serving_sidecar_never_imports_pydantic():
    # issue 14: pydantic's import and its model machinery are ~10 MiB of every pod's idle RSS (45 MiB target);
    # it stays for what users write (pilotfish.api: manifests, CRDs, the operator, `pilotfish local`)
    imports = "pilotfish.cli, pilotfish.modes.sidecar, pilotfish.server.app"
    assert _loaded_by(imports, ("pydantic", "pydantic_core")) == []
