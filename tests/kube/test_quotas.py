"""Members' provider quotas on the real API server: 20 sidecars share one member's rpm, the operator keeping the
count in the ModelClass's status, tested the same way as the Budgets (tests/kube/test_budgets.py).

The primary member declares rpm 50, and its mock provider enforces the same 50 a minute with OpenAI's 429.
100 requests over 20 sidecars in one minute: the primary must serve its quota (no more: the overshoot bound
is 0 while the operator answers; no less than the quota minus pods x grant, allowance left unused in other
pods) and the backup the rest, with no request refused and no 429 from the provider.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tests.kube.budget_fleet import Fleet, burst_in_one_window, token_file
from tests.kube.conftest import RunningOperator, start_operator, stop_operator, wait_for
from tests.waiting import eventually

from pilotfish.budgets import allowances, windows
from pilotfish.mocks import runner
from pilotfish.routes import document

# A fleet test may wait up to 40 s for room in a minute, run its burst again in the next one, then wait
# for the status: its own waits name what did not happen; the whole-test ceiling only catches a hang.
pytestmark = pytest.mark.timeout(420)

SIDECARS = 20
RPM = 50
KEYS = {"primary": "sk-test-quota-primary-61c2", "backup": "sk-test-quota-backup-0d9e"}
PRIMARY = "primary/model-frontier"


@pytest.fixture(scope="module")
def quota_operator(crds_applied: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningOperator]:
    running = start_operator(crds_applied, tmp_path_factory.mktemp("quota-operator"))
    yield running
    stop_operator(running)


@pytest.fixture
async def providers() -> AsyncIterator[dict[str, runner.RunningMock]]:
    started = {name: await runner.start_mock(name=name, api_key=key) for name, key in KEYS.items()}
    yield started
    for mock in started.values():
        await mock.stop()


def resources(providers: dict[str, runner.RunningMock]) -> str:
    credentials = "".join(
        f"""---
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: {name}}}
spec: {{provider: openai-compatible, baseURL: "{mock.url}", apiKeySecretRef: {{name: keys, key: {name}}}}}
"""
        for name, mock in providers.items()
    )
    return f"""apiVersion: v1
kind: Secret
metadata: {{name: keys}}
stringData: {json.dumps(KEYS)}
{credentials}---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {{name: workhorse}}
spec:
  members:
    - {{credentialRef: primary, model: model-frontier, rpm: {RPM}}}
    - {{credentialRef: backup, model: model-backup}}
"""


def routes_with_quota(plane: Any, namespace: str) -> document.RoutesDocument:
    def read() -> document.RoutesDocument | None:
        done = plane.kubectl("get", "-n", namespace, "configmap", "pilotfish-routes", "-o", "json", check=False)
        if done.returncode != 0:
            return None
        doc = document.RoutesDocument.from_json(json.loads(done.stdout)["data"]["routes.json"])
        route = doc.classes.get("workhorse")
        return doc if route is not None and len(route.members) == 2 and route.members[0].rpm == RPM else None

    found: document.RoutesDocument = wait_for(read, timeout=90, what="the routes document with the member quota")
    return found


def class_status(plane: Any, namespace: str) -> dict[str, Any]:
    done = plane.kubectl("get", "-n", namespace, "modelclass", "workhorse", "-o", "json")
    return dict(json.loads(done.stdout).get("status") or {})


async def test_twenty_sidecars_give_an_rpm_50_member_its_quota_and_the_backup_the_rest_with_no_429(
    crds_applied, quota_operator, namespace, providers, tmp_path
):
    crds_applied.kubectl("apply", "-n", namespace, "-f", "-", stdin=resources(providers))
    providers["primary"].set_fault(rpm=RPM, retry_after=30)  # the provider's own quota: 429 past it
    doc = routes_with_quota(crds_applied, namespace)
    assert crds_applied.pki is not None
    port = int(quota_operator.webhook_url.rsplit(":", 1)[1])
    settings = allowances.AllowanceSettings(
        url=f"https://127.0.0.1:{port}",
        namespace=namespace,
        token_file=str(token_file(crds_applied, namespace, tmp_path)),
        ca_file=str(crds_applied.pki.ca_cert),
    )
    fleet = Fleet(doc, {("keys", name): key for name, key in KEYS.items()})
    await fleet.start(SIDECARS, settings)
    try:
        answers, window = await burst_in_one_window(fleet, per_sidecar=5)
        assert [a.status for a in answers] == [200] * SIDECARS * 5  # nobody refused: the backup took the rest
        on_primary = [a for a in answers if a.headers["x-pilotfish-member"] == PRIMARY]
        on_backup = [a for a in answers if a.headers["x-pilotfish-member"] == "backup/model-backup"]
        grant = windows.grant_size(RPM)
        print(
            f"\nmember quota: rpm {RPM} on {PRIMARY}, {SIDECARS} sidecars x 5 requests: {len(on_primary)} on the "
            f"member, {len(on_backup)} on the backup; measured overshoot {max(0, len(on_primary) - RPM)} (stated "
            f"bound with the operator up: 0); undershoot {max(0, RPM - len(on_primary))} (bound: pods x grant = "
            f"{SIDECARS * grant}); provider 429s {providers['primary'].stats.by_mode['rate-limit']}"
        )
        assert RPM - SIDECARS * grant <= len(on_primary) <= RPM
        assert len(on_primary) + len(on_backup) == len(answers)
        assert providers["primary"].stats.by_mode["rate-limit"] == 0  # the provider never had to say 429
        assert providers["primary"].stats.requests == len(on_primary)  # no request past the share reached it
        assert {a.headers.get("x-pilotfish-failover-reason") for a in on_backup} == {"quota_spent"}
        assert fleet.metric("pilotfish_failovers_total", reason="quota_spent") == len(on_backup)
        assert fleet.metric("pilotfish_failovers_total", reason="rate_limited") == 0

        async def status_now() -> dict[str, Any]:
            return await asyncio.to_thread(class_status, crds_applied, namespace)

        status = await eventually(
            status_now,
            lambda s: ((s.get("quotas") or {}).get(PRIMARY) or {}).get("requests", {}).get("used") == len(on_primary),
            timeout=60,
            what="the sidecars' use of the member quota in the ModelClass's status",
        )
        counters = status["quotas"][PRIMARY]["requests"]
        assert (counters["window"], counters["limit"]) == (window, RPM) and counters["reserved"] <= RPM
        assert status["quotaUsedPercent"] == len(on_primary) * 100 // RPM
        assert status["conditions"] and status["memberCount"] == 2  # the reconciler's status is left as it was
        header, row = crds_applied.kubectl("get", "-n", namespace, "modelclasses").stdout.splitlines()[:2]
        column = header.index("QUOTA%")  # kubectl aligns columns; empty ones (no tiers, no canary) print nothing
        assert row[column:].split()[0] == str(status["quotaUsedPercent"])
    finally:
        await fleet.stop()
