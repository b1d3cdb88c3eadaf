"""A class's knobs as the routes document carries them: routing, timeouts, health, streaming, limits.

``pilotfish.api.modelclass`` documents every field (the CRD schema is generated from it); these
twins carry the same names, defaults, bounds and cross-field checks, so a routes document written by
hand or by another operator version is held to the same rules.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import msgspec

from pilotfish.specs import refs, structs

Pricing = refs.Pricing  # shared with canary members
MIB = 1024 * 1024


class Strategy(enum.StrEnum):
    """How the first member of an attempt plan is chosen."""

    PRIORITY = "priority"
    WEIGHTED = "weighted"
    LEAST_LATENCY = "least-latency"


class PinningSpec(structs.Spec, frozen=True, kw_only=True):
    """Conversation pinning: requests with this header stay on the member that served them first."""

    header: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] = "x-conversation-id"
    ttl_seconds: Annotated[int, msgspec.Meta(ge=1)] = 3600


class RoutingSpec(structs.Spec, frozen=True, kw_only=True):
    """How members are ordered and how many of them one request may try."""

    strategy: Strategy = Strategy.PRIORITY
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
    retry_budget_percent: Annotated[float, msgspec.Meta(ge=0, le=100)] = 20.0
    pinning: PinningSpec | None = None
    hedge: bool = False
    same_member_retries: Annotated[int, msgspec.Meta(ge=0, le=3)] = 1
    max_retry_after_wait_seconds: Annotated[float, msgspec.Meta(ge=0, le=60)] = 5.0
    on_content_filter: Literal["fail", "failover"] = "fail"


class AdaptiveFirstTokenSpec(structs.Spec, frozen=True, kw_only=True):
    """A first-token deadline per member from its own recent times to first token (``failover.deadlines``)."""

    enabled: bool = True
    multiple: Annotated[float, msgspec.Meta(ge=1, le=100)] = 4.0
    floor_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 2.0
    min_samples: Annotated[int, msgspec.Meta(ge=1, le=64)] = 20


class TimeoutsSpec(structs.Spec, frozen=True, kw_only=True):
    """Deadlines per attempt and for the whole request."""

    connect_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0
    first_token_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 15.0
    total_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 300.0
    stream_idle_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] | None = None
    adaptive_first_token: AdaptiveFirstTokenSpec = msgspec.field(default_factory=AdaptiveFirstTokenSpec)

    @property
    def idle_seconds(self) -> float:
        return self.stream_idle_seconds or self.first_token_seconds

    def __post_init__(self) -> None:
        if self.first_token_seconds > self.total_seconds:
            raise ValueError(
                f"firstTokenSeconds ({self.first_token_seconds:g}) exceeds totalSeconds ({self.total_seconds:g}): "
                "no attempt could ever reach its first-token deadline"
            )


class HealthSpec(structs.Spec, frozen=True, kw_only=True):
    """The per-member circuit breaker."""

    failure_threshold: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    cooldown_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0


class SpliceSpec(structs.Spec, frozen=True, kw_only=True):
    """Regenerate and splice: finish a broken stream when no member can continue it (off by default)."""

    enabled: bool = False
    max_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 30.0
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=32768)] = 1024


class StreamingSpec(structs.Spec, frozen=True, kw_only=True):
    """How a streamed answer is released to the client."""

    hold_back_tokens: Annotated[int, msgspec.Meta(ge=0, le=4096)] = 0
    splice: SpliceSpec = msgspec.field(default_factory=SpliceSpec)


class LimitsSpec(structs.Spec, frozen=True, kw_only=True):
    """How large an upstream answer the sidecar buffers for one request of this class."""

    max_chat_response_bytes: Annotated[int, msgspec.Meta(ge=64 * 1024, le=64 * MIB)] = 8 * MIB
    max_embeddings_response_bytes: Annotated[int, msgspec.Meta(ge=64 * 1024, le=64 * MIB)] = 8 * MIB
