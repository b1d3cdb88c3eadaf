"""ProviderCredential: where a provider lives, which Secret holds its key, which labels it carries.

Platform teams own these; a ModelClass member points at one by name. ``compliance`` labels are
free-form (``dpa: signed``, ``region: eu``) and matched by ``ModelClass.spec.compliance.require``.
"""

from __future__ import annotations

from typing import Literal

import pydantic

from pilotfish.api import base, refs
from pilotfish.specs import credential as credential_specs

KIND = "ProviderCredential"
PLURAL = "providercredentials"
# Not "pc": that is PriorityClass's built-in short name, and kubectl resolves it to priority classes.
SHORT_NAMES = ("pcred",)


# One definition, shared with the sidecar's runtime specs (which never import pydantic).
ProviderType = credential_specs.ProviderType
DEFAULT_BASE_URLS = credential_specs.DEFAULT_BASE_URLS
BASE_URL_REQUIRED = credential_specs.BASE_URL_REQUIRED
LOOPBACK_HTTP = credential_specs.LOOPBACK_HTTP
PLAIN_HTTP_REFUSED = credential_specs.PLAIN_HTTP_REFUSED
sends_key_in_plain_text = credential_specs.sends_key_in_plain_text
PREFILL_BY_DEFAULT = credential_specs.PREFILL_BY_DEFAULT
ProbeKind = credential_specs.ProbeKind


class Capabilities(base.ApiModel):
    """What this endpoint can do beyond the common chat API."""

    prefill: bool | None = pydantic.Field(
        default=None,
        description="Continues a trailing assistant message (used to finish a stream another member cut). "
        "Default by provider: anthropic and gemini true, openai and azure-openai false, openai-compatible false.",
    )


class ProbeSpec(base.ApiModel):
    """Active health probes: while a member on this credential has an open circuit, the sidecar finds out
    itself whether it is back, and no user request is ever sent to it to find out."""

    kind: ProbeKind = pydantic.Field(
        default=ProbeKind.GENERATION,
        description="generation: a chat completion of a fixed prompt with a 1-token limit (about 10 tokens); "
        "models: the vendor's model list (openai, openai-compatible, anthropic, gemini; no tokens).",
    )
    share: float = pydantic.Field(
        default=1.0,
        gt=0,
        le=1,
        description="The chance that a sidecar probes when an open circuit's cooldown ends (else it waits another "
        "cooldown). The fleet sends about pods x share probes per member per cooldown: set it to bound that.",
    )


class ProviderCredentialSpec(base.ApiModel):
    """spec of a ProviderCredential."""

    provider: ProviderType = pydantic.Field(description="Wire format and vendor of this endpoint.")
    base_url: str | None = pydantic.Field(
        default=None,
        alias="baseURL",
        pattern=r"^https?://[^\s]+$",
        max_length=2048,
        description="Endpoint root, e.g. https://api.openai.com/v1. Optional for openai, anthropic "
        "and gemini; required for openai-compatible and azure-openai.",
    )
    api_key_secret_ref: refs.SecretKeyRef | None = pydantic.Field(
        default=None,
        description="The Secret key holding the API key. Omit only for endpoints that need no key "
        "(e.g. a local openai-compatible server).",
    )
    api_version: str | None = pydantic.Field(
        default=None,
        max_length=64,
        description="api-version query parameter for azure-openai (default 2024-10-21).",
    )
    allow_plain_http: bool | None = pydantic.Field(
        default=None,
        alias="allowPlainHTTP",
        description="Send the API key over plain http to a host that is not the loopback (refused unless "
        "true). Only for a server whose network you trust, e.g. in-cluster behind a service mesh's mTLS.",
    )
    compliance: dict[str, str] = pydantic.Field(
        default_factory=dict,
        description="Free-form labels (dpa: signed, region: eu) matched by ModelClass compliance.require.",
    )
    capabilities: Capabilities = pydantic.Field(default_factory=Capabilities)
    probe: ProbeSpec | None = pydantic.Field(
        default=None,
        description="Probe members with an open circuit actively instead of letting a user request be the probe.",
    )

    def prefill(self) -> bool:
        """Whether members on this credential can continue a cut stream."""
        explicit = self.capabilities.prefill
        return PREFILL_BY_DEFAULT[self.provider] if explicit is None else explicit

    @pydantic.model_validator(mode="after")
    def _base_url_where_required(self) -> ProviderCredentialSpec:
        if self.provider in BASE_URL_REQUIRED and not self.base_url:
            raise ValueError(f"baseURL is required for provider {self.provider.value}")
        if (
            self.probe is not None
            and self.probe.kind is ProbeKind.MODELS
            and self.provider is ProviderType.AZURE_OPENAI
        ):
            raise ValueError("probe.kind models is not available for azure-openai (deployments): use generation")
        if sends_key_in_plain_text(
            self.resolved_base_url(), has_key=self.api_key_secret_ref is not None, allowed=bool(self.allow_plain_http)
        ):
            raise ValueError(PLAIN_HTTP_REFUSED)
        return self

    def resolved_base_url(self) -> str:
        """The endpoint to call: spec.baseURL, else the vendor's default."""
        url = self.base_url or DEFAULT_BASE_URLS[self.provider]
        return url.rstrip("/")


class ProviderCredentialStatus(base.ApiModel):
    """status of a ProviderCredential, written by the operator."""

    model_config = pydantic.ConfigDict(extra="allow")
    observed_generation: int | None = None
    conditions: list[refs.Condition] = pydantic.Field(default_factory=list)


class ProviderCredential(base.ApiModel):
    """A whole ProviderCredential object as ``kubectl apply`` takes it."""

    model_config = pydantic.ConfigDict(extra="ignore")
    api_version: Literal["pilotfish.dev/v1alpha1"] = "pilotfish.dev/v1alpha1"
    kind: Literal["ProviderCredential"] = "ProviderCredential"
    metadata: base.ObjectMeta
    spec: ProviderCredentialSpec
