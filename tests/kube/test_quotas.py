"""Members' provider quotas on the real API server: 20 sidecars share one member's quota, the operator keeping the
count in the ModelClass's status, tested the same way as the Budgets (tests/kube/test_budgets.py).

Each test sends 20 sidecars' traffic at a class whose primary member declares a quota and whose mock provider
enforces its own quota with OpenAI's 429 (requests or tokens per minute). The primary must serve its quota (no
more than the overshoot bound docs/quotas.md states; no less than the quota minus pods x grant, allowance left
unused in other pods) and the backup the rest, with no request refused and no 429 from the provider. Each
prints the measured overshoot next to its bound.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from tests import chat
from tests.kube import budget_fleet
from tests.waiting import eventually

from pilotfish.budgets import windows
from pilotfish.mocks import answers as mock_answers
from pilotfish.mocks import runner
from pilotfish.routes import document

# A fleet test may wait up to 40 s for room in a minute, run its burst again in the next one, then wait
# for the status: its own waits name what did not happen; the whole-test ceiling only catches a hang.
pytestmark = pytest.mark.timeout(420)

SIDECARS = 20
KEYS = {"primary": "sk-test-quota-primary-61c2", "backup": "sk-test-quota-backup-0d9e"}
PRIMARY = "primary/model-frontier"
BACKUP = "backup/model-backup"
# the tokens one answer of the primary reports: the prompt's and the answer's (the mock's are deterministic)
COST = mock_answers.prompt_tokens([m["content"] for m in chat.USER]) + len(mock_answers.words("primary"))


@pytest.fixture(scope="module")
def quota_operator(crds_applied: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[budget_fleet.Operator]:
    operator = budget_fleet.Operator(crds_applied, tmp_path_factory.mktemp("quota-operator"))
    yield operator
    if operator.is_running():
        operator.stop()


@pytest.fixture
async def providers() -> AsyncIterator[dict[str, runner.RunningMock]]:
    started = {name: await runner.start_mock(name=name, api_key=KEYS[name]) for name in KEYS}
    yield started
    for mock in started.values():
        await mock.stop()


def resources(providers: dict[str, runner.RunningMock], quota: str) -> str:
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
    - {{credentialRef: primary, model: model-frontier, {quota}}}
    - {{credentialRef: backup, model: model-backup}}
"""


async def quota_fleet(
    plane: Any,
    namespace: str,
    operator: budget_fleet.Operator,
    providers: dict[str, runner.RunningMock],
    tmp_path: Any,
    quota: str,
) -> budget_fleet.Fleet:
    """The namespace's sidecars serving ``workhorse``, whose primary member declares ``quota`` (``rpm: 50``)."""
    plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=resources(providers, quota))
    field, value = (part.strip() for part in quota.split(":"))

    def declared(doc: document.RoutesDocument) -> bool:
        route = doc.classes.get("workhorse")
        return route is not None and len(route.members) == 2 and getattr(route.members[0], field) == int(value)

    doc = budget_fleet.routes_when(plane, namespace, declared, what=f"the routes document with the member's {quota}")
    fleet = budget_fleet.Fleet(doc, {("keys", name): key for name, key in KEYS.items()})
    await fleet.start(SIDECARS, budget_fleet.allowance_settings(plane, namespace, operator, tmp_path))
    return fleet


def on(member: str, answers: list[chat.Answer]) -> list[chat.Answer]:
    return [a for a in answers if a.headers.get("x-pilotfish-member") == member]


def class_status(plane: Any, namespace: str) -> dict[str, Any]:
    done = plane.kubectl("get", "-n", namespace, "modelclass", "workhorse", "-o", "json")
    return dict(json.loads(done.stdout).get("status") or {})


def counters(status: dict[str, Any], limit: str) -> dict[str, Any]:
    """The primary's ``status.quotas[...].<limit>`` counters (empty before the operator wrote any)."""
    return dict(((status.get("quotas") or {}).get(PRIMARY) or {}).get(limit) or {})


async def status_when(
    plane: Any, namespace: str, ready: Callable[[dict[str, Any]], bool], *, what: str
) -> dict[str, Any]:
    """The ModelClass's status once ``ready`` accepts it (the sidecars report every 2 s; the loop keeps running
    meanwhile, so the in-process sidecars can)."""

    async def status_now() -> dict[str, Any]:
        return await asyncio.to_thread(class_status, plane, namespace)

    found: dict[str, Any] = await eventually(status_now, ready, timeout=60, what=what)
    return found


