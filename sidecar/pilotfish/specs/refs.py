"""References and values shared by several specs: Secret references, API keys, prices.

An API key is a type, not a string: ``ApiKey`` prints as ``ApiKey('***')`` so that no repr, log
line, traceback or error body can carry the value by accident. Only the provider adapter that puts
the key on the wire calls ``reveal()``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from pilotfish.specs import structs

# A Secret name is a DNS subdomain; a key is what Kubernetes accepts in Secret.data.
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"


class SecretKeyRef(structs.Spec, frozen=True, kw_only=True):
    """Points at one key of one Secret in the object's own namespace."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=253, pattern=SECRET_NAME_PATTERN)]
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)]


class Pricing(structs.Spec, frozen=True, kw_only=True):
    """USD per million tokens, for the cost metric."""

    input_per_million_tokens: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    output_per_million_tokens: Annotated[float, msgspec.Meta(ge=0)] = 0.0


class ApiKey:
    """A secret value that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The raw value, for the one place that puts it on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "ApiKey('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)
