"""RoutesDocument: one versioned, frozen document per namespace, as the ConfigMap carries it.

It names Secrets (name/key), never their values. A sidecar that reads a document with a
``schemaVersion`` it does not know rejects it and keeps serving the previous one.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import orjson
import pydantic

from pilotfish.api import base, budget, modelclass, refs, tiers
from pilotfish.api import credential as credential_api  # `credential` is also a field name below

SCHEMA_VERSION = 1
CONFIGMAP_NAME = "pilotfish-routes"
DOCUMENT_KEY = "routes.json"  # the ConfigMap key, i.e. the file name in the mounted directory


class MemberRoute(base.ApiModel):
    """A member resolved against its credential: everything an attempt needs except the key value."""

    id: str = pydantic.Field(description="'<credential>/<model>', unique within the class.")
    credential: str
    provider: credential_api.ProviderType
    base_url: str = pydantic.Field(alias="baseURL")
    api_key_ref: refs.SecretKeyRef | None = None
    api_version: str | None = None
    model: str
    priority: int
    weight: int = 1
    context_window: int | None = None
    max_output_tokens: int | None = None
    pricing: modelclass.Pricing | None = None
    prefill: bool = pydantic.Field(default=False, description="Can continue a stream another member cut.")
    # None unless the credential opted in: an older sidecar must still read documents without it
    allow_plain_http: bool | None = pydantic.Field(default=None, alias="allowPlainHTTP")
    probe: credential_api.ProbeSpec | None = None  # active probes while the circuit is open (failover.probing)
    rpm: int | None = pydantic.Field(default=None, ge=1, description="Provider quota, requests per minute.")
    tpm: int | None = pydantic.Field(default=None, ge=1, description="Provider quota, tokens per minute.")

    def has_quota(self) -> bool:
        return self.rpm is not None or self.tpm is not None

    def quota(self) -> budget.BudgetSpec | None:
        """The member's provider quota as the rate limits the allowances count; None when it has none."""
        return budget.rate_limits(requests_per_minute=self.rpm, tokens_per_minute=self.tpm)

    @pydantic.model_validator(mode="after")
    def _key_never_in_plain_text(self) -> MemberRoute:
        """The sidecar's own check: a routes document written by hand or by an old operator is held to the
        same rule as the credential (the last good document keeps serving)."""
        if credential_api.sends_key_in_plain_text(
            self.base_url, has_key=self.api_key_ref is not None, allowed=bool(self.allow_plain_http)
        ):
            raise ValueError(f"member {self.id}: {credential_api.PLAIN_HTTP_REFUSED}")
        return self


class CanaryRoute(base.ApiModel):
    """A canary slice: this share of the class's requests tries ``member`` first, then the stable members."""

    member: MemberRoute
    weight: int = pydantic.Field(ge=0, le=100, description="Percent of requests in the canary slice.")
    stickiness_header: str | None = pydantic.Field(
        default=None, description="Requests with this header are sliced by its hash, so a conversation stays put."
    )


class TiersRoute(base.ApiModel):
    """A class of classes: ``ladder`` holds only classes of this document that have members."""

    ladder: tuple[str, ...]
    default: str
    rules: tuple[tiers.TierRule, ...] = ()
    escalate: bool = True

    def above(self, tier: str) -> tuple[str, ...]:
        """The tiers escalation tries after ``tier``, in order (none when escalation is off)."""
        if not self.escalate or tier not in self.ladder:
            return ()
        return self.ladder[self.ladder.index(tier) + 1 :]


class ClassRoute(base.ApiModel):
    """One class: its eligible members in priority order, and its knobs; or, with ``tiers``, no members."""

    name: str
    members: tuple[MemberRoute, ...]
    tiers: TiersRoute | None = None
    canary: CanaryRoute | None = None
    routing: modelclass.RoutingSpec = pydantic.Field(default_factory=modelclass.RoutingSpec)
    timeouts: modelclass.TimeoutsSpec = pydantic.Field(default_factory=modelclass.TimeoutsSpec)
    health: modelclass.HealthSpec = pydantic.Field(default_factory=modelclass.HealthSpec)
    streaming: modelclass.StreamingSpec = pydantic.Field(default_factory=modelclass.StreamingSpec)
    limits: modelclass.LimitsSpec = pydantic.Field(default_factory=modelclass.LimitsSpec)


class RoutesDocument(base.ApiModel):
    """Every class of one namespace."""

    schema_version: Literal[1] = 1  # SCHEMA_VERSION
    namespace: str = "default"
    classes: dict[str, ClassRoute] = pydantic.Field(default_factory=dict)
    budgets: dict[str, budget.BudgetSpec] = pydantic.Field(
        default_factory=dict, description="The namespace's Budgets by name; the sidecars enforce them together."
    )

    def budgets_of(self, class_name: str) -> list[tuple[budget.Counted, budget.BudgetSpec]]:
        """The budgets a request for ``class_name`` counts against, as the allowances count them."""
        return [
            (budget.Counted.of_budget(name), spec)
            for name, spec in sorted(self.budgets.items())
            if spec.covers(class_name)
        ]

    def limits_of(self, counted: budget.Counted) -> budget.BudgetSpec | None:
        """The limits of a counter the allowances keep: a Budget's spec, or a member's provider quota."""
        if counted.kind is budget.CountedKind.BUDGET:
            return self.budgets.get(counted.name)
        route = self.classes.get(counted.name)
        member = next((m for m in route.members if m.id == counted.member), None) if route else None
        return member.quota() if member else None

    def counted(self) -> set[budget.Counted]:
        """Every counter this document asks the sidecars to keep: each Budget, each member quota."""
        out = {budget.Counted.of_budget(name) for name in self.budgets}
        for route in self.classes.values():
            out.update(budget.Counted.of_quota(route.name, m.id) for m in route.members if m.quota() is not None)
        return out

    def to_json(self) -> bytes:
        """Canonical bytes: sorted keys, so equal documents are byte-equal (no-op writes skipped)."""
        return orjson.dumps(self.to_wire(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)

    def digest(self) -> str:
        """Short content hash, reported by sidecars so the operator can see propagation."""
        return hashlib.sha256(self.to_json()).hexdigest()[:16]

    @classmethod
    def from_json(cls, data: bytes | str) -> RoutesDocument:
        """Parse and validate; raises pydantic.ValidationError or orjson.JSONDecodeError."""
        return cls.model_validate(orjson.loads(data))
