"""The one pydantic configuration every API object shares: camelCase on the wire, strict shapes.

Kubernetes objects use camelCase field names; Python code uses snake_case. Unknown fields are
rejected (``extra="forbid"``) so a typo in a manifest is an error that names the field instead of a
setting silently ignored, which is what ``kubectl apply`` with a structural schema does too.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
import pydantic
from pydantic import alias_generators

Twin = TypeVar("Twin", bound=msgspec.Struct)


class ApiModel(pydantic.BaseModel):
    """Base for every spec/status model: camelCase aliases, frozen, unknown fields forbidden."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    def to_wire(self) -> dict[str, object]:
        """Dump as a manifest would hold it: camelCase, no unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    def to_runtime(self, twin: type[Twin]) -> Twin:
        """This spec as its runtime twin in ``pilotfish.specs`` (what the routes document and the sidecar use):
        the same wire shape, so this is a decode of what the model dumps, checked by the twin's own rules."""
        return msgspec.convert(self.to_wire(), twin)


class ObjectMeta(pydantic.BaseModel):
    """The part of metav1.ObjectMeta that rendering needs; everything else passes through."""

    model_config = pydantic.ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    name: str = pydantic.Field(min_length=1, max_length=253)
    namespace: str | None = None
    generation: int | None = None
    uid: str | None = None
