"""Conversation pinning: a conversation stays on the member that first served it while that member
is healthy, so multi-turn chats do not hop between models (and prompt caches) on every turn.

Bounded: at most ``max_entries`` pins (least recently used evicted), each with a TTL, because the
sidecar runs in every pod and must not grow with the number of conversations it has seen.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

MAX_PINS = 10_000  # ~1.5 MB at most; a pod rarely has more live conversations than this


class PinStore:
    def __init__(self, *, now: Callable[[], float], max_entries: int = MAX_PINS) -> None:
        self._now = now
        self._max = max_entries
        self._pins: collections.OrderedDict[tuple[str, str], tuple[str, float]] = collections.OrderedDict()

    def get(self, class_name: str, key: str) -> str | None:
        entry = self._pins.get((class_name, key))
        if entry is None:
            return None
        member_id, expires = entry
        if self._now() >= expires:
            del self._pins[(class_name, key)]
            return None
        self._pins.move_to_end((class_name, key))
        return member_id

    def set(self, class_name: str, key: str, member_id: str, *, ttl: float) -> None:
        self._pins[(class_name, key)] = (member_id, self._now() + ttl)
        self._pins.move_to_end((class_name, key))
        while len(self._pins) > self._max:
            self._pins.popitem(last=False)

    def forget(self, class_name: str, key: str) -> None:
        self._pins.pop((class_name, key), None)

    def __len__(self) -> int:
        return len(self._pins)
