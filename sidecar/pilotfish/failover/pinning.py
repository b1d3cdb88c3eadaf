"""Conversation pinning: a conversation stays on the member that first served it while that member
is healthy, so multi-turn chats do not hop between models (and prompt caches) on every turn.

``failover.engine`` reads the pin before planning (``failover.plan`` puts the pinned member first
unless its circuit is open) and sets it to the member that served. Keys come from the class's
``routing.pinning.header`` and are scoped by class name.

Bounded, because the sidecar runs in every pod and must not grow with the number of conversations
it has seen: at most ``max_entries`` pins, the least recently used evicted first, each with its own
TTL, and keys longer than ``MAX_KEY_CHARS`` stored as a fixed-size digest.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Callable

# A pod rarely has more live conversations than this. Measured full: 3.2 MB with 36-character keys,
# 4.4 MB with 128-character ones (the most a key is kept as).
MAX_PINS = 10_000
# A header value may be up to ~8 KB; 10,000 of those would be 80 MB. Longer keys are hashed.
MAX_KEY_CHARS = 128

_Slot = tuple[str, bool, str]  # (class name, key is a digest, key or its sha256 hex digest)


class PinStore:
    """(class name, conversation key) → member id, with a TTL per entry and LRU eviction."""

    def __init__(self, *, now: Callable[[], float], max_entries: int = MAX_PINS) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._now = now
        self._max = max_entries
        # slot → (member id, expiry on the ``now`` clock); order is recency of use, oldest first
        self._pins: collections.OrderedDict[_Slot, tuple[str, float]] = collections.OrderedDict()

    def get(self, class_name: str, key: str) -> str | None:
        """The pinned member id, or None when there is no pin or it has expired (it is then dropped)."""
        slot = _slot(class_name, key)
        entry = self._pins.get(slot)
        if entry is None:
            return None
        member_id, expires = entry
        if self._now() >= expires:
            del self._pins[slot]
            return None
        self._pins.move_to_end(slot)
        return member_id

    def set(self, class_name: str, key: str, member_id: str, *, ttl: float) -> None:
        """Pin ``key`` to ``member_id`` for ``ttl`` seconds from now (a non-positive ttl unpins)."""
        slot = _slot(class_name, key)
        if not ttl > 0:
            self._pins.pop(slot, None)
            return
        self._pins[slot] = (member_id, self._now() + ttl)
        self._pins.move_to_end(slot)
        while len(self._pins) > self._max:
            self._pins.popitem(last=False)

    def forget(self, class_name: str, key: str) -> None:
        """Drop the pin, if any."""
        self._pins.pop(_slot(class_name, key), None)

    def __len__(self) -> int:
        """Pins held, expired ones not yet dropped included."""
        return len(self._pins)


def _slot(class_name: str, key: str) -> _Slot:
    """Where a pin is kept. Digests are flagged, so no short key can collide with a long one's digest."""
    if len(key) <= MAX_KEY_CHARS:
        return (class_name, False, key)
    return (class_name, True, hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest())
