"""Gemini API: OpenAI chat requests in, ``models/{model}:streamGenerateContent?alt=sse`` out, and back.

What differs and is handled here: messages become ``contents`` with roles ``user`` and ``model``;
system text goes to ``systemInstruction``; settings go to ``generationConfig``; tools are
``functionDeclarations``, calls are ``functionCall`` parts (whole, never streamed in pieces) and
results ``functionResponse`` parts, which name the function, not the call id. The stream has no
``[DONE]``: a candidate's ``finishReason`` ends it. A prompt blocked by ``promptFeedback`` is a
content-filter outcome (answered once, not failed over), not a provider failure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from pilotfish import failures
from pilotfish.providers import base
from pilotfish.routes import document
from pilotfish.specs import refs
from pilotfish.wire import http, openai, sse

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "BLOCKLIST": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
_STATUS_KINDS = {
    "RESOURCE_EXHAUSTED": failures.FailureKind.RATE_LIMITED,
    "UNAVAILABLE": failures.FailureKind.OVERLOADED,
    "INTERNAL": failures.FailureKind.SERVER_ERROR,
    "DEADLINE_EXCEEDED": failures.FailureKind.SERVER_ERROR,
    "UNAUTHENTICATED": failures.FailureKind.AUTH,
    "PERMISSION_DENIED": failures.FailureKind.AUTH,
    "NOT_FOUND": failures.FailureKind.NOT_FOUND,
}
_CONTEXT_PHRASES = ("exceeds the maximum number of tokens", "token count", "too long", "context window")
# Google's credential errors (google.rpc ErrorInfo reasons, and the messages that come with them): an
# invalid or expired key is a 400 INVALID_ARGUMENT "API key not valid" with reason API_KEY_INVALID, a
# refused region a 400 FAILED_PRECONDITION "User location is not supported for the API use".
_INVALID_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})
_INVALID_KEY_PHRASES = ("api key not valid", "api key expired", "api_key_invalid")
_REGION_PHRASES = ("location is not supported",)


def build_request(
    request: openai.ChatRequest,
    member: document.MemberRoute,
    *,
    api_key: refs.ApiKey | None,
) -> http.UpstreamRequest:
    system, contents = _contents(request)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    config = _generation_config(request, member)
    if config:
        body["generationConfig"] = config
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(tool) for tool in request.tools]}]
        tool_config = _tool_config(request.tool_choice)
        if tool_config:
            body["toolConfig"] = tool_config
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if api_key:
        headers["x-goog-api-key"] = api_key.reveal()
    url = f"{member.base_url}/v1beta/models/{quote(member.model, safe='')}:streamGenerateContent?alt=sse"
    return http.UpstreamRequest(url=url, headers=headers, body=orjson.dumps(body), stream=True)


def _contents(request: openai.ChatRequest) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names_by_call: dict[str, str] = {}  # functionResponse names the function, OpenAI's tool message the call
    for message in request.messages:
        if message.role in ("system", "developer"):
            system.append(message.text())
            continue
        for call in message.tool_calls or ():
            names_by_call[call.id] = call.function.name
        role = "model" if message.role == "assistant" else "user"
        parts = _parts(message, names_by_call)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return "\n\n".join(text for text in system if text), contents


def _parts(message: openai.Message, names_by_call: Mapping[str, str]) -> list[dict[str, Any]]:
    if message.role == "tool":
        name = names_by_call.get(message.tool_call_id or "", message.name or "tool")
        return [{"functionResponse": {"name": name, "response": {"content": message.text()}}}]
    parts: list[dict[str, Any]] = []
    if isinstance(message.content, str):
        if message.content:
            parts.append({"text": message.content})
    else:
        for part in message.content or ():
            if part.type == "text" and part.text:
                parts.append({"text": part.text})
            elif part.type == "image_url" and part.image_url:
                parts.append(_image(str(part.image_url.get("url", ""))))
    for call in message.tool_calls or ():
        try:
            args = orjson.loads(call.function.arguments or "{}")
        except orjson.JSONDecodeError:
            args = {}
        parts.append({"functionCall": {"name": call.function.name, "args": args}})
    return parts


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        return {"inlineData": {"mimeType": header.removeprefix("data:").split(";", 1)[0], "data": data}}
    return {"fileData": {"mimeType": "image/*", "fileUri": url}}


def _generation_config(request: openai.ChatRequest, member: document.MemberRoute) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    limit = request.output_token_limit() or member.max_output_tokens
    if limit:
        config["maxOutputTokens"] = limit
    if request.stop:
        config["stopSequences"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    response_format = request.response_format or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    return config


def _declaration(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or {}
    declaration = {"name": function.get("name", "")}
    if function.get("description"):
        declaration["description"] = function["description"]
    if function.get("parameters"):
        declaration["parameters"] = function["parameters"]
    return declaration


def _tool_config(choice: str | dict[str, Any] | None) -> dict[str, Any] | None:
    modes = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
    if isinstance(choice, str) and choice in modes:
        return {"functionCallingConfig": {"mode": modes[choice]}}
    if isinstance(choice, dict) and choice.get("function"):
        name = choice["function"].get("name", "")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return None


def parse_response(body: bytes, *, member: document.MemberRoute) -> openai.ChatCompletion:
    """A non-streaming GenerateContentResponse as an OpenAI chat.completion."""
    translator = StreamTranslator(model=member.model)
    chunks = translator.translate(base.parse_json(body, what="response"))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    calls = [call for c in chunks if c["choices"] for call in c["choices"][0]["delta"].get("tool_calls", [])]
    finish = next(
        (c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]), "stop"
    )
    usage = next((c["usage"] for c in chunks if c.get("usage")), None)
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        message["tool_calls"] = [{k: v for k, v in call.items() if k != "index"} for call in calls]
    return {
        "id": translator.response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": translator.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }


class StreamTranslator:
    """GenerateContentResponse events → OpenAI chunks. The first chunk carries the role."""

    def __init__(self, *, model: str) -> None:
        self.finished = False
        self.model = model
        self.response_id = "chatcmpl-gemini"
        self._started = False
        self._calls = 0

    def feed(self, event: sse.Event) -> list[openai.ChatChunk]:
        data = base.parse_json(event.data, what="stream event")
        if isinstance(data, dict) and "error" in data:
            raise failures.AttemptFailed(_classify_error_object(data["error"], status=None))
        return self.translate(data) if isinstance(data, dict) else []

    def translate(self, data: dict[str, Any]) -> list[openai.ChatChunk]:
        self.model = data.get("modelVersion") or self.model
        self.response_id = data.get("responseId") or self.response_id
        blocked = (data.get("promptFeedback") or {}).get("blockReason")
        if blocked and not data.get("candidates"):
            raise failures.AttemptFailed(
                failures.Failure(
                    kind=failures.FailureKind.CONTENT_FILTER, detail=f"prompt blocked: {blocked}", code="content_filter"
                )
            )
        chunks: list[openai.ChatChunk] = []
        if not self._started:
            self._started = True
            chunks.append(self._chunk({"role": "assistant", "content": ""}))
        candidate = (data.get("candidates") or [{}])[0]
        for part in (candidate.get("content") or {}).get("parts") or ():
            chunks.extend(self._part(part))
        reason = candidate.get("finishReason")
        if reason:
            finish = "tool_calls" if self._calls else FINISH_REASONS.get(reason, "stop")
            chunks.append(self._chunk({}, finish))
            metadata = data.get("usageMetadata")
            chunks.append(self._usage(metadata if isinstance(metadata, dict) else {}))
            self.finished = True
        return chunks

    def _part(self, part: dict[str, Any]) -> list[openai.ChatChunk]:
        if part.get("thought"):
            return []  # thinking summaries have no OpenAI counterpart
        if "text" in part:
            return [self._chunk({"content": part["text"]})] if part["text"] else []
        call = part.get("functionCall")
        if not call:
            return []
        arguments = orjson.dumps(call.get("args") or {}).decode()
        call_id = (
            call.get("id") or "call_" + hashlib.sha256(f"{self.response_id}{self._calls}".encode()).hexdigest()[:24]
        )
        delta = {
            "tool_calls": [
                {
                    "index": self._calls,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.get("name", ""), "arguments": arguments},
                }
            ]
        }
        self._calls += 1
        return [self._chunk(delta)]

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> openai.ChatChunk:
        return {
            "id": self.response_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def _usage(self, metadata: dict[str, Any]) -> openai.ChatChunk:
        prompt = openai.token_count(metadata.get("promptTokenCount"))
        count = openai.token_count
        completion = count(metadata.get("candidatesTokenCount")) + count(metadata.get("thoughtsTokenCount"))
        return {
            "id": self.response_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }


def new_stream_translator(*, member: document.MemberRoute) -> StreamTranslator:
    return StreamTranslator(model=member.model)


def classify_error(status: int, headers: Mapping[str, str], body: bytes) -> failures.Failure:
    error: Any = {}
    try:
        parsed = orjson.loads(body) if body else {}
        if isinstance(parsed, list) and parsed:
            parsed = parsed[0]
        error = parsed.get("error", {}) if isinstance(parsed, dict) else {}
    except orjson.JSONDecodeError:
        error = {"message": body[:200].decode("utf-8", errors="replace")}
    failure = _classify_error_object(error if isinstance(error, dict) else {}, status=status)
    retry_after = failures.parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"))
    return dataclasses.replace(failure, status=status, retry_after=retry_after or failure.retry_after)


def _classify_error_object(error: Mapping[str, Any], *, status: int | None) -> failures.Failure:
    code = str(error.get("status") or "") or None
    message = str(error.get("message") or "")
    credential = _credential_problem(status, code or "", message.lower(), error)
    if credential is not None:
        return failures.Failure(
            kind=failures.FailureKind.AUTH,
            status=status,
            retry_after=_retry_delay(error),
            detail=message,
            code=code,
            credential=credential,
        )
    kind = _STATUS_KINDS.get(code or "")
    if kind is None:
        if any(phrase in message.lower() for phrase in _CONTEXT_PHRASES):
            kind = failures.FailureKind.CONTEXT_LENGTH
        elif status is None or status >= 500:
            kind = failures.FailureKind.SERVER_ERROR
        else:
            kind = {
                429: failures.FailureKind.RATE_LIMITED,
                401: failures.FailureKind.AUTH,
                403: failures.FailureKind.AUTH,
                404: failures.FailureKind.NOT_FOUND,
            }.get(status, failures.FailureKind.BAD_REQUEST)
    return failures.Failure(kind=kind, status=status, retry_after=_retry_delay(error), detail=message, code=code)


def _credential_problem(
    status: int | None, code: str, message: str, error: Mapping[str, Any]
) -> failures.CredentialProblem | None:
    """The credential problem a Gemini error reports, or None when it is about something else."""
    problems = failures.CredentialProblem
    reasons = {str(d.get("reason")) for d in _details(error) if d.get("reason")}
    if reasons & _INVALID_KEY_REASONS or any(phrase in message for phrase in _INVALID_KEY_PHRASES):
        return problems.INVALID_KEY
    if any(phrase in message for phrase in _REGION_PHRASES):
        return problems.REGION_NOT_SUPPORTED
    if code == "UNAUTHENTICATED" or (status == 401 and not code):
        return problems.INVALID_KEY
    if code == "PERMISSION_DENIED" or (status == 403 and not code):
        return problems.PERMISSION_DENIED
    return None


def _details(error: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _retry_delay(error: Mapping[str, Any]) -> float | None:
    """Google's RetryInfo detail ("retryDelay": "20s"), the Retry-After of the Gemini API."""
    for detail in _details(error):
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            return failures.parse_retry_after(delay[:-1])
    return None
