"""The operator's grants against a Budget, with the API server replaced by an in-memory object store.

What is checked here is the bookkeeping between the replica's blocks and the status: each grant comes
out of a block reserved in the status, a conflict is retried, and a spent Budget costs no more writes.
(The real API server, TokenReview and 20 sidecars are in tests/kube/test_budgets.py.)
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from pilotfish.budgets import protocol, windows
from pilotfish.specs import budget
from pilotfish_operator.budgets import granting

WALL = datetime.datetime(2026, 12, 2, 1, 35, 10, tzinfo=datetime.UTC).timestamp()
WINDOW = windows.window_of(budget.Limit.REQUESTS, budget.Period.DAY, wall=WALL).key


class Store:
    """A Budget as the API server would keep it: a resourceVersion bumped on every write."""

    def __init__(self, spec: dict[str, Any], *, conflicts: int = 0) -> None:
        self.obj: dict[str, Any] = {"metadata": {"name": "team", "resourceVersion": "1", "uid": "u"}, "spec": spec}
        self.writes = 0
        self.conflicts = conflicts  # the next writes that lose to another replica
        self.events: list[str] = []

    def get_custom(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.obj) if name == "team" else None

    def patch_status_at(self, namespace: str, plural: str, name: str, *, resource_version: str, status: Any) -> bool:
        if self.conflicts:
            self.conflicts -= 1
            self.obj["metadata"]["resourceVersion"] = str(int(resource_version) + 1)
            return False
        assert resource_version == self.obj["metadata"]["resourceVersion"]
        self.obj["status"] = copy.deepcopy(status)
        self.obj["metadata"]["resourceVersion"] = str(int(resource_version) + 1)
        self.writes += 1
        return True

    def event(self, namespace: str, involved: Any, *, type_: str, reason: str, message: str) -> None:
        self.events.append(reason)


def ask(*, used: int = 0, balance: int = 0) -> protocol.Ask:
    return protocol.Ask(
        budget="team", limit=budget.Limit.REQUESTS, window=WINDOW, used=used, balance=balance, want=True
    )


async def test_grants_come_out_of_blocks_reserved_in_the_status_and_stop_at_the_limit():
    store = Store({"requestsPerMinute": 100})
    grants = granting.Granting(store, wall=lambda: WALL)  # type: ignore[arg-type]
    first = await grants._grant("ns", ask())
    assert first is not None and first.amount == windows.grant_size(100) and not first.exhausted
    assert store.obj["status"]["requests"]["reserved"] == windows.block_size(100)
    total = first.amount
    for _ in range(60):
        grant = await grants._grant("ns", ask())
        assert grant is not None
        total += grant.amount
    assert total == 100  # never more than the limit, however many asks
    assert grant.exhausted and grant.retry_after == 50.0


async def test_a_spent_budget_costs_no_more_writes_however_often_sidecars_ask():
    store = Store({"requestsPerMinute": 10})
    grants = granting.Granting(store, wall=lambda: WALL)  # type: ignore[arg-type]
    for _ in range(10):
        await grants._grant("ns", ask())
    writes = store.writes
    for _ in range(50):
        grant = await grants._grant("ns", ask())
        assert grant is not None and grant.amount == 0 and grant.exhausted
    assert store.writes == writes


async def test_a_write_that_loses_to_another_replica_is_read_again_and_retried():
    store = Store({"requestsPerMinute": 100}, conflicts=2)
    grants = granting.Granting(store, wall=lambda: WALL)  # type: ignore[arg-type]
    grant = await grants._grant("ns", ask())
    assert grant is not None and grant.amount == 2 and store.writes == 1


async def test_reported_usage_reaches_the_status_and_fires_the_80_and_100_percent_events():
    store = Store({"requestsPerMinute": 10})
    grants = granting.Granting(store, wall=lambda: WALL)  # type: ignore[arg-type]
    await grants._grant("ns", ask(used=8))
    await grants.flush()
    assert store.obj["status"]["requests"]["used"] == 8 and store.events == ["BudgetNearlySpent"]
    await grants._grant("ns", ask(used=3))
    await grants.flush()
    assert store.obj["status"]["requests"]["used"] == 11 and store.events == ["BudgetNearlySpent", "BudgetSpent"]
