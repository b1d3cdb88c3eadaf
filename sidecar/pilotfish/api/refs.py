"""References and values shared by several kinds: Secret references, API keys, conditions.

An API key is a type, not a string: ``ApiKey`` prints as ``ApiKey('***')`` so that no repr, log
line, traceback or error body can carry the value by accident. Only the provider adapter that puts
the key on the wire calls ``reveal()``.
"""

from __future__ import annotations

import pydantic

from pilotfish.api import base

# A Secret name is a DNS subdomain; a key is what Kubernetes accepts in Secret.data.
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"


class SecretKeyRef(base.ApiModel):
    """Points at one key of one Secret in the object's own namespace."""

    name: str = pydantic.Field(
        min_length=1,
        max_length=253,
        pattern=SECRET_NAME_PATTERN,
        description="Name of the Secret, in the same namespace as the referencing object.",
    )
    key: str = pydantic.Field(
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY_PATTERN,
        description="Key inside the Secret's data whose value is the API key.",
    )


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


class Condition(base.ApiModel):
    """A Kubernetes-style status condition (metav1.Condition)."""

    type: str
    status: str = pydantic.Field(description="True, False or Unknown.")
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class Pricing(base.ApiModel):
    """USD per million tokens, for the cost metric."""

    input_per_million_tokens: float = pydantic.Field(default=0.0, ge=0)
    output_per_million_tokens: float = pydantic.Field(default=0.0, ge=0)
