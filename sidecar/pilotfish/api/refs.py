"""References and values shared by several kinds: Secret references, API keys, conditions.

An API key is a type, not a string: ``ApiKey`` prints as ``ApiKey('***')`` so that no repr, log
line, traceback or error body can carry the value by accident. Only the provider adapter that puts
the key on the wire calls ``reveal()``.
"""

from __future__ import annotations

import pydantic

from pilotfish.api import base
from pilotfish.specs import refs as refs_specs

# A Secret name is a DNS subdomain; a key is what Kubernetes accepts in Secret.data (defined in specs.refs).
SECRET_NAME_PATTERN = refs_specs.SECRET_NAME_PATTERN
SECRET_KEY_PATTERN = refs_specs.SECRET_KEY_PATTERN


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


ApiKey = refs_specs.ApiKey  # one definition, shared with the sidecar's runtime specs


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
