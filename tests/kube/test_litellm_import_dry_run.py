"""`pilotfish import litellm` output as the real API server sees it: every object passes a server-side dry run."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "pilotfish" / "importers" / "fixtures"


def imported(config: pathlib.Path, namespace: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pilotfish.cli", "import", "litellm", str(config), "-n", namespace],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "sidecar"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


RESOURCES = {
    "Secret": "secret",
    "ProviderCredential": "providercredential.pilotfish.dev",
    "ModelClass": "modelclass.pilotfish.dev",
}


@pytest.mark.parametrize("config", sorted(FIXTURES.glob("*.yaml")), ids=lambda path: path.stem)
def test_imported_manifests_pass_a_server_side_dry_run(crds_applied, namespace, config):
    manifests = imported(config, namespace)
    expected = [
        f"{RESOURCES[doc['kind']]}/{doc['metadata']['name']} created (server dry run)"
        for doc in yaml.safe_load_all(manifests)
    ]
    result = crds_applied.kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifests)
    assert result.stdout.splitlines() == expected


def test_the_dry_run_is_a_real_check_a_broken_import_would_fail(crds_applied, namespace):
    docs = list(yaml.safe_load_all(imported(FIXTURES / "workhorse.yaml", namespace)))
    docs[-1]["spec"]["routing"]["maxAttempts"] = 0  # what a converter bug mapping num_retries: -1 would write
    result = crds_applied.kubectl("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(docs), check=False)
    assert result.returncode != 0 and "spec.routing.maxAttempts" in result.stderr
