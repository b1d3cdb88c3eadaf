"""Each runtime spec (pilotfish.specs, msgspec, what the sidecar reads) and its api twin (pydantic, what
users write and the CRD schema is generated from) agree on every field: its wire name, its default and its
bounds. A field added, renamed, re-defaulted or re-bounded on one side only fails here, before a routes
document carries it to a sidecar that reads it differently."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pydantic
import pytest
from pydantic import alias_generators
from pydantic_core import PydanticUndefined

from pilotfish.api import budget, credential, modelclass, refs, tiers
from pilotfish.specs import budget as budget_specs
from pilotfish.specs import credential as credential_specs
from pilotfish.specs import modelclass as modelclass_specs
from pilotfish.specs import refs as refs_specs
from pilotfish.specs import tiers as tiers_specs

TWINS: list[tuple[type[pydantic.BaseModel], type[msgspec.Struct]]] = [
    (modelclass.RoutingSpec, modelclass_specs.RoutingSpec),
    (modelclass.PinningSpec, modelclass_specs.PinningSpec),
    (modelclass.TimeoutsSpec, modelclass_specs.TimeoutsSpec),
    (modelclass.AdaptiveFirstTokenSpec, modelclass_specs.AdaptiveFirstTokenSpec),
    (modelclass.HealthSpec, modelclass_specs.HealthSpec),
    (modelclass.StreamingSpec, modelclass_specs.StreamingSpec),
    (modelclass.SpliceSpec, modelclass_specs.SpliceSpec),
    (modelclass.LimitsSpec, modelclass_specs.LimitsSpec),
    (refs.Pricing, refs_specs.Pricing),
    (refs.SecretKeyRef, refs_specs.SecretKeyRef),
    (credential.ProbeSpec, credential_specs.ProbeSpec),
    (budget.BudgetSpec, budget_specs.BudgetSpec),
    (budget.SpendLimit, budget_specs.SpendLimit),
    (tiers.TierRule, tiers_specs.TierRule),
    (tiers.TierMatch, tiers_specs.TierMatch),
    (tiers.HeaderMatch, tiers_specs.HeaderMatch),
]
REQUIRED = "<required>"
BOUNDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern"}
BOUNDS |= {"minItems", "maxItems", "maxProperties", "enum", "const"}


def as_json(value: object) -> object:
    """A default as it would be written: models and structs dumped, tuples and lists alike."""
    if isinstance(value, pydantic.BaseModel):
        value = value.model_dump(by_alias=True, mode="json")
    return orjson.loads(orjson.dumps(msgspec.to_builtins(value)))


def api_fields(model: type[pydantic.BaseModel]) -> dict[str, object]:
    out = {}
    for name, field in model.model_fields.items():
        if field.default is not PydanticUndefined:
            default = as_json(field.default)
        elif field.default_factory is not None:
            default = as_json(field.default_factory())  # type: ignore[call-arg]
        else:
            default = REQUIRED
        out[field.alias or alias_generators.to_camel(name)] = (name, default)
    return out


def runtime_fields(struct: type[msgspec.Struct]) -> dict[str, object]:
    out = {}
    for field in msgspec.structs.fields(struct):
        if field.default is not msgspec.NODEFAULT:
            default = as_json(field.default)
        elif field.default_factory is not msgspec.NODEFAULT:
            default = as_json(field.default_factory())
        else:
            default = REQUIRED
        out[field.encode_name] = (field.name, default)
    return out


def bounds(schema: Any) -> set[tuple[str, str]]:
    """Every bound in a property's schema, wherever it sits (an Optional puts it inside anyOf)."""
    found: set[tuple[str, str]] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in BOUNDS:
                found.add((key, orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()))
            elif key != "$ref":
                found |= bounds(value)
    elif isinstance(schema, list):
        for item in schema:
            found |= bounds(item)
    return found


def property_bounds(schema: dict[str, Any]) -> dict[str, set[tuple[str, str]]]:
    return {name: bounds(prop) for name, prop in schema.get("properties", {}).items()}


def names(pair: tuple[type, type]) -> str:
    return pair[0].__name__


@pytest.mark.parametrize("api, runtime", TWINS, ids=[names(pair) for pair in TWINS])
def test_a_runtime_spec_has_its_api_twins_fields_wire_names_and_defaults(api, runtime):
    assert runtime_fields(runtime) == api_fields(api)


@pytest.mark.parametrize("api, runtime", TWINS, ids=[names(pair) for pair in TWINS])
def test_a_runtime_spec_has_its_api_twins_bounds(api, runtime):
    api_schema = api.model_json_schema(by_alias=True)
    runtime_schema = msgspec.json.schema(runtime)
    runtime_schema = runtime_schema["$defs"][runtime_schema["$ref"].rsplit("/", 1)[-1]]
    assert property_bounds(runtime_schema) == property_bounds(api_schema)
