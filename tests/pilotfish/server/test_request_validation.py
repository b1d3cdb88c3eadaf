import pytest

from pilotfish import failures
from pilotfish.server import validation
from pilotfish.wire import openai


def _reject(raw: bytes) -> failures.RequestRejected:
    with pytest.raises(failures.RequestRejected) as caught:
        validation.parse_body(raw, openai.ChatRequest)
    return caught.value


def test_malformed_json_names_the_problem():
    rejected = _reject(b'{"model": ')
    assert rejected.status == 400 and rejected.code == "invalid_json"
    assert rejected.message.startswith("The request body is not valid JSON")


def test_a_body_that_is_not_an_object_is_refused():
    assert _reject(b"[1, 2]").message == "The request body must be a JSON object, not an array."


def test_missing_messages_is_reported_like_openai_does():
    rejected = _reject(b'{"model": "workhorse"}')
    assert rejected.message == "Missing required parameter: 'messages'."
    assert rejected.param == "messages" and rejected.code == "missing_required_parameter"


def test_a_wrong_type_names_the_nested_field():
    rejected = _reject(b'{"model": "w", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}')
    assert rejected.param == "temperature"
    assert rejected.message.startswith("Invalid type or value for 'temperature'")


def test_an_unknown_role_names_the_message_index():
    rejected = _reject(b'{"model": "w", "messages": [{"role": "robot", "content": "hi"}]}')
    assert rejected.param == "messages[0].role"


def test_a_valid_request_keeps_unknown_fields():
    request = validation.parse_body(
        b'{"model": "w", "messages": [{"role": "user", "content": "hi"}], "seed": 3}', openai.ChatRequest
    )
    assert request.model_dump(exclude_unset=True)["seed"] == 3