async def status_when_used(
    plane: Any, namespace: str, limit: str, used: int, window: str, *, what: str
) -> dict[str, Any]:
    """The ModelClass's status once the primary's ``<limit>`` counters read ``used`` in ``window``."""

    def counted(status: dict[str, Any]) -> bool:
        return (counters(status, limit).get("used"), counters(status, limit).get("window")) == (used, window)

    return await status_when(plane, namespace, counted, what=what)


async def test_twenty_sidecars_give_an_rpm_50_member_its_quota_and_the_backup_the_rest_with_no_429(
    crds_applied, quota_operator, namespace, providers, tmp_path
):
    rpm = 50
    fleet = await quota_fleet(crds_applied, namespace, quota_operator, providers, tmp_path, f"rpm: {rpm}")
    providers["primary"].set_fault(rpm=rpm, retry_after=30)  # the provider's own quota: 429 past it
    try:
        answers, window = await budget_fleet.burst_in_one_window(fleet, per_sidecar=5)
        assert [a.status for a in answers] == [200] * SIDECARS * 5  # nobody refused: the backup took the rest
        on_primary, on_backup = on(PRIMARY, answers), on(BACKUP, answers)
        grant = windows.grant_size(rpm)
        print(
            f"\nmember quota: rpm {rpm} on {PRIMARY}, {SIDECARS} sidecars x 5 requests: {len(on_primary)} on the "
            f"member, {len(on_backup)} on the backup; measured overshoot {max(0, len(on_primary) - rpm)} (stated "
            f"bound with the operator up: 0); undershoot {max(0, rpm - len(on_primary))} (bound: pods x grant = "
            f"{SIDECARS * grant}); provider 429s {providers['primary'].stats.by_mode['rate-limit']}; "
            f"load {os.getloadavg()[0]:.1f}"
        )
        assert rpm - SIDECARS * grant <= len(on_primary) <= rpm
        assert len(on_primary) + len(on_backup) == len(answers)
        assert providers["primary"].stats.by_mode["rate-limit"] == 0  # the provider never had to say 429
        assert providers["primary"].stats.requests == len(on_primary)  # no request past the share reached it
        assert {a.headers.get("x-pilotfish-failover-reason") for a in on_backup} == {"quota_spent"}
        assert fleet.metric("pilotfish_failovers_total", reason="quota_spent") == len(on_backup)
        assert fleet.metric("pilotfish_quota_failed_open_total") == 0  # the operator's grants: no fail-open share
        assert fleet.metric("pilotfish_failovers_total", reason="rate_limited") == 0

        status = await status_when_used(
            crds_applied,
            namespace,
            "requests",
            len(on_primary),
            window,
            what="the sidecars' use of the member quota in the ModelClass's status",
        )
        requests = counters(status, "requests")
        assert requests["limit"] == rpm and requests["reserved"] <= rpm
        assert status["quotaUsedPercent"] == len(on_primary) * 100 // rpm
        assert status["conditions"] and status["memberCount"] == 2  # the reconciler's status is left as it was
        header, row = crds_applied.kubectl("get", "-n", namespace, "modelclasses").stdout.splitlines()[:2]
        column = header.index("QUOTA%")  # kubectl aligns columns; empty ones (no tiers, no canary) print nothing
        assert row[column:].split()[0] == str(status["quotaUsedPercent"])
    finally:
        await fleet.stop()


