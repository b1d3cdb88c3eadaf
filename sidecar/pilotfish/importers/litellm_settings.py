"""LiteLLM ``router_settings`` / ``litellm_settings`` / ``general_settings`` → the knobs of a ModelClass. Pure.

``importers.litellm`` calls ``read_settings`` once per config. LiteLLM accepts the reliability
settings in both ``router_settings`` and ``litellm_settings``; ``router_settings`` wins, as in the proxy.
Every key not read here is reported with the reason and the nearest Pilotfish equivalent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pilotfish.api import modelclass
from pilotfish.importers import unmapped

# Settings read from either section (router_settings first).
RELIABILITY_KEYS = (
    "num_retries",
    "timeout",
    "request_timeout",
    "stream_timeout",
    "cooldown_time",
    "allowed_fails",
    "fallbacks",
    "context_window_fallbacks",
    "default_fallbacks",
)
ROUTER_ONLY_KEYS = ("routing_strategy", "model_group_alias")

# routing_strategy → (Pilotfish strategy, why it is not exact; "" when it is).
STRATEGIES: Mapping[str, tuple[modelclass.Strategy, str]] = {
    "simple-shuffle": (modelclass.Strategy.WEIGHTED, ""),
    "latency-based-routing": (modelclass.Strategy.LEAST_LATENCY, ""),
    "least-busy": (
        modelclass.Strategy.LEAST_LATENCY,
        "a sidecar serves one pod, so in-flight counts per member say little; the fastest member is the nearest",
    ),
    "usage-based-routing": (
        modelclass.Strategy.WEIGHTED,
        "members' rpm/tpm are counted and a spent member is skipped (quota_spent), but among those with quota "
        "left the sidecar draws by weight, not the least used",
    ),
    "usage-based-routing-v2": (
        modelclass.Strategy.WEIGHTED,
        "members' rpm/tpm are counted and a spent member is skipped (quota_spent), but among those with quota "
        "left the sidecar draws by weight, not the least used",
    ),
    "cost-based-routing": (
        modelclass.Strategy.PRIORITY,
        "Pilotfish does not order members by cost",
    ),
}

# Keys with no equivalent, and the reason and nearest equivalent for each; anything else gets GENERIC.
NO_EQUIVALENT: Mapping[str, tuple[str, str]] = {
    "redis_host": ("sidecars share no router state", "none needed: each sidecar keeps its own circuits"),
    "redis_port": ("sidecars share no router state", "none needed: each sidecar keeps its own circuits"),
    "redis_password": ("sidecars share no router state", "none needed: each sidecar keeps its own circuits"),
    "redis_url": ("sidecars share no router state", "none needed: each sidecar keeps its own circuits"),
    "routing_strategy_args": ("tunes a LiteLLM strategy", "spec.routing.strategy"),
    "retry_policy": ("retries per exception type", "spec.routing.sameMemberRetries and the built-in failure policy"),
    "allowed_fails_policy": ("failure thresholds per exception type", "spec.health.failureThreshold"),
    "enable_pre_call_checks": ("always on in Pilotfish", "spec.members[].contextWindow skips members too small"),
    "content_policy_fallbacks": ("no per-error fallback groups", "spec.routing.onContentFilter: failover"),
    "success_callback": ("no logging callbacks", "Prometheus metrics, OpenTelemetry traces and the JSON request log"),
    "failure_callback": ("no logging callbacks", "Prometheus metrics, OpenTelemetry traces and the JSON request log"),
    "callbacks": ("no logging callbacks", "Prometheus metrics, OpenTelemetry traces and the JSON request log"),
    "drop_params": ("adapters translate each request for their provider", "none needed"),
    "set_verbose": ("logs are always structured JSON", "the request log on stdout"),
    "json_logs": ("logs are always structured JSON", "the request log on stdout"),
    "cache": ("no response cache", "none"),
    "cache_params": ("no response cache", "none"),
    "max_budget": ("no spend budgets yet", "the cost metric (pilotfish_cost_usd_total) with an alert"),
    "budget_duration": ("no spend budgets yet", "the cost metric (pilotfish_cost_usd_total) with an alert"),
    "master_key": (
        "the sidecar listens on the pod's loopback and needs no client key",
        "apps keep sending any api_key; network policy and the pod boundary replace virtual keys",
    ),
}
GENERIC = ("a LiteLLM proxy setting with no equivalent in a per-pod sidecar", "none")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The class-wide knobs found in a config, unset ones None."""

    num_retries: int | None = None
    timeout: float | None = None
    stream_timeout: float | None = None
    cooldown_time: float | None = None
    allowed_fails: int | None = None
    strategy: modelclass.Strategy = modelclass.Strategy.WEIGHTED  # LiteLLM's default is simple-shuffle
    fallbacks: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    context_window_fallbacks: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    default_fallbacks: tuple[str, ...] = ()
    aliases: Mapping[str, str] = dataclasses.field(default_factory=dict)  # alias → model group


