"""ProviderType → adapter module: the one switch. Adding a provider is one module and one line here."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pilotfish.providers import anthropic, azure_openai, base, gemini, gemini_embeddings, openai, openai_embeddings
from pilotfish.specs import credential

ADAPTERS: Mapping[credential.ProviderType, base.Adapter] = MappingProxyType(
    {
        credential.ProviderType.OPENAI: openai,
        credential.ProviderType.OPENAI_COMPATIBLE: openai,
        credential.ProviderType.ANTHROPIC: anthropic,
        credential.ProviderType.AZURE_OPENAI: azure_openai,
        credential.ProviderType.GEMINI: gemini,
    }
)


# Providers with an embeddings API; a member of any other provider is skipped for embeddings.
EMBEDDERS: Mapping[credential.ProviderType, base.Embedder] = MappingProxyType(
    {
        credential.ProviderType.OPENAI: openai_embeddings,
        credential.ProviderType.OPENAI_COMPATIBLE: openai_embeddings,
        credential.ProviderType.AZURE_OPENAI: azure_openai,
        credential.ProviderType.GEMINI: gemini_embeddings,
    }
)


def embedder_for(provider: credential.ProviderType) -> base.Embedder | None:
    """The embeddings half of a provider, or None for a provider without an embeddings API."""
    return EMBEDDERS.get(provider)


def adapter_for(provider: credential.ProviderType) -> base.Adapter:
    """The adapter for a provider type; KeyError names a provider this build cannot speak yet."""
    try:
        return ADAPTERS[provider]
    except KeyError:
        raise KeyError(f"provider {provider.value!r} is not supported by this sidecar version") from None


def supported() -> frozenset[credential.ProviderType]:
    return frozenset(ADAPTERS)
