"""Traces over the wire: the sidecar exports OTLP/HTTP to a receiver that decodes the protobuf as a collector
would. One server span per request continuing the app's traceparent, one client span per attempt, GenAI
attributes, the upstream call carrying the attempt's context, a hedge marked on its attempt and on the request,
and no prompt text or key anywhere."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from tests.integration.conftest import KEYS, USER, answer_of, complete, manifests_for, start_sidecar, stop_sidecar

APP_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
APP_SPAN = "00f067aa0ba902b7"


@pytest.fixture
async def collector():
    spans: list[Any] = []

    async def traces(request: web.Request) -> web.Response:
        export = trace_service_pb2.ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource_spans in export.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            for scope in resource_spans.scope_spans:
                spans.extend((service, span) for span in scope.spans)
        return web.Response(
            body=trace_service_pb2.ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", spans
    await runner.cleanup()


def _attributes(span: Any) -> dict[str, Any]:
    out = {}
    for attribute in span.attributes:
        value = attribute.value
        kind = value.WhichOneof("value")
        out[attribute.key] = (
            list(v.string_value for v in value.array_value.values) if kind == "array_value" else getattr(value, kind)
        )
    return out


async def test_a_failover_is_one_server_span_with_a_client_span_per_attempt(tmp_path, mocks, collector):
    endpoint, spans = collector
    manifest = tmp_path / "m" / "all.yaml"
    manifest.parent.mkdir()
    manifest.write_text(
        manifests_for(
            mocks,
            """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: primary, model: model-a}
    - {credentialRef: claude, model: claude-sonnet-4-5}
""",
        )
    )
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": "chat-app-sidecar",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    sidecar = await start_sidecar(["local", "-f", str(manifest.parent)], env=env)
    try:
        mocks["primary"].set_fault(mode="status", status=503)
        client = sidecar.client(default_headers={"traceparent": f"00-{APP_TRACE}-{APP_SPAN}-01"})
        answer = await client.chat.completions.create(model="workhorse", messages=USER)
        assert "claude" in answer.choices[0].message.content
        for _ in range(50):
            if len(spans) >= 3:
                break
            await asyncio.sleep(0.1)
    finally:
        await stop_sidecar(sidecar)

    assert {service for service, _ in spans} == {"chat-app-sidecar"}
    by_kind = {}
    for _, span in spans:
        by_kind.setdefault(span.kind, []).append(span)
    (server,) = by_kind[2]  # SPAN_KIND_SERVER
    attempts = sorted(by_kind[3], key=lambda s: _attributes(s)["pilotfish.attempt"])  # SPAN_KIND_CLIENT
    assert server.trace_id.hex() == APP_TRACE and server.parent_span_id.hex() == APP_SPAN
    assert server.name == "chat workhorse"
    top = _attributes(server)
    assert top["gen_ai.operation.name"] == "chat" and top["pilotfish.class"] == "workhorse"
    assert top["pilotfish.failover.reason"] == "overloaded"
    assert top["gen_ai.provider.name"] == "anthropic" and top["gen_ai.response.model"] == "claude-sonnet-4-5"
    assert top["gen_ai.usage.output_tokens"] > 0 and top["pilotfish.attempts"] == 2

    assert [a.name for a in attempts] == ["chat model-a", "chat claude-sonnet-4-5"]
    assert all(a.trace_id == server.trace_id and a.parent_span_id == server.span_id for a in attempts)
    failed, served = (_attributes(a) for a in attempts)
    assert failed["pilotfish.failure.kind"] == "overloaded" and failed["http.response.status_code"] == 503
    assert failed["gen_ai.provider.name"] == "openai" and failed["pilotfish.circuit.state"] == "closed"
    assert served["gen_ai.request.model"] == "claude-sonnet-4-5" and "error.type" not in served
    # each upstream call carried its own attempt span as the parent
    assert mocks["primary"].stats.last_traceparent == f"00-{APP_TRACE}-{attempts[0].span_id.hex()}-01"
    assert mocks["claude"].stats.last_traceparent == f"00-{APP_TRACE}-{attempts[1].span_id.hex()}-01"
    everything = b"".join(span.SerializeToString() for _, span in spans)
    assert b"Say hello" not in everything and KEYS["claude"].encode() not in everything


async def test_without_otel_variables_no_span_is_made_but_the_log_keeps_the_apps_trace_id(sidecar, mocks):
    client = sidecar.client(default_headers={"traceparent": f"00-{APP_TRACE}-{APP_SPAN}-01"})
    await client.chat.completions.create(model="workhorse", messages=USER)
    assert mocks["primary"].stats.last_traceparent is None  # nothing propagated: tracing is off
    assert (await sidecar.last_request_line(timeout=1))["trace_id"] == APP_TRACE


HEDGING_CLASS = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: primary, model: model-a}
    - {credentialRef: backup, model: model-b}
  routing: {hedge: true}
  timeouts: {adaptiveFirstToken: {minSamples: 5, floorSeconds: 0.5}}
"""


async def test_a_hedge_that_wins_is_traced_on_its_attempt_span_and_on_the_request_span(tmp_path, mocks, collector):
    endpoint, spans = collector
    manifest = tmp_path / "m" / "all.yaml"
    manifest.parent.mkdir()
    manifest.write_text(manifests_for(mocks, HEDGING_CLASS))
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "app", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    sidecar = await start_sidecar(["local", "-f", str(manifest.parent)], env=env)
    try:
        for _ in range(5):  # the primary's normal: first tokens in milliseconds, so its adaptive deadline is 0.5 s
            assert (await complete(sidecar.client(), stream=True))[0] == answer_of("primary")
        mocks["primary"].set_fault(mode="slow-first-token", delay=20)
        client = sidecar.client(default_headers={"traceparent": f"00-{APP_TRACE}-{APP_SPAN}-01"})
        assert (await complete(client, stream=True))[0] == answer_of("backup")  # the hedge answered first
        for _ in range(100):
            if len([span for _, span in spans if span.trace_id.hex() == APP_TRACE]) >= 3:
                break
            await asyncio.sleep(0.1)
    finally:
        await stop_sidecar(sidecar)

    traced = [span for _, span in spans if span.trace_id.hex() == APP_TRACE]
    (server,) = [span for span in traced if span.kind == 2]  # SPAN_KIND_SERVER
    assert _attributes(server)["pilotfish.hedges"] == ["backup/model-b:won"]
    attempts = {_attributes(span)["pilotfish.member"]: _attributes(span) for span in traced if span.kind == 3}
    assert attempts.keys() == {"primary/model-a", "backup/model-b"}
    assert attempts["backup/model-b"]["pilotfish.hedge"] is True
    assert "pilotfish.hedge" not in attempts["primary/model-a"]  # the hedged attempt is no hedge
    assert attempts["primary/model-a"]["pilotfish.failure.kind"] == "first_token_timeout"
