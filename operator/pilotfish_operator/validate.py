"""The validating webhook's decision: what the CRD schema and its CEL rules cannot say. Pure.

The pydantic models are the source of the schema, but some of their rules (model validators, the
checks that span list items) have no OpenAPI form; running the same models here means kubectl
gets the same message ``pilotfish render`` would print, naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from pilotfish.api import budget, credential, manifests, modelclass

MODELS: dict[str, type[pydantic.BaseModel]] = {
    "ModelClass": modelclass.ModelClass,
    "ProviderCredential": credential.ProviderCredential,
    "Budget": budget.Budget,
}


def problems(obj: Mapping[str, Any]) -> list[str]:
    """Every problem with ``obj``, one line each, each naming its field; empty when it is valid."""
    model = MODELS.get(str(obj.get("kind")))
    if model is None:
        return [f"kind {obj.get('kind')!r} is not served by this webhook"]
    try:
        model.model_validate(obj)
    except pydantic.ValidationError as exc:
        return manifests.validation_lines(exc)
    return []
