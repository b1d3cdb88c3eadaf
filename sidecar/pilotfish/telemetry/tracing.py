"""OpenTelemetry traces: one span per request to the sidecar, one child span per upstream attempt.

On only when the standard variables ask for it (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; ``OTEL_TRACES_EXPORTER=none`` turns it off; ``console`` prints
spans, for a laptop). Off, nothing here is imported or called on the request path: the server
holds ``None`` instead of a ``Tracing``.

Attributes follow the OpenTelemetry GenAI semantic conventions (``gen_ai.*``) plus Pilotfish's own
(``pilotfish.*``). No prompt, no completion, no key: the spans are built from the RequestRecord and
the member routes, which hold none of them. The app's W3C ``traceparent`` is continued, and each
upstream call carries the attempt span's.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pilotfish.routes import document
from pilotfish.telemetry import records

SERVICE_NAME = "pilotfish-sidecar"
TRACER_NAME = "pilotfish.sidecar"
# gen_ai.provider.name values from the semantic conventions, by Pilotfish provider type
GENAI_PROVIDER = {
    "openai": "openai",
    "openai-compatible": "openai",
    "azure-openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
}
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_id_from(headers: Mapping[str, str]) -> str | None:
    """The app's trace id from its ``traceparent``, for the request log when tracing is off."""
    match = TRACEPARENT.match(headers.get("traceparent", "").strip().lower())
    return match.group(1) if match and match.group(1) != "0" * 32 else None


def enabled_by(environ: Mapping[str, str]) -> bool:
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none" or environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if exporter == "console":
        return True
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


@dataclasses.dataclass(slots=True)
class RequestSpan:
    span: Any
    context: Any  # the OTel Context holding ``span``, parent of the attempt spans


class Tracing:
    """A tracer and the W3C propagator; built only when tracing is on."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = provider
        self._tracer = provider.get_tracer(TRACER_NAME)
        self._propagator = TraceContextTextMapPropagator()
        self._kind, self._status, self._code, self._in_context = SpanKind, Status, StatusCode, set_span_in_context

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Tracing | None:
        environ = os.environ if environ is None else environ
        if not enabled_by(environ):
            return None
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

        resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME})
        provider = TracerProvider(resource=resource)
        if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads OTEL_EXPORTER_OTLP_*
        return cls(provider)

    def shutdown(self) -> None:
        self._provider.shutdown()  # flushes what is still queued

    def start_request(self, headers: Mapping[str, str], *, operation: str, class_name: str) -> RequestSpan:
        parent = self._propagator.extract(carrier=dict(headers))
        span = self._tracer.start_span(
            f"{operation} {class_name}",
            context=parent,
            kind=self._kind.SERVER,
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.request.model": class_name,
                "pilotfish.class": class_name,
            },
        )
        return RequestSpan(span=span, context=self._in_context(span, parent))

    def trace_id(self, request_span: RequestSpan) -> str:
        return f"{request_span.span.get_span_context().trace_id:032x}"

    def start_attempt(
        self,
        parent: RequestSpan,
        member: document.MemberRoute,
        *,
        operation: str,
        number: int,
        circuit: str,
        hedge: bool = False,
    ) -> tuple[Any, dict[str, str]]:
        """The attempt's span, and the headers that carry it upstream; ``hedge``: started by hedging."""
        span = self._tracer.start_span(
            f"{operation} {member.model}",
            context=parent.context,
            kind=self._kind.CLIENT,
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.provider.name": GENAI_PROVIDER.get(member.provider.value, member.provider.value),
                "gen_ai.request.model": member.model,
                "server.address": urlsplit(member.base_url).hostname or "",
                "pilotfish.member": member.id,
                "pilotfish.attempt": number,
                "pilotfish.circuit.state": circuit,
                **({"pilotfish.hedge": True} if hedge else {}),
            },
        )
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._in_context(span, parent.context))
        return span, carrier

    def end_attempt(self, span: Any, attempt: records.AttemptRecord) -> None:
        if attempt.failure is not None:
            kind = attempt.failure.kind.value
            span.set_attribute("error.type", kind)
            span.set_attribute("pilotfish.failure.kind", kind)
            if attempt.failure.status is not None:
                span.set_attribute("http.response.status_code", attempt.failure.status)
            span.set_status(self._status(self._code.ERROR, kind))
        span.end()

    def end_request(self, request_span: RequestSpan, record: records.RequestRecord) -> None:
        span = request_span.span
        attributes: dict[str, Any] = {
            "pilotfish.outcome": record.outcome.value,
            "pilotfish.attempts": len(record.attempts),
            "http.response.status_code": record.status,
        }
        if record.member_id:
            attributes |= {
                "pilotfish.member": record.member_id,
                "gen_ai.response.model": record.model or "",
                "gen_ai.provider.name": GENAI_PROVIDER.get(record.provider or "", record.provider or ""),
                "gen_ai.usage.input_tokens": record.prompt_tokens,
                "gen_ai.usage.output_tokens": record.completion_tokens,
            }
        if reason := record.failover_reason():
            attributes["pilotfish.failover.reason"] = reason
        if retried := record.retry_reason():
            attributes["pilotfish.retry.reason"] = retried
        if record.skipped:
            attributes["pilotfish.skipped"] = [f"{member}:{why}" for member, why in record.skipped]
        if record.canary_slice:
            attributes["pilotfish.canary.slice"] = record.canary_slice
        if record.tier is not None:
            attributes["pilotfish.tier"] = record.served_tier() or ""
            attributes["pilotfish.tier.chosen"] = record.tier
            attributes["pilotfish.tier.reason"] = record.tier_reason or ""
        if record.hedges:
            attributes["pilotfish.hedges"] = [f"{member}:{result}" for member, result in record.hedges]
        if record.quotas_failed_open:
            attributes["pilotfish.quota.failed_open"] = list(record.quotas_failed_open)
        if record.recoveries:
            attributes["pilotfish.stream.recoveries"] = [f"{a}->{b}:{result}" for a, b, result in record.recoveries]
        if record.error_code:
            attributes["error.type"] = record.error_code
            span.set_status(self._status(self._code.ERROR, record.error_code))
        span.set_attributes(attributes)
        span.end()
