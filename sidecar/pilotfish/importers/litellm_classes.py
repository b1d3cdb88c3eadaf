"""Model groups + router settings → one ModelClassSpec per group. Pure; called by ``importers.litellm``.

How LiteLLM's behaviour is carried over:

- A group's own entries are its members. ``order`` becomes priority; ``weight`` (else ``rpm``, else
  ``tpm``, scaled to 1..1000) becomes weight, which is what LiteLLM's simple-shuffle draws by.
- ``rpm``/``tpm`` also become the member's own ``rpm``/``tpm``: the provider quota the sidecars share
  (docs/quotas.md). A fallback group's members carry theirs into the class they are appended to,
  where they are counted apart from their own class's.
- ``fallbacks`` (and ``default_fallbacks``): the fallback groups' members are appended at priority
  ``FALLBACK_PRIORITY`` + position, so they are tried only after every own member, in the same single
  failover loop. ``context_window_fallbacks`` likewise at ``CONTEXT_FALLBACK_PRIORITY``: the sidecar
  skips an own member whose ``contextWindow`` is below the prompt estimate and reaches them.
- ``num_retries`` N: LiteLLM makes N + 1 calls per group, so maxAttempts = (N + 1) x groups (max 10).
- ``timeout`` → totalSeconds; ``stream_timeout`` → firstTokenSeconds; ``cooldown_time`` →
  cooldownSeconds; ``allowed_fails`` A (cool down after more than A failures) → failureThreshold A + 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pilotfish.api import modelclass
from pilotfish.importers import litellm_models, litellm_settings, unmapped

FALLBACK_PRIORITY = 100  # after any own member (LiteLLM orders are small integers)
CONTEXT_FALLBACK_PRIORITY = 200  # after the ordinary fallbacks
MAX_MEMBERS = 32  # ModelClassSpec.members max_length
MAX_WEIGHT = 1000  # MemberSpec.weight maximum
MAX_ATTEMPTS = 10  # RoutingSpec.max_attempts maximum

Members = Sequence[litellm_models.ImportedMember]
Credentials = Mapping[litellm_models.Endpoint, str]


def class_specs(
    members: Members,
    settings: litellm_settings.Settings,
    *,
    credentials: Credentials,
    warnings: list[unmapped.Unmapped],
) -> dict[str, modelclass.ModelClassSpec]:
    """Group → spec, in the order groups first appear; aliases (model_group_alias) copy their target."""
    groups: dict[str, list[litellm_models.ImportedMember]] = {}
    for member in members:
        groups.setdefault(member.group, []).append(member)
    for source in [*settings.fallbacks, *settings.context_window_fallbacks]:
        if source not in groups:
            warnings.append(
                unmapped.Unmapped(f"fallbacks of {source!r}", "that model group was not converted", "ignored")
            )
    specs: dict[str, modelclass.ModelClassSpec] = {}
    for group, own in groups.items():
        fallbacks = [g for g in settings.fallbacks.get(group, settings.default_fallbacks) if g != group]
        context = [g for g in settings.context_window_fallbacks.get(group, ()) if g != group]
        _warn_missing_groups(group, [*fallbacks, *context], groups, warnings)
        chosen = _members(own, settings.strategy, credentials)
        for names, start in ((fallbacks, FALLBACK_PRIORITY), (context, CONTEXT_FALLBACK_PRIORITY)):
            for position, name in enumerate(names):
                chosen += _members(groups.get(name, []), None, credentials, priority=start + position)
        if context and any(m.context_window is None for m in own):
            warnings.append(_context_window_warning(group))
        if len({(m.timeout, m.stream_timeout) for m in own}) > 1:
            warnings.append(_timeouts_warning(group))
        specs[group] = _spec(group, _unique(chosen, group, warnings), settings, own, 1 + len(fallbacks) + len(context))
    for alias, target in settings.aliases.items():
        if target in specs and alias not in specs:
            specs[alias] = specs[target]
        elif target not in specs:
            warnings.append(unmapped.Unmapped(f"model_group_alias.{alias}", f"{target!r} is not a model group", "none"))
    return specs


def _members(
    own: Members,
    strategy: modelclass.Strategy | None,
    credentials: Credentials,
    *,
    priority: int | None = None,
) -> list[modelclass.MemberSpec]:
    weights = _weights([m.weight for m in own])
    result = []
    for member, weight in zip(own, weights, strict=True):
        fields: dict[str, object] = {"credential_ref": credentials[member.endpoint], "model": member.model}
        explicit = priority if priority is not None else (member.order - 1 if member.order else None)
        if explicit is not None:
            fields["priority"] = min(explicit, 1000)
        if weight != 1 and strategy != modelclass.Strategy.PRIORITY:
            fields["weight"] = weight
        if member.context_window:
            fields["context_window"] = member.context_window
        if member.max_output_tokens:
            fields["max_output_tokens"] = member.max_output_tokens
        if member.rpm:
            fields["rpm"] = member.rpm
        if member.tpm:
            fields["tpm"] = member.tpm
        if member.pricing:
            fields["pricing"] = modelclass.Pricing(
                input_per_million_tokens=member.pricing[0], output_per_million_tokens=member.pricing[1]
            )
        result.append(modelclass.MemberSpec.model_validate(fields))
    return result


def _weights(raw: Sequence[float | None]) -> list[int]:
    """Relative weights scaled to whole numbers in 1..MAX_WEIGHT (tpm values run to millions)."""
    largest = max((w for w in raw if w), default=None)
    if largest is None:
        return [1] * len(raw)
    scale = min(1.0, MAX_WEIGHT / largest)
    return [max(1, round((w or largest) * scale)) for w in raw]


def _unique(
    members: list[modelclass.MemberSpec], group: str, warnings: list[unmapped.Unmapped]
) -> list[modelclass.MemberSpec]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for member in members:
        if (member.credential_ref, member.model) not in seen:
            seen.add((member.credential_ref, member.model))
            unique.append(member)
    if len(unique) > MAX_MEMBERS:
        warnings.append(
            unmapped.Unmapped(
                f"model group {group!r}",
                f"{len(unique)} members with its fallbacks; a class holds at most {MAX_MEMBERS}",
                f"the first {MAX_MEMBERS} are kept: split the group",
            )
        )
    return unique[:MAX_MEMBERS]


def _spec(
    group: str,
    members: list[modelclass.MemberSpec],
    settings: litellm_settings.Settings,
    own: Members,
    groups_tried: int,
) -> modelclass.ModelClassSpec:
    routing: dict[str, object] = {"strategy": settings.strategy}
    if settings.num_retries is not None or groups_tried > 1:
        per_group = (settings.num_retries if settings.num_retries is not None else 2) + 1
        routing["max_attempts"] = max(1, min(MAX_ATTEMPTS, per_group * groups_tried))
    fields: dict[str, object] = {"members": members, "routing": routing}
    timeouts = _timeouts(settings, own)
    if timeouts:
        fields["timeouts"] = timeouts
    health: dict[str, object] = {}
    if settings.cooldown_time is not None:
        health["cooldown_seconds"] = min(settings.cooldown_time, 3600.0)
    if settings.allowed_fails is not None:
        health["failure_threshold"] = min(settings.allowed_fails + 1, 100)
    if health:
        fields["health"] = health
    return modelclass.ModelClassSpec.model_validate(fields)


def _timeouts(settings: litellm_settings.Settings, own: Members) -> dict[str, float]:
    """A class has one set of deadlines; LiteLLM's per-entry ones are merged by taking the longest."""
    total = max([t for t in (m.timeout for m in own) if t] or [settings.timeout or 0.0]) or None
    first = max([t for t in (m.stream_timeout for m in own) if t] or [settings.stream_timeout or 0.0]) or None
    timeouts: dict[str, float] = {}
    if total is not None:
        timeouts["total_seconds"] = min(total, 3600.0)
    if first is not None or (total is not None and total < 15.0):
        timeouts["first_token_seconds"] = min(first or 15.0, timeouts.get("total_seconds", 300.0), 600.0)
    return timeouts


def _warn_missing_groups(
    group: str, targets: Sequence[str], groups: Mapping[str, object], warnings: list[unmapped.Unmapped]
) -> None:
    for target in targets:
        if target not in groups:
            warnings.append(
                unmapped.Unmapped(
                    f"fallbacks of {group!r}", f"{target!r} is not a model group that was converted", "ignored"
                )
            )


def _context_window_warning(group: str) -> unmapped.Unmapped:
    return unmapped.Unmapped(
        f"context_window_fallbacks of {group!r}",
        "LiteLLM knows each model's context window from its own model map; Pilotfish needs it declared",
        f"set contextWindow on {group!r}'s own members (model_info.max_input_tokens) so long prompts skip them",
    )


def _timeouts_warning(group: str) -> unmapped.Unmapped:
    return unmapped.Unmapped(
        f"litellm_params.timeout/stream_timeout of {group!r}",
        "differ between entries; Pilotfish has one set of deadlines per class",
        "spec.timeouts of the class, set to the longest",
    )