async def test_twenty_sidecars_keep_a_tpm_member_within_its_bound_and_the_backup_serves_the_rest_before_any_429(
    crds_applied, quota_operator, namespace, providers, tmp_path
):
    tpm = 20 * COST  # twenty answers' worth: a grant (tpm / 50) is less than one answer, so pods run into debt
    bound = SIDECARS * COST  # docs/quotas.md, operator up: pods x the tokens one pod has in flight (one answer)
    fleet = await quota_fleet(crds_applied, namespace, quota_operator, providers, tmp_path, f"tpm: {tpm}")
    # the provider's real quota is the declared one plus the bound, as docs/quotas.md advises declaring
    providers["primary"].set_fault(tpm=tpm + bound, retry_after=30)
    try:
        answers, window = await budget_fleet.burst_in_one_window(fleet, per_sidecar=5)
        assert [a.status for a in answers] == [200] * SIDECARS * 5  # nobody refused: the backup took the rest
        on_primary, on_backup = on(PRIMARY, answers), on(BACKUP, answers)
        assert {a.body["usage"]["total_tokens"] for a in on_primary} == {COST}
        used = len(on_primary) * COST
        grant = windows.grant_size(tpm)
        print(
            f"\nmember quota: tpm {tpm} on {PRIMARY} ({COST} tokens an answer, grant {grant}), {SIDECARS} sidecars "
            f"x 5 requests: {len(on_primary)} answers ({used} tokens) on the member, {len(on_backup)} on the "
            f"backup; measured overshoot {max(0, used - tpm)} tokens (stated bound with the operator up: pods x "
            f"one answer = {bound}); undershoot {max(0, tpm - used)} (bound: pods x grant = {SIDECARS * grant}); "
            f"provider 429s {providers['primary'].stats.by_mode['rate-limit']} (its quota {tpm + bound}); "
            f"load {os.getloadavg()[0]:.1f}"
        )
        assert tpm - SIDECARS * grant <= used <= tpm + bound
        assert len(on_primary) + len(on_backup) == len(answers)
        assert providers["primary"].stats.by_mode["rate-limit"] == 0  # the overflow went to the backup first
        assert providers["primary"].stats.requests == len(on_primary)
        assert {a.headers.get("x-pilotfish-failover-reason") for a in on_backup} == {"quota_spent"}
        assert fleet.metric("pilotfish_failovers_total", reason="quota_spent") == len(on_backup)
        assert fleet.metric("pilotfish_quota_failed_open_total") == 0  # the operator's grants: no fail-open share
        status = await status_when_used(
            crds_applied, namespace, "tokens", used, window, what="the answers' tokens in the ModelClass's status"
        )
        tokens = counters(status, "tokens")
        assert tokens["limit"] == tpm and tokens["reserved"] <= tpm
    finally:
        await fleet.stop()


async def test_with_the_operator_unreachable_each_sidecar_sends_a_member_only_its_fail_open_share_then_the_next(
    crds_applied, quota_operator, namespace, providers, tmp_path
):
    rpm = 10  # small, so that the fail-open shares of 20 pods (one grant, 1 request, each) exceed it: the bound
    grant = windows.grant_size(rpm)
    bound = SIDECARS * grant  # docs/quotas.md, operator unreachable for the minute: pods x grant
    fleet = await quota_fleet(crds_applied, namespace, quota_operator, providers, tmp_path, f"rpm: {rpm}")
    providers["primary"].set_fault(rpm=rpm + bound, retry_after=30)  # declared with the headroom for the bound
    quota_operator.stop()
    try:
        answers, window = await budget_fleet.burst_in_one_window(fleet, per_sidecar=3)
        assert [a.status for a in answers] == [200] * SIDECARS * 3  # never a 429 while the backup can serve
        on_primary, on_backup = on(PRIMARY, answers), on(BACKUP, answers)
        print(
            f"\noperator unreachable: rpm {rpm} on {PRIMARY}, {SIDECARS} sidecars x 3 requests: {len(on_primary)} "
            f"on the member on fail-open shares, {len(on_backup)} on the backup; measured overshoot "
            f"{max(0, len(on_primary) - rpm)} (stated bound: pods x grant = {bound}); provider 429s "
            f"{providers['primary'].stats.by_mode['rate-limit']}; load {os.getloadavg()[0]:.1f}"
        )
        assert len(on_primary) == bound  # each pod exactly its one fail-open share of the minute, then the backup
        assert providers["primary"].stats.requests == bound
        assert {a.headers.get("x-pilotfish-failover-reason") for a in on_backup} == {"quota_spent"}
        # each attempt sent on a fail-open share is counted, under the member's id
        assert fleet.metric("pilotfish_quota_failed_open_total", member=PRIMARY) == bound
        # never blocked for longer than the window: the next one admits again, the operator still away
        await budget_fleet.wait_until_minute_after(window)
        again = await fleet.ask(0)
        assert (again.status, again.headers["x-pilotfish-member"]) == (200, PRIMARY)
        # and once the operator is back, its grants serve the member again: pod 1's first request of this
        # minute is granted by the operator (reserved in the status), not a fail-open share
        await asyncio.to_thread(quota_operator.start)
        asked_in = {budget_fleet.minute_key()}
        served = await fleet.ask(1)
        asked_in.add(budget_fleet.minute_key())
        assert (served.status, served.headers["x-pilotfish-member"]) == (200, PRIMARY)

        def granted(status: dict[str, Any]) -> bool:
            requests = counters(status, "requests")
            return requests.get("window") in asked_in and requests.get("reserved", 0) >= 1

        await status_when(crds_applied, namespace, granted, what="the operator's grant for the member in its status")
    finally:
        if not quota_operator.is_running():
            await asyncio.to_thread(quota_operator.start)
        await fleet.stop()
