"""ModelClass: an equivalence class of models (``workhorse``) that apps ask for by name.

Members are tried in priority order (list order unless ``priority`` is given); equal priorities split
traffic by ``weight``. Every knob has a default a platform team would pick, so the smallest useful
class is a list of members.
"""

from __future__ import annotations

from typing import Literal

import pydantic

from pilotfish.api import base, budget, refs
from pilotfish.api import canary as canary_api  # `canary` is also a field name below
from pilotfish.api import tiers as tiers_api  # `tiers` is also a field name below
from pilotfish.specs import budget as budget_specs
from pilotfish.specs import modelclass as modelclass_specs

KIND = "ModelClass"
PLURAL = "modelclasses"
SHORT_NAMES = ("mc",)

# A class name is what apps put in `model`; keep it a DNS label so it is also a valid object name.
CLASS_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


Pricing = refs.Pricing  # shared with canary members


class MemberSpec(base.ApiModel):
    """One member: a credential and a model at that provider."""

    credential_ref: str = pydantic.Field(
        min_length=1, max_length=253, description="Name of a ProviderCredential in this namespace."
    )
    model: str = pydantic.Field(
        min_length=1, max_length=256, description="The provider's model (or Azure deployment) name."
    )
    priority: int | None = pydantic.Field(
        default=None,
        ge=0,
        le=1000,
        description="Lower is preferred. Defaults to the member's position in the list, or to 0 for every "
        "member under the weighted strategy (so they split traffic by weight).",
    )
    weight: int = pydantic.Field(default=1, ge=1, le=1000, description="Traffic share among members of equal priority.")
    context_window: int | None = pydantic.Field(
        default=None,
        ge=1,
        description="Tokens the model accepts; requests estimated larger skip this member.",
    )
    max_output_tokens: int | None = pydantic.Field(
        default=None,
        ge=1,
        description="max_tokens sent when the request has none (providers such as anthropic need one).",
    )
    pricing: Pricing | None = None
    prefill: bool | None = pydantic.Field(
        default=None,
        description="Whether this model continues a trailing assistant message (a prefill) instead of starting "
        "over; overrides the credential's capabilities.prefill, since the behaviour is per model. A member that "
        "rejects a prefill or starts over is learned unable to continue at run time either way.",
    )
    rpm: int | None = pydantic.Field(
        default=None,
        ge=1,
        le=budget.MAX_REQUESTS_PER_MINUTE,
        description="The provider's requests-per-minute quota for this model, shared by every sidecar of the "
        "namespace: once this pod's share of the minute is spent, requests skip this member (quota_spent) before "
        "the provider has to answer 429. docs/quotas.md.",
    )
    tpm: int | None = pydantic.Field(
        default=None,
        ge=1,
        le=budget.MAX_TOKENS_PER_MINUTE,
        description="The provider's tokens-per-minute quota (prompt + completion), shared like rpm.",
    )

    def quota(self) -> budget_specs.BudgetSpec | None:
        """The member's provider quota as rate limits the budget allowances count (None: no quota)."""
        return budget.rate_limits(requests_per_minute=self.rpm, tokens_per_minute=self.tpm)


Strategy = modelclass_specs.Strategy  # one definition, shared with the sidecar's runtime specs


class PinningSpec(base.ApiModel):
    """Conversation pinning: requests with this header stay on the member that served them first."""

    header: str = pydantic.Field(default="x-conversation-id", min_length=1, max_length=128)
    ttl_seconds: int = pydantic.Field(default=3600, ge=1, description="How long a pin is remembered.")


class RoutingSpec(base.ApiModel):
    """How members are ordered and how many of them one request may try."""

    strategy: Strategy = Strategy.PRIORITY
    max_attempts: int = pydantic.Field(default=3, ge=1, le=10, description="Upstream calls per request.")
    retry_budget_percent: float = pydantic.Field(
        default=20.0,
        ge=0,
        le=100,
        description="Retries and failovers allowed, as a percentage of recent first attempts.",
    )
    pinning: PinningSpec | None = None
    hedge: bool = pydantic.Field(
        default=False,
        description="At a member's adaptive first-token deadline, also start the next member and keep whichever "
        "sends content first (the other is cancelled). Each hedge is one more upstream call and spends the retry "
        "budget; with the budget used up the first member is abandoned there, as without hedging.",
    )
    same_member_retries: int = pydantic.Field(
        default=1,
        ge=0,
        le=3,
        description="Quick retries on the same member after a transient 5xx or a reset, before failing over "
        "(each within the retry budget and maxAttempts).",
    )
    max_retry_after_wait_seconds: float = pydantic.Field(
        default=5.0,
        ge=0,
        le=60,
        description="A 429 whose Retry-After is at most this is waited out and retried once on the same member, "
        "even if that takes the last member's turn (within maxAttempts, totalSeconds and the retry budget); "
        "longer or absent: fail over at once and keep the member's circuit open for the Retry-After.",
    )
    on_content_filter: Literal["fail", "failover"] = pydantic.Field(
        default="fail",
        description="A request one vendor refused for content: answer the refusal (fail), or let another vendor "
        "try (failover; a compliance decision).",
    )


