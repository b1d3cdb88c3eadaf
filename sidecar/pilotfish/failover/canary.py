"""Which requests go to a class's canary slice, and the route they then follow. Pure.

A request with the stickiness header is sliced by a hash of its value, so a conversation stays on
one slice for its whole life (and across sidecars: the hash is the same everywhere); without it, by
chance. The canary slice tries the canary member first and then the stable members in their usual
order, so a failing canary costs a failover, never an error. The stable slice never sees the canary.
"""

from __future__ import annotations

import hashlib
import random

import msgspec

from pilotfish.routes import document

BUCKETS = 10_000  # weight is whole percent; 0.01% resolution leaves room


def in_canary_slice(canary: document.CanaryRoute, key: str | None, rng: random.Random) -> bool:
    if canary.weight <= 0:
        return False
    if canary.weight >= 100:
        return True
    if key:
        bucket = (
            int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
            % BUCKETS
        )
    else:
        bucket = rng.randrange(BUCKETS)
    return bucket < canary.weight * BUCKETS // 100


def canary_first(route: document.ClassRoute) -> document.ClassRoute:
    """The route a canary-slice request follows: the canary member ahead of every stable member."""
    assert route.canary is not None
    first = min((m.priority for m in route.members), default=0) - 1
    member = msgspec.structs.replace(route.canary.member, priority=first)
    return msgspec.structs.replace(route, members=(member, *route.members))


class CanaryFirst:
    """``canary_first`` per routes snapshot, kept: a copy per request would cost more than the rest of it."""

    __slots__ = ("_routes",)

    def __init__(self) -> None:
        self._routes: dict[int, tuple[document.ClassRoute, document.ClassRoute]] = {}

    def canary_first(self, route: document.ClassRoute) -> document.ClassRoute:
        cached = self._routes.get(id(route))
        if cached is None or cached[0] is not route:
            if len(self._routes) > 256:  # old snapshots' routes: forget them
                self._routes.clear()
            cached = self._routes[id(route)] = (route, canary_first(route))
        return cached[1]
