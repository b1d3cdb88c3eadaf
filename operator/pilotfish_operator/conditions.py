"""Kubernetes-style status conditions: a new set keeps ``lastTransitionTime`` when the status did not flip.

Pure, so the reconciler can compare the status it would write with the one stored and skip the write
when nothing changed (no hot loop: our own status patches come back to us as watch events).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any


def now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def condition(type_: str, ok: bool, reason: str, message: str, *, generation: int | None) -> dict[str, Any]:
    result: dict[str, Any] = {"type": type_, "status": "True" if ok else "False", "reason": reason, "message": message}
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def merge(previous: Sequence[Mapping[str, Any]], wanted: Sequence[dict[str, Any]], *, at: str) -> list[dict[str, Any]]:
    """``wanted`` with each condition's transition time carried over from ``previous`` if its status held."""
    before = {c.get("type"): c for c in previous}
    merged = []
    for cond in wanted:
        old = before.get(cond["type"])
        kept = old.get("lastTransitionTime") if old and old.get("status") == cond["status"] else None
        merged.append({**cond, "lastTransitionTime": kept or at})
    return merged


def changed(previous: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The conditions whose status or reason differs from before: what deserves an Event."""
    before = {c.get("type"): (c.get("status"), c.get("reason")) for c in previous}
    return [c for c in current if before.get(c["type"]) != (c["status"], c["reason"])]