class AdaptiveFirstTokenSpec(base.ApiModel):
    """A first-token deadline per member from its own recent times to first token.

    The deadline for an attempt is ``min(firstTokenSeconds, max(floorSeconds, multiple x p95))`` of the
    member's recent first tokens, once it has ``minSamples`` of them: a member that usually answers in
    300 ms and goes silent is abandoned at the floor, not at firstTokenSeconds, while a member that
    usually thinks for 10 s keeps its long wait. It only ever shortens firstTokenSeconds, and applies only
    when another member is there to take over."""

    enabled: bool = True
    multiple: float = pydantic.Field(
        default=4.0, ge=1, le=100, description="Times the member's recent p95 time to first token."
    )
    floor_seconds: float = pydantic.Field(
        default=2.0, gt=0, le=600, description="Never abandon an attempt sooner than this."
    )
    min_samples: int = pydantic.Field(
        default=20, ge=1, le=64, description="First tokens measured before the adaptive deadline applies."
    )


class TimeoutsSpec(base.ApiModel):
    """Deadlines per attempt; a slow provider is abandoned at firstTokenSeconds, or sooner when it is
    far slower than its own normal (``adaptiveFirstToken``)."""

    connect_seconds: float = pydantic.Field(default=2.0, gt=0, le=60)
    first_token_seconds: float = pydantic.Field(default=15.0, gt=0, le=600)
    total_seconds: float = pydantic.Field(
        default=300.0,
        gt=0,
        le=3600,
        description="The whole request's deadline: every attempt, Retry-After wait and mid-stream recovery.",
    )
    stream_idle_seconds: float | None = pydantic.Field(
        default=None,
        gt=0,
        le=600,
        description="Longest silence allowed once a stream has started (a stall beyond it is a failure, "
        "recovered on another member where possible). Default: firstTokenSeconds.",
    )

    adaptive_first_token: AdaptiveFirstTokenSpec = pydantic.Field(default_factory=AdaptiveFirstTokenSpec)

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> TimeoutsSpec:
        """Checked by pydantic and the validating webhook (the CRD schema has no rule for it), by the runtime
        twin's rule: one definition for the webhook and the sidecar."""
        self.to_runtime(modelclass_specs.TimeoutsSpec)
        return self


class HealthSpec(base.ApiModel):
    """The per-member circuit breaker."""

    failure_threshold: int = pydantic.Field(default=3, ge=1, le=100)
    cooldown_seconds: float = pydantic.Field(default=60.0, gt=0, le=3600)


class ComplianceSpec(base.ApiModel):
    """Labels a member's ProviderCredential must carry for the member to serve this class."""

    require: dict[str, str] = pydantic.Field(default_factory=dict)


class SpliceSpec(base.ApiModel):
    """Regenerate and splice: finish a broken stream when no member can continue it.

    The next member is asked for the whole answer again; its output is held until it has reproduced the
    delivered text exactly, and only the rest is streamed. If it says anything else, the stream ends with
    the in-band error. Sound only where members answer deterministically (the same model at temperature
    0 from another deployment, a deterministic server), hence off by default."""

    enabled: bool = False
    max_seconds: float = pydantic.Field(
        default=30.0, gt=0, le=600, description="Longest wait for the regenerated answer to reach the seam."
    )
    max_tokens: int = pydantic.Field(
        default=1024,
        ge=1,
        le=32768,
        description="Splice only answers cut after at most this many delivered chunks (about one token each): "
        "each is generated and paid for again.",
    )


class StreamingSpec(base.ApiModel):
    """How a streamed answer is released to the client."""

    hold_back_tokens: int = pydantic.Field(
        default=0,
        ge=0,
        le=4096,
        description="Buffer this many content chunks (about one token each) before anything is sent, so a failure "
        "inside that window fails over invisibly to any member. 0: pure streaming.",
    )
    splice: SpliceSpec = pydantic.Field(default_factory=SpliceSpec)


MIB = modelclass_specs.MIB


