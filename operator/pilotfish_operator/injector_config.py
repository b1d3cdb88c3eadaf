"""What the injected sidecar looks like: image and resources, from the chart's values (``--injector-config``)."""

from __future__ import annotations

import pathlib

import pydantic
import yaml

from pilotfish.api import base


class Resources(base.ApiModel):
    requests: dict[str, str] = pydantic.Field(default_factory=lambda: {"cpu": "50m", "memory": "64Mi"})
    limits: dict[str, str] = pydantic.Field(default_factory=lambda: {"memory": "128Mi"})


class EnvVar(base.ApiModel):
    name: str = pydantic.Field(min_length=1)
    value: str


class BudgetsConfig(base.ApiModel):
    """Where injected sidecars ask for Budget allowances (docs/budgets.md); absent: Budgets not enforced."""

    url: str = pydantic.Field(min_length=1, description="The operator's allowance endpoint, https://…:9443.")
    ca_pem: str | None = pydantic.Field(
        default=None, max_length=64 * 1024, description="The CA of its serving certificate (filled in by the operator)."
    )


class InjectorConfig(base.ApiModel):
    image: str = "ghcr.io/pilotfish-dev/pilotfish-sidecar:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    resources: Resources = pydantic.Field(default_factory=Resources)
    listen_port: int = pydantic.Field(default=4000, ge=1, le=65535)
    admin_port: int = pydantic.Field(default=4001, ge=1, le=65535)
    env: list[EnvVar] = pydantic.Field(default_factory=list, description="e.g. the OTEL_* variables for traces")
    budgets: BudgetsConfig | None = None


def load(path: str | pathlib.Path | None) -> InjectorConfig:
    """The file's settings, or the defaults when no file is given."""
    if path is None:
        return InjectorConfig()
    return InjectorConfig.model_validate(yaml.safe_load(pathlib.Path(path).read_text()) or {})
