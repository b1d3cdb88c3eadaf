"""``pilotfish operator`` with peering on and no peering object: it says what it waits for, on a real API server."""

from __future__ import annotations

import uuid

from tests.kube.conftest import ROOT, start_operator, stop_operator, wait_for

CHART_CRDS = ROOT / "charts" / "pilotfish" / "crds"


def test_an_operator_whose_peering_object_is_missing_logs_what_it_waits_for_and_how_to_fix_it(crds_applied, tmp_path):
    name = f"missing-{uuid.uuid4().hex[:6]}"
    running = start_operator(crds_applied, tmp_path, f"--peering={name}", standalone=False)
    try:
        line = wait_for(
            lambda: next((x for x in running.log.read_text().splitlines() if "waiting for the" in x), None),
            timeout=60,
            what="the operator's log to say what it waits for",
        )
    finally:
        stop_operator(running)
    assert f"the ClusterKopfPeering {name!r}" in line and "WARNING" in line
    assert "--standalone" in line and "operator.peering.enabled=true" in line


def test_two_peered_replicas_draw_different_priorities_so_one_of_them_reconciles(crds_applied, namespace, tmp_path):
    """kopf pauses every replica whose live peers share its priority; with a fixed priority the chart's
    two replicas would both pause and nothing would reconcile."""
    crds_applied.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(CHART_CRDS / "kopf.dev_clusterkopfpeerings.yaml")
    )
    crds_applied.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/clusterkopfpeerings.kopf.dev")
    name = f"pair-{uuid.uuid4().hex[:6]}"
    crds_applied.kubectl(
        "apply", "-f", "-", stdin=f"apiVersion: kopf.dev/v1\nkind: ClusterKopfPeering\nmetadata: {{name: {name}}}\n"
    )
    replicas = []
    try:
        for index in range(2):
            workdir = tmp_path / str(index)
            workdir.mkdir()
            replicas.append(start_operator(crds_applied, workdir, f"--peering={name}", standalone=False))

        def both_registered() -> bool:
            done = crds_applied.kubectl("get", "clusterkopfpeering", name, "-o", "jsonpath={.status}")
            return done.stdout.count("priority") == 2

        wait_for(both_registered, timeout=60, what="both replicas in the peering's status")
        before = sum(replica.metric("pilotfish_operator_reconciles_total") for replica in replicas)
        crds_applied.kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples" / "workhorse.yaml"))
        wait_for(
            lambda: sum(replica.metric("pilotfish_operator_reconciles_total") for replica in replicas) > before,
            timeout=60,
            what="one of the two replicas to reconcile the new class",
        )
    finally:
        for replica in replicas:
            stop_operator(replica)
    logs = "".join(replica.log.read_text() for replica in replicas)
    assert "Pausing all operators, including self" not in logs
