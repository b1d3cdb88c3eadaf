"""Unmapped: one setting of a foreign configuration that an importer could not carry over as is.

Every importer reports these instead of dropping a setting silently: a platform team migrating a
gateway must see each behaviour that changes, why, and what Pilotfish offers in its place.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Unmapped:
    """A setting left behind (or carried over only approximately)."""

    setting: str  # where it sits in the source, e.g. "router_settings.redis_host" or "model_list[2].litellm_params.rpm"
    reason: str  # why it cannot be carried over
    nearest: str  # the nearest Pilotfish equivalent, or what to do instead

    def __str__(self) -> str:
        return f"{self.setting}: {self.reason}; nearest: {self.nearest}"
