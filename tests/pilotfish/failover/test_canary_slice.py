"""The canary slice: sticky by header hash, random otherwise, canary member first then the stable members."""

from __future__ import annotations

import random

from pilotfish.failover import canary
from pilotfish.routes import document
from pilotfish.specs import refs


def _member(credential: str, priority: int) -> document.MemberRoute:
    return document.MemberRoute(
        id=f"{credential}/m",
        credential=credential,
        provider="openai",
        base_url="https://x",
        api_key_ref=refs.SecretKeyRef(name="k", key="k"),
        model="m",
        priority=priority,
    )


def _route(weight: int) -> document.ClassRoute:
    return document.ClassRoute(
        name="w",
        members=(_member("a", 0), _member("b", 1)),
        canary=document.CanaryRoute(member=_member("next", 0), weight=weight, stickiness_header="x-conversation-id"),
    )


def test_the_share_of_random_requests_in_the_slice_follows_the_weight():
    rng = random.Random(7)
    route = _route(20)
    assert route.canary is not None
    share = sum(canary.in_canary_slice(route.canary, None, rng) for _ in range(20_000)) / 20_000
    assert 0.18 < share < 0.22


def test_a_conversation_stays_on_its_slice_and_keys_split_by_weight():
    route = _route(30)
    assert route.canary is not None
    rng = random.Random(1)
    first = [canary.in_canary_slice(route.canary, f"conv-{i}", rng) for i in range(5000)]
    again = [canary.in_canary_slice(route.canary, f"conv-{i}", random.Random(99)) for i in range(5000)]
    assert first == again
    assert 0.27 < sum(first) / len(first) < 0.33


def test_zero_and_full_weight_are_exact():
    rng = random.Random(0)
    zero, full = _route(0).canary, _route(100).canary
    assert zero is not None and full is not None
    assert not any(canary.in_canary_slice(zero, f"k{i}", rng) for i in range(1000))
    assert all(canary.in_canary_slice(full, None, rng) for _ in range(1000))


def test_the_canary_route_tries_the_canary_first_then_the_stable_members_in_order():
    route = canary.canary_first(_route(10))
    assert [m.id for m in route.members] == ["next/m", "a/m", "b/m"]
    assert route.members[0].priority < route.members[1].priority
