"""Request bodies → validated wire models, or a RequestRejected whose message names the field.

Messages follow OpenAI's wording ("Missing required parameter: 'messages'.", "Invalid type for
'temperature': …") so SDK users recognise them.
"""

from __future__ import annotations

from typing import TypeVar

import orjson
import pydantic

from pilotfish import failures

Model = TypeVar("Model", bound=pydantic.BaseModel)

# orjson reads JSON nested up to 1024 levels but writes only 254 (it raises past that), and every
# attempt writes the body again for its member. So a body it cannot write is refused up front with a
# 400, instead of failing with a 500 at the first attempt. Below this many brackets no body can be.
MAX_JSON_DEPTH = 254


def parse_body(raw: bytes, model: type[Model]) -> Model:
    """Validate a JSON body; a model with a ``from_body`` constructor keeps the raw object too."""
    if not raw.strip():
        raise failures.RequestRejected("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise failures.RequestRejected(
            f"The request body is not valid JSON: {exc.args[0] if exc.args else exc}.", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise failures.RequestRejected(
            f"The request body must be a JSON object, not {_json_type(data)}.", code="invalid_type"
        )
    if _too_deep_to_write(raw, data):
        raise failures.RequestRejected(
            "The request body is nested too deeply (the limit is 254 levels).", code="invalid_json"
        )
    try:
        from_body = getattr(model, "from_body", None)
        return from_body(data) if from_body else model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise rejection_from(exc) from None


def _too_deep_to_write(raw: bytes, data: object) -> bool:
    """Whether orjson cannot write ``data`` back (nested past its limit). Only a body with more brackets
    than MAX_JSON_DEPTH can be that deep, so most bodies are cleared by two fast counts; the rest are
    written once, at C speed, exactly as an attempt would write them."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False
    try:
        orjson.dumps(data)
    except orjson.JSONEncodeError:
        return True
    return False


def rejection_from(exc: pydantic.ValidationError) -> failures.RequestRejected:
    """The first error, phrased for a person; the rest are counted, not listed."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    param = _param_path(first["loc"])
    kind = first["type"]
    if kind == "missing":
        message, code = f"Missing required parameter: '{param}'.", "missing_required_parameter"
    elif kind.endswith(("_type", "_parsing")) or kind == "literal_error":
        message, code = f"Invalid type or value for '{param}': {first['msg']}.", "invalid_type"
    else:
        message, code = f"Invalid value for '{param}': {first['msg']}.", "invalid_value"
    if len(errors) > 1:
        message += f" ({len(errors) - 1} more problem{'s' if len(errors) > 2 else ''} in the request.)"
    return failures.RequestRejected(message, code=code, param=param or None)


def _param_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in (
            "str",
            "list[ContentPart]",
            "none",
            "function-after[_content_where_required(), Message]",
        ):
            continue  # pydantic's union-branch labels are noise to a user
        elif "[" in part or "(" in part:
            continue
        else:
            path += f".{part}" if path else part
    return path


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a number" if isinstance(value, int | float) else type(value).__name__
