"""Request bodies → validated wire structs, or a RequestRejected whose message names the field.

Messages follow OpenAI's wording ("Missing required parameter: 'messages'.", "Invalid type or value
for 'temperature': …") so SDK users recognise them. msgspec stops at the first problem, so that is
the one reported.
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec
import orjson

from pilotfish import failures
from pilotfish.wire import structs

Request = TypeVar("Request", bound=structs.Wire)

# orjson reads JSON nested up to 1024 levels but writes only 254 (it raises past that), and every
# attempt writes the body again for its member. So a body it cannot write is refused up front with a
# 400, instead of failing with a 500 at the first attempt. Below this many brackets no body can be.
MAX_JSON_DEPTH = 254


def parse_body(raw: bytes, kind: type[Request]) -> Request:
    """Validate a JSON body as a request of ``kind`` (which may keep the raw object too)."""
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
        return kind.from_body(data)
    except msgspec.ValidationError as exc:
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


_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]*)`")
_WRONG_TYPE = re.compile(r"Expected `[^`]*`, got `|Invalid enum value ")


def rejection_from(exc: msgspec.ValidationError) -> failures.RequestRejected:
    """msgspec's error, phrased for a person, with the field at fault as ``param``."""
    detail, path = structs.problem(exc)
    missing = _MISSING.fullmatch(detail)
    if missing:
        param = _join(path, missing["field"])
        message, code = f"Missing required parameter: '{param}'.", "missing_required_parameter"
    else:
        cause = exc.__cause__  # a rule checked in __post_init__ names its field here
        param = _join(path, cause.field) if isinstance(cause, structs.FieldError) else path
        if _WRONG_TYPE.match(detail):
            message, code = f"Invalid type or value for '{param}': {detail}.", "invalid_type"
        else:
            message, code = f"Invalid value for '{param}': {detail}.", "invalid_value"
    return failures.RequestRejected(message, code=code, param=param or None)


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a number" if isinstance(value, int | float) else type(value).__name__
