"""The request span's pilotfish attributes, read from the SDK's in-memory exporter: no collector needed."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pilotfish.telemetry import records, tracing


def _ended(record: records.RequestRecord) -> dict[str, object]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traces = tracing.Tracing(provider)
    record.span = traces.start_request({}, operation="chat", class_name=record.class_name)
    traces.end_request(record.span, record)
    (span,) = exporter.get_finished_spans()
    return dict(span.attributes or {})


def test_members_admitted_on_a_quota_fail_open_share_are_on_the_request_span_and_absent_otherwise():
    record = records.RequestRecord(class_name="w", stream=False, provider="openai", model="m", member_id="b/m")
    assert "pilotfish.quota.failed_open" not in _ended(record)
    record = records.RequestRecord(class_name="w", stream=False, provider="openai", model="m", member_id="b/m")
    record.quotas_failed_open = ["b/m"]
    assert _ended(record)["pilotfish.quota.failed_open"] == ("b/m",)
