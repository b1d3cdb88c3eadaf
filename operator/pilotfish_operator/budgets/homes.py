"""Where each counter the sidecars share lives, and what limits it has. Pure.

A Budget's counters are its own status (``status.requests|tokens|spend``). A ModelClass member's provider
quota (``rpm``, ``tpm``) lives in the ModelClass's status under ``quotas["<credential>/<model>"]``, in the
same shape, with ``status.quotaUsedPercent`` the highest share any member used in its current minute
(a printer column). ``granting`` reads and writes through here, so the arithmetic (``accounts``) and
the allowance endpoint are the same for both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
import pydantic

from pilotfish.api import budget as budget_api  # `budget` names objects below
from pilotfish.api import modelclass
from pilotfish.specs import budget as budget_specs

QUOTAS = "quotas"  # status.quotas of a ModelClass
QUOTA_USED_PERCENT = "quotaUsedPercent"

Object = Mapping[str, Any]


def plural(counted: budget_api.Counted) -> str:
    return budget_api.PLURAL if counted.kind is budget_api.CountedKind.BUDGET else modelclass.PLURAL


def limits(counted: budget_api.Counted, obj: Object | None) -> budget_specs.BudgetSpec | None:
    """The limits the object declares for this counter now; None when it no longer has any."""
    if obj is None:
        return None
    try:
        if counted.kind is budget_api.CountedKind.BUDGET:
            return budget_api.BudgetSpec.model_validate(obj.get("spec") or {}).to_runtime(budget_specs.BudgetSpec)
        spec = modelclass.ModelClassSpec.model_validate(obj.get("spec") or {})
    except pydantic.ValidationError:
        return None
    member = next((m for m in spec.members if f"{m.credential_ref}/{m.model}" == counted.member), None)
    return member.quota() if member else None


def counters(counted: budget_api.Counted, obj: Object) -> Mapping[str, Any] | None:
    """The counter's part of the object's status, as ``accounts.apply`` takes it."""
    status = obj.get("status") or {}
    if counted.kind is budget_api.CountedKind.BUDGET:
        return status
    found = (status.get(QUOTAS) or {}).get(counted.member)
    return found if isinstance(found, Mapping) else None


def status_patch(counted: budget_api.Counted, obj: Object, written: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch of the object's status that stores ``written`` as this counter's part."""
    if counted.kind is budget_api.CountedKind.BUDGET:
        return dict(written)
    quotas = dict((obj.get("status") or {}).get(QUOTAS) or {})
    quotas[counted.member] = written
    shares = [int(q.get("usedPercent", 0)) for q in quotas.values() if isinstance(q, Mapping)]
    return {QUOTAS: {counted.member: dict(written)}, QUOTA_USED_PERCENT: max(shares, default=0)}


def without_counters(obj: Object) -> str:
    """A digest of a ModelClass as the reconciler cares about it: everything but the quota counters in its
    status and the metadata every write changes (so a counter write does not re-render the namespace)."""
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields")}
    status = {k: v for k, v in (obj.get("status") or {}).items() if k not in (QUOTAS, QUOTA_USED_PERCENT)}
    seen = {"metadata": metadata, "spec": obj.get("spec"), "status": status}
    return hashlib.sha256(orjson.dumps(seen, option=orjson.OPT_SORT_KEYS)).hexdigest()