class LimitsSpec(base.ApiModel):
    """How large an upstream answer the sidecar buffers for one request of this class.

    A non-streaming answer is held whole before it is sent; these caps keep one answer from taking
    the sidecar's memory (its container's limit is 128Mi by default). Streaming answers are not
    buffered and have no cap here. An answer over its cap is a failure of that member
    (``response_too_large``): the next member is tried, and the client gets a 502 if none fits.
    """

    max_chat_response_bytes: int = pydantic.Field(
        default=8 * MIB,
        ge=64 * 1024,
        le=64 * MIB,
        description="Bytes of one chat answer from upstream (as streamed, after decompression) buffered for a "
        "non-streaming client. Default 8Mi: about 30 000 output tokens; stream longer answers.",
    )
    max_embeddings_response_bytes: int = pydantic.Field(
        default=8 * MIB,
        ge=64 * 1024,
        le=64 * MIB,
        description="Bytes of one embeddings answer from upstream (JSON, after decompression). Default 8Mi: about "
        "250 vectors of 1536 floats; split larger batches, or raise this together with the sidecar's memory limit.",
    )


class ModelClassSpec(base.ApiModel):
    """spec of a ModelClass."""

    members: list[MemberSpec] = pydantic.Field(
        default_factory=list, max_length=32, description="The models of this class; empty when it has tiers."
    )
    tiers: tiers_api.TiersSpec | None = pydantic.Field(
        default=None, description="Route each request to one of other classes instead of to members of its own."
    )
    routing: RoutingSpec = pydantic.Field(default_factory=RoutingSpec)
    timeouts: TimeoutsSpec = pydantic.Field(default_factory=TimeoutsSpec)
    health: HealthSpec = pydantic.Field(default_factory=HealthSpec)
    compliance: ComplianceSpec = pydantic.Field(default_factory=ComplianceSpec)
    streaming: StreamingSpec = pydantic.Field(default_factory=StreamingSpec)
    limits: LimitsSpec = pydantic.Field(default_factory=LimitsSpec)
    canary: canary_api.CanarySpec | None = pydantic.Field(
        default=None, description="Roll a new member out by weight, judged by live metrics."
    )

    @pydantic.model_validator(mode="after")
    def _members_or_tiers(self) -> ModelClassSpec:
        if bool(self.members) == (self.tiers is not None):
            raise ValueError("set exactly one of members (a class of models) and tiers (a class of classes)")
        if self.tiers is not None and self.canary is not None:
            raise ValueError("canary needs members: a class with tiers rolls out canaries in its tier classes")
        return self

    @pydantic.model_validator(mode="after")
    def _canary_is_new(self) -> ModelClassSpec:
        if self.canary is not None:
            new = (self.canary.member.credential_ref, self.canary.member.model)
            if new in {(m.credential_ref, m.model) for m in self.members}:
                raise ValueError(f"canary.member {new[0]}/{new[1]} is already in members")
        return self

    @pydantic.model_validator(mode="after")
    def _members_unique(self) -> ModelClassSpec:
        seen: set[tuple[str, str]] = set()
        for index, member in enumerate(self.members):
            key = (member.credential_ref, member.model)
            if key in seen:
                raise ValueError(
                    f"members[{index}] repeats credentialRef {member.credential_ref!r} with model {member.model!r}"
                )
            seen.add(key)
        return self


class MemberStatus(base.ApiModel):
    """Whether one member can serve, and why not."""

    credential_ref: str
    model: str
    eligible: bool
    reason: str = ""
    message: str = ""


class ModelClassStatus(base.ApiModel):
    """status of a ModelClass, written by the operator."""

    model_config = pydantic.ConfigDict(extra="allow")
    observed_generation: int | None = None
    conditions: list[refs.Condition] = pydantic.Field(default_factory=list)
    member_count: int | None = pydantic.Field(default=None, description="Members in spec.")
    eligible_count: int | None = pydantic.Field(default=None, description="Members that can serve.")
    members: list[MemberStatus] = pydantic.Field(default_factory=list)
    routes_digest: str | None = pydantic.Field(
        default=None, description="Digest of the routes document this class was last written into."
    )
    canary: canary_api.CanaryStatus | None = None


class ModelClass(base.ApiModel):
    """A whole ModelClass object as ``kubectl apply`` takes it."""

    model_config = pydantic.ConfigDict(extra="ignore")
    api_version: Literal["pilotfish.dev/v1alpha1"] = "pilotfish.dev/v1alpha1"
    kind: Literal["ModelClass"] = "ModelClass"
    metadata: base.ObjectMeta
    spec: ModelClassSpec

    @pydantic.model_validator(mode="after")
    def _not_its_own_tier(self) -> ModelClass:
        """Checked by pydantic and the validating webhook: CEL on spec cannot see metadata.name."""
        if self.spec.tiers is not None and self.metadata.name in self.spec.tiers.ladder:
            raise ValueError(f"spec.tiers.ladder names the class itself ({self.metadata.name!r})")
        return self
