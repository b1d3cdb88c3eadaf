"""LiteLLM ``model_list`` entries → Pilotfish endpoints (future ProviderCredentials) and members. Pure.

``importers.litellm`` calls ``read_model_list`` once per config. Each entry names a *model group*
(``model_name``, which becomes a ModelClass) and a provider-prefixed model (``anthropic/claude-...``).
Providers Pilotfish speaks are carried over; any other entry is skipped with a warning, never guessed.

API keys: ``os.environ/NAME`` becomes a Secret reference with key ``NAME``; an entry without a key gets
the variable LiteLLM itself would read (``ANTHROPIC_API_KEY``...); a literal key is never copied.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pilotfish.api import budget, credential
from pilotfish.importers import unmapped

P = credential.ProviderType
ENV_PREFIX = "os.environ/"

# LiteLLM provider prefix → (Pilotfish provider, the variable LiteLLM reads the key from by default).
PROVIDERS: Mapping[str, tuple[credential.ProviderType, str]] = {
    "openai": (P.OPENAI, "OPENAI_API_KEY"),
    "anthropic": (P.ANTHROPIC, "ANTHROPIC_API_KEY"),
    "gemini": (P.GEMINI, "GEMINI_API_KEY"),
    "azure": (P.AZURE_OPENAI, "AZURE_API_KEY"),
    "hosted_vllm": (P.OPENAI_COMPATIBLE, "HOSTED_VLLM_API_KEY"),
    "custom_openai": (P.OPENAI_COMPATIBLE, "OPENAI_API_KEY"),
    "groq": (P.OPENAI_COMPATIBLE, "GROQ_API_KEY"),
    "mistral": (P.OPENAI_COMPATIBLE, "MISTRAL_API_KEY"),
    "openrouter": (P.OPENAI_COMPATIBLE, "OPENROUTER_API_KEY"),
    "xai": (P.OPENAI_COMPATIBLE, "XAI_API_KEY"),
    "deepseek": (P.OPENAI_COMPATIBLE, "DEEPSEEK_API_KEY"),
}
# OpenAI-compatible vendors' public endpoints, used when the entry has no api_base.
COMPATIBLE_BASE_URLS: Mapping[str, str] = {
    "groq": "https://api.groq.com/openai/v1",
    "mistral": "https://api.mistral.ai/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "xai": "https://api.x.ai/v1",
    "deepseek": "https://api.deepseek.com/v1",
}
# Bare model names (no provider prefix) that LiteLLM sends to OpenAI or Anthropic.
BARE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("chatgpt-", "openai"),
    ("text-embedding-", "openai"),
    ("claude-", "anthropic"),
)

LITELLM_PARAMS_MAPPED = frozenset(
    {"model", "api_key", "api_base", "api_version", "rpm", "tpm", "weight", "order", "timeout", "stream_timeout"}
    | {"max_tokens", "input_cost_per_token", "output_cost_per_token"}
)
ENTRY_LIMITS = ("rpm", "tpm")
ENTRY_KEYS = frozenset({"model_name", "litellm_params", "model_info", *ENTRY_LIMITS})
MODEL_INFO_MAPPED = frozenset(
    {"id", "mode", "max_input_tokens", "max_output_tokens", "input_cost_per_token", "output_cost_per_token"}
)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """What one ProviderCredential will hold; entries sharing all four share a credential."""

    provider: credential.ProviderType
    base_url: str | None
    key_env: str | None  # the Secret key (the environment variable's name); None: the endpoint takes no key
    api_version: str | None


@dataclasses.dataclass(frozen=True)
class ImportedMember:
    """One usable model_list entry."""

    group: str  # LiteLLM model_name: the class it belongs to
    endpoint: Endpoint
    model: str
    weight: float | None  # weight, else rpm, else tpm: what LiteLLM's simple-shuffle draws by
    order: int | None  # LiteLLM's deployment order: lower is tried first
    timeout: float | None
    stream_timeout: float | None
    context_window: int | None
    max_output_tokens: int | None
    pricing: tuple[float, float] | None  # USD per million input and output tokens
    rpm: int | None = None  # the deployment's provider quota: requests per minute
    tpm: int | None = None  # tokens per minute


@dataclasses.dataclass
class ModelList:
    members: list[ImportedMember] = dataclasses.field(default_factory=list)
    warnings: list[unmapped.Unmapped] = dataclasses.field(default_factory=list)
    literal_keys: list[str] = dataclasses.field(default_factory=list)  # Secret keys whose value must be filled in


def read_model_list(raw: object, *, environ: Mapping[str, str]) -> ModelList:
    """Every entry of ``model_list``; ``environ`` resolves ``os.environ/`` in non-secret fields (api_base)."""
    result = ModelList()
    if not isinstance(raw, list):
        result.warnings.append(unmapped.Unmapped("model_list", "missing or not a list", "declare the models"))
        return result
    for index, entry in enumerate(raw):
        _read_entry(entry, where=f"model_list[{index}]", environ=environ, into=result)
    return result


def _read_entry(entry: object, *, where: str, environ: Mapping[str, str], into: ModelList) -> None:
    found = _entry_params(entry, where=where, into=into)
    if found is None:
        return
    group, params, info = found
    provider_name, model = _split_model(params["model"])
    if provider_name not in PROVIDERS:
        into.warnings.append(
            unmapped.Unmapped(
                f"{where}.litellm_params.model",
                f"provider {provider_name or 'of ' + repr(params['model'])!s} is not one Pilotfish speaks "
                f"(openai, anthropic, gemini, azure, or an OpenAI-compatible endpoint)",
                "entry skipped; if the server offers an OpenAI-compatible API, use openai/<model> with its api_base",
            )
        )
        return
    endpoint = _endpoint(provider_name, params, where=where, environ=environ, into=into)
    if endpoint is None:
        return
    _warn_unmapped_keys(
        params, LITELLM_PARAMS_MAPPED, f"{where}.litellm_params", "apps send call parameters themselves", into
    )
    _warn_unmapped_keys(info, MODEL_INFO_MAPPED, f"{where}.model_info", "none: metadata the sidecar does not use", into)
    rpm, tpm = _limit(params, "rpm", where=where, into=into), _limit(params, "tpm", where=where, into=into)
    into.members.append(
        ImportedMember(
            group=group,
            endpoint=endpoint,
            model=model,
            weight=_number(params.get("weight")) or _number(params.get("rpm")) or _number(params.get("tpm")),
            order=_integer(params.get("order")),
            timeout=_number(params.get("timeout")),
            stream_timeout=_number(params.get("stream_timeout")),
            context_window=_integer(info.get("max_input_tokens")),
            max_output_tokens=_integer(params.get("max_tokens")) or _integer(info.get("max_output_tokens")),
            pricing=_pricing(params, info),
            rpm=rpm,
            tpm=tpm,
        )
    )


def _entry_params(
    entry: object, *, where: str, into: ModelList
) -> tuple[str, Mapping[str, Any], Mapping[str, Any]] | None:
    """(model_name, litellm_params, model_info) of a well-formed entry; None (and a warning) otherwise."""
    entry = entry if isinstance(entry, dict) else {}
    raw_params, group = entry.get("litellm_params"), entry.get("model_name")
    if not isinstance(raw_params, dict) or not isinstance(group, str) or not isinstance(raw_params.get("model"), str):
        into.warnings.append(
            unmapped.Unmapped(where, "needs model_name and litellm_params.model", "entry skipped: fix and re-run")
        )
        return None
    for key in entry:
        if key not in ENTRY_KEYS:
            into.warnings.append(unmapped.Unmapped(f"{where}.{key}", "not a model_list field Pilotfish knows", "none"))
    # LiteLLM also takes rpm/tpm beside litellm_params; litellm_params wins.
    params = {**{k: entry[k] for k in ENTRY_LIMITS if k in entry}, **raw_params}
    raw_info = entry.get("model_info")
    return group, params, raw_info if isinstance(raw_info, dict) else {}


def _split_model(model: str) -> tuple[str, str]:
    provider, slash, rest = model.partition("/")
    if slash and rest:
        return provider, rest
    bare = next((vendor for prefix, vendor in BARE_PREFIXES if model.startswith(prefix)), "")
    return bare, model


def _endpoint(
    provider_name: str,
    params: Mapping[str, Any],
    *,
    where: str,
    environ: Mapping[str, str],
    into: ModelList,
) -> Endpoint | None:
    provider, default_env = PROVIDERS[provider_name]
    base_url = _resolve(params.get("api_base"), f"{where}.litellm_params.api_base", environ, into)
    api_version = _resolve(params.get("api_version"), f"{where}.litellm_params.api_version", environ, into)
    if provider == P.AZURE_OPENAI:
        api_version = api_version or _resolve(f"{ENV_PREFIX}AZURE_API_VERSION", where, environ, into=None)
        base_url = base_url or _resolve(f"{ENV_PREFIX}AZURE_API_BASE", where, environ, into=None)
    base_url = base_url or COMPATIBLE_BASE_URLS.get(provider_name)
    if provider == P.OPENAI and base_url and "api.openai.com" not in base_url:
        provider = P.OPENAI_COMPATIBLE  # openai/<model> with an api_base is how LiteLLM reaches compatible servers
    if provider in credential.BASE_URL_REQUIRED and not base_url:
        into.warnings.append(
            unmapped.Unmapped(
                f"{where}.litellm_params.api_base", f"{provider.value} needs an api_base", "entry skipped"
            )
        )
        return None
    return Endpoint(provider, base_url, _key_env(params.get("api_key"), default_env, where, into), api_version)


def _key_env(raw: object, default_env: str, where: str, into: ModelList) -> str:
    """The Secret key for this entry's API key; the value itself is never read here."""
    if isinstance(raw, str) and raw.startswith(ENV_PREFIX):
        return raw.removeprefix(ENV_PREFIX)
    if raw:
        into.warnings.append(
            unmapped.Unmapped(
                f"{where}.litellm_params.api_key",
                "a literal key in the config is not copied (manifests are not the place for secrets)",
                f"fill in key {default_env} of the Secret skeleton",
            )
        )
        into.literal_keys.append(default_env)
    return default_env


