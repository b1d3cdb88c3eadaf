"""The operator says why it waits when its kopf peering object does not exist (instead of hanging silently)."""

from __future__ import annotations

import logging

import pytest

from pilotfish_operator import peering


class FakeKube:
    """Answers ``peering_exists`` from a script: one answer per call, the last one repeated."""

    def __init__(self, *answers: bool | None) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str | None]] = []

    def peering_exists(self, name: str, namespace: str | None) -> bool | None:
        self.calls.append((name, namespace))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


async def test_a_missing_cluster_peering_is_logged_until_it_exists_with_what_to_create_and_the_way_out(caplog):
    api = FakeKube(False, False, True)
    with caplog.at_level(logging.INFO, logger="pilotfish.operator.peering"):
        await peering.watch_missing(api, name="pilotfish", namespaces=(), interval=0)  # type: ignore[arg-type]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and api.calls == [("pilotfish", None)] * 3
    assert "waiting for the ClusterKopfPeering 'pilotfish'" in warnings[0]
    assert "--standalone" in warnings[0] and "operator.peering.enabled=true" in warnings[0]
    assert "kopf.dev_clusterkopfpeerings.yaml" in warnings[0]
    assert caplog.records[-1].getMessage() == "peering 'pilotfish' found"


async def test_each_watched_namespace_needs_its_own_namespaced_peering(caplog):
    api = FakeKube(True, False, True)
    with caplog.at_level(logging.WARNING, logger="pilotfish.operator.peering"):
        await peering.watch_missing(api, name="pf", namespaces=("a", "b"), interval=0)  # type: ignore[arg-type]
    assert api.calls == [("pf", "a"), ("pf", "b"), ("pf", "b")]
    [warning] = [r.getMessage() for r in caplog.records]
    assert "the KopfPeering 'pf' in namespace 'b'" in warning and "kopf.dev_kopfpeerings.yaml" in warning


@pytest.mark.parametrize("answer", [None, RuntimeError("connection refused")], ids=["cannot-tell", "api-down"])
async def test_nothing_is_claimed_when_the_check_cannot_tell(caplog, answer):
    class Unsure(FakeKube):
        def peering_exists(self, name: str, namespace: str | None) -> bool | None:
            if len(self.calls) >= 2:
                return True
            self.calls.append((name, namespace))
            if isinstance(answer, Exception):
                raise answer
            return answer

    with caplog.at_level(logging.INFO, logger="pilotfish.operator.peering"):
        await peering.watch_missing(Unsure(), name="pf", namespaces=(), interval=0)  # type: ignore[arg-type]
    # only the operator's own records: a task an earlier test leaked may be collected (and logged by
    # asyncio) during this one
    assert [r for r in caplog.records if r.name.startswith("pilotfish")] == []
