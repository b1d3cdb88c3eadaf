"""``pilotfish operator`` with peering on and no peering object: it says what it waits for, on a real API server."""

from __future__ import annotations

import uuid

from tests.kube.conftest import start_operator, stop_operator, wait_for


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
