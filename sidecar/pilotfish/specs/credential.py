"""What a member carries from its ProviderCredential: the provider, the plain-HTTP rule, the probe.

``pilotfish.api.credential`` re-exports the enums and constants defined here, so the operator, the
webhook and the sidecar agree on one definition.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated

import msgspec

from pilotfish.specs import structs


class ProviderType(enum.StrEnum):
    """The closed set of wire formats the sidecar speaks; each value has one adapter module."""

    OPENAI = "openai"
    OPENAI_COMPATIBLE = "openai-compatible"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    AZURE_OPENAI = "azure-openai"


# The vendor's public endpoint, used when spec.baseURL is omitted.
DEFAULT_BASE_URLS: dict[ProviderType, str] = {
    ProviderType.OPENAI: "https://api.openai.com/v1",
    ProviderType.ANTHROPIC: "https://api.anthropic.com",
    ProviderType.GEMINI: "https://generativelanguage.googleapis.com",
}

# Providers whose endpoint is deployment-specific, so baseURL cannot be defaulted.
BASE_URL_REQUIRED = frozenset({ProviderType.OPENAI_COMPATIBLE, ProviderType.AZURE_OPENAI})


# A key travels in plain text (http) only to the pod's own loopback, a server beside the app. Anywhere
# else it needs https, unless the credential opts in with allowPlainHTTP. The same pattern is the CRD's
# CEL rule, so kubectl, the operator and the sidecar agree on what counts as the loopback. A userinfo
# trick (http://127.0.0.1@elsewhere/) or a name that starts like one (http://localhost.example/) fails it.
LOOPBACK_HTTP = r"^http://(localhost|127(\.[0-9]{1,3}){3}|\[::1\])(:[0-9]{1,5})?(/.*)?$"
PLAIN_HTTP_REFUSED = (
    "baseURL would send the API key in plain text (http) to a host other than the loopback: "
    "use https, or set allowPlainHTTP for a server whose network you trust (e.g. behind a mesh's mTLS)"
)


def sends_key_in_plain_text(base_url: str, *, has_key: bool, allowed: bool) -> bool:
    """Whether a member on ``base_url`` would put its key on the wire unencrypted, beyond the loopback."""
    return has_key and not allowed and base_url.startswith("http://") and not re.match(LOOPBACK_HTTP, base_url)


# Which providers continue a trailing assistant message (a prefill) rather than starting a new reply:
# the mid-stream recovery of a cut stream sends one, so only these members can continue a stream.
PREFILL_BY_DEFAULT = {
    ProviderType.ANTHROPIC: True,
    ProviderType.GEMINI: True,
    ProviderType.OPENAI: False,
    ProviderType.AZURE_OPENAI: False,
    ProviderType.OPENAI_COMPATIBLE: False,  # servers differ: say so in capabilities.prefill
}


class ProbeKind(enum.StrEnum):
    GENERATION = "generation"  # a one-token chat completion of a fixed prompt: works everywhere, costs ~10 tokens
    MODELS = "models"  # the vendor's list of models: no tokens, but proves less (the key and the API are up)


class ProbeSpec(structs.Spec, frozen=True, kw_only=True):
    """Active health probes of a member whose circuit is open (``api.credential.ProbeSpec`` documents them)."""

    kind: ProbeKind = ProbeKind.GENERATION
    share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 1.0