def _resolve(raw: object, setting: str, environ: Mapping[str, str], into: ModelList | None) -> str | None:
    if not isinstance(raw, str) or not raw:
        return None
    if not raw.startswith(ENV_PREFIX):
        return raw
    name = raw.removeprefix(ENV_PREFIX)
    if name in environ:
        return environ[name]
    if into is not None:
        into.warnings.append(
            unmapped.Unmapped(
                setting,
                f"reads {name} from the environment, which was not set when importing",
                f"set {name} (or the field in the output) and re-run",
            )
        )
    return None


def _warn_unmapped_keys(
    section: Mapping[str, Any], mapped: frozenset[str], where: str, nearest: str, into: ModelList
) -> None:
    for key in section:
        if key not in mapped:
            into.warnings.append(unmapped.Unmapped(f"{where}.{key}", "no per-member equivalent in Pilotfish", nearest))


def _limit(params: Mapping[str, Any], name: str, *, where: str, into: ModelList) -> int | None:
    """The deployment's rpm or tpm, carried to the member's own quota field (docs/quotas.md)."""
    raw = params.get(name)
    value = _integer(raw)
    top = budget.MAX_REQUESTS_PER_MINUTE if name == "rpm" else budget.MAX_TOKENS_PER_MINUTE
    if raw is not None and (value is None or value > top):
        into.warnings.append(
            unmapped.Unmapped(
                f"{where}.litellm_params.{name}",
                f"not a whole number from 1 to {top}",
                "the member has no such quota: set it by hand",
            )
        )
        return None
    return value


def _pricing(params: Mapping[str, Any], info: Mapping[str, Any]) -> tuple[float, float] | None:
    per_token_in = _number(params.get("input_cost_per_token")) or _number(info.get("input_cost_per_token"))
    per_token_out = _number(params.get("output_cost_per_token")) or _number(info.get("output_cost_per_token"))
    if per_token_in is None and per_token_out is None:
        return None
    return (per_token_in or 0.0) * 1e6, (per_token_out or 0.0) * 1e6


def _number(raw: object) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        return None
    return float(raw)


def _integer(raw: object) -> int | None:
    number = _number(raw)
    return int(number) if number is not None and number >= 1 else None
