"""The operator's grants against a ModelClass member's provider quota, with the API server replaced by an
in-memory store that merges status patches as the API server does.

The machinery is the Budgets' (``granting``); what is checked here is where a quota's counters live
(``status.quotas["<credential>/<model>"]``, ``status.quotaUsedPercent``), that the rest of the status is
left alone, and that a counter write does not make the operator re-render the namespace.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from pilotfish.budgets import protocol, windows
from pilotfish.specs import budget
from pilotfish_operator.budgets import granting, homes

WALL = datetime.datetime(2026, 12, 2, 1, 35, 10, tzinfo=datetime.UTC).timestamp()
WINDOW = windows.window_of(budget.Limit.REQUESTS, budget.Period.DAY, wall=WALL).key
MEMBERS = [
    {"credentialRef": "primary", "model": "gpt-5-mini", "rpm": 50, "tpm": 10000},
    {"credentialRef": "backup", "model": "m"},
]


def merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


class Store:
    """A ModelClass as the API server keeps it: merge patches of status, a resourceVersion per write."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] = {
            "metadata": {"name": "workhorse", "resourceVersion": "1"},
            "spec": {"members": copy.deepcopy(MEMBERS)},
            "status": {"memberCount": 2, "conditions": [{"type": "Ready", "status": "True"}]},
        }
        self.plurals: list[str] = []

    def get_custom(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        self.plurals.append(plural)
        return copy.deepcopy(self.obj) if name == "workhorse" else None

    def patch_status_at(self, namespace: str, plural: str, name: str, *, resource_version: str, status: Any) -> bool:
        assert resource_version == self.obj["metadata"]["resourceVersion"]
        merge(self.obj.setdefault("status", {}), status)
        self.obj["metadata"]["resourceVersion"] = str(int(resource_version) + 1)
        return True


def ask(limit: budget.Limit, *, used: int = 0, member: str = "primary/gpt-5-mini") -> protocol.Ask:
    return protocol.Ask(
        kind=budget.CountedKind.QUOTA,
        budget="workhorse",
        member=member,
        limit=limit,
        window=WINDOW,
        used=used,
        balance=0,
        want=True,
    )


async def test_a_members_quota_is_granted_up_to_its_rpm_and_counted_in_the_classs_status():
    store = Store()
    grants = granting.Granting(store, wall=lambda: WALL)  # type: ignore[arg-type]
    total = 0
    for _ in range(80):
        grant = await grants._grant("ns", ask(budget.Limit.REQUESTS))
        assert grant is not None and (grant.kind, grant.member) == (budget.CountedKind.QUOTA, "primary/gpt-5-mini")
        total += grant.amount
    assert total == 50 and grant.exhausted  # never more than the member's rpm, however many asks
    assert set(store.plurals) == {"modelclasses"}
    counters = store.obj["status"]["quotas"]["primary/gpt-5-mini"]
    assert counters["requests"]["reserved"] == 50 and counters["requests"]["limit"] == 50
    assert store.obj["status"]["memberCount"] == 2 and store.obj["status"]["conditions"]  # the rest is left alone


async def test_reported_usage_reaches_the_members_counters_and_the_highest_share_shows_in_quota_used_percent():
    store = Store()
    grants = granting.Granting(store, wall=lambda: WALL)  # type: ignore[arg-type]
    await grants._grant("ns", ask(budget.Limit.REQUESTS, used=40))
    await grants._grant("ns", ask(budget.Limit.TOKENS, used=2500))
    await grants.flush()
    counters = store.obj["status"]["quotas"]["primary/gpt-5-mini"]
    assert (counters["requests"]["used"], counters["tokens"]["used"]) == (40, 2500)
    assert counters["usedPercent"] == 80 and store.obj["status"]["quotaUsedPercent"] == 80


async def test_a_member_without_a_quota_or_not_in_the_class_gets_no_grant_so_the_sidecar_forgets_it():
    grants = granting.Granting(Store(), wall=lambda: WALL)  # type: ignore[arg-type]
    assert await grants._grant("ns", ask(budget.Limit.REQUESTS, member="backup/m")) is None
    assert await grants._grant("ns", ask(budget.Limit.REQUESTS, member="gone/m")) is None


def test_a_counter_write_leaves_the_class_as_the_reconciler_sees_it_and_any_other_change_does_not():
    obj = Store().obj
    seen = homes.without_counters(obj)
    counted = copy.deepcopy(obj)
    counted["metadata"]["resourceVersion"] = "9"
    counted["status"]["quotas"] = {"primary/gpt-5-mini": {"requests": {"used": 3}}}
    counted["status"]["quotaUsedPercent"] = 6
    assert homes.without_counters(counted) == seen
    for change in (
        {"spec": {"members": MEMBERS[:1]}},
        {"status": {"memberCount": 1}},
        {"metadata": {"labels": {"a": "b"}}},
    ):
        changed = copy.deepcopy(obj)
        merge(changed, change)
        assert homes.without_counters(changed) != seen, change