def read_settings(config: Mapping[str, Any]) -> tuple[Settings, list[unmapped.Unmapped]]:
    warnings: list[unmapped.Unmapped] = []
    router = _section(config, "router_settings", warnings)
    module = _section(config, "litellm_settings", warnings)
    merged = {**{k: v for k, v in module.items() if k in RELIABILITY_KEYS}, **router}
    for name, section in (("router_settings", router), ("litellm_settings", module)):
        known = (*RELIABILITY_KEYS, *ROUTER_ONLY_KEYS) if name == "router_settings" else RELIABILITY_KEYS
        warnings.extend(_unknown(name, key) for key in section if key not in known)
    general = _section(config, "general_settings", warnings)
    warnings.extend(_unknown("general_settings", key) for key in general)
    fallbacks = _fallbacks(merged.get("fallbacks"), "fallbacks", warnings)
    defaults = fallbacks.pop("*", ()) + tuple(_names(merged.get("default_fallbacks")))
    settings = Settings(
        num_retries=_whole(merged.get("num_retries")),
        timeout=_positive(merged.get("timeout")) or _positive(merged.get("request_timeout")),
        stream_timeout=_positive(merged.get("stream_timeout")),
        cooldown_time=_positive(merged.get("cooldown_time")),
        allowed_fails=_whole(merged.get("allowed_fails")),
        strategy=_strategy(merged.get("routing_strategy"), warnings),
        fallbacks=fallbacks,
        context_window_fallbacks=_fallbacks(merged.get("context_window_fallbacks"), "context_window_fallbacks", []),
        default_fallbacks=defaults,
        aliases=_aliases(merged.get("model_group_alias")),
    )
    return settings, warnings


def _section(config: Mapping[str, Any], name: str, warnings: list[unmapped.Unmapped]) -> Mapping[str, Any]:
    section = config.get(name)
    if section is None:
        return {}
    if not isinstance(section, dict):
        warnings.append(unmapped.Unmapped(name, "not a mapping", "section ignored"))
        return {}
    return section


def _unknown(section: str, key: str) -> unmapped.Unmapped:
    reason, nearest = NO_EQUIVALENT.get(key, GENERIC)
    return unmapped.Unmapped(f"{section}.{key}", reason, nearest)


def _strategy(raw: object, warnings: list[unmapped.Unmapped]) -> modelclass.Strategy:
    if raw is None:
        return modelclass.Strategy.WEIGHTED
    strategy, gap = STRATEGIES.get(str(raw), (modelclass.Strategy.WEIGHTED, "unknown routing strategy"))
    if gap:
        warnings.append(
            unmapped.Unmapped(f"router_settings.routing_strategy ({raw})", gap, f"spec.routing.strategy: {strategy}")
        )
    return strategy


def _fallbacks(raw: object, name: str, warnings: list[unmapped.Unmapped]) -> dict[str, tuple[str, ...]]:
    """``[{"a": ["b", "c"]}, ...]`` → ``{"a": ("b", "c")}``; malformed items are reported, not guessed."""
    result: dict[str, tuple[str, ...]] = {}
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, dict):
            warnings.append(unmapped.Unmapped(f"{name}[{index}]", "not a {group: [groups]} mapping", "ignored"))
            continue
        for group, targets in item.items():
            result[str(group)] = result.get(str(group), ()) + tuple(_names(targets))
    return result


def _aliases(raw: object) -> dict[str, str]:
    result: dict[str, str] = {}
    for alias, target in (raw if isinstance(raw, dict) else {}).items():
        group = target.get("model") if isinstance(target, dict) else target
        if isinstance(group, str):
            result[str(alias)] = group
    return result


def _names(raw: object) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    return [str(name) for name in raw] if isinstance(raw, list) else []


def _positive(raw: object) -> float | None:
    return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0 else None


def _whole(raw: object) -> int | None:
    return int(raw) if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0 else None
