"""RoutesDocument: one versioned, frozen document per namespace, as the ConfigMap carries it.

It names Secrets (name/key), never their values. A sidecar that reads a document with a
``schemaVersion`` it does not know rejects it and keeps serving the previous one.

The types are msgspec Structs on the runtime specs (``pilotfish.specs``), not pydantic models: the
sidecar decodes and validates this document without importing pydantic. The bytes are the same as
when they were pydantic models (camelCase, sorted keys, absent optional fields left out), so an older
sidecar reads a newer operator's document and the other way round.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import msgspec
import orjson

from pilotfish.specs import budget, modelclass, refs, structs, tiers
from pilotfish.specs import credential as credential_specs  # `credential` is also a field name below
from pilotfish.wire import structs as wire_structs  # msgspec's error split into problem and path

SCHEMA_VERSION = 1
CONFIGMAP_NAME = "pilotfish-routes"
DOCUMENT_KEY = "routes.json"  # the ConfigMap key, i.e. the file name in the mounted directory

Quota = Annotated[int, msgspec.Meta(ge=1)]


class MemberRoute(structs.Spec, frozen=True, kw_only=True):
    """A member resolved against its credential: everything an attempt needs except the key value."""

    id: str  # '<credential>/<model>', unique within the class
    credential: str
    provider: credential_specs.ProviderType
    base_url: str = msgspec.field(name="baseURL")
    api_key_ref: refs.SecretKeyRef | None = None
    api_version: str | None = None
    model: str
    priority: int
    weight: int = 1
    context_window: int | None = None
    max_output_tokens: int | None = None
    pricing: modelclass.Pricing | None = None
    prefill: bool = False  # can continue a stream another member cut
    # None unless the credential opted in: an older sidecar must still read documents without it
    allow_plain_http: bool | None = msgspec.field(default=None, name="allowPlainHTTP")
    probe: credential_specs.ProbeSpec | None = None  # active probes while the circuit is open (failover.probing)
    rpm: Quota | None = None  # provider quota, requests per minute
    tpm: Quota | None = None  # provider quota, tokens per minute

    def has_quota(self) -> bool:
        return self.rpm is not None or self.tpm is not None

    def quota(self) -> budget.BudgetSpec | None:
        """The member's provider quota as the rate limits the allowances count; None when it has none."""
        return budget.rate_limits(requests_per_minute=self.rpm, tokens_per_minute=self.tpm)

    def __post_init__(self) -> None:
        """The sidecar's own check: a routes document written by hand or by an old operator is held to the
        same rule as the credential (the last good document keeps serving)."""
        if credential_specs.sends_key_in_plain_text(
            self.base_url, has_key=self.api_key_ref is not None, allowed=bool(self.allow_plain_http)
        ):
            raise ValueError(f"member {self.id}: {credential_specs.PLAIN_HTTP_REFUSED}")


class CanaryRoute(structs.Spec, frozen=True, kw_only=True):
    """A canary slice: this share of the class's requests tries ``member`` first, then the stable members."""

    member: MemberRoute
    weight: Annotated[int, msgspec.Meta(ge=0, le=100)]  # percent of requests in the canary slice
    # requests with this header are sliced by its hash, so a conversation stays put
    stickiness_header: str | None = None


class TiersRoute(structs.Spec, frozen=True, kw_only=True):
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


class ClassRoute(structs.Spec, frozen=True, kw_only=True):
    """One class: its eligible members in priority order, and its knobs; or, with ``tiers``, no members."""

    name: str
    members: tuple[MemberRoute, ...]
    tiers: TiersRoute | None = None
    canary: CanaryRoute | None = None
    routing: modelclass.RoutingSpec = msgspec.field(default_factory=modelclass.RoutingSpec)
    timeouts: modelclass.TimeoutsSpec = msgspec.field(default_factory=modelclass.TimeoutsSpec)
    health: modelclass.HealthSpec = msgspec.field(default_factory=modelclass.HealthSpec)
    streaming: modelclass.StreamingSpec = msgspec.field(default_factory=modelclass.StreamingSpec)
    limits: modelclass.LimitsSpec = msgspec.field(default_factory=modelclass.LimitsSpec)


class RoutesDocument(structs.Spec, frozen=True, kw_only=True):
    """Every class of one namespace."""

    schema_version: Literal[1] = 1  # SCHEMA_VERSION
    namespace: str = "default"
    classes: dict[str, ClassRoute] = msgspec.field(default_factory=dict)
    # the namespace's Budgets by name; the sidecars enforce them together
    budgets: dict[str, budget.BudgetSpec] = msgspec.field(default_factory=dict)

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

    def to_wire(self) -> dict[str, object]:
        """As the ConfigMap holds it: camelCase, absent optional fields (None) left out, defaults kept."""
        wire = _without_none(msgspec.to_builtins(self))
        assert isinstance(wire, dict)
        return wire

    def to_json(self) -> bytes:
        """Canonical bytes: sorted keys, so equal documents are byte-equal (no-op writes skipped)."""
        return orjson.dumps(self.to_wire(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)

    def digest(self) -> str:
        """Short content hash, reported by sidecars so the operator can see propagation."""
        return hashlib.sha256(self.to_json()).hexdigest()[:16]

    @classmethod
    def from_json(cls, data: bytes | str) -> RoutesDocument:
        """Parse and validate; raises DocumentError (naming the field) or msgspec.DecodeError (not JSON)."""
        try:
            return _DECODER.decode(data)
        except msgspec.ValidationError as exc:
            raise DocumentError(_located(exc, data)) from None


class DocumentError(ValueError):
    """The JSON is not a routes document this sidecar understands; the message names the field."""


_DECODER = msgspec.json.Decoder(RoutesDocument)


def _without_none(value: Any) -> Any:
    """pydantic's ``exclude_none`` on the builtins msgspec makes: the document's bytes as they always were."""
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):  # to_builtins keeps a tuple a tuple; orjson writes both as arrays
        return [_without_none(item) for item in value]
    return value


def _located(exc: msgspec.ValidationError, data: bytes | str) -> str:
    """``classes.workhorse.members[0].rpm: Expected `int` >= 1, got `0```, as the manifests name a field.

    msgspec says ``Expected ... - at `$.classes[...].members[0].rpm``` and writes a dict key as ``[...]``;
    the class or Budget it stands for is found by checking each entry of that dict on its own."""
    message, path = wire_structs.problem(exc)
    for field, kind in (("classes", ClassRoute), ("budgets", budget.BudgetSpec)):
        if not path.startswith(f"{field}[...]"):
            continue
        entries = msgspec.json.decode(data).get(field)
        for name, entry in entries.items() if isinstance(entries, dict) else ():
            try:
                msgspec.convert(entry, kind)
            except msgspec.ValidationError:
                path = path.replace("[...]", f".{name}", 1)
                break
    return f"{path}: {message}" if path else message
