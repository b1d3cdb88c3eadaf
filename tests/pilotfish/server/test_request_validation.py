import orjson
import pytest

from pilotfish import failures
from pilotfish.server import validation
from pilotfish.wire import anthropic, openai, structs


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
    assert request.raw["seed"] == 3


def _rejected(body: dict[str, object], kind: type[structs.Wire] = openai.ChatRequest) -> failures.RequestRejected:
    with pytest.raises(failures.RequestRejected) as caught:
        validation.parse_body(orjson.dumps(body), kind)
    return caught.value


USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("role", ["system", "developer", "user", "tool"])
def test_content_is_required_for_every_role_but_the_assistants(role):
    rejected = _rejected({"model": "w", "messages": [{"role": role, "tool_call_id": "t"}]})
    assert (rejected.param, rejected.code) == ("messages[0]", "invalid_value")
    assert rejected.message == f"Invalid value for 'messages[0]': content is required for role '{role}'."
    calls = [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]
    assistant = {"model": "w", "messages": [{"role": "assistant", "tool_calls": calls}]}
    served = validation.parse_body(orjson.dumps(assistant), openai.ChatRequest)
    assert served.messages[0].content is None and served.messages[0].tool_calls[0].function.name == "f"


@pytest.mark.parametrize("tool_call_id", [None, ""])
def test_a_tool_message_names_the_call_it_answers(tool_call_id):
    message = {"role": "tool", "content": "42", **({"tool_call_id": tool_call_id} if tool_call_id is not None else {})}
    rejected = _rejected({"model": "w", "messages": [*USER, message]})
    assert rejected.param == "messages[1]"
    assert rejected.message == "Invalid value for 'messages[1]': tool_call_id is required for role 'tool'."


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tool_choice": {"type": "function", "function": "f"}}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": 3}}}, "tool_choice"),
        ({"tools": [{"function": {"name": "f"}}, {"type": "function", "function": ["f"]}]}, "tools"),
    ],
)
def test_a_named_tool_or_tool_choice_names_its_function_in_an_object(body, param):
    rejected = _rejected({"model": "w", "messages": USER, **body})
    assert (rejected.param, rejected.code) == (param, "invalid_value")
    assert "must be an object with a string 'name'" in rejected.message


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("model", "", "invalid_value"),
        ("messages", [], "invalid_value"),
        ("max_tokens", 0, "invalid_value"),
        ("max_completion_tokens", 0, "invalid_value"),
        ("temperature", 2.5, "invalid_value"),
        ("top_p", -0.1, "invalid_value"),
        ("n", 2, "invalid_value"),
        ("max_tokens", True, "invalid_type"),  # pydantic took a boolean for a number; OpenAI's API does not
        ("stream", "yes", "invalid_type"),
    ],
)
def test_each_bound_of_a_chat_request_is_enforced(field, value, code):
    rejected = _rejected({"model": "w", "messages": USER, field: value})
    assert (rejected.param, rejected.code) == (field, code)


def test_a_nested_problem_is_named_by_its_whole_path():
    content = [{"type": "text", "text": "a"}, {"text": "b"}]
    rejected = _rejected({"model": "w", "messages": [*USER, {"role": "user", "content": content}]})
    assert rejected.message == "Missing required parameter: 'messages[1].content[1].type'."
    assert rejected.param == "messages[1].content[1].type" and rejected.code == "missing_required_parameter"


def test_scalars_are_read_as_leniently_as_before():
    body = {"model": "w", "messages": USER, "temperature": "0.5", "max_tokens": 5.0, "stream": "true"}
    request = validation.parse_body(orjson.dumps(body), openai.ChatRequest)
    assert (request.temperature, request.max_tokens, request.stream) == (0.5, 5, True)
    assert request.raw == body  # members are sent what the client sent


def test_no_key_of_the_body_can_stand_in_for_the_raw_object():
    body = {"model": "w", "messages": USER, "_raw": {"model": "x"}, "raw": {"model": "y"}}
    assert validation.parse_body(orjson.dumps(body), openai.ChatRequest).raw is not body["_raw"]
    assert openai.ChatRequest.from_body(body).raw == body


@pytest.mark.parametrize(
    "value",
    ["", [], [""], ["a", ""], [[]], [[1], []], [1, "a"], ["1", 2], [1.0], [True], [[1, "a"]], [None], [["a"]]],
)
def test_embeddings_input_is_texts_or_token_arrays_and_never_empty(value):
    rejected = _rejected({"model": "e", "input": value}, openai.EmbeddingsRequest)
    assert (rejected.param, rejected.code) == ("input", "invalid_value")


@pytest.mark.parametrize("value", ["a", ["a", "b"], [1, 2], [[1], [2, 3]]])
def test_embeddings_input_of_each_kind_is_served(value):
    request = validation.parse_body(orjson.dumps({"model": "e", "input": value}), openai.EmbeddingsRequest)
    assert request.input == value and request.raw["input"] == value


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"max_tokens": 5}, "messages", "missing_required_parameter"),
        ({"messages": USER}, "max_tokens", "missing_required_parameter"),
        ({"max_tokens": 0, "messages": USER}, "max_tokens", "invalid_value"),
        ({"max_tokens": 5, "messages": []}, "messages", "invalid_value"),
        ({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages[0].role", "invalid_type"),
        ({"max_tokens": 5, "messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
        ({"max_tokens": 5, "messages": USER, "temperature": 1.5}, "temperature", "invalid_value"),
        ({"max_tokens": 5, "messages": USER, "top_k": -1}, "top_k", "invalid_value"),
        ({"max_tokens": 5, "messages": USER, "stop_sequences": "x"}, "stop_sequences", "invalid_type"),
    ],
)
def test_each_rule_of_an_anthropic_messages_request_is_enforced(body, param, code):
    rejected = _rejected({"model": "w", **body}, anthropic.MessagesRequest)
    assert (rejected.param, rejected.code) == (param, code)
